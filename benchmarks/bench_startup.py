"""Figure 9: how long ``orch --help`` takes, and what ``import orchestrator`` drags in.

Each command runs in a fresh process, timed from outside (wall clock, median
of 5 after one untimed run that warms the file cache), beside ``python -c
pass`` measured the same way. A fresh process also reports which heavy
libraries ``import orchestrator`` loaded; that is printed, not enforced. When
``orch --help`` misses its target, the slowest imports under ``-X
importtime`` are listed in the note. This module measures; it asserts nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import Figure, at_most, progress

NAME = "startup"
TITLE = "orch --help wall time and the imports of `import orchestrator` (figure 9)"

REPEAT = 5
TARGET = 0.3
HEAVY = ("pandas", "pyarrow", "sklearn", "numpy", "networkx", "rich", "cloudpickle")
_PROBE = (
    "import json, sys, orchestrator; "
    f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))"
)


def run(quick: bool) -> list[Figure]:
    orch = str(Path(sys.executable).with_name("orch"))
    if not os.path.exists(orch):
        raise RuntimeError(f"{orch} not found: install the package into this venv (make install)")
    progress(f"orch --help, python -c pass, python -c 'import orchestrator': {REPEAT}× each")
    help_s = _wall([orch, "--help"])
    bare_s = _wall([sys.executable, "-c", "pass"])
    import_s = _wall([sys.executable, "-c", "import orchestrator"])
    progress("what `import orchestrator` imports")
    loaded = json.loads(subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                                       check=True).stdout)
    note = f"median of {REPEAT} fresh processes"
    if help_s > TARGET:
        note += "; slowest imports (cumulative): " + _slowest_imports(orch)
    figures = [
        Figure("startup.help_s", "9  orch --help, wall time", help_s, "s", bare_s, "python -c pass",
               f"≤ {TARGET} s", at_most(help_s, TARGET), note=note),
        Figure("startup.import_s", "9b python -c 'import orchestrator', wall time", import_s, "s", bare_s,
               "python -c pass", note=f"median of {REPEAT} fresh processes"),
    ]
    for name in HEAVY:
        required = name in ("pandas", "pyarrow", "sklearn")
        figures.append(Figure(
            f"startup.imports_{name}", f"9{'c' if required else 'd'} import orchestrator loads {name}",
            float(loaded[name]), "", shown="IMPORTED" if loaded[name] else "not imported",
            target="not imported" if required else "", meets=(not loaded[name]) if required else None))
    return figures


def _wall(command: list[str]) -> float:
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache and .pyc files
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _slowest_imports(orch: str, top: int = 5) -> str:
    """The top-level imports with the largest cumulative time in ``orch --help``."""
    child = subprocess.run([sys.executable, "-X", "importtime", orch, "--help"], capture_output=True,
                           text=True, check=False)
    rows = []
    for line in child.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if cumulative.isdigit() and not name.startswith(" ") and "." not in name:
            rows.append((int(cumulative), name))
    rows.sort(reverse=True)
    return ", ".join(f"{name} {us / 1e3:.0f} ms" for us, name in rows[:top])
