"""HMAC-SHA256 signatures of pickled artifacts, and the key they are made with.

Unpickling runs code, so an artifact whose materializer unpickles is loaded
only if the ``orch`` process that recorded it signed it: an HMAC over its
digest, materializer, checksum, size, type and metadata. The checksum then
protects the bytes. Workers never sign (they need no key); the driver signs
what they report when it records it.

The key comes from ``$ORCH_SIGNING_KEY`` (hex, or any other string, used as
its UTF-8 bytes), else from ``$XDG_CONFIG_HOME/orchestrator/signing.key``
(default ``~/.config/orchestrator/signing.key``), which the first signature
creates with 32 random bytes, mode 0600, written atomically. Verifying never
creates it: a key made only to check a copied store's signatures would fail
every one of them, and then be the key this account's runs sign with. The key is kept
outside the store on purpose: whoever can only write the store cannot forge
a signature. See docs/security.md for the trust model.

This module must not read or write artifacts or the metadata database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SigningKeyError

if TYPE_CHECKING:
    from orchestrator.store import ArtifactInfo

KEY_ENV = "ORCH_SIGNING_KEY"
KEY_BYTES = 32

_cached: tuple[tuple[str | None, str], bytes] | None = None


def key_path() -> Path:
    """Where the signing key file lives (whether or not it exists)."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "orchestrator" / "signing.key"


def key_source() -> str:
    """Where the key comes from, for ``orch doctor``: the variable or the file path."""
    return f"${KEY_ENV}" if os.environ.get(KEY_ENV) else str(key_path())


def other_key_advice(made: str) -> str:
    """What to do about an artifact not trusted here, whose run (``made`` says what) may have used another key.

    Without a key here, "this process signs with the key of PATH" named a file that did not exist.
    """
    if has_key():
        return (f"This process signs with the key of {key_source()}: if {made} with another (a teammate's, "
                f"another machine's or account's, a copied store's), set {KEY_ENV} to that key (see docs/security.md)")
    return (f"This process has no signing key (no ${KEY_ENV}, no {key_path()}): set {KEY_ENV} to the key {made} "
            "with (see docs/security.md)")


def has_key() -> bool:
    """True if a key is configured (the variable is set or the key file exists)."""
    return bool(os.environ.get(KEY_ENV)) or key_path().is_file()


def signing_key(*, create: bool = True) -> bytes:
    """The signing key; the key file is created on first use when ``create`` is true.

    Raises:
        SigningKeyError: If the key file cannot be read or created, or is empty.
    """
    global _cached
    env = os.environ.get(KEY_ENV)
    path = key_path()
    where = (env, str(path))
    if _cached is not None and _cached[0] == where:
        return _cached[1]
    key = _parse_env_key(env) if env else _read_key_file(path, create)
    _cached = (where, key)
    return key


SIGNED_WITH_ANOTHER_KEY = "its signature does not match"  # how ``verify`` begins the reason it gives then
NO_KEY_TO_CHECK = "no signing key here to check it"  # and when no key is configured


def sign(info: ArtifactInfo, key: bytes | None = None) -> str:
    """The HMAC-SHA256 (hex) of an artifact's recorded description."""
    return hmac.new(key or signing_key(), _canonical(info), hashlib.sha256).hexdigest()


def verify(info: ArtifactInfo, signature: str | None, key: bytes | None = None) -> str | None:
    """None if ``signature`` is valid for ``info``, else a short reason."""
    if not signature:
        return "it has no signature"
    if key is None:
        key = _verifying_key()
        if key is None:
            return f"{NO_KEY_TO_CHECK} (no ${KEY_ENV}, no {key_path()})"
    if not hmac.compare_digest(sign(info, key), signature):
        return f"{SIGNED_WITH_ANOTHER_KEY} (signed with another key, or its record was changed)"
    return None


def _verifying_key() -> bytes | None:
    """The key to check a signature with, or None when none is configured (none is created)."""
    try:
        return signing_key(create=False)
    except SigningKeyError:
        if has_key():  # unreadable or empty: the user's setup to fix, said as when signing
            raise
        return None


def _canonical(info: ArtifactInfo) -> bytes:
    fields: dict[str, Any] = {
        "digest": info.digest, "materializer": info.materializer, "checksum": info.checksum,
        "size": info.size, "type_name": info.type_name, "meta": info.meta or {},
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _parse_env_key(text: str) -> bytes:
    stripped = text.strip()
    if len(stripped) >= 32 and len(stripped) % 2 == 0:
        try:
            return bytes.fromhex(stripped)
        except ValueError:
            pass
    return text.encode("utf-8", "surrogatepass")


def _read_key_file(path: Path, create: bool) -> bytes:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise SigningKeyError(
                f"no signing key at {path}. Run `orch run` once to create it, or set ${KEY_ENV}."
            ) from None
        key = _create_key_file(path)
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc}. Fix its permissions "
                              f"or set ${KEY_ENV}.") from exc
    if not key:
        raise SigningKeyError(f"the signing key {path} is empty. Delete it (a new one is made on the "
                              f"next run; pickled artifacts signed before are then recomputed) or set ${KEY_ENV}.")
    return key


def _create_key_file(path: Path) -> bytes:
    """Write 32 random bytes to ``path`` (0600), atomically; keep another process's key if it won."""
    key = secrets.token_bytes(KEY_BYTES)
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # never replaces a key another process just created
        except FileExistsError:
            return path.read_bytes()
        finally:
            temp.unlink(missing_ok=True)
    except OSError as exc:
        # A container or a job user's home is often read-only (HOME=/): a key made there would also be
        # lost with the container, and every run would then distrust what the last one pickled.
        raise SigningKeyError(f"cannot create the signing key {path}: {exc}. Set ${KEY_ENV} (in a container "
                              f"or a scheduled job, the same key on every run, so that each trusts what the "
                              f"others stored) or make {path.parent} writable.") from exc
    return key
