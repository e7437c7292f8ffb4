"""Categories written in numbers: one text per code however a request, a batch or the training column writes it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.feature_codes import as_codes, code_text, is_code


@pytest.mark.parametrize("value", [75001, 75001.0, "75001", " 75001.0 ", np.int64(75001), np.float64(75001.0)])
def test_a_code_is_one_text_however_it_is_written(value):
    assert code_text(value) == "75001"


@pytest.mark.parametrize(("value", "text"), [(75001.5, "75001.5"), ("06000", "6000"), ("Paris", "Paris"),
                                             ("nan", "nan"), (True, "True"), (float("inf"), "inf"),
                                             ("1" * 5000, "1" * 5000)])  # int() refuses 4300 digits: text
def test_other_values_keep_their_own_text(value, text):
    assert code_text(value) == text


def test_the_model_is_given_numbers_and_other_text_is_kept_for_its_encoder_to_call_unknown():
    given = pd.Series(["75001", 6000, None, "Paris"], dtype=object)
    assert as_codes(given).tolist()[:2] == [75001.0, 6000.0] and np.isnan(as_codes(given)[2])
    assert as_codes(given)[3] == "Paris"
    assert as_codes(pd.Series(["75001", None], dtype=object)).dtype == float
    numbers = pd.Series([1, 2])
    assert as_codes(numbers) is numbers


def test_only_a_category_of_numbers_is_a_code():
    assert is_code({"name": "zip", "kind": "category", "dtype": "float64", "categories": ["75001"]})
    assert is_code({"name": "store", "kind": "category", "dtype": "Int64", "categories": []})
    assert not is_code({"name": "paid", "kind": "category", "dtype": "boolean", "categories": ["False", "True"]})
    assert not is_code({"name": "city", "kind": "category", "dtype": "object", "categories": ["paris"]})
    assert not is_code({"name": "age", "kind": "number", "dtype": "float64"})
