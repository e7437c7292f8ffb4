"""Parameters of every kind a run records as JSON and --params-from gives back (tests/test_run_params.py)."""

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from pathlib import Path

from pydantic import BaseModel
from recorder import record

from orchestrator import pipeline, step


class Kind(Enum):
    LINEAR = "linear"
    TREE = "tree"


@dataclass
class Cfg:
    lr: float = 0.1
    layers: list[int] = field(default_factory=lambda: [8])
    kind: Kind = Kind.LINEAR


class Opt(BaseModel):
    name: str = "adam"
    beta: float = 0.9


@step
def describe(data: Path, cfg: Cfg, opt: Opt, kind: Kind, day: date, at: datetime, cols: list[str],
             weights: dict[str, float], shape: tuple[int, int], tags: set[str], seed: int,
             by_id: dict[int, float], by_kind: dict[Kind, int]) -> str:
    record("describe")
    return (f"{Path(data).read_text()} {cfg} {opt} {kind} {day} {at} {cols} {weights} {shape} {sorted(tags)} {seed} "
            f"{by_id} {by_kind}")


@pipeline
def typed_params(data: Path = Path("data.csv"), cfg: Cfg = Cfg(), opt: Opt = Opt(), kind: Kind = Kind.LINEAR,
                 day: date = date(2024, 1, 1), at: datetime = datetime(2024, 1, 1, 9, 30),
                 cols: list[str] = ["a"], weights: dict[str, float] = {"a": 1.0},  # noqa: B006
                 shape: tuple[int, int] = (1, 2), tags: set[str] = {"x"}, seed: int = 0,  # noqa: B006
                 by_id: dict[int, float] = {1: 0.5}, by_kind: dict[Kind, int] = {Kind.TREE: 1}):  # noqa: B006
    return describe(data, cfg, opt, kind, day, at, cols, weights, shape, tags, seed, by_id, by_kind)
