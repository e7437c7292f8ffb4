"""`orch` as a job runs it: cron, CI, containers, schedulers (no terminal, a bare locale, signals).

Signals that stop a job are in test_kill.py; here, what such a job's log and exit code look like.
"""

from __future__ import annotations

import os
import re
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
    # ASCII (as docs/cli.md shows it): `dag`, `lineage` and `diff` wrote raw UTF-8 there (click's doing).
    for args, expected in [(("dag", "nightly.py"), "<- load"), (("lineage", "latest:check"), "`-- xs: "),
                           (("diff", "latest~1", "latest"), "->")]:
        shown = _orch(tmp_path, *args, PYTHONIOENCODING="ascii")
        assert shown.returncode in (0, 1), (args, shown.stderr)
        assert max(shown.stdout + shown.stderr, default=0) < 128, (args, shown.stdout)
        assert expected in shown.stdout.decode("ascii"), (args, shown.stdout)


_LONG_FAILURE = (
    "from orchestrator import pipeline, step\n\n"
    "@step\ndef ingest_the_customer_records_of_the_night(n: int) -> int:\n    return n\n\n"
    "@step\ndef validate_the_incoming_customer_records(x: int) -> int:\n"
    "    raise ValueError('column customer_lifetime_value has 1234 missing values out of 50000 rows; '\n"
    "                     'expected none (see the data contract in contracts/customers.yaml)')\n\n"
    "@pipeline\ndef nightly(n: int = 3):\n    return validate_the_incoming_customer_records("
    "ingest_the_customer_records_of_the_night(n))\n")
_ERROR = ("ValueError: column customer_lifetime_value has 1234 missing values out of 50000 rows; expected none "
          "(see the data contract in contracts/customers.yaml)")


def _without_columns() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE",
                                                              "TTY_INTERACTIVE")}


def _run_logged(tmp_path, **env: str) -> str:
    """`orch run` of a failing pipeline with stderr to a file, as CI and cron keep it: the log's text."""
    (tmp_path / "nightly.py").write_text(_LONG_FAILURE)
    with open(tmp_path / "run.log", "wb") as log:
        done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(tmp_path / "store"), "run",
                               "nightly.py"], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                              timeout=120, env={**_without_columns(), "PYTHONPATH": str(ROOT), **env})
    assert done.returncode == 1
    return (tmp_path / "run.log").read_text()


def test_a_run_logged_to_a_file_keeps_each_event_and_each_summary_row_on_one_line(tmp_path):
    """A CI log was laid out 80 columns wide: the failure's line wrapped mid-sentence, step names were cut
    in their middle and the reason was folded into a column of 24 characters, its end cut off."""
    log = _run_logged(tmp_path)
    assert f"  failed validate_the_incoming_customer_records: {_ERROR} (2/2, " in log
    row = next(line for line in log.splitlines() if line.startswith("validate_the_incoming_customer_records "))
    assert "failed" in row and "ValueError: column customer_lifetime_value has 1234 missing values" in row
    assert any(line.startswith("ingest_the_customer_records_of_the_night ") for line in log.splitlines())
    # No name is cut short; a failed step's summary row may clip its error at the log's width,
    # since the error is whole on the run's last line (and on its event line above).
    assert [line for line in log.splitlines() if "…" in line] in ([], [row])
    assert any(line.startswith("error: ") and _ERROR in line for line in log.splitlines())


def test_force_color_in_ci_colours_the_log_but_draws_no_progress_bar_into_it(tmp_path):
    """FORCE_COLOR=1 (set by many CI setups) made rich redraw its live bar into the log, \\r and all."""
    log = _run_logged(tmp_path, FORCE_COLOR="1")
    assert "\r" not in log and "\x1b[2K" not in log and "\x1b[?25l" not in log
    assert "ingest_the_customer_records_of_the_night \x1b[2m(1/2, " in log  # a line per event, in colour


def test_a_dumb_terminal_gets_a_line_per_event_instead_of_nothing(tmp_path):
    """TERM=dumb (an editor's shell, some CI runners' pseudo-terminal): rich draws no bar there, and orch
    printed nothing at all until the summary."""
    import pty

    (tmp_path / "nightly.py").write_text(_LONG_FAILURE)
    main, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "orchestrator", "--store", str(tmp_path / "store"), "run",
                               "nightly.py"], cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=terminal, timeout=120,
                              env={**_without_columns(), "PYTHONPATH": str(ROOT), "TERM": "dumb"})
        os.close(terminal)
        text = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            text += chunk
    finally:
        os.close(main)
    assert done.returncode == 1
    shown = text.decode()
    assert "ran ingest_the_customer_records_of_the_night (1/2, " in shown, shown
    assert "\x1b[2K" not in shown


_PICKLES = (
    "from orchestrator import pipeline, step\n\n"
    "class Box:\n    def __init__(self, v):\n        self.v = v\n\n"
    "@step\ndef make(n: int) -> Box:\n    return Box(n)\n\n"
    "@step\ndef use(b: Box) -> int:\n    return b.v * 2\n\n"
    "@pipeline\ndef boxed(n: int = 3):\n    return use(make(n))\n")


def test_a_pickled_output_signed_by_another_runs_key_is_recomputed_saying_so(tmp_path, monkeypatch):
    """Each container run made a key of its own in a home it then dropped: the next one recomputed what the last
    one pickled as 'stored output was damaged', which sent users to their disks, not to ORCH_SIGNING_KEY."""
    from orchestrator.cache import OTHER_KEY
    from orchestrator.loader import load_pipeline

    (tmp_path / "boxed.py").write_text(_PICKLES)
    store = str(tmp_path / "store")
    monkeypatch.setenv("ORCH_SIGNING_KEY", "the key of last night's container")
    assert load_pipeline(str(tmp_path / "boxed.py")).run(store=store).status == "succeeded"
    monkeypatch.setenv("ORCH_SIGNING_KEY", "the key of tonight's container")
    run = load_pipeline(str(tmp_path / "boxed.py")).run(store=store, rerun="use")
    assert run.status == "succeeded"
    assert (run.steps["make"].status, run.steps["make"].reason) == ("ran", OTHER_KEY)
    assert "ORCH_SIGNING_KEY" in OTHER_KEY


def test_a_home_where_no_signing_key_can_be_made_is_a_setup_mistake_naming_orch_signing_key(tmp_path, capsys,
                                                                                             monkeypatch):
    """HOME=/ of a container's user: the run stopped with exit 1, which reads as a failed step."""
    import pytest

    from orchestrator.cli import main

    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc, where no folder can be made, even by root")
    (tmp_path / "boxed.py").write_text(_PICKLES)
    monkeypatch.delenv("ORCH_SIGNING_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/proc/self")  # as a read-only home is, whoever runs the tests
    with pytest.raises(SystemExit) as exited:
        main(["--store", str(tmp_path / "store"), "run", str(tmp_path / "boxed.py")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "error: cannot create the signing key" in err and "Set $ORCH_SIGNING_KEY (in a container" in err


def test_a_columns_of_0_in_the_jobs_environment_is_ignored_not_obeyed(tmp_path):
    """COLUMNS=0 made `orch run` print nothing but its last line, and `orch show` nothing at all."""
    log = _run_logged(tmp_path, COLUMNS="0")
    assert "  ran ingest_the_customer_records_of_the_night (1/2, " in log
    assert any(line.startswith("validate_the_incoming_customer_records ") for line in log.splitlines())
    shown = _orch(tmp_path, "show", "latest", COLUMNS="0")
    assert shown.returncode == 0
    assert re.search(rb"\nvalidate_the_incoming_customer_records +failed", shown.stdout), shown.stdout


def test_a_notebook_keeps_its_own_width_for_progress_true(monkeypatch):
    """A notebook's output is no terminal either, but no log: run(progress=True) keeps rich's width there."""
    import io

    from rich.console import Console

    from orchestrator.tables import PIPED_WIDTH, is_live_terminal, log_width

    monkeypatch.delenv("COLUMNS", raising=False)
    notebook = Console(file=io.StringIO(), force_jupyter=True)
    assert log_width(notebook).width != PIPED_WIDTH and not is_live_terminal(notebook)
    assert log_width(Console(file=io.StringIO())).width == PIPED_WIDTH


def test_a_store_closed_to_you_by_a_jobs_umask_says_whose_it_is_and_how_to_share_it(tmp_path, capsys, monkeypatch):
    """A nightly job under umask 077 makes a drwx------ store: a teammate's `orch runs` said only
    'Permission denied: STORE/objects'. (The folder's permission is simulated: the tests may run as root.)"""
    import pytest

    from orchestrator.cli import main

    (tmp_path / "nightly.py").write_text(_FAILS_IN_FRENCH.replace("raise ValueError", "return len(xs) #"))
    store = tmp_path / "store"
    with pytest.raises(SystemExit):
        main(["--store", str(store), "run", str(tmp_path / "nightly.py")])
    capsys.readouterr()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) == str(store)
                        else real_access(path, mode, **kw))
    for command in (["runs"], ["run", str(tmp_path / "nightly.py")]):
        with pytest.raises(SystemExit) as exited:
            main(["--store", str(store), *command])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: the store {store}") and "cannot be read by you (mode drwx" in err, err
        assert "umask 077" in err and f"chmod -R g+rwX {store}" in err and err.count("\n") == 1


_TWO_STEPS = (
    "import time\nfrom orchestrator import pipeline, step\n\n"
    "@step\ndef first(n: int) -> int:\n    time.sleep(0.5)\n    return n\n\n"
    "@step\ndef second(x: int) -> int:\n    return x + 1\n\n"
    "@pipeline\ndef two(n: int = 3):\n    return second(first(n))\n")


def test_a_log_reader_that_goes_away_does_not_fail_the_run(tmp_path):
    """`orch run ... 2>&1 | head -1`, a log shipper that died: rich's SystemExit(1) on the broken pipe stopped the
    run in its middle, recorded `failed` with no step and exit 1. The run now goes on, silently, to its end."""
    from orchestrator import get_run

    (tmp_path / "two.py").write_text(_TWO_STEPS)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--store", str(tmp_path / "store"), "run", "two.py"],
                            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**_without_columns(), "PYTHONPATH": str(ROOT)})
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith(b"run ")  # what `head -1` reads, before it exits
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0
    run = get_run("latest", store=str(tmp_path / "store"))
    assert run.status == "succeeded" and {s.status for s in run.steps.values()} == {"ran"}
