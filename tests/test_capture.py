"""What an attempt keeps of what it prints: all of a short output, the ends of a long one."""

from __future__ import annotations

import io
import logging.config  # imported before the steps run, as a pipeline file importing it does
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import capture, pipeline, step
from orchestrator.capture import Capture, read_spill


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(capture, "CAPTURE_LIMIT", 100)
    return 100


def test_short_output_is_kept_whole(small_limit):
    with Capture(echo=False) as captured:
        for k in range(10):
            print(f"line {k}")  # 70 characters in all
    assert captured.stdout == "".join(f"line {k}\n" for k in range(10))


def test_long_output_keeps_its_first_and_last_halves(small_limit):
    lines = [f"{k:09d}\n" for k in range(1000)]  # 10 characters each
    with Capture(echo=False) as captured:
        for line in lines:
            sys.stdout.write(line)
        sys.stderr.write("x" * 10_000)
    text = "".join(lines)
    assert captured.stdout.startswith(text[:50] + "\n[... 9,900 characters left out")
    assert captured.stdout.endswith("...]\n" + text[-50:])
    assert len(captured.stdout) < 300
    assert "9,900 characters left out" in captured.stderr


def test_a_spill_file_is_clipped_the_same_way(small_limit, tmp_path):
    (tmp_path / "stdout").write_text("a" * 60 + "b" * 1000 + "c" * 60)
    (tmp_path / "stderr").write_text("short\n")
    stdout, stderr, logs = read_spill(str(tmp_path))
    assert stdout.startswith("a" * 50 + "\n[... 1,020 characters left out")
    assert stdout.endswith("c" * 50)
    assert (stderr, logs) == ("short\n", "")


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_step_printing_a_lot_records_a_bounded_text(store, executor):
    # The real limit: a process worker does not see a patched one.
    @step
    def loud() -> int:
        for k in range(200_000):  # about 1.5 MB
            print(f"row {k}")
        return 1

    @pipeline
    def talk():
        return loud()

    run = talk.run(store=str(store), executor=executor, workers=None if executor == "sequential" else 1)
    assert run.status == "succeeded"
    from orchestrator.lineage_db import Lineage

    stdout = Lineage(store / "metadata.db").attempts(run.id, "loud")[0]["stdout"]
    assert stdout.startswith("row 0\nrow 1\n") and stdout.endswith("row 199999\n")
    assert "characters left out" in stdout
    assert len(stdout) < capture.CAPTURE_LIMIT + 200


def test_what_a_subprocess_writes_is_the_steps_output_in_order():
    # A subprocess (or C code) writes to descriptors 1 and 2, not through sys.stdout: that text
    # belongs to the step as much as its prints do, and comes where it was written.
    import os
    import subprocess

    with Capture(echo=False) as captured:
        print("before")
        subprocess.run(["echo", "from echo"], check=True)
        os.system("echo from os.system; echo to stderr >&2")
        print("after")
    assert captured.stdout == "before\nfrom echo\nfrom os.system\nafter\n"
    assert captured.stderr == "to stderr\n"


def test_steps_in_two_threads_leave_the_descriptors_as_they_found_them():
    """A Dask worker with several threads runs two steps at once in one process. The second
    must not save the first one's pipe as "the real descriptor": restoring it would leave fd 1
    pointing at the pipe for good, and its reader writing what arrives back into it."""
    import os
    import subprocess
    import threading

    before = os.fstat(1), os.fstat(2)
    first_in, second_in, first_done = threading.Event(), threading.Event(), threading.Event()
    results: dict[str, str] = {}

    def first() -> None:  # starts first and ends first: the steps' captures do not nest
        with Capture(echo=False) as captured:
            first_in.set()
            second_in.wait(10)
            subprocess.run(["echo", "from the first step"], check=True)
        results["first"] = captured.stdout
        first_done.set()

    def second() -> None:
        first_in.wait(10)
        with Capture(echo=False):
            second_in.set()
            first_done.wait(10)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    after = os.fstat(1), os.fstat(2)
    assert [(s.st_dev, s.st_ino) for s in after] == [(s.st_dev, s.st_ino) for s in before]
    assert results["first"] == "from the first step\n"


def test_a_subprocess_printing_more_than_a_pipe_holds_is_clipped_not_stuck(small_limit):
    import subprocess

    with Capture(echo=False) as captured:
        subprocess.run([sys.executable, "-c", "print('y' * 1_000_000)"], check=True)
    assert captured.stdout.startswith("y" * 50 + "\n[... 999,901 characters left out")


def test_the_verbose_echo_reaches_the_real_descriptor_once(capfd):
    import subprocess

    with Capture(echo=True) as captured:
        print("printed")
        subprocess.run(["echo", "echoed"], check=True)
    assert captured.stdout == "printed\nechoed\n"
    assert capfd.readouterr().out == "printed\nechoed\n"


def test_the_streams_answer_as_files_do():
    # Code that asks sys.stdout for its encoding, descriptor or binary buffer works in a step.
    import subprocess

    with Capture(echo=False) as captured:
        assert sys.stdout.encoding == "utf-8"
        sys.stdout.buffer.write(b"bytes \xff not utf-8\n")
        sys.stdout.flush()
        subprocess.run([sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'raw \\xfe\\n')"],
                       stdout=sys.stdout, check=True)
        print("fd", sys.stdout.fileno() == 1)
    assert captured.stdout == "bytes \ufffd not utf-8\nraw \ufffd\nfd True\n"


def test_a_character_cut_short_on_a_descriptor_ends_its_attempt_and_not_the_next():
    # A step that dies (or ends) halfway through writing a UTF-8 character to fd 1: the bytes held
    # back for the rest of it are that attempt's, shown as U+FFFD, and the next attempt starts clean.
    import os

    with Capture(echo=False) as first:
        os.write(1, "caf\u00e9".encode()[:-1])
    with Capture(echo=False) as second:
        os.write(1, b"ok\n")
    assert first.stdout == "caf\ufffd"
    assert second.stdout == "ok\n"


def test_the_streams_are_text_files_to_code_that_checks():
    # Libraries test ``isinstance(sys.stdout, io.TextIOBase)`` and call what text files have.
    import io

    with Capture(echo=False) as captured:
        assert isinstance(sys.stdout, io.TextIOBase) and isinstance(sys.stderr, io.TextIOBase)
        assert sys.stdout.writable() and not sys.stdout.readable() and not sys.stdout.seekable()
        sys.stdout.writelines(["a\n", "b\n"])
        sys.stdout.close()  # a step that closes it: later prints of the step are still kept
        assert not sys.stdout.closed
        print("after close")
    assert captured.stdout == "a\nb\nafter close\n"


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_steps_subprocess_output_is_recorded_with_its_attempt(store, executor):
    import subprocess

    @step
    def shell() -> int:
        print("python")
        subprocess.run(["echo", "shell"], check=True)
        return 1

    @pipeline
    def talk():
        return shell()

    run = talk.run(store=str(store), executor=executor, workers=None if executor == "sequential" else 1)
    assert run.status == "succeeded"
    from orchestrator.lineage_db import Lineage

    assert Lineage(store / "metadata.db").attempts(run.id, "shell")[0]["stdout"] == "python\nshell\n"


def test_what_a_forked_process_prints_is_kept_a_line_at_a_time():
    # A multiprocessing pool's workers print through their copy of the step's sys.stdout. Each
    # line must reach the capture whole, or the lines of several workers run into each other:
    # here another writer (a second worker) writes between the two halves of a line.
    import multiprocessing

    with Capture(echo=False) as captured:
        child = multiprocessing.get_context("fork").Process(target=_half_a_line)
        child.start()
        child.join()
    assert captured.stdout == "other worker\nitem 1 done\n"


def _half_a_line() -> None:
    import os

    sys.stdout.write("item 1 ")
    os.write(1, b"other worker\n")
    print("done")


def test_the_verbose_echo_ends_a_line_the_step_left_open(capfd):
    # `print("50%", end="")` last must not run into the progress line `orch run` prints next.
    with Capture(echo=True) as captured:
        print("50%", end="")
    assert captured.stdout == "50%"
    assert capfd.readouterr().out == "50%\n"


def test_a_warning_on_a_worker_names_the_steps_file_and_line(store):
    # On a worker the step's code arrived by value and its file name was `<dynamic-code>`. (In the
    # sequential executor it has its file; but there pytest records the warning instead of showing it.)
    import warnings

    @step
    def warns() -> int:
        warnings.warn("old column name", FutureWarning)
        return 1

    @pipeline
    def warned():
        return warns()

    run = warned.run(store=str(store), executor="process", workers=1)
    from orchestrator.lineage_db import Lineage

    stderr = Lineage(store / "metadata.db").attempts(run.id, "warns")[0]["stderr"]
    assert stderr.startswith(f"{__file__}:"), stderr
    assert stderr.endswith('FutureWarning: old column name\n  warnings.warn("old column name", FutureWarning)\n')


def test_unconfigured_logging_is_captured_and_left_unconfigured(monkeypatch):
    # A notebook runs a pipeline, then configures logging: its basicConfig() must print WARNING
    # and above, as Python's default, not the INFO records a run left the root logger open to.
    import logging

    monkeypatch.setattr(logging.root, "handlers", [])  # as in a fresh process (pytest adds its own)
    monkeypatch.setattr(capture, "_handler", None)
    monkeypatch.setattr(logging.root, "level", logging.WARNING)
    with capture.root_level_restored():  # what a run does around its steps
        with Capture(echo=False) as captured:
            logging.getLogger("proj").info("loaded 3 rows")
        assert captured.logs.endswith("INFO proj: loaded 3 rows\n")
        assert logging.root.level == logging.INFO  # open for the run's other steps
    assert logging.root.level == logging.WARNING
    assert logging.root.handlers == []


def test_a_run_leaves_unconfigured_logging_unconfigured(monkeypatch, tmp_path):
    import logging

    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(capture, "_handler", None)
    monkeypatch.setattr(logging.root, "level", logging.WARNING)

    @step
    def talk() -> int:
        logging.getLogger("proj").info("working")
        return 1

    @pipeline
    def chatty():
        return talk()

    run = chatty.run(store=str(tmp_path / "store"))
    assert run.status == "succeeded"
    assert logging.root.level == logging.WARNING


def test_ctrl_c_leaves_the_spill_for_the_parent_to_read(tmp_path):
    # A timed step's child gets Ctrl-C too: the parent kills it and reads the spill afterwards.
    spill = tmp_path / "spill"
    spill.mkdir()
    with pytest.raises(KeyboardInterrupt), Capture(echo=False, spill=str(spill)):
        print("waiting for the lock")
        raise KeyboardInterrupt
    assert read_spill(str(spill))[0] == "waiting for the lock\n"
    assert not spill.exists()
    other = tmp_path / "other"
    other.mkdir()
    with Capture(echo=False, spill=str(other)):
        print("done")
    assert not other.exists()  # a finished attempt's text came back with its result


@pytest.fixture
def warnings_printed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Warnings shown on stderr under Python's default rule (once per place), as outside pytest,
    which records them instead."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        monkeypatch.setattr(warnings, "showwarning", show)
        yield


def test_each_attempt_keeps_a_warning_an_earlier_one_showed(store, warnings_printed):
    # Python shows a warning once per place per process: the second run of a step in a notebook,
    # the other items of a map and a retry had nothing in orch logs where the first had it.
    import warnings

    from orchestrator.lineage_db import Lineage

    tries = []

    @step(retries=1)
    def convert(x: int) -> int:
        warnings.warn("column 'age' is text", UserWarning)
        tries.append(x)
        if tries.count(x) == 1 and x == 2:
            raise ConnectionError("flaky")
        return x

    @pipeline
    def converted(n: int = 2):
        return convert.map(list(range(n)))

    first = converted.run(store=str(store))
    again = converted.run(store=str(store), n=3)  # the same process, as a notebook's next cell
    assert first.status == again.status == "succeeded"
    lineage = Lineage(store / "metadata.db")
    attempts = [a for run in (first, again) for node in run.steps if run.steps[node].status == "ran"
                for a in lineage.attempts(run.id, node)]
    assert len(attempts) == 4  # items 0 and 1, then item 2 twice (a retry)
    for attempt in attempts:
        assert attempt["stderr"].count("UserWarning: column 'age' is text") == 1, attempt


def test_a_warning_the_user_ignores_stays_ignored(store, warnings_printed):
    import warnings

    from orchestrator.lineage_db import Lineage

    @step
    def quiet() -> int:
        warnings.warn("noise", DeprecationWarning)
        return 1

    @pipeline
    def hushed():
        return quiet()

    warnings.simplefilter("ignore", DeprecationWarning)
    run = hushed.run(store=str(store))
    assert not Lineage(store / "metadata.db").attempts(run.id, "quiet")[0]["stderr"]


class _NotebookStream(io.StringIO):
    """A notebook's sys.stdout/sys.stderr: text sent to the page, no file descriptor."""

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")


@pytest.mark.parametrize("configured", [True, False])
def test_verbose_shows_a_steps_log_record_once(store, monkeypatch, configured):
    # A notebook's logging.basicConfig(level=INFO) prints a step's record on the page; verbose=True
    # echoed it again in the orchestrator's format. Unconfigured, the echo is the only one shown.
    import logging

    from orchestrator.lineage_db import Lineage

    page_out, page_err = _NotebookStream(), _NotebookStream()
    monkeypatch.setattr(sys, "stdout", page_out)
    monkeypatch.setattr(sys, "stderr", page_err)
    handlers = [logging.StreamHandler(page_err)] if configured else []
    monkeypatch.setattr(logging.root, "handlers", handlers)
    monkeypatch.setattr(logging.root, "level", logging.INFO)

    @step
    def fit_model() -> int:
        logging.getLogger("proj").info("fitted on 120 rows")
        return 1

    @pipeline
    def fitting():
        return fit_model()

    run = fitting.run(store=str(store), verbose=True)
    assert run.status == "succeeded"
    shown = page_out.getvalue() + page_err.getvalue()
    assert shown.count("fitted on 120 rows") == 1, shown
    logs = Lineage(store / "metadata.db").attempts(run.id, "fit_model")[0]["logs"]
    assert logs.endswith("INFO proj: fitted on 120 rows\n")  # kept for orch logs either way
    logging.getLogger("proj").info("after the run")
    assert page_err.getvalue().count("after the run") == (1 if configured else 0)


def test_verbose_shows_a_record_a_handler_prints_on_the_terminal_once(capfd, monkeypatch):
    # In a terminal (IPython, a script) the user's handler writes to descriptor 2, which the
    # capture reads and, with verbose, echoes: the record is shown there, in the user's format.
    import logging

    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(logging.Formatter("%(name)s said %(message)s"))
    monkeypatch.setattr(logging.root, "handlers", [handler])
    monkeypatch.setattr(logging.root, "level", logging.INFO)
    with Capture(echo=True) as captured:
        logging.getLogger("proj").info("fitted")
        handler.flush()
    assert capfd.readouterr().err == "proj said fitted\n"
    assert captured.stderr == "proj said fitted\n"
    assert captured.logs.endswith("INFO proj: fitted\n")


def test_runs_whose_steps_never_warn_leave_pythons_memory_of_warnings_alone(store, warnings_printed, capsys):
    # Forgetting which warnings were shown lets those outside steps (orch's own, a script's) show again:
    # only done after an attempt that showed one.
    import warnings

    @step
    def quiet() -> int:
        return 1

    @pipeline
    def calm():
        return quiet()

    def outside() -> None:
        warnings.warn("shown once per place", UserWarning)

    calm.run(store=str(store))  # an earlier test's warning in a step is forgotten here, once
    for _ in range(2):
        outside()
        assert calm.run(store=str(store), no_cache=True).status == "succeeded"
    err = capsys.readouterr().err
    assert err.count("UserWarning: shown once per place") == 1, err


def unconfigure_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root logger as in a plain script: no handlers, level WARNING. Called in the test's body:
    pytest adds its own handlers after the fixtures are set up."""
    import logging

    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging.root, "level", logging.WARNING)


@step
def configures_logging(how: str) -> int:
    import logging
    import logging.config

    if how == "basicConfig":
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")
    elif how == "setLevel":
        logging.getLogger().setLevel(logging.DEBUG)
    else:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "handlers": {"h": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
                                   "root": {"level": "DEBUG", "handlers": ["h"]}})
    logging.getLogger("proj").debug("fine detail")
    return 1


@step
def logs_after(x: int) -> int:
    import logging

    logging.getLogger("proj").debug("detail of the next step")
    logging.getLogger("proj").info("next step")
    return x


@pipeline
def configured_in_a_step(how: str = "basicConfig"):
    return logs_after(configures_logging(how))


@pytest.mark.parametrize("executor", ["sequential", "process"])
@pytest.mark.parametrize("how", ["basicConfig", "setLevel", "dictConfig"])
def test_logging_configured_in_a_step_is_kept_and_ends_with_the_step(store, monkeypatch, executor, how):
    # The root logger holds the capture's handler while a step runs: basicConfig() saw it and did
    # nothing (no DEBUG kept), and a level or handler a step set stayed for the steps after it.
    import logging

    unconfigure_logging(monkeypatch)

    run = configured_in_a_step.run(store=str(store), executor=executor,
                                   workers=None if executor == "sequential" else 1, how=how)
    assert run.status == "succeeded"
    first, after = run.steps["configures_logging"], run.steps["logs_after"]
    assert "fine detail" in first.logs + first.stderr
    if how == "basicConfig":
        assert "DEBUG proj fine detail" in first.stderr  # in the step's own format, on its stderr
        assert "DEBUG proj: fine detail" in first.logs
    assert "next step" in after.logs
    assert "detail of the next step" not in after.logs + after.stderr
    assert after.stderr == ""  # no handler of the first step's left writing into the next one's capture
    assert logging.root.handlers == [] and logging.root.level == logging.WARNING


@step
def silences_logging() -> int:
    import logging

    logging.disable(logging.WARNING)  # a library's noise, silenced for this step's work
    return 1


@step
def warns_after(x: int) -> int:
    import logging

    logging.getLogger("proj").warning("the next step warns")
    return x


@pipeline
def disabled_in_a_step():
    return warns_after(silences_logging())


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_logging_disabled_in_a_step_ends_with_the_step(store, executor):
    """``logging.disable()`` in a step silenced every later step on that process, and the caller."""
    import logging

    try:
        run = disabled_in_a_step.run(store=str(store), executor=executor,
                                     workers=None if executor == "sequential" else 1)
        left = logging.root.manager.disable
    finally:
        logging.disable(logging.NOTSET)
    assert left == logging.NOTSET
    assert run.status == "succeeded"
    assert "the next step warns" in run.steps["warns_after"].logs


def test_verbose_shows_a_record_of_a_steps_basic_config_once(capfd, monkeypatch):
    import logging

    unconfigure_logging(monkeypatch)

    with Capture(echo=True) as captured:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s says %(message)s")
        logging.getLogger("proj").debug("fitted")
    assert capfd.readouterr().err == "proj says fitted\n"
    assert captured.stderr == "proj says fitted\n"
    assert captured.logs.endswith("DEBUG proj: fitted\n")
    assert logging.root.handlers == []


@step
def deprecated_call() -> int:
    import warnings

    warnings.warn("old_api() is deprecated", DeprecationWarning)
    return 1


@pipeline
def strict():
    return deprecated_call()


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_warning_the_pipeline_file_makes_an_error_fails_its_step_on_every_executor(store, executor):
    # warnings.simplefilter("error") at the top of the pipeline file runs in the driver only: a pool
    # worker let the step's warning through, and the run that failed sequentially succeeded there.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = strict.run(store=str(store), executor=executor, workers=None if executor == "sequential" else 1)
    assert run.status == "failed"
    assert run.steps["deprecated_call"].error == "DeprecationWarning: old_api() is deprecated"


def test_filters_travel_only_when_the_driver_changed_them_and_a_worker_gets_its_own_back(monkeypatch):
    import warnings

    from orchestrator import warning_files

    with warnings.catch_warnings():
        monkeypatch.setattr(warning_files, "filters_at_import", list(warnings.filters))
        assert warning_files.driver_filters() is None  # as the process started: nothing to send
        warnings.simplefilter("error", DeprecationWarning)
        sent = warning_files.driver_filters()
    assert sent is not None and sent[0][:3] == ("error", None, DeprecationWarning)
    before = warnings.filters[:]
    with warning_files.filters_applied(sent), pytest.raises(DeprecationWarning):
        warnings.warn("old", DeprecationWarning)
    assert warnings.filters == before


def test_a_warning_a_direct_call_showed_is_kept_by_the_steps_first_attempt(store, warnings_printed, capsys):
    # parse(1) in a script or a notebook shows the warning; Python remembers it, and the step's
    # first attempt in the same process had no warning under stderr.
    import warnings

    from orchestrator import warning_files

    @step
    def parse(x: int) -> int:
        warnings.warn("column 'age' is text", UserWarning)
        return x

    @pipeline
    def parsing():
        return parse(1)

    warning_files._shown_in_attempts.clear()  # as in a process whose steps never warned
    assert parse(1) == 1
    assert capsys.readouterr().err.count("UserWarning: column 'age' is text") == 1
    run = parsing.run(store=str(store))
    assert "UserWarning: column 'age' is text" in run.steps["parse"].stderr


@step
def configures_named_loggers() -> int:
    # logging.config as the file imports it: it travels with the step's code to a worker.
    logging.config.dictConfig({"version": 1,  # disable_existing_loggers: True, logging's default
                               "handlers": {"h": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
                               "loggers": {"proj.model": {"level": "DEBUG", "handlers": ["h"], "propagate": False}}})
    logging.getLogger("proj.model").debug("model detail")
    return 1


@step
def logs_through_existing_loggers(x: int) -> int:
    logging.getLogger("proj").info("data loaded")
    logging.getLogger("proj.model").info("model fitted")
    return x


@pipeline
def configured_by_dict():
    return logs_through_existing_loggers(configures_named_loggers())


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_steps_dict_config_leaves_the_loggers_of_the_steps_after_it_as_they_were(store, monkeypatch, executor):
    # dictConfig disables every logger it does not name (disable_existing_loggers): the steps after
    # it logged nothing through them, and a logger it named kept writing into the finished capture.
    unconfigure_logging(monkeypatch)
    for name in ("proj", "proj.model"):
        logging.getLogger(name)  # made at import, as a module's `log = logging.getLogger(__name__)`
    run = configured_by_dict.run(store=str(store), executor=executor, workers=None if executor == "sequential" else 1)
    assert run.status == "succeeded"
    assert run.steps["configures_named_loggers"].stderr == "model detail\n"
    after = run.steps["logs_through_existing_loggers"]
    assert "INFO proj: data loaded" in after.logs and "INFO proj.model: model fitted" in after.logs
    assert after.stderr == ""
    model = logging.getLogger("proj.model")
    assert (model.handlers, model.propagate, model.level, logging.getLogger("proj").disabled) == ([], True, 0, False)


@pytest.mark.parametrize("verbose", [False, True])
def test_a_module_loggers_own_handler_on_a_notebooks_page_is_the_steps_output(store, monkeypatch, verbose):
    # `log.addHandler(StreamHandler())` at import in a notebook writes to the page's sys.stderr, no
    # descriptor: the record was printed on the page while the step ran, verbose or not, and the
    # step's stderr and logs had none of it.
    import logging

    page_out, page_err = _NotebookStream(), _NotebookStream()
    monkeypatch.setattr(sys, "stdout", page_out)
    monkeypatch.setattr(sys, "stderr", page_err)
    log = logging.getLogger("proj.loader")
    handler = logging.StreamHandler()  # the page, as sys.stderr is when the module is imported
    monkeypatch.setattr(log, "handlers", [handler])
    monkeypatch.setattr(log, "propagate", False)
    monkeypatch.setattr(log, "level", logging.INFO)

    @step
    def load_rows() -> int:
        log.info("read 120 rows")
        return 1

    @pipeline
    def loading():
        return load_rows()

    run = loading.run(store=str(store), verbose=verbose)
    assert run.steps["load_rows"].stderr == "read 120 rows\n"
    assert page_err.getvalue().count("read 120 rows") == (1 if verbose else 0)
    assert handler.stream is page_err
    log.info("after the run")
    assert page_err.getvalue().endswith("after the run\n")


@step
def makes_warnings_errors() -> int:
    import warnings

    warnings.simplefilter("error")
    return 1


@step
def warns_later(x: int) -> int:
    import warnings

    warnings.warn("column 'age' is text", UserWarning)
    return x


@pipeline
def strict_then_lenient():
    return warns_later(makes_warnings_errors())


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_filters_a_step_sets_end_with_it(store, executor, warnings_printed):
    # A step's simplefilter("error") stayed for the process: the next step's warning failed it on
    # the sequential executor (not on another worker), and the notebook it ran in raised every warning.
    import warnings

    before = list(warnings.filters)
    run = strict_then_lenient.run(store=str(store), executor=executor, workers=None if executor == "sequential" else 1)
    assert run.status == "succeeded", run.steps["warns_later"].error
    assert "UserWarning: column 'age' is text" in run.steps["warns_later"].stderr
    assert warnings.filters == before


@step
def _lists_a_non_utf8_name() -> str:
    name = "caf\udce9.csv"  # how os.listdir decodes a file name's byte 0xE9
    print("found", name)
    return "listed"


@step
def _refuses_a_non_utf8_name() -> str:
    raise ValueError("unexpected file: notes_\udce9t\udce9.txt")


@pipeline
def _non_utf8_names():
    return _lists_a_non_utf8_name(), _refuses_a_non_utf8_name()


def test_a_non_utf8_file_name_in_output_or_error_is_recorded_not_fatal(tmp_path, capsys):
    """Lone surrogates in what a step printed or raised reached SQLite, which refused the whole
    flush: the run aborted (`an argument is not valid UTF-8 text`, exit 2) and lost both steps."""
    from orchestrator import get_run

    run = _non_utf8_names.run(store=str(tmp_path / "store"))
    assert run.status == "failed"
    assert run.steps["_lists_a_non_utf8_name"].status == "ran"
    assert run.steps["_refuses_a_non_utf8_name"].status == "failed"
    recorded = get_run(run.id, store=str(tmp_path / "store"))
    assert "notes_\ufffdt\ufffd.txt" in recorded.steps["_refuses_a_non_utf8_name"].error
    assert "notes_\ufffdt\ufffd.txt" in recorded.steps["_refuses_a_non_utf8_name"].traceback
    assert recorded.steps["_lists_a_non_utf8_name"].stdout == "found caf\ufffd.csv\n"
    capsys.readouterr()  # what a run prints holds the surrogates as printed: pytest-xdist cannot send them


def test_a_path_parameter_naming_a_non_utf8_file_runs_and_is_cached(tmp_path, capsys, monkeypatch):
    """Its (size, mtime, inode) memo's key held the name, which SQLite refused: the run aborted before any step,
    with "an argument is not valid UTF-8 text" (exit 2)."""
    from orchestrator import get_run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "reads.py").write_text(
        "from pathlib import Path\nfrom orchestrator import pipeline, step\n\n"
        "@step\ndef ingest(path: Path) -> str:\n    return path.read_text()\n\n"
        "@pipeline\ndef reads(path: Path = Path('x.csv')):\n    return ingest(path)\n")
    name = os.fsdecode(b"d\xe9.csv")
    (tmp_path / name).write_text("a,b\n1,2\n")
    time.sleep(2)  # a file just changed is read again at each run; a settled one's memo is kept
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    for _ in range(2):
        ran = subprocess.run([sys.executable, "-m", "orchestrator", "--store", "store", "run", "reads.py",
                              "-p", f"path={name}"], env=env, capture_output=True, check=False)
        assert ran.returncode == 0, ran.stderr
    run = get_run("latest", store="store")
    assert run.steps["ingest"].status == "cached" and run.output() == "a,b\n1,2\n"
    capsys.readouterr()
