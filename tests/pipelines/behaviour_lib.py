"""A user class whose instances travel between steps (see tests/test_value_code.py)."""

from dataclasses import dataclass


def scale_by(v, k):
    return v * k


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, v):
        return scale_by(v, self.k)


@dataclass
class Offset:
    by: int

    def apply(self, v):
        return v + self.by
