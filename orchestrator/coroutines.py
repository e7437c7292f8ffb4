"""Running an ``async def`` step's coroutine to its end, wherever it is called from.

Used where a step's call stands for its awaited value: an attempt on any
executor (``task``) and a pipeline function called as a plain function
(``direct_call``). Nothing else: a step called on its own returns its
coroutine, as the function does.
"""

from __future__ import annotations

from typing import Any


def run_to_end(coroutine: Any) -> Any:
    """Run ``coroutine`` to its end and return its result.

    A step is one unit of work whose result is stored, so its coroutine runs
    in an event loop of its own. When this thread already runs one (a
    pipeline started from a Jupyter notebook), ``asyncio.run`` is refused
    there, so the coroutine gets a thread and a loop of its own instead.
    """
    import asyncio  # here: most runs have no async step, and importing asyncio costs ~15 ms
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="orch-async-step") as pool:
        return pool.submit(asyncio.run, coroutine).result()
