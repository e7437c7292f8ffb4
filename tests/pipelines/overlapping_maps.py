"""Maps over step outputs whose lists share items, in one run.

Map ``k`` runs over ``window(k) == [k, k+1, k+2]``: two of its three items are
equal to items of the map before it, so they are cache hits of that map's step
runs, in the same run. ``start`` shifts every window (a later run over other data).
"""

from orchestrator import pipeline, step


@step
def window(k: int) -> list:
    return [k, k + 1, k + 2]


@step
def double(i: int) -> int:
    return 2 * i


@step
def total(xs: list) -> int:
    return sum(xs)


@pipeline
def overlapping_maps(m: int = 3, start: int = 0):
    return total([total(double.map(window(k))) for k in range(start, start + m)])


@step
def square(i: int) -> int:
    return i * i


@pipeline
def overlapping_squares(m: int = 2):
    """A map over each map's results: ``double.map(square.map(window(k)))``, their nodes `square.map`,
    `square.map_2`, ... (a step mapped again is numbered as a step called again)."""
    return total([total(double.map(square.map(window(k)))) for k in range(m)])
