"""A diamond: `score` reads `prep`'s output directly and through `fit`, whose input sorts last."""

from orchestrator import pipeline, step


@step
def load(n: int = 3) -> list:
    return list(range(n))


@step
def prep(xs: list) -> list:
    return [x * 2 for x in xs]


@step
def fit(z_data: list) -> int:
    return sum(z_data)


@step
def score(a_model: int, z_data: list) -> float:  # `a_model` first: the walk meets `z_data` through `fit`
    return a_model / (len(z_data) or 1)


@pipeline
def diamond(n: int = 3):
    data = prep(load(n))
    return score(fit(data), data)
