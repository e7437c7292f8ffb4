"""A user class whose instances travel between steps (see tests/test_value_code.py)."""

from dataclasses import dataclass

import behaviour_consts
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

OFFSET = 0


def scale_by(v, k):
    return v * k


class Scaler:
    unit = 1

    def __init__(self, k):
        self.k = k

    def apply(self, v, extra=0):
        return scale_by(v, self.k) * self.unit * behaviour_consts.FACTOR + OFFSET + extra


@dataclass
class Offset:
    by: int

    def apply(self, v):
        return v + self.by


class Shift(BaseEstimator, TransformerMixin):
    """scikit-learn wraps ``transform`` in a function of its own: the digest must see through it."""

    def __init__(self, k=1.0):
        self.k = k

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X) + self.k


def double(xs):
    return [2 * x for x in xs]
