"""The object file format of the artifact store: a self-describing header in front of the payload.

::

    b"ORCHOBJ1" | u32 header length | u32 payload offset | JSON header | zeros | payload

The JSON header holds digest, materializer, type_name, size, checksum and
meta; the payload starts at a 64-byte aligned offset (4096 unless the header
is larger), so Arrow can map it without copying. This module encodes and
checks headers and checksums; it must not touch files (the stores do) or
decode payloads (the materializers do).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import xxhash

from orchestrator.errors import StoreError

MAGIC = b"ORCHOBJ1"
PREFIX = struct.Struct("<8sII")  # magic, header length, payload offset
ALIGN = 64
RESERVED_OFFSET = 4096  # payload offset when the header fits before it
MAX_HEADER = 64 << 20
DIGEST = re.compile(r"[0-9a-f]{32}")
HEADER_FIELDS = {
    "digest": str,
    "materializer": str,
    "type_name": str,
    "size": int,
    "checksum": str,
    "meta": dict,
}


class Damaged(Exception):
    """An object file failed a check; the message is the one-line reason."""


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
        problem = header_problem(d)
        if problem:
            raise StoreError(f"artifact record is malformed: {problem}")
        inline = d.get("inline")
        try:
            payload = None if inline is None else base64.b64decode(inline, validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise StoreError(f"artifact record {d['digest']} has bad inline bytes: {exc}") from exc
        fields = {name: d[name] for name in HEADER_FIELDS}
        return cls(**fields, inline=payload)


def encode_header(info: ArtifactInfo) -> bytes:
    header = {name: getattr(info, name) for name in HEADER_FIELDS}
    text = json.dumps(header, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return text.encode("utf-8")


def parse_prefix(prefix: bytes | memoryview, file_size: int) -> tuple[int, int]:
    """Return (header length, payload offset) from the fixed-size prefix."""
    if len(prefix) < PREFIX.size:
        raise Damaged(f"truncated: {file_size} bytes, shorter than the header")
    magic, header_len, offset = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise Damaged(f"bad magic {bytes(magic)!r}: not an orchestrator object")
    if header_len > MAX_HEADER or offset % ALIGN or offset < PREFIX.size + header_len:
        raise Damaged("header unreadable: bad header length or payload offset")
    if offset > file_size:
        raise Damaged(f"truncated: {file_size} bytes, payload should start at {offset}")
    return header_len, offset


def parse_header(
    raw: bytes | memoryview, digest: str, offset: int, file_size: int
) -> dict[str, Any]:
    """Decode and check the JSON header against the digest and the file size."""
    try:
        header = json.loads(bytes(raw))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Damaged(f"header unreadable: {exc}") from None
    problem = header_problem(header)
    if problem:
        raise Damaged(f"header unreadable: {problem}")
    if header["digest"] != digest:
        raise Damaged(f"header names another digest, {header['digest']}")
    present = file_size - offset
    if present < header["size"]:
        raise Damaged(f"truncated: {present} of {header['size']} payload bytes present")
    if present > header["size"]:
        raise Damaged(f"{present - header['size']} unexpected bytes after the payload")
    return header


def header_problem(header: object) -> str | None:
    """Return what is wrong with a header or record dict, or None."""
    if not isinstance(header, dict):
        return "not a JSON object"
    for name, kind in HEADER_FIELDS.items():
        if not isinstance(header.get(name), kind) or isinstance(header.get(name), bool):
            return f"field {name!r} is missing or not a {kind.__name__}"
    if not DIGEST.fullmatch(header["digest"]) or not DIGEST.fullmatch(header["checksum"]):
        return "digest or checksum is not 32 lowercase hex characters"
    return None




def check_digest(digest: object) -> None:
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise StoreError(
            f"invalid artifact digest {digest!r}: expected 32 lowercase hex characters "
            "(an xxh3-128 digest from orchestrator.hashing)."
        )


def checksum(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128(data).hexdigest()


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN
