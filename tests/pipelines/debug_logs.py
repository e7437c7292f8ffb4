"""Logging configured at the top of the file (in the driver only), a step that logs below INFO."""

import logging

from orchestrator import pipeline, step

logging.basicConfig(level=logging.DEBUG)
log = logging.getLogger("debug_logs")


@step
def diagnose(x: int) -> int:
    log.debug("checking %d in detail", x)
    log.info("checked %d", x)
    return x


@pipeline
def debug_logs(x: int = 1):
    return diagnose(x)
