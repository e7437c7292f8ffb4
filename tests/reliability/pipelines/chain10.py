"""Ten steps in call order; step 3 feeds only step 10. Step 7 kills its own run when asked."""

import os
import signal
import time

from recorder import record

from orchestrator import pipeline, step


def _work(name: str, value: int) -> int:
    record(name)
    time.sleep(0.05)  # longer than the commit budget: each finished step is durable before the next
    return value + 1


@step
def s1(n: int) -> int:
    return _work("s1", n)


@step
def s2(x: int) -> int:
    return _work("s2", x)


@step
def s3(x: int) -> int:
    return _work("s3", x)


@step
def s4(x: int) -> int:
    return _work("s4", x)


@step
def s5(x: int) -> int:
    return _work("s5", x)


@step
def s6(x: int) -> int:
    return _work("s6", x)


@step
def s7(x: int) -> int:
    if os.environ.get("ORCH_TEST_KILL_AT") == "s7":
        os.kill(os.getpid(), signal.SIGKILL)
    return _work("s7", x)


@step
def s8(x: int) -> int:
    return _work("s8", x)


@step
def s9(x: int) -> int:
    return _work("s9", x)


@step
def s10(x: int, y: int) -> int:
    return _work("s10", x + y)


@pipeline
def chain10(n: int = 1):
    a = s2(s1(n))
    c = s3(a)
    return s10(s9(s8(s7(s6(s5(s4(a)))))), c)
