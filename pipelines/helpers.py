"""Project helpers used by the quickstart pipeline's steps.

Editing a function here re-runs exactly the steps that call it: the
orchestrator fingerprints project code transitively.
"""

from __future__ import annotations

import pandas as pd

NUMERIC_CLIP = 6.0


def clean_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Lower-case, underscore-separated column names."""
    out = frame.copy()
    out.columns = [str(c).strip().lower().replace(" ", "_") for c in out.columns]
    return out


def clip_outliers(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Clip each numeric column to mean ± NUMERIC_CLIP standard deviations."""
    out = frame.copy()
    for col in columns:
        mean, std = out[col].mean(), out[col].std()
        out[col] = out[col].clip(mean - NUMERIC_CLIP * std, mean + NUMERIC_CLIP * std)
    return out
