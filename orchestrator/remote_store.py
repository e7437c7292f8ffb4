"""The artifact store on any fsspec filesystem: an object store, a shared or in-memory filesystem.

Workers on several machines need a store they all reach; the metadata
database stays on the driver's machine (see ``context``). Objects have the
same self-describing format and names as in the local store
(``<url>/objects/<2 hex>/<digest>``), so everything above the store works
unchanged: checksums are checked before anything is deserialized, and an
object is published whole or not at all.

Writing: the payload is encoded into a local staging file (a folder of this
user's own in the system temp folder, mode 0700, refused if another user owns it
or can write it: the temp folder is shared), its header written in front, then uploaded to
``<url>/tmp/<host>-<pid>-<random>.tmp`` and moved to its final name. A move
is a rename on a filesystem and a server-side copy on an object store; in
both cases a reader sees either no object or the complete one. Durability is
the filesystem's: fsspec has no fsync.

Reading: the whole object is fetched into memory (a remote file cannot be
memory-mapped) and checked against its checksum before decoding.

fsspec is imported only when a store URL is opened.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import secrets
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from orchestrator import store_faults
from orchestrator.errors import MissingArtifactError, StoreError, UserError
from orchestrator.files import pid_alive
from orchestrator.object_format import DIGEST, PREFIX, ArtifactInfo, Damaged
from orchestrator.store import _TEMP_MAX_AGE, ArtifactStore, _PayloadWriter

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"
# <host>-<pid>-<random>.tmp, as _publish names a temp file under <url>/tmp (an older host name may hold '-').
_REMOTE_TEMP = re.compile(r"(.+)-([0-9]+)-[0-9a-f]{16}\.tmp")


def is_url(location: str | os.PathLike[str]) -> bool:
    """True for ``proto://...`` (a store fsspec opens), False for a plain path."""
    return isinstance(location, str) and bool(_URL.match(location))


def is_process_local(url: str) -> bool:
    """True for a filesystem that lives inside one process (``memory://``): workers cannot share it."""
    return is_url(url) and url.split("://", 1)[0].lower() == "memory"


#: How much of an object is read from a store URL at a time (the most held twice while loading it).
_READ_SLICE = 64 << 20


class FsspecStore(ArtifactStore):
    """Content-addressed artifacts under an fsspec URL (``file://``, ``memory://``, ``s3://``, ...).

    Raises:
        UserError: fsspec is not installed, or it has no filesystem for the URL's protocol.
    """

    maps_objects = False  # an object is read whole into memory (downloaded, or a memory:// copy)

    def __init__(self, url: str, *, fsync: bool = True) -> None:
        try:
            from fsspec.core import url_to_fs
        except ImportError:
            raise UserError(f"store {url} is a URL, which needs fsspec: "
                            "pip install 'orchestrator[remote]'") from None
        try:
            fs, base = url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise UserError(f"cannot open store {url}: {exc}. Install the fsspec filesystem for it "
                            "(e.g. s3fs for s3://) or pass a local folder.") from None
        # Local staging for encoding: the base class writes its temp files under root / "tmp".
        super().__init__(staging_folder(), fsync=fsync)
        self.fs = fs
        self._base = cast(str, base).rstrip("/")
        # What workers open the store by: a relative file URL (file://store) would name another folder
        # in a worker whose current folder differs (a Dask worker elsewhere), so it is made absolute.
        self.location = f"file://{self._base}" if url.split("://", 1)[0].lower() in ("file", "local") else url
        self._objects = f"{self._base}/objects"
        self._made: set[str] = set()

    def _open_temp(self) -> tuple[Path, BinaryIO]:
        _check_private(self.root)
        return super()._open_temp()

    @property
    def location_path(self) -> str:
        """The store's root as a path of ``self.fs`` (no protocol, no trailing slash)."""
        return self._base

    def url_of(self, digest: str) -> str:
        protocol, path = self.location.split("://", 1)[0], self._path(digest)
        # A file URL keeps the absolute path's slash (file:///...); others name bucket/key.
        return f"file://{path}" if protocol == "file" else f"{protocol}://{path.lstrip('/')}"

    def path_of(self, digest: str) -> Path:
        raise TypeError(f"{self.location} is not a local folder; use url_of()")

    def _exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def _reused(self, path: str, existing: ArtifactInfo) -> ArtifactInfo:
        return existing  # an object store cannot renew a time without rewriting the object

    def renew(self, digest: str) -> bool:
        # Nor for a cache hit; the lookup has just checked that the object exists.
        return True

    def _free_bytes(self) -> int | None:
        return None  # a bucket has no free space to tell; a full staging folder says so in its error

    def object_stat(self, digest: str) -> tuple[float, int] | None:
        try:
            info = self.fs.info(self._path(digest))
        except FileNotFoundError:
            return None
        return _mtime(info), int(info.get("size") or 0)

    def iter_objects(self) -> Iterator[str]:
        try:
            found = self.fs.find(self._objects)
        except FileNotFoundError:
            return
        names = (p.rsplit("/", 1)[-1] for p in found)
        yield from sorted(n for n in names if DIGEST.fullmatch(n))

    def delete(self, digest: str) -> None:
        try:
            self.fs.rm_file(self._path(digest))
        except FileNotFoundError:
            pass

    def sweep_temp(self) -> int:
        """Remove dead local staging files, and remote temp files of dead writers on this host."""
        removed = super().sweep_temp()
        for path in self.dead_remote_temp():
            try:
                self.fs.rm_file(path)
                removed += 1
            except OSError:  # gone meanwhile, or not removable: a sweep never fails a write or gc
                continue
        return removed

    def dead_remote_temp(self) -> list[str]:
        """Temp files under ``<url>/tmp`` of dead writers on this host, or older than 24 h (as paths of ``fs``)."""
        try:
            entries = self.fs.ls(f"{self._base}/tmp", detail=True)
        except FileNotFoundError:
            return []
        dead, now = [], time.time()
        for entry in entries:
            name = str(entry["name"]).rsplit("/", 1)[-1]
            named = _REMOTE_TEMP.fullmatch(name)
            if named is None or entry.get("type", "file") != "file":
                continue  # not a temp file this store names: a user's file, a folder, is never removed
            host, pid = named.groups()
            mine_and_dead = host == _HOST and not pid_alive(int(pid))
            if mine_and_dead or now - _mtime(entry) > _TEMP_MAX_AGE:
                dead.append(str(entry["name"]))
        return dead

    # --- writing ---------------------------------------------------------

    def _publish(self, writer: _PayloadWriter, final: str, info: ArtifactInfo, *,
                 replace: bool) -> ArtifactInfo:
        """Upload the staged object under a temp name, then move it to its final name."""
        assert writer.path is not None and writer.file is not None
        writer.file.flush()
        if not replace and self._exists(final):
            return self.read_header(info.digest)  # another writer published it first
        temp = f"{self._base}/tmp/{_HOST}-{os.getpid()}-{secrets.token_hex(8)}.tmp"
        self._make_remote_dir(f"{self._base}/tmp")
        self._make_remote_dir(final.rsplit("/", 1)[0])
        store_faults.hit("write")
        self.fs.put_file(str(writer.path), temp)
        try:
            store_faults.hit("rename")
            self.fs.mv(temp, final)
        except BaseException:
            try:
                self.fs.rm_file(temp)
            except (FileNotFoundError, OSError):
                pass
            raise
        return info

    def _make_remote_dir(self, directory: str) -> None:
        if directory not in self._made:
            self.fs.makedirs(directory, exist_ok=True)
            self._made.add(directory)

    # --- reading ---------------------------------------------------------

    def _read_object_file(self, digest: str) -> tuple[memoryview, None]:
        """The whole object, and no file state: each load downloads it again, and checks what came."""
        return self._read_object(digest), None

    def _read_object(self, digest: str) -> memoryview:
        """The whole object, read into one writable buffer (like the local store's private mapping).

        Read in slices straight into that buffer: ``bytearray(fs.cat_file(...))``
        held the object twice at once (a 1 GB frame took 2 GB to load).
        """
        path = self._path(digest)
        try:
            size = int(self.fs.size(path))
            f = cast(io.BufferedIOBase, self.fs.open(path, "rb"))
        except FileNotFoundError:
            raise MissingArtifactError(digest) from None
        if size < PREFIX.size:
            f.close()
            raise Damaged(f"truncated: {size} bytes, shorter than the header")
        buffer = bytearray(size)
        view = memoryview(buffer)
        filled = 0
        with f:
            while filled < size:
                # A slice at a time: fsspec's buffered files read a whole request into bytes first.
                got = f.readinto(view[filled : filled + _READ_SLICE])
                if not got:
                    break
                filled += got
        if filled < size:
            raise Damaged(f"truncated: {filled} of {size} bytes could be read")
        return view

    def _open_read(self, path: str) -> tuple[BinaryIO, int]:
        size = int(self.fs.size(path))
        return cast(BinaryIO, self.fs.open(path, "rb")), size


def staging_folder() -> Path:
    """This user's local staging folder for objects on their way to a store URL."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"orch-staging-{uid}"


def _check_private(folder: Path) -> None:
    """Make ``folder`` (mode 0700) if needed; refuse a symlink, or a folder another user owns.

    The system temp folder is shared: a folder planted there under the staging name (or a
    symlink to one) would let its owner read every payload staged in it, or swap a staged file.
    """
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(folder)
    except OSError as exc:
        raise StoreError(f"cannot make the local staging folder {folder}: {exc}. Set TMPDIR to a folder "
                         "of your own.") from exc
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    if not stat.S_ISDIR(st.st_mode) or not mine:
        raise StoreError(f"the local staging folder {folder} is not a folder of yours (a symlink, or another "
                         "user's); remove it, or set TMPDIR to a folder of your own.")
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)


def _mtime(info: dict[str, Any]) -> float:
    """A listing entry's modification time as a timestamp (filesystems name it differently)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, dt.datetime):
            stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            return stamp.timestamp()
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def open_store(location: str | os.PathLike[str], *, fsync: bool = True) -> ArtifactStore:
    """The artifact store at ``location``: a local folder, or any fsspec URL."""
    if is_url(location):
        return FsspecStore(str(location), fsync=fsync)
    return ArtifactStore(location, fsync=fsync)
