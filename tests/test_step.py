"""``@step`` and ``@pipeline`` settings: a mistyped or out-of-range option fails where it is written."""

from __future__ import annotations

import re

import pytest

from orchestrator import pipeline, step
from orchestrator.errors import UserError


def double(x: int) -> int:
    return 2 * x


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry": 3}, r"@step has no option 'retry' \(test_step.py:\d+\). Did you mean 'retries'\?"),
        ({"retires": 3}, r"@step has no option 'retires' \(test_step.py:\d+\). Did you mean 'retries'\?"),
        ({"timeout_seconds": 5}, r"no option 'timeout_seconds' .* Did you mean 'timeout'\?"),
        ({"zzz": 1}, r"@step has no option 'zzz' \(test_step.py:\d+\). Its options: name, retries, "),
        # Dagster's RetryPolicy, and Prefect's options for what this orchestrator does without one.
        ({"retry_policy": None}, r"@step has no option 'retry_policy' \(test_step.py:\d+\). Did you mean 'retries'\?"),
        ({"cache_key_fn": None}, r"^@step has no option 'cache_key_fn' \(test_step.py:\d+\): a step's key is made from "
                                 r"its code, parameters and inputs already; @step\(version=...\) gives it new keys by "
                                 r"hand.$"),
        ({"log_prints": True}, r"^@step has no option 'log_prints' \(test_step.py:\d+\): what a step prints and logs is "
                               r"kept on every run already \(orch logs RUN:STEP\).$"),
    ],
)
def test_an_unknown_step_option_names_the_close_one(options: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        step(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"timeout": -1}, "timeout must be > 0 seconds, got -1"),
        ({"timeout": "10"}, "timeout must be a number of seconds, got '10'"),
        ({"retries": -1}, "retries must be a whole number >= 0, got -1"),
        ({"retries": True}, "retries must be a whole number >= 0, got True"),
        ({"max_delay": -1}, "max_delay must be >= 0, got -1"),
        ({"backoff": "2"}, "backoff must be a number, got '2'"),
        ({"cache": "no"}, "cache must be True or False, got 'no'"),
    ],
)
def test_a_bad_step_setting_names_the_step_and_its_line(options: dict[str, object], problem: str) -> None:
    with pytest.raises(UserError, match=rf"^@step 'double' \(test_step.py:\d+\): {problem}\.$"):
        step(**options)(double)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"timeout": float("nan")}, "timeout must be a number, got nan"),
        ({"retry_delay": float("nan")}, "retry_delay must be a number, got nan"),
        ({"timeout": float("inf")}, "timeout must be at most 3.1536e+07 seconds (a year), got inf; "
                                    "timeout=None sets no limit"),
        ({"timeout": 10**30}, "timeout must be at most 3.1536e+07 seconds (a year), got "),
        ({"retry_on": ValueError()}, "retry_on must hold exception classes, got the instance ValueError(): "
                                     "pass the class ValueError"),
        ({"retry_on": "ValueError"}, "retry_on must hold exception classes, got the text 'ValueError': "
                                     "pass the class ValueError itself"),
        ({"retry_on": (KeyError, int)}, "retry_on must hold exception classes, got <class 'int'>"),
        # Allowed retries that no exception could ever get: the step failed at once, unsaid.
        ({"retries": 3, "retry_on": ()}, "retry_on=() names no exception, so retries=3 would never retry: "
                                         "name the ones worth retrying (retry_on=(ConnectionError,)), or drop retries"),
    ],
)
def test_a_setting_that_would_crash_the_run_is_refused_where_the_step_is_decorated(
        options: dict[str, object], problem: str) -> None:
    # Before: nan or inf timeouts passed here and the run died with a traceback in the executor.
    with pytest.raises(UserError, match=rf"^@step 'double' \(test_step.py:\d+\): {re.escape(problem)}"):
        step(**options)(double)  # type: ignore[arg-type]


def test_retry_on_may_be_a_list() -> None:
    from orchestrator import RetryPolicy
    from orchestrator.retry import Failure

    s = step(retries=1, retry_on=[ConnectionError, KeyError])(double)  # type: ignore[arg-type]
    assert s.retry.retry_on == (ConnectionError, KeyError)
    for on in ([ConnectionError], ConnectionError):  # the public RetryPolicy takes what @step takes
        policy = RetryPolicy(retries=1, retry_on=on)  # type: ignore[arg-type]
        assert policy.should_retry(Failure.from_exception(ConnectionError("down")), 1)
        assert not policy.should_retry(Failure.from_exception(ValueError("bad")), 1)


def test_the_delay_of_a_late_retry_is_capped_not_overflowed() -> None:
    from orchestrator.retry import RetryPolicy

    policy = RetryPolicy(retries=5000, delay=1.0, backoff=2.0, max_delay=60.0, jitter=0.0)
    assert policy.delay_before(2000) == 60.0
    assert policy.delay_before(3) == 2.0


def test_no_delay_exceeds_max_delay_even_with_jitter() -> None:
    import random

    from orchestrator.retry import RetryPolicy

    policy = RetryPolicy(retries=10, delay=10.0, backoff=3.0, max_delay=60.0, jitter=0.5)
    rng = random.Random(0)
    delays = [policy.delay_before(attempt, rng) for attempt in range(2, 12) for _ in range(20)]
    assert max(delays) == 60.0  # the later retries sit at the cap, the jitter only spreads them below it
    assert 5.0 <= min(delays) < 10.0  # the first retry: 10 s ± 50%


def test_valid_settings_are_kept() -> None:
    s = step(retries=2, timeout=1.5, max_delay=0, cache=False)(double)
    assert (s.retry.retries, s.retry.timeout, s.cache) == (2, 1.5, False)
    assert s(4) == 8


def test_an_unknown_pipeline_option_names_the_close_one() -> None:
    with pytest.raises(UserError, match=r"@pipeline has no option 'nme' \(test_step.py:\d+\). Did you mean 'name'\?"):
        pipeline(nme="train")  # type: ignore[arg-type]


def test_outputs_named_in_annotated_tuple_elements_are_the_outputs_names(store):
    """ZenML names a step's outputs `-> tuple[Annotated[A, "train"], Annotated[B, "test"]]`."""
    from typing import Annotated

    @step
    def split(n: int) -> tuple[Annotated[list, "train"], Annotated[list, "test"]]:
        return list(range(n)), [n]

    def halves(n: int) -> tuple[Annotated[list, "train"], Annotated[list, {"doc": 1}]]:
        return [n], [n]

    assert split.output_names == ("train", "test")
    assert step(halves).output_names == ("out0", "out1")  # one element without a name: all keep out0, out1

    def evaluated(n: int):
        return [n], [n]

    evaluated.__annotations__["return"] = tuple[Annotated[list, "a"], Annotated[list, "b"]]  # not text
    assert step(evaluated).output_names == ("a", "b")

    @step
    def total(xs: list) -> int:
        return sum(xs)

    @pipeline
    def flow(n: int = 3):
        return total(split(n).train), total(split(n)["test"])

    assert flow.run(store=str(store)).output() == (3, 3)
