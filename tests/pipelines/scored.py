"""A step that returns Metrics, run on every executor (its value is recorded by the driver)."""

from orchestrator import Metrics, pipeline, step


@step
def fit(depth: int) -> int:
    return depth * 2


@step
def evaluate(model: int) -> Metrics:
    return Metrics(accuracy=model / 10, depth=model // 2)


@pipeline
def scored(depth: int = 3):
    return evaluate(fit(depth))
