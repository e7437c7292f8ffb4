"""Dynamic fan-out: a step's output (a list) mapped over, one node per item."""

import time

from recorder import record

from orchestrator import pipeline, step


@step
def items(n: int, bump: int = 0) -> list:
    record("items")
    return [i + (bump if i == 1 else 0) for i in range(n)]


@step
def square(x: int, offset: int = 0) -> int:
    record(f"square:{x}")
    return x * x + offset


@step
def total(values: list) -> int:
    record("total")
    return sum(values)


@pipeline
def fanout(n: int = 4, bump: int = 0, offset: int = 0):
    return total(square.map(items(n, bump), offset=offset))


@step
def not_a_list(n: int) -> int:
    return n


@pipeline
def bad_map():
    return total(square.map(not_a_list(3)))


@pipeline
def squares(n: int = 3):
    return square.map(items(n)), total(square.map([5, 6]))


@step
def add_one(x: int) -> int:
    record(f"add_one:{x}")
    return x + 1


@pipeline
def chained(n: int = 3):
    return total(add_one.map(square.map(items(n))))


@step
def named(x: int) -> tuple[str, int]:
    record(f"named:{x}")
    return f"m{x}", x * 10


@step
def second(pair: tuple) -> int:
    return pair[1]


@step
def count(pairs: list) -> list:
    return [name for name, _ in pairs]


@pipeline
def pairs(n: int = 3):
    models = named.map(items(n))
    return count(models), total(second.map(models))


@step
def slow_square(x: int) -> int:
    record(f"slow_square:{x}")
    time.sleep(0.05)  # long enough for a twin item to start while this one runs, on a pool
    return x * x


@pipeline
def repeated(values: list = [3, 3, 4, 3]):  # noqa: B006
    return total(slow_square.map(values))
