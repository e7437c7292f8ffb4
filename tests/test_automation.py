"""`orch` as a job runs it: cron, CI, containers, schedulers (no terminal, a bare locale, signals).

Signals that stop a job are in test_kill.py; here, what such a job's log and exit code look like.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

_FAILS_IN_FRENCH = (
    "from orchestrator import pipeline, step\n\n"
    "@step\ndef load(n: int) -> list:\n    print('données chargées… 日本')\n    return list(range(n))\n\n"
    "@step\ndef check(xs: list) -> int:\n    raise ValueError('échec: données invalides ☠')\n\n"
    "@pipeline\ndef nightly(n: int = 3):\n    return check(load(n))\n")


def _orch(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """``orch --store STORE ARGS`` as a job runs it: no terminal, stdin from /dev/null, ``env`` added."""
    return subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(tmp_path / "store"), *args],
                          cwd=tmp_path, capture_output=True, stdin=subprocess.DEVNULL, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_every_command_prints_whole_under_a_locale_that_is_not_utf8(tmp_path):
    """LANG=en_US.ISO-8859-1 (or PYTHONIOENCODING=latin-1): `orch show` stopped at its first `→`, exit 2,
    blaming its arguments; each command now prints all it has, orch's own marks as ASCII, exit codes as ever."""
    (tmp_path / "nightly.py").write_text(_FAILS_IN_FRENCH)
    latin1 = {"PYTHONIOENCODING": "latin-1"}
    ran = _orch(tmp_path, "run", "nightly.py", **latin1)
    assert ran.returncode == 1, ran.stderr
    err = ran.stderr.decode("latin-1")
    assert "  > load: no earlier result" in err
    assert "error: step 'check' failed after 1 attempt: ValueError: échec: données invalides \\u2620" in err
    rerun = _orch(tmp_path, "run", "nightly.py", "-p", "n=4", **latin1)
    assert rerun.returncode == 1
    for args, expected in [
        (("show", "latest"), "parameter `n` changed (3 -> 4)"),
        (("runs",), "failed"),
        (("logs", "latest:load"), "données chargées... \\u65e5\\u672c"),
        (("dag", "nightly.py"), "check (nightly.py:14) <- load"),
        (("lineage", "latest:check"), "`-- xs: "),
    ]:
        shown = _orch(tmp_path, *args, **latin1)
        out = shown.stdout.decode("latin-1")
        assert shown.returncode == 0, (args, shown.stderr)
        assert expected in out, (args, out)
