"""Fault injection for tests: make the Nth write, fsync or rename of object files fail.

``ORCH_FAULT="write:N"``, ``"fsync:N"`` or ``"rename:N"`` (optionally
``":ERRNO-NAME"``, e.g. ``"fsync:2:EIO"``) makes the Nth such operation on
object files in this process raise ``OSError`` (ENOSPC for writes and
renames, EIO for fsync), as a full disk or a failing device would;
``ORCH_FAULT="after-object[:N]"`` ends the process with ``os._exit(137)``
right after its Nth object is published, before any metadata row can record
it. The variable is read once, at import; tests running in one process use
:func:`inject_fault`. Unset, it costs one ``None`` check per operation.
The stores call :func:`hit`; nothing else should.
"""

from __future__ import annotations

import errno
import os
import sys

from orchestrator.errors import StoreError

_FAULT_OPS = {"write": errno.ENOSPC, "fsync": errno.EIO, "rename": errno.ENOSPC, "after-object": 0}


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


def hit(op: str) -> None:
    """Count one ``op`` on an object file, failing it if a fault is armed for this one."""
    if _fault is not None:
        _fault.hit(op)
