"""Imports another file's pipeline to reuse its steps, and defines one pipeline of its own."""

from two_params import first, two_params  # noqa: F401 - imported as a user would, to reuse it

from orchestrator import pipeline


@pipeline
def reuse(x: int = 3):
    return first(x)
