"""Steps that use the standard library and an installed package."""

from __future__ import annotations

import json
import os.path

import numpy as np
from numpy import linalg


def uses_numpy(values: list[float]) -> float:
    return float(np.mean(values))


def uses_numpy_function(values: list[float]) -> float:
    return float(linalg.norm(values))


def uses_stdlib(value: dict[str, int]) -> str:
    return json.dumps(value) + os.path.sep + str(len(value))
