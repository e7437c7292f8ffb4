"""Content-addressed artifacts on the local filesystem.

Each artifact is one object file named by its digest (the value's xxh3-128,
computed by the caller) under ``root/objects/<2 hex>/<digest>``. Small
payloads (at most ``INLINE_MAX`` bytes) get no file: their bytes travel back
in the :class:`ArtifactInfo` for the caller to keep in its database.

An object file describes itself (see ``object_format``), so a worker's
object can be adopted or checked without the metadata database.

The core promise: a partially written object is never read and a crash never
damages the store. Payloads are written to ``root/tmp/<pid>-<random>.tmp`` on
the same filesystem, flushed and fsynced, then published under their final
name in one atomic step that never replaces a complete object (except a
damaged one, or a pickled one whose bytes differ from the writer's own: see
``put``). Checksums are verified before anything is deserialized.

Every write, fsync and rename of an object file goes through
``store_faults.hit`` so that tests can make the Nth one fail
(``ORCH_FAULT``; ``inject_fault`` is re-exported here for them).

This module must not decide what is cached or record lineage (the cache and
lineage modules do), and must not import pandas, pyarrow or numpy.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import mmap
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import xxhash

from orchestrator import store_faults
from orchestrator.errors import (
    CorruptArtifactError,
    MissingArtifactError,
    StoreError,
    UndecodableArtifactError,
)
from orchestrator.files import copy_range, fsync_dir, link_no_clobber, pid_alive, temp_pid
from orchestrator.object_format import (
    DIGEST,
    HEADER_FIELDS,
    MAGIC,
    PREFIX,
    RESERVED_OFFSET,
    ArtifactInfo,
    Damaged,
    align,
    check_digest,
    checksum,
    encode_header,
    parse_header,
    parse_prefix,
)
from orchestrator.serialize import (
    Materializer,
    get_materializer,
    is_builtin,
    materializer_for,
    needs_unpickling,
    scalar_payload,
)
from orchestrator.store_faults import inject_fault

__all__ = ["INLINE_MAX", "MAGIC", "ArtifactInfo", "ArtifactStore", "inject_fault", "qualified_type_name"]

INLINE_MAX = 4096
# Meta key of the SHA-256 of a payload that is unpickled. The signature covers the meta and the
# xxh3 checksum; xxh3 only detects damage, while the SHA-256 also rules out a crafted second
# payload with the same checksum. Checked before anything is unpickled.
PAYLOAD_SHA256 = "payload_sha256"
_TEMP_MAX_AGE = 24 * 3600.0
# What a folder at an object's path is reported as (verify, doctor, a step that loads it).
_NOT_A_FILE = "not a file: a folder is at its path"
_TEMP_NAME = re.compile(r"[0-9]+-[0-9a-f]{16}\.tmp")  # <pid>-<random>.tmp, as _open_temp names them


class _PayloadWriter(io.BufferedIOBase):
    """The file a materializer writes to: hashes as it goes, spills to disk when large.

    Up to ``INLINE_MAX`` bytes stay in memory. Past that, the bytes go to a
    temporary file, starting at the reserved payload offset so the header can
    be written in front afterwards. ``tell`` counts payload bytes only, which
    is what Arrow's file footer must record.
    """

    def __init__(self, open_temp: Callable[[], tuple[Path, BinaryIO]], *, strong: bool = False) -> None:
        super().__init__()
        self._open_temp = open_temp
        self._head = bytearray()
        self._hasher = xxhash.xxh3_128()
        self._sha256 = hashlib.sha256() if strong else None
        self.size = 0
        self.path: Path | None = None
        self.file: BinaryIO | None = None

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        """Nothing to do: the store flushes the temporary file when it publishes."""

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._hasher.update(view)
        if self._sha256 is not None:
            self._sha256.update(view)
        if self.file is None and self.size + view.nbytes > INLINE_MAX:
            self.path, self.file = self._open_temp()
            self.file.write(self._head)
            self._head = bytearray()
        if self.file is None:
            self._head += view
        else:
            store_faults.hit("write")
            self.file.write(view)
        self.size += view.nbytes
        return view.nbytes

    @property
    def inline(self) -> bytes | None:
        """The whole payload if it stayed in memory, else None."""
        return bytes(self._head) if self.file is None else None

    def checksum(self) -> str:
        return self._hasher.hexdigest()

    def sha256(self) -> str | None:
        """The payload's SHA-256 (hex) when it was asked for (a payload that is unpickled)."""
        return self._sha256.hexdigest() if self._sha256 is not None else None

    def discard(self) -> None:
        """Close and remove the temporary file, if any.

        On a full disk, closing fails too (it flushes what is still buffered): the file is
        removed all the same, since a partial object left in ``tmp/`` would keep the disk full
        until a later sweep, and the run could not even record why its step failed.
        """
        try:
            if self.file is not None:
                with contextlib.suppress(OSError):
                    self.file.close()
        finally:
            if self.path is not None:
                self.path.unlink(missing_ok=True)


class ArtifactStore:
    """Content-addressed artifacts under ``root``; safe for concurrent processes.

    Args:
        root: Store directory; created on the first write.
        fsync: Flush files and directories to disk before an object counts as
            written. Turn off only for throwaway stores (tests, benchmarks).
    """

    #: Objects load by a private memory map of their file (no copy until a reader writes to one).
    maps_objects = True

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.location = str(self.root)  # what messages and workers name the store by
        self.fsync = fsync
        self._objects = os.path.join(str(self.root), "objects")
        self._swept = False
        # digest -> the file's (device, inode, size, mtime) when its checksum last held, for ``get``
        self._checked: dict[str, tuple[int, int, int, int]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def path_of(self, digest: str) -> Path:
        """Return where the object for ``digest`` lives (whether or not it exists).

        Raises:
            StoreError: If ``digest`` is not 32 lowercase hex characters.
        """
        return Path(self._path(digest))

    def _path(self, digest: str) -> str:
        # A plain string: this is on the per-step hot path, where pathlib costs more than the stat.
        check_digest(digest)
        return f"{self._objects}/{digest[:2]}/{digest}"

    def url_of(self, digest: str) -> str:
        """Where the object for ``digest`` lives, as a path or URL to show a user."""
        return self._path(digest)

    def has_objects(self) -> bool:
        """Whether the store holds an objects folder (any object ever stored)."""
        return self._exists(self._objects)

    def has(self, digest: str) -> bool:
        """Return True if a complete object for ``digest`` exists (one stat)."""
        return self._exists(self._path(digest))

    def _exists(self, path: str) -> bool:
        return os.path.exists(path)

    def renew(self, digest: str) -> bool:
        """A cache hit reuses the object for ``digest``: renew its mtime; False if it is gone.

        ``orch cache gc`` spares objects newer than the oldest running run, because a
        run's rows are committed in groups: the row of a cache hit may not be committed
        yet when gc reads the runs. An old object the hit named must count as new, as
        one produced again does (``_reused``), or gc deletes what the run returns.
        """
        path = self._path(digest)
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:  # another user's file, a read-only mount: it is there all the same
            return self._exists(path)
        return True

    def object_stat(self, digest: str) -> tuple[float, int] | None:
        """(modification time, size in bytes) of the object file, or None if there is none."""
        try:
            st = os.stat(self._path(digest))
        except FileNotFoundError:
            return None
        return st.st_mtime, st.st_size

    def put(self, value: object, digest: str) -> ArtifactInfo:
        """Store ``value`` under ``digest`` and return what to record about it.

        Small payloads come back inline and no file is written. If a complete
        object already exists, nothing is written and its header is returned.

        Raises:
            StoreError: For an invalid digest, or a value that cannot be encoded.
        """
        scalar = scalar_payload(value)
        if scalar is not None:  # an int or a short str: inline, no registry walk, no stat
            check_digest(digest)
            return ArtifactInfo(digest=digest, materializer="json", type_name=type(value).__name__,
                                size=len(scalar), checksum=checksum(scalar), meta={}, inline=scalar)
        path = self._path(digest)
        damaged = False
        existing: ArtifactInfo | None = None
        if self._exists(path):  # one stat; the common small-value case never opens a file
            # An object may be an orphan (its writer died before a row recorded it): adopt it
            # only once it checks out whole, header and payload. A pickled one could also have
            # been planted, and adopting it would get it signed: it is kept only if our own
            # encoding comes out byte-identical, else ours replaces it.
            try:
                header, _ = self._map_object(digest)
                existing = ArtifactInfo(**{name: header[name] for name in HEADER_FIELDS})
                if not _known_materializer(existing.materializer):
                    # A flipped bit in the header's name: no checksum covers it, and kept, the object
                    # (and the record made from it) could never be loaded; `--rerun` left it as it was.
                    damaged, existing = True, None
                elif not needs_unpickling(existing.materializer):
                    return self._reused(path, existing)
            except MissingArtifactError:
                pass
            except CorruptArtifactError:
                damaged = True  # bit rot, tampering or a lost unsynced write: replace it
        try:
            materializer, writer, meta = self._encode_value(value)
        except OSError as exc:
            raise self._write_failed(digest, exc) from exc
        try:
            info = ArtifactInfo(
                digest=digest,
                materializer=materializer.name,
                type_name=_type_name(value),
                size=writer.size,
                checksum=writer.checksum(),
                meta=meta,
                inline=writer.inline,
            )
            if info.inline is not None:
                return info
            if existing is not None and (existing.checksum, existing.size, existing.meta or {}) == \
                    (info.checksum, info.size, info.meta or {}):
                # Our own description is recorded (and signed), SHA-256 included: should the file on
                # disk be a crafted payload with the same checksum, its load fails that check.
                return self._reused(path, info)
            self._finish_temp(writer, info)
            published = self._publish(writer, path, info, replace=damaged or existing is not None)
            store_faults.hit("after-object")
            return published
        except OSError as exc:
            writer.discard()  # first, so that the free space the error gives counts what it took
            raise self._write_failed(digest, exc) from exc
        finally:
            writer.discard()

    def _write_failed(self, digest: str, exc: OSError) -> StoreError:
        """The error of a write that failed; on a full disk, with the free space and what to do.

        A run stopped by a full disk is resumed, not restarted: the line says so, and names the
        commands that show what takes the space and free it.
        """
        text = f"cannot write artifact {digest} under {self.location}: {exc}"
        if exc.errno == errno.ENOSPC:
            free = self._free_bytes()
            room = f" ({free / 1e6:.1f} MB free)" if free is not None else ""
            text += (f"; the disk holding the store is full{room}: free space (`orch cache du` shows what takes "
                     "it, `orch cache gc --keep-last N` removes what only older runs use), then run again: the "
                     "steps that finished are cached")
        return StoreError(text)

    def _free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(os.fspath(self.root)).free
        except (OSError, TypeError, ValueError):
            return None

    def _reused(self, path: str, existing: ArtifactInfo) -> ArtifactInfo:
        """An existing object stands for a new write: renew its mtime, as a write would have.

        ``orch cache gc`` spares objects newer than a running run (whose rows may not be
        committed yet); an old object this run just produced again must count as new too.
        """
        with contextlib.suppress(OSError):  # a read-only file is still a complete object
            os.utime(path)
        return existing

    def get(self, info: ArtifactInfo) -> object:
        """Load the value described by ``info``, checking its checksum first.

        A value decoded from a memory-mapped file may keep the mapping alive;
        it stays valid after the object is deleted.

        Raises:
            MissingArtifactError: If the object file does not exist.
            CorruptArtifactError: If the bytes, header or checksums disagree.
            StoreError: If the materializer is unknown or cannot decode the bytes.
        """
        if info.inline is not None:
            payload = memoryview(bytearray(info.inline))  # writable, like a mapped file
            if len(payload) != info.size or checksum(payload) != info.checksum:
                raise CorruptArtifactError(info.digest, "inline payload checksum mismatch")
            _check_strong(info, payload)
            return _decode(info, info.materializer, payload, info.meta or {})
        header, payload = self._map_object(info.digest, remembered=True)
        problem = header_disagreement(header, info)
        if problem is not None:
            raise CorruptArtifactError(info.digest, problem)
        _check_strong(info, payload)
        return _decode(info, header["materializer"], payload, header["meta"])

    def read_header(self, digest: str) -> ArtifactInfo:
        """Return the ArtifactInfo stored in an object file, without reading its payload.

        Raises:
            MissingArtifactError: If there is no object for ``digest``.
            CorruptArtifactError: If the header is unreadable or the file is truncated.
        """
        try:
            f, file_size = self._open_read(self._path(digest))
            with f:
                prefix = f.read(PREFIX.size)
                header_len, offset = parse_prefix(prefix, file_size)
                header = parse_header(f.read(header_len), digest, offset, file_size)
        except FileNotFoundError:
            raise MissingArtifactError(digest) from None
        except IsADirectoryError:
            raise CorruptArtifactError(digest, _NOT_A_FILE) from None
        except Damaged as exc:
            raise CorruptArtifactError(digest, str(exc)) from None
        return ArtifactInfo(**{name: header[name] for name in HEADER_FIELDS})

    def _open_read(self, path: str) -> tuple[BinaryIO, int]:
        """An object file opened for reading, and its size; FileNotFoundError if there is none."""
        f = open(path, "rb")  # noqa: SIM115 - the caller closes it
        return f, os.fstat(f.fileno()).st_size

    def verify(self, digest: str) -> str | None:
        """Return None if the object is intact, else a one-line reason."""
        try:
            header, payload = self._map_object(digest)
            _check_strong(ArtifactInfo(**{name: header[name] for name in HEADER_FIELDS}), payload)
        except MissingArtifactError:
            return "object file is missing"
        except CorruptArtifactError as exc:
            return exc.detail
        return None

    def iter_objects(self) -> Iterator[str]:
        """Yield the digests of complete objects, sorted."""
        objects = self.root / "objects"
        if not objects.is_dir():
            return
        for fan in sorted(entry.name for entry in os.scandir(objects) if entry.is_dir()):
            for name in sorted(os.listdir(objects / fan)):
                if DIGEST.fullmatch(name) and name[:2] == fan:
                    yield name

    def delete(self, digest: str) -> None:
        """Remove the object for ``digest``; a missing object is not an error.

        A folder at its path (made by hand, or by a tool that took the store for a
        tree of folders) is damage like any other, and goes too: left there, no
        object could ever be published under that digest again.
        """
        _remove_entry(self.path_of(digest))

    def sweep_temp(self) -> int:
        """Remove temporary files of dead writers (or older than 24 h); return how many."""
        removed = 0
        for path in self.dead_temp_files():
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue  # its writer published or removed it meanwhile
        return removed

    def dead_temp_files(self) -> list[Path]:
        """Temporary files whose writer is dead (or that are older than 24 h).

        Only files named as ``_open_temp`` names them count: ``tmp/`` may be a symlink
        (a copied or crafted store), and its target's other ``*.tmp`` files are not ours.
        """
        temp = self.root / "tmp"
        if not temp.is_dir():
            return []
        dead = []
        now = time.time()
        for path in temp.glob("*.tmp"):
            if not _TEMP_NAME.fullmatch(path.name):
                continue
            try:
                age = now - path.lstat().st_mtime
            except FileNotFoundError:
                continue
            pid = temp_pid(path.name)
            if age > _TEMP_MAX_AGE or (pid is not None and not pid_alive(pid)):
                dead.append(path)
        return dead

    # --- writing ---------------------------------------------------------

    def _encode_value(self, value: object) -> tuple[Materializer, _PayloadWriter, dict[str, Any]]:
        """Encode with the chosen materializer; if a built-in fast path fails, with pickle."""
        materializer = materializer_for(value)
        try:
            return (materializer, *self._encode(value, materializer))
        except (StoreError, OSError):
            raise
        except Exception as exc:
            if not is_builtin(materializer) or materializer.name == "pickle":
                raise _encode_error(value, materializer, exc) from exc
        # can_write is meant to be conservative; pickle is faithful for anything.
        fallback = get_materializer("pickle")
        try:
            return (fallback, *self._encode(value, fallback))
        except (StoreError, OSError):
            raise
        except Exception as exc:
            raise _encode_error(value, fallback, exc) from exc

    def _encode(
        self, value: object, materializer: Materializer
    ) -> tuple[_PayloadWriter, dict[str, Any]]:
        writer = _PayloadWriter(self._open_temp, strong=materializer.needs_unpickling)
        try:
            meta = materializer.write(value, cast(BinaryIO, writer))
            if meta != {} and (not isinstance(meta, dict)
                               or json.loads(json.dumps(meta, allow_nan=False)) != meta):
                raise TypeError(f"write() returned {meta!r}, not a dict that survives JSON")
        except BaseException:
            writer.discard()
            raise
        strong = writer.sha256()
        if strong is not None:
            meta = {**meta, PAYLOAD_SHA256: strong}
        return writer, meta

    def _open_temp(self) -> tuple[Path, BinaryIO]:
        temp = self.root / "tmp"
        temp.mkdir(parents=True, exist_ok=True)
        if not self._swept:  # once per process: what killed writers left behind
            self._swept = True
            self.sweep_temp()
        path = temp / f"{os.getpid()}-{secrets.token_hex(8)}.tmp"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        f = os.fdopen(os.open(path, flags, 0o644), "wb", buffering=1 << 20)
        f.seek(RESERVED_OFFSET)
        return path, f

    def _finish_temp(self, writer: _PayloadWriter, info: ArtifactInfo) -> None:
        """Write the header in front of the payload, and flush the file to disk."""
        assert writer.file is not None and writer.path is not None
        header = encode_header(info)
        writer.file.flush()
        if PREFIX.size + len(header) > RESERVED_OFFSET:
            self._move_payload(writer, header)
        else:
            prefix = PREFIX.pack(MAGIC, len(header), RESERVED_OFFSET) + header
            store_faults.hit("write")
            os.pwrite(writer.file.fileno(), prefix.ljust(RESERVED_OFFSET, b"\0"), 0)
        if self.fsync:
            store_faults.hit("fsync")
            os.fsync(writer.file.fileno())

    def _move_payload(self, writer: _PayloadWriter, header: bytes) -> None:
        """Rare (very wide tables): the header outgrew its room, so copy the payload further."""
        assert writer.file is not None and writer.path is not None
        offset = align(PREFIX.size + len(header))
        path, f = self._open_temp()
        try:
            f.seek(0)
            f.write((PREFIX.pack(MAGIC, len(header), offset) + header).ljust(offset, b"\0"))
            f.flush()
            copy_range(writer.file.fileno(), RESERVED_OFFSET, f.fileno(), offset, writer.size)
        except BaseException:
            with contextlib.suppress(OSError):  # a full disk fails the close's flush too
                f.close()
            path.unlink(missing_ok=True)
            raise
        old_path, old_file = writer.path, writer.file
        writer.path, writer.file = path, f
        old_file.close()
        old_path.unlink()

    def _publish(
        self, writer: _PayloadWriter, final: str, info: ArtifactInfo, *, replace: bool
    ) -> ArtifactInfo:
        """Give the temporary file its final name, unless another writer already did."""
        assert writer.path is not None
        path = Path(final)
        self._make_dir(path.parent)
        store_faults.hit("rename")
        if replace:
            if path.is_dir() and not path.is_symlink():
                _remove_entry(path)  # a folder where the object belongs: no rename can replace it
            os.replace(writer.path, path)
        elif not link_no_clobber(writer.path, path):
            # Another writer won. Its bytes may differ (pickle is not always
            # deterministic), so record its header rather than ours.
            return self.read_header(info.digest)
        if self.fsync:
            fsync_dir(path.parent)
        return info

    def _make_dir(self, directory: Path) -> None:
        """Create the fan-out directory, making its new entry durable too."""
        if directory.is_dir():
            return
        directory.mkdir(parents=True, exist_ok=True)
        if self.fsync:
            fsync_dir(directory.parent)
            fsync_dir(directory.parent.parent)

    # --- reading ---------------------------------------------------------

    def _read_object(self, digest: str) -> memoryview:
        """The whole object file as a writable view (here a private memory map).

        Raises:
            MissingArtifactError: There is no object file.
            Damaged: It is too short to hold a header.
        """
        return self._read_object_file(digest)[0]

    def _read_object_file(self, digest: str) -> tuple[memoryview, os.stat_result | None]:
        """``_read_object``, with the file's ``fstat`` as it was opened (None where there is none to trust)."""
        try:
            with open(self._path(digest), "rb") as f:
                stat = os.fstat(f.fileno())
                if stat.st_size < PREFIX.size:
                    raise Damaged(f"truncated: {stat.st_size} bytes, shorter than the header")
                # A private mapping: decoded arrays are writable, the file never changes.
                return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)), stat
        except FileNotFoundError:
            raise MissingArtifactError(digest) from None
        except IsADirectoryError:
            raise Damaged(_NOT_A_FILE) from None

    def _map_object(self, digest: str, remembered: bool = False) -> tuple[dict[str, Any], memoryview]:
        """Read an object file, check it whole, and return its header and payload view.

        ``remembered`` (loads): a file this object checked out whole from before, still as it
        was then (the same inode, size and modification time, written over
        ``_SETTLED_SECONDS`` ago), is not checksummed again. Each reader of a large input
        checksummed all of it: a 100 MB model scored over 1,000 map items hashed 100 GB.
        A file written within the last seconds is checked each time, as a time stamp's
        granularity could hide a change made just after the write. ``verify`` always checks.
        """
        try:
            view, stat = self._read_object_file(digest)
            file_size = len(view)
            header_len, offset = parse_prefix(view[: PREFIX.size], file_size)
            header_bytes = view[PREFIX.size : PREFIX.size + header_len]
            header = parse_header(header_bytes, digest, offset, file_size)
            payload = view[offset : offset + header["size"]]
            state = None if stat is None else (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if not (remembered and state is not None and self._checked.get(digest) == state):
                actual = checksum(payload)
                if actual != header["checksum"]:
                    self._checked.pop(digest, None)
                    raise Damaged(f"checksum mismatch: payload hashes to {actual}")
                if remembered and state is not None and time.time_ns() - state[3] > _SETTLED_SECONDS * 1_000_000_000:
                    self._checked[digest] = state
        except Damaged as exc:
            raise CorruptArtifactError(digest, str(exc)) from None
        return header, payload


# How long ago an object file must have been written for a check of it to be remembered (``_map_object``).
_SETTLED_SECONDS = 2


def _remove_entry(path: Path) -> None:
    """Remove what is at ``path``: a file or link, or a whole folder; nothing there is no error."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=False)
    else:
        path.unlink(missing_ok=True)


def _type_name(value: object) -> str:
    """Return a short type name: "int", "pandas.DataFrame", "numpy.ndarray"."""
    return qualified_type_name(type(value))


def qualified_type_name(cls: type) -> str:
    """A class's short, stable name: "int", "pandas.DataFrame", "mypkg.models.Model"."""
    module, name = cls.__module__, cls.__qualname__
    if module == "builtins":
        return name
    package = module.partition(".")[0]
    if getattr(sys.modules.get(package), name, None) is cls:
        return f"{package}.{name}"
    return f"{module}.{name}"


def _known_materializer(name: str) -> bool:
    """Whether a materializer of that name is registered in this process."""
    try:
        get_materializer(name)
    except StoreError:
        return False
    return True


def header_disagreement(header: dict[str, Any], info: ArtifactInfo) -> str | None:
    """How an object file's header differs from what the metadata database recorded of it, or None.

    The payload's checksum does not cover the header, and decoding follows the header's
    ``meta`` (where a pickle's arrays lie, a frame's layout): a flipped bit there loaded a
    wrong value that every checksum passed. The record is the reference.
    """
    for name in ("materializer", "size", "checksum"):
        if header[name] != getattr(info, name):
            return f"object {name} {header[name]!r} != recorded {getattr(info, name)!r}"
    if (header.get("meta") or {}) != (info.meta or {}):
        return "object header's meta differs from the one recorded with it"
    return None


def _check_strong(info: ArtifactInfo, payload: memoryview) -> None:
    """Before unpickling: the payload's SHA-256 must be the one recorded (and signed) with it.

    Artifacts stored before payloads of pickles had a SHA-256 have none recorded; they are
    checked by their xxh3 checksum alone, as they were.
    """
    expected = (info.meta or {}).get(PAYLOAD_SHA256)
    if expected is None or not needs_unpickling(info.materializer):
        return
    if hashlib.sha256(payload).hexdigest() != expected:
        raise CorruptArtifactError(info.digest, "payload SHA-256 differs from the one recorded with it")


def _decode(info: ArtifactInfo, name: str, payload: memoryview, meta: dict[str, Any]) -> object:
    materializer = get_materializer(name)
    try:
        return materializer.read(payload, meta)
    except StoreError:
        raise
    except Exception as exc:
        raise UndecodableArtifactError(info.digest, info.type_name, name, f"{type(exc).__name__}: {exc}") from exc


def _encode_error(value: object, materializer: Materializer, exc: Exception) -> StoreError:
    if is_builtin(materializer):
        fix = ("Return a picklable value, or register a materializer for this type "
               "with orchestrator.serialize.register_materializer().")
    else:  # the user's own materializer took the value: registering one is not the fix
        fix = (f"Fix the write() of materializer '{materializer.name}', or make its can_write() "
               "return False for such values, which then go to the next materializer.")
    return StoreError(
        f"cannot store a value of type {_type_name(value)} with materializer "
        f"'{materializer.name}': {type(exc).__name__}: {exc}. {fix}"
    )
