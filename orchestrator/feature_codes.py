"""Categories written in numbers (a postcode, a store number): one name per code, and the values a model takes.

A column a model encodes as a category may hold numbers: postcodes read from a CSV with a blank
cell are floats (``75001.0``), and a request or a batch may write the same code as ``75001`` or
``"75001"``. The training schema names each code by one text (``code_text``), which the server's
warnings and the monitor's comparison use, so the three spellings are one category; the model
is given numbers (``as_codes``), as it was trained on them.

Plain functions over values and pandas Series: this module must not load models, read the store
or import pandas at module level (the server imports it).
"""

from __future__ import annotations

import math
import numbers
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")  # "75001", "75001.0", "-3", ".5": not "1e3", "nan" or "1_000"
_LONGEST = 40  # characters of a code written as text; longer digits are text (int() refuses 4300 of them)


def is_code(feature: dict[str, Any]) -> bool:
    """Whether a schema feature is a category written in numbers: kind category, trained as numbers (not flags)."""
    dtype = str(feature.get("dtype", "")).lower()
    return feature.get("kind") == "category" and dtype.startswith(("int", "uint", "float"))


def code_text(value: Any) -> str:
    """The one text of a code: ``75001``, ``75001.0``, ``"75001"`` and ``"75001.0"`` are ``"75001"``.

    A number with a fraction keeps it (``"75001.5"``); text that is no plain decimal number
    (``"Paris"``, ``"nan"``) is itself, a category the model never saw.
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))  # not through a float: a long code keeps every digit
    text = _decimal(value)
    if text is not None:
        if "." not in text:
            return str(int(text))  # "06000" is the code 6000, as its float was at training
        value = float(text)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def code_texts(values: pd.Series) -> pd.Series:
    """``values`` with each present code as its ``code_text`` (missing values stay missing), to compare categories."""
    return values.astype(object).map(code_text, na_action="ignore")


def as_codes(values: pd.Series) -> pd.Series:
    """``values`` as the model was trained on them: numbers (also written as text) as floats, a blank as NaN.

    Other text is kept: the model's encoder scores it as a category it never saw, as it does an
    unseen number, where making it NaN would score it as a blank. A numeric column is returned as it is.
    """
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values
    plain = values.astype(object).where(values.notna(), np.nan)
    mapped = plain.map(_code_value, na_action="ignore")
    if all(isinstance(v, float) for v in mapped):
        return mapped.astype(float)
    return mapped


def _decimal(value: Any) -> str | None:
    """``value`` stripped when it is the text of a plain decimal number (``" 75001 "``, ``"75001.0"``), else None."""
    if not isinstance(value, str) or len(value) > _LONGEST:
        return None
    text = value.strip()
    return text if _DECIMAL.fullmatch(text) else None


def _code_value(value: Any) -> Any:
    """A number, or the text of a plain decimal number, as a float; anything else as it is."""
    text = _decimal(value)
    if text is not None:
        return float(text)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value
