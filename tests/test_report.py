"""The run summary: one row per step call, and text from user code is never read as rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.report import one_line, status_text, styled, summary_table
from orchestrator.results import StepResult


def _render(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=200, highlight=False).print(renderable)
    return out.getvalue()


def test_summary_leaves_out_map_nodes_and_survives_any_status_or_text():
    results = {
        "items": StepResult("items", "ran", "no earlier result", 1, 0.001),
        "square.map": StepResult("square.map", "map"),
        "odd": StepResult("odd", "unheard-of", "[/] closes nothing [bold]", 1),
        "bad": StepResult("bad", "failed", error="KeyError: '[/tmp/x]'", attempts=2),
    }
    text = _render(summary_table(results))
    assert "square.map" not in text and "map " not in text
    assert "unheard-of" in text and "[/] closes nothing [bold]" in text and "KeyError: '[/tmp/x]'" in text


def test_status_without_a_style_is_plain():
    assert _render(status_text("map")).strip() == "map"
    assert _render(styled("map")).strip() == "map" and _render(styled("ran")).strip() == "ran"


def test_one_line_cuts_long_and_multi_line_values():
    assert one_line("short") == "short"
    assert one_line("a\nb") == "a\\nb"
    cut = one_line("x" * 1000)
    assert len(cut) == 200 and cut.endswith("…")
