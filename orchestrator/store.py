"""Content-addressed artifacts on the local filesystem.

Each artifact is one object file named by its digest (the value's xxh3-128,
computed by the caller) under ``root/objects/<2 hex>/<digest>``. Small
payloads (at most ``INLINE_MAX`` bytes) get no file: their bytes travel back
in the :class:`ArtifactInfo` for the caller to keep in its database.

An object file describes itself, so a worker's object can be adopted or
checked without the metadata database::

    b"ORCHOBJ1" | u32 header length | u32 payload offset | JSON header | zeros | payload

The JSON header holds digest, materializer, type_name, size, checksum and
meta; the payload starts at a 64-byte aligned offset (4096 unless the header
is larger), so Arrow can map it without copying.

The core promise: a partially written object is never read and a crash never
damages the store. Payloads are written to ``root/tmp/<pid>-<random>.tmp`` on
the same filesystem, flushed and fsynced, then published under their final
name in one atomic step that never replaces a complete object (except a
damaged one, or a pickled one whose bytes differ from the writer's own: see
``put``). Checksums are verified before anything is deserialized.

Fault injection, for tests only: ``ORCH_FAULT="write:N"``, ``"fsync:N"`` or
``"rename:N"`` (optionally ``":ERRNO-NAME"``, e.g. ``"fsync:2:EIO"``) makes
the Nth such operation on object files in this process raise ``OSError``
(ENOSPC for writes and renames, EIO for fsync), as a full disk or a failing
device would; ``ORCH_FAULT="after-object[:N]"`` ends the process with
``os._exit(137)`` right after its Nth object is published, before any
metadata row can record it. The variable is read once, at import; tests
running in one process use :func:`inject_fault`. Unset, it costs one
``None`` check per operation.

This module must not decide what is cached or record lineage (the cache and
lineage modules do), and must not import pandas, pyarrow or numpy.
"""

from __future__ import annotations

import base64
import binascii
import errno
import io
import json
import mmap
import os
import re
import secrets
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import xxhash

from orchestrator.errors import CorruptArtifactError, MissingArtifactError, StoreError
from orchestrator.serialize import (
    Materializer,
    get_materializer,
    is_builtin,
    materializer_for,
    needs_unpickling,
    scalar_payload,
)

INLINE_MAX = 4096
MAGIC = b"ORCHOBJ1"
_PREFIX = struct.Struct("<8sII")  # magic, header length, payload offset
_ALIGN = 64
_RESERVED_OFFSET = 4096  # payload offset when the header fits before it
_MAX_HEADER = 64 << 20
_TEMP_MAX_AGE = 24 * 3600.0
_DIGEST = re.compile(r"[0-9a-f]{32}")
_FAULT_OPS = {"write": errno.ENOSPC, "fsync": errno.EIO, "rename": errno.ENOSPC, "after-object": 0}
_HEADER_FIELDS = {
    "digest": str,
    "materializer": str,
    "type_name": str,
    "size": int,
    "checksum": str,
    "meta": dict,
}


@dataclass(frozen=True)
class ArtifactInfo:
    """What the metadata database records about one stored artifact.

    Picklable, and JSON-able through :meth:`to_dict`, so workers can send it
    to the driver.

    Attributes:
        digest: The value's digest, given by the caller.
        materializer: Name of the materializer that encoded the payload.
        type_name: The value's type, e.g. ``"pandas.DataFrame"`` or ``"int"``.
        size: Encoded payload size in bytes.
        checksum: xxh3-128 (lowercase hex) of the encoded payload.
        meta: Materializer metadata (schema, rows...), JSON-able.
        inline: The payload itself when it is small; then no file exists.
    """

    digest: str
    materializer: str
    type_name: str
    size: int
    checksum: str
    meta: dict[str, Any] = field(hash=False)
    inline: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict; inline bytes are base64 text."""
        inline = None if self.inline is None else base64.b64encode(self.inline).decode("ascii")
        return {
            "digest": self.digest,
            "materializer": self.materializer,
            "type_name": self.type_name,
            "size": self.size,
            "checksum": self.checksum,
            "meta": self.meta,
            "inline": inline,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArtifactInfo:
        """Rebuild an ArtifactInfo from :meth:`to_dict` output.

        Raises:
            StoreError: If a field is missing or has the wrong type.
        """
        d = {**d, "meta": d.get("meta") or {}}  # databases may store {} as NULL
        problem = _header_problem(d)
        if problem:
            raise StoreError(f"artifact record is malformed: {problem}")
        inline = d.get("inline")
        try:
            payload = None if inline is None else base64.b64decode(inline, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise StoreError(f"artifact record {d['digest']} has bad inline bytes: {exc}") from exc
        fields = {name: d[name] for name in _HEADER_FIELDS}
        return cls(**fields, inline=payload)


class _Damaged(Exception):
    """An object file failed a check; the message is the one-line reason."""


class _PayloadWriter(io.BufferedIOBase):
    """The file a materializer writes to: hashes as it goes, spills to disk when large.

    Up to ``INLINE_MAX`` bytes stay in memory. Past that, the bytes go to a
    temporary file, starting at the reserved payload offset so the header can
    be written in front afterwards. ``tell`` counts payload bytes only, which
    is what Arrow's file footer must record.
    """

    def __init__(self, open_temp: Callable[[], tuple[Path, BinaryIO]]) -> None:
        super().__init__()
        self._open_temp = open_temp
        self._head = bytearray()
        self._hasher = xxhash.xxh3_128()
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
        if self.file is None and self.size + view.nbytes > INLINE_MAX:
            self.path, self.file = self._open_temp()
            self.file.write(self._head)
            self._head = bytearray()
        if self.file is None:
            self._head += view
        else:
            if _fault is not None:
                _fault.hit("write")
            self.file.write(view)
        self.size += view.nbytes
        return view.nbytes

    @property
    def inline(self) -> bytes | None:
        """The whole payload if it stayed in memory, else None."""
        return bytes(self._head) if self.file is None else None

    def checksum(self) -> str:
        return self._hasher.hexdigest()

    def discard(self) -> None:
        """Close and remove the temporary file, if any."""
        if self.file is not None:
            self.file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class ArtifactStore:
    """Content-addressed artifacts under ``root``; safe for concurrent processes.

    Args:
        root: Store directory; created on the first write.
        fsync: Flush files and directories to disk before an object counts as
            written. Turn off only for throwaway stores (tests, benchmarks).
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.location = str(self.root)  # what messages and workers name the store by
        self.fsync = fsync
        self._objects = os.path.join(str(self.root), "objects")
        self._swept = False

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
        _check_digest(digest)
        return f"{self._objects}/{digest[:2]}/{digest}"

    def url_of(self, digest: str) -> str:
        """Where the object for ``digest`` lives, as a path or URL to show a user."""
        return self._path(digest)

    def has(self, digest: str) -> bool:
        """Return True if a complete object for ``digest`` exists (one stat)."""
        return self._exists(self._path(digest))

    def _exists(self, path: str) -> bool:
        return os.path.exists(path)

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
            _check_digest(digest)
            return ArtifactInfo(digest=digest, materializer="json", type_name=type(value).__name__,
                                size=len(scalar), checksum=_checksum(scalar), meta={}, inline=scalar)
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
                existing = ArtifactInfo(**{name: header[name] for name in _HEADER_FIELDS})
                if not needs_unpickling(existing.materializer):
                    return existing
            except MissingArtifactError:
                pass
            except CorruptArtifactError:
                damaged = True  # bit rot, tampering or a lost unsynced write: replace it
        try:
            materializer, writer, meta = self._encode_value(value)
        except OSError as exc:
            raise StoreError(f"cannot write artifact {digest} under {self.location}: {exc}") from exc
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
            if existing is not None and (existing.checksum, existing.size) == (info.checksum, info.size):
                return existing
            self._finish_temp(writer, info)
            published = self._publish(writer, path, info, replace=damaged or existing is not None)
            if _fault is not None:
                _fault.hit("after-object")
            return published
        except OSError as exc:
            raise StoreError(f"cannot write artifact {digest} under {self.location}: {exc}") from exc
        finally:
            writer.discard()

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
            if len(payload) != info.size or _checksum(payload) != info.checksum:
                raise CorruptArtifactError(info.digest, "inline payload checksum mismatch")
            return _decode(info, info.materializer, payload, info.meta or {})
        header, payload = self._map_object(info.digest)
        for name in ("materializer", "size", "checksum"):
            if header[name] != getattr(info, name):
                raise CorruptArtifactError(
                    info.digest,
                    f"object {name} {header[name]!r} != recorded {getattr(info, name)!r}",
                )
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
                prefix = f.read(_PREFIX.size)
                header_len, offset = _parse_prefix(prefix, file_size)
                header = _parse_header(f.read(header_len), digest, offset, file_size)
        except FileNotFoundError:
            raise MissingArtifactError(digest) from None
        except _Damaged as exc:
            raise CorruptArtifactError(digest, str(exc)) from None
        return ArtifactInfo(**{name: header[name] for name in _HEADER_FIELDS})

    def _open_read(self, path: str) -> tuple[BinaryIO, int]:
        """An object file opened for reading, and its size; FileNotFoundError if there is none."""
        f = open(path, "rb")  # noqa: SIM115 - the caller closes it
        return f, os.fstat(f.fileno()).st_size

    def verify(self, digest: str) -> str | None:
        """Return None if the object is intact, else a one-line reason."""
        try:
            self._map_object(digest)
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
                if _DIGEST.fullmatch(name) and name[:2] == fan:
                    yield name

    def delete(self, digest: str) -> None:
        """Remove the object for ``digest``; a missing object is not an error."""
        self.path_of(digest).unlink(missing_ok=True)

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
        """Temporary files whose writer is dead (or that are older than 24 h)."""
        temp = self.root / "tmp"
        if not temp.is_dir():
            return []
        dead = []
        now = time.time()
        for path in temp.glob("*.tmp"):
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            pid = _temp_pid(path.name)
            if age > _TEMP_MAX_AGE or (pid is not None and not _pid_alive(pid)):
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
        writer = _PayloadWriter(self._open_temp)
        try:
            meta = materializer.write(value, cast(BinaryIO, writer))
            if meta != {} and (not isinstance(meta, dict)
                               or json.loads(json.dumps(meta, allow_nan=False)) != meta):
                raise TypeError(f"write() returned {meta!r}, not a dict that survives JSON")
        except BaseException:
            writer.discard()
            raise
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
        f.seek(_RESERVED_OFFSET)
        return path, f

    def _finish_temp(self, writer: _PayloadWriter, info: ArtifactInfo) -> None:
        """Write the header in front of the payload, and flush the file to disk."""
        assert writer.file is not None and writer.path is not None
        header = _encode_header(info)
        writer.file.flush()
        if _PREFIX.size + len(header) > _RESERVED_OFFSET:
            self._move_payload(writer, header)
        else:
            prefix = _PREFIX.pack(MAGIC, len(header), _RESERVED_OFFSET) + header
            if _fault is not None:
                _fault.hit("write")
            os.pwrite(writer.file.fileno(), prefix.ljust(_RESERVED_OFFSET, b"\0"), 0)
        if self.fsync:
            if _fault is not None:
                _fault.hit("fsync")
            os.fsync(writer.file.fileno())

    def _move_payload(self, writer: _PayloadWriter, header: bytes) -> None:
        """Rare (very wide tables): the header outgrew its room, so copy the payload further."""
        assert writer.file is not None and writer.path is not None
        offset = _align(_PREFIX.size + len(header))
        path, f = self._open_temp()
        try:
            f.seek(0)
            f.write((_PREFIX.pack(MAGIC, len(header), offset) + header).ljust(offset, b"\0"))
            f.flush()
            _copy_range(writer.file.fileno(), _RESERVED_OFFSET, f.fileno(), offset, writer.size)
        except BaseException:
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
        if _fault is not None:
            _fault.hit("rename")
        if replace:
            os.replace(writer.path, path)
        elif not _link_no_clobber(writer.path, path):
            # Another writer won. Its bytes may differ (pickle is not always
            # deterministic), so record its header rather than ours.
            return self.read_header(info.digest)
        if self.fsync:
            _fsync_dir(path.parent)
        return info

    def _make_dir(self, directory: Path) -> None:
        """Create the fan-out directory, making its new entry durable too."""
        if directory.is_dir():
            return
        directory.mkdir(parents=True, exist_ok=True)
        if self.fsync:
            _fsync_dir(directory.parent)
            _fsync_dir(directory.parent.parent)

    # --- reading ---------------------------------------------------------

    def _read_object(self, digest: str) -> memoryview:
        """The whole object file as a writable view (here a private memory map).

        Raises:
            MissingArtifactError: There is no object file.
            _Damaged: It is too short to hold a header.
        """
        try:
            with open(self._path(digest), "rb") as f:
                file_size = os.fstat(f.fileno()).st_size
                if file_size < _PREFIX.size:
                    raise _Damaged(f"truncated: {file_size} bytes, shorter than the header")
                # A private mapping: decoded arrays are writable, the file never changes.
                return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
        except FileNotFoundError:
            raise MissingArtifactError(digest) from None

    def _map_object(self, digest: str) -> tuple[dict[str, Any], memoryview]:
        """Read an object file, check it whole, and return its header and payload view."""
        try:
            view = self._read_object(digest)
            file_size = len(view)
            header_len, offset = _parse_prefix(view[: _PREFIX.size], file_size)
            header_bytes = view[_PREFIX.size : _PREFIX.size + header_len]
            header = _parse_header(header_bytes, digest, offset, file_size)
            payload = view[offset : offset + header["size"]]
            actual = _checksum(payload)
            if actual != header["checksum"]:
                raise _Damaged(f"checksum mismatch: payload hashes to {actual}")
        except _Damaged as exc:
            raise CorruptArtifactError(digest, str(exc)) from None
        return header, payload


# --- object format -----------------------------------------------------------


def _encode_header(info: ArtifactInfo) -> bytes:
    header = {name: getattr(info, name) for name in _HEADER_FIELDS}
    text = json.dumps(header, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return text.encode("utf-8")


def _parse_prefix(prefix: bytes | memoryview, file_size: int) -> tuple[int, int]:
    """Return (header length, payload offset) from the fixed-size prefix."""
    if len(prefix) < _PREFIX.size:
        raise _Damaged(f"truncated: {file_size} bytes, shorter than the header")
    magic, header_len, offset = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise _Damaged(f"bad magic {bytes(magic)!r}: not an orchestrator object")
    if header_len > _MAX_HEADER or offset % _ALIGN or offset < _PREFIX.size + header_len:
        raise _Damaged("header unreadable: bad header length or payload offset")
    if offset > file_size:
        raise _Damaged(f"truncated: {file_size} bytes, payload should start at {offset}")
    return header_len, offset


def _parse_header(
    raw: bytes | memoryview, digest: str, offset: int, file_size: int
) -> dict[str, Any]:
    """Decode and check the JSON header against the digest and the file size."""
    try:
        header = json.loads(bytes(raw))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Damaged(f"header unreadable: {exc}") from None
    problem = _header_problem(header)
    if problem:
        raise _Damaged(f"header unreadable: {problem}")
    if header["digest"] != digest:
        raise _Damaged(f"header names another digest, {header['digest']}")
    present = file_size - offset
    if present < header["size"]:
        raise _Damaged(f"truncated: {present} of {header['size']} payload bytes present")
    if present > header["size"]:
        raise _Damaged(f"{present - header['size']} unexpected bytes after the payload")
    return header


def _header_problem(header: object) -> str | None:
    """Return what is wrong with a header or record dict, or None."""
    if not isinstance(header, dict):
        return "not a JSON object"
    for name, kind in _HEADER_FIELDS.items():
        if not isinstance(header.get(name), kind) or isinstance(header.get(name), bool):
            return f"field {name!r} is missing or not a {kind.__name__}"
    if not _DIGEST.fullmatch(header["digest"]) or not _DIGEST.fullmatch(header["checksum"]):
        return "digest or checksum is not 32 lowercase hex characters"
    return None


# --- helpers -----------------------------------------------------------------


def _check_digest(digest: object) -> None:
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise StoreError(
            f"invalid artifact digest {digest!r}: expected 32 lowercase hex characters "
            "(an xxh3-128 digest from orchestrator.hashing)."
        )


def _checksum(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128(data).hexdigest()


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


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


def _decode(info: ArtifactInfo, name: str, payload: memoryview, meta: dict[str, Any]) -> object:
    materializer = get_materializer(name)
    try:
        return materializer.read(payload, meta)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(
            f"artifact {info.digest} ({info.type_name}) passed its checksum but materializer "
            f"'{name}' cannot decode it: {type(exc).__name__}: {exc}. "
            "Check that library versions match those of the process that stored it."
        ) from exc


def _encode_error(value: object, materializer: Materializer, exc: Exception) -> StoreError:
    return StoreError(
        f"cannot store a value of type {_type_name(value)} with materializer "
        f"'{materializer.name}': {type(exc).__name__}: {exc}. "
        "Return a picklable value, or register a materializer for this type "
        "with orchestrator.serialize.register_materializer()."
    )


def _link_no_clobber(source: Path, target: Path) -> bool:
    """Atomically create ``target`` as ``source``; False if ``target`` already exists.

    A hard link never replaces an existing object, so no writer can swap bytes
    under a checksum another writer already reported. Filesystems without
    hard links fall back to os.replace, which is atomic but may replace.
    """
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    if os.path.exists(target):
        return False
    os.replace(source, target)
    return True


def _copy_range(src: int, src_offset: int, dst: int, dst_offset: int, count: int) -> None:
    while count > 0:
        chunk = os.pread(src, min(count, 16 << 20), src_offset)
        if not chunk:
            raise StoreError("temporary file shrank while it was being written")
        os.pwrite(dst, chunk, dst_offset)
        src_offset += len(chunk)
        dst_offset += len(chunk)
        count -= len(chunk)


def _fsync_dir(directory: Path) -> None:
    if _fault is not None:
        _fault.hit("fsync")
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_pid(name: str) -> int | None:
    head = name.partition("-")[0]
    return int(head) if head.isdigit() and int(head) > 0 else None


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would not probe there; rely on age
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


# --- fault injection (tests only) ---------------------------------------------


class _Fault:
    """Fails the Nth operation of one kind in this process; see the module docstring."""

    def __init__(self, op: str, n: int, code: int) -> None:
        self.op, self.n, self.code, self.count = op, n, code, 0

    def hit(self, op: str) -> None:
        if op != self.op:
            return
        self.count += 1
        if self.count != self.n:
            return
        if op == "after-object":
            os._exit(137)  # as SIGKILL would, with no cleanup at all
        raise OSError(self.code, f"{os.strerror(self.code)} (injected by ORCH_FAULT={op}:{self.n})")


def inject_fault(spec: str | None) -> _Fault | None:
    """Arm a fault like ``ORCH_FAULT`` does (``None`` disarms), with a fresh count.

    Returns the armed fault, whose ``count`` says how many such operations ran.

    Raises:
        StoreError: If ``spec`` is not ``OP[:N[:ERRNO]]`` with a known OP.
    """
    global _fault
    _fault = _parse_fault(spec)
    return _fault


def _parse_fault(spec: str | None) -> _Fault | None:
    if not spec:
        return None
    op, _, rest = spec.partition(":")
    count, _, code_name = rest.partition(":")
    code = getattr(errno, code_name, None) if code_name else _FAULT_OPS.get(op)
    if op not in _FAULT_OPS or not (count or "1").isdigit() or int(count or "1") < 1 or code is None:
        raise StoreError(f"ORCH_FAULT={spec!r} is not OP[:N[:ERRNO]] with OP one of "
                         f"{', '.join(_FAULT_OPS)}. Unset it outside tests.")
    return _Fault(op, int(count or "1"), code)


def _fault_from_env() -> _Fault | None:
    try:
        return _parse_fault(os.environ.get("ORCH_FAULT"))
    except StoreError as exc:  # at import there is no caller to tell: say it once, inject nothing
        sys.stderr.write(f"warning: {exc}\n")
        return None


_fault: _Fault | None = _fault_from_env()
