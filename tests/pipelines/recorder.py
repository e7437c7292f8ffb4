"""Counts step calls across processes: each call appends its name to $ORCH_TEST_LOG."""

import os


def record(name: str) -> None:
    path = os.environ.get("ORCH_TEST_LOG")
    if path:
        with open(path, "a") as f:
            f.write(name + "\n")
