"""Retry policies: which failures are retried, how often, and after what delay.

A ``RetryPolicy`` is a frozen value attached to a step. It decides, from an
attempt's failure, whether another attempt is allowed and how long to wait
before it. It never runs anything itself: the runner schedules the attempts,
so every attempt is recorded in lineage whatever executor runs it. Retry
settings are execution settings, not part of a step's cache key.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import SchedulerLostError, UnpicklableStepError, UserError, WorkerDiedError

MAX_TIMEOUT = 365 * 24 * 3600.0
"""The longest ``timeout`` accepted, in seconds: a year, well within what the OS can wait for."""


@dataclass(frozen=True)
class Failure:
    """What an attempt's failure looked like, in a form that crosses processes.

    ``exception`` is the live exception when it could be carried back (same
    process, or it pickled); ``type_names`` holds ``module.qualname`` of every
    class in its MRO so ``retry_on`` can still be matched when it could not.
    """

    type_name: str
    message: str
    traceback: str
    type_names: tuple[str, ...] = ()
    exception: BaseException | None = field(default=None, compare=False)

    @classmethod
    def from_exception(cls, exc: BaseException, traceback_text: str = "") -> Failure:
        names = tuple(f"{k.__module__}.{k.__qualname__}" for k in type(exc).__mro__)
        return cls(
            type_name=type(exc).__name__,
            message=_message_of(exc),
            traceback=traceback_text,
            type_names=names,
            exception=exc,
        )

    def summary(self) -> str:
        """One line: ``ValueError: bad value``."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.type_name}: {first}" if first else self.type_name

    def is_instance_of(self, classes: tuple[type[BaseException], ...]) -> bool:
        if self.exception is not None:
            return isinstance(self.exception, classes)
        wanted = {f"{k.__module__}.{k.__qualname__}" for k in classes}
        return bool(wanted.intersection(self.type_names))


@dataclass(frozen=True)
class RetryPolicy:
    """How a step is retried.

    Args:
        retries: extra attempts after the first; ``retries=3`` allows 4 attempts.
        delay: seconds before the first retry.
        backoff: factor applied to the delay after each retry.
        max_delay: cap on any single delay.
        jitter: relative spread of each delay (0.1 = ±10%), so that many
            failing steps do not retry in lock-step.
        retry_on: exception classes worth retrying; others fail at once.
        timeout: seconds one attempt may run before it is stopped and counted
            as a failure (``None``: no limit).
    """

    retries: int = 0
    delay: float = 0.0
    backoff: float = 1.0
    max_delay: float = 300.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    timeout: float | None = None

    def __post_init__(self) -> None:
        # One class, or a list of them, reads as naturally as a tuple (`retry_on=[ConnectionError, TimeoutError]`);
        # kept as a tuple, which is what isinstance() takes when an attempt fails.
        on: Any = self.retry_on
        object.__setattr__(self, "retry_on", tuple(on) if isinstance(on, (tuple, list)) else (on,))
        problems = []
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            problems.append(f"retries must be a whole number >= 0, got {self.retries!r}")
        numbers = {"retry_delay": self.delay, "backoff": self.backoff, "max_delay": self.max_delay,
                   "jitter": self.jitter, "timeout": self.timeout}
        for label, value in numbers.items():
            # A number given as text ("10") would fail later, at a comparison far from the decorator.
            if not (value is None and label == "timeout") and not _is_number(value):
                problems.append(f"{label} must be a number of seconds, got {value!r}"
                                if label in ("retry_delay", "max_delay", "timeout")
                                else f"{label} must be a number, got {value!r}")
        if problems:
            raise UserError("; ".join(problems))
        for label, value in numbers.items():
            # NaN passes every comparison below and then crashes the run where the attempt is waited for.
            if value is not None and math.isnan(value):
                problems.append(f"{label} must be a number, got nan")
        if problems:
            raise UserError("; ".join(problems))
        if self.delay < 0:
            problems.append(f"retry_delay must be >= 0, got {self.delay!r}")
        if self.backoff < 1:
            problems.append(f"backoff must be >= 1, got {self.backoff!r}")
        if self.max_delay < 0:
            problems.append(f"max_delay must be >= 0, got {self.max_delay!r}")
        if not 0 <= self.jitter <= 1:
            problems.append(f"jitter must be between 0 and 1, got {self.jitter!r}")
        if self.timeout is not None and self.timeout <= 0:
            problems.append(f"timeout must be > 0 seconds, got {self.timeout!r}")
        elif self.timeout is not None and self.timeout > MAX_TIMEOUT:
            # No operating system waits that long (inf, 1e30 overflow its timers): None is no limit.
            problems.append(f"timeout must be at most {MAX_TIMEOUT:g} seconds (a year), got {self.timeout!r}; "
                            f"timeout=None sets no limit")
        bad = [k for k in self.retry_on if not (isinstance(k, type) and issubclass(k, BaseException))]
        if bad:
            problems.append(f"retry_on must hold exception classes, got {_not_a_class(bad[0])}")
        elif not self.retry_on and self.retries > 0:
            problems.append(f"retry_on=() names no exception, so retries={self.retries} would never retry: name "
                            f"the ones worth retrying (retry_on=(ConnectionError,)), or drop retries")
        if problems:
            raise UserError("; ".join(problems))

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def should_retry(self, failure: Failure, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (1-based), which failed, gets another try.

        A worker that died is an infrastructure failure, not the step's own
        exception, so it is retried whenever attempts remain. A lost Dask
        scheduler is one too, but no attempt can run without it: never retried.
        Nor is a task that could not be pickled: the next attempt would meet the same values.
        """
        if attempt >= self.max_attempts or failure.is_instance_of((SchedulerLostError, UnpicklableStepError)):
            return False
        if failure.is_instance_of((WorkerDiedError,)):
            return True
        return failure.is_instance_of(self.retry_on)

    def delay_before(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 for the first retry)."""
        if attempt <= 1 or self.delay == 0:
            return 0.0
        try:
            base = min(self.delay * self.backoff ** (attempt - 2), self.max_delay)
        except OverflowError:  # backoff ** n past a float (retries=2000): far beyond the cap
            base = self.max_delay
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        # The cap holds after the jitter too: max_delay=300 never waits 330 s.
        return min(self.max_delay, max(0.0, base * (1 + spread)))


def _message_of(exc: BaseException) -> str:
    """``str(exc)``, or what stands for it when that fails.

    An exception's own ``__str__`` may raise (one that formats an attribute
    its constructor did not set, as some HTTP clients' errors do when raised
    with a plain message): the step failed all the same, and must be recorded
    so, not crash the run or its worker.
    """
    try:
        return str(exc)
    except Exception as broken:  # noqa: BLE001 - whatever the user's __str__ raises
        try:
            args = ", ".join(repr(a) for a in exc.args)
        except Exception:  # noqa: BLE001 - its args' repr may fail as well
            args = ""
        return f"{args} (its str() failed: {type(broken).__name__}: {broken})".lstrip()


def _not_a_class(value: object) -> str:
    """How a wrong ``retry_on`` entry is named, with what to write instead when that is clear."""
    if isinstance(value, BaseException):
        return f"the instance {value!r}: pass the class {type(value).__name__}"
    if isinstance(value, str) and value.isidentifier():
        return f"the text {value!r}: pass the class {value} itself"
    return repr(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
