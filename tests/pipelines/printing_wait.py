"""A slow step that prints and logs before it waits: for what an interrupted attempt keeps."""

import logging
import time

from recorder import record

from orchestrator import pipeline, step


@step
def chatty_wait(seconds: float) -> float:
    print(f"waiting {seconds:g} s", flush=True)
    logging.getLogger("slow").warning("still waiting")
    record("chatty_wait")
    time.sleep(seconds)
    return seconds


@pipeline
def printing_wait(seconds: float = 60.0):
    return chatty_wait(seconds)
