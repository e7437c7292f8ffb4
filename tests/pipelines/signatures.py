"""Steps whose signatures are not plain: ``*args``, ``**kwargs``, positional-only, keyword-only.

Each step returns what it received, so a test sees whether every argument
reached the right parameter, on every executor.
"""

from recorder import record

from orchestrator import pipeline, step


@step
def source(n: int) -> int:
    record(f"source:{n}")
    return n * 100


@step
def varargs(*args, **kwargs) -> str:
    record("varargs")
    return repr((args, kwargs))


@step
def posonly(x, /, k=1) -> int:
    record("posonly")
    return x * 10 + k


@step
def mixed(a, /, b, *rest, c, d=5, **more) -> str:
    record("mixed")
    return repr((a, b, rest, c, d, more))


@pipeline
def signatures(n: int = 4, z: int = 10):
    s = source(n)
    return {
        "constants": varargs(1, 2, n, z=z),
        "posonly": posonly(n, k=3),
        "inputs": varargs(s, 7, args=s, kw=[s]),  # an output inside *args, **kwargs and a list
        "mixed": mixed(1, s, 3, 4, c=s, e=1),
        "posonly_input": posonly(s),
    }


@step
def items(n: int) -> list:
    return list(range(n))


@step
def show(values: list) -> list:
    return values


@pipeline
def mapped(n: int = 3):
    return show(varargs.map(items(n), k=1))
