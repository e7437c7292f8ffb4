"""Issue 5, item 7: keys are equal across fresh interpreters, and equal exactly for equal values.

Three interpreters (PYTHONHASHSEED 0, 1 and random) compute the digest and
the node key of each value. Every value must get the same digest and key in
all three. Within pairs that must be equal (dicts in another insertion
order, sets of str, NaNs, equal frames and arrays) keys are equal; within
pairs that differ in schema or bytes (a frame's index, dtype or column
order, an array's shape or dtype, -0.0 and 0.0) they differ. The figure
counts each value pair checked in each interpreter as an input; an escape is
a pair classified wrongly or a key that changed between interpreters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r'''
import json, math, sys
import numpy as np
import pandas as pd
from orchestrator import pipeline, step
from orchestrator.hashing import hash_value

@step
def f(x):
    return x

@pipeline
def p(x=None):
    return f(x)

def key(value):
    return next(iter(p.build(x=value).nodes.values())).static_key

words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
base = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
arr = np.arange(12, dtype=np.int32).reshape(3, 4)
values = {
    "dict": {"a": 1, "b": [1, 2], "c": {"x": 1.5, "y": None}},
    "dict_reordered": {"c": {"y": None, "x": 1.5}, "b": [1, 2], "a": 1},
    "set": set(words),
    "set_reordered": set(reversed(words)),
    "frozenset": frozenset(words),
    "nan": float("nan"),
    "nan_other": math.inf - math.inf,
    "zero": 0.0,
    "negzero": -0.0,
    "frame": base,
    "frame_rebuilt": pd.DataFrame({"a": np.array([1, 2, 3]), "b": np.array([0.5, 1.5, 2.5])}),
    "frame_index": base.set_axis([10, 11, 12]),
    "frame_dtype": base.astype({"a": "int32"}),
    "frame_columns": base[["b", "a"]],
    "array": arr,
    "array_copy": arr.copy(),
    "array_shape": arr.reshape(4, 3),
    "array_dtype": arr.view(np.float32),
    "array_flat": arr.ravel(),
}
print(json.dumps({name: [hash_value(v), key(v)] for name, v in values.items()}))
'''

EQUAL = [("dict", "dict_reordered"), ("set", "set_reordered"), ("nan", "nan_other"),
         ("frame", "frame_rebuilt"), ("array", "array_copy")]
DIFFERENT = [("set", "frozenset"), ("zero", "negzero"), ("frame", "frame_index"), ("frame", "frame_dtype"),
             ("frame", "frame_columns"), ("array", "array_shape"), ("array", "array_dtype"),
             ("array", "array_flat")]


def test_key_determinism(tmp_path, figure):
    script = tmp_path / "keys.py"
    script.write_text(SCRIPT)
    results = []
    for seed in ("0", "1", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))
    escapes = []
    inputs = 0
    for digests in results:
        for a, b in EQUAL + DIFFERENT:
            inputs += 1
            same = digests[a] == digests[b]  # both the value digest and the node key
            if same != ((a, b) in EQUAL) or (digests[a][0] == digests[b][0]) != ((a, b) in EQUAL):
                escapes.append((a, b))
    for name in results[0]:
        inputs += 1
        if len({tuple(r[name]) for r in results}) != 1:
            escapes.append((name, "differs between interpreters"))
    figure(bad_inputs=inputs, rejected=inputs - len(escapes), escapes=len(escapes))
    assert not escapes, escapes
