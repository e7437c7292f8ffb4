"""The lifecycle demo's data expectations (pipelines/expectations.py) on a user's own file with other columns."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "pipelines"))  # as the pipeline file imports it

from expectations import DataValidationError, Expectation, check_frame, columns, raise_for_failures  # noqa: E402

EXPECTATIONS = [
    *columns(customer_id="number", age="number", contract="category"),
    Expectation("range", "age", low=18, high=110),
    Expectation("nulls", "contract", max_ratio=0.0),
    Expectation("unique", "customer_id"),
    Expectation("range", "loan_amount", low=0, high=100),
]


def test_a_file_with_other_columns_names_the_missing_columns_once_and_the_ones_it_has():
    """Every check of every absent column was listed ('age: columns expected column present, got missing;
    age: range expected column present, got missing; ...'): 22 parts for the demo on a user's own CSV."""
    frame = pd.DataFrame({"loan_id": ["a", "b"], "loan_amount": [50.0, 500.0]})
    with pytest.raises(DataValidationError) as failed:
        raise_for_failures(check_frame(frame, EXPECTATIONS))
    message = str(failed.value)
    assert message.startswith("7 of 7 expectations failed: the data lacks the columns customer_id, age, contract "
                              "(it has loan_id, loan_amount); for your own data, declare its columns in the "
                              "pipeline's EXPECTATIONS")
    assert "loan_amount: range expected 0..100, got 50..500, 1 rows outside" in message
    assert message.count("age") == 1 and "\n" not in message


def test_a_report_stored_before_it_listed_the_columns_still_reads():
    report = check_frame(pd.DataFrame({"age": [30]}), EXPECTATIONS[:2])
    del report["columns"]
    with pytest.raises(DataValidationError, match=r"^1 of 2 expectations failed: the data lacks the column "
                                                  r"customer_id; for your own"):
        raise_for_failures(report)


@pytest.mark.parametrize(("sep", "said"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_file_read_as_one_column_names_its_separator_not_the_expectations(tmp_path, sep, said):
    """A semicolon-separated CSV (Excel's export in many locales) reads as one column 'customer_id;age;...':
    the message told the user to declare their columns in EXPECTATIONS, which they already had."""
    path = tmp_path / "customers.csv"
    pd.DataFrame({"customer_id": [1, 2], "age": [30, 40], "contract": ["a", "b"]}).to_csv(path, sep=sep, index=False)
    with pytest.raises(DataValidationError) as failed:
        raise_for_failures(check_frame(pd.read_csv(path), EXPECTATIONS))
    message = str(failed.value)
    assert f"; the file looks separated by {said}, and CSV is read comma-separated: write it with " \
        "DataFrame.to_csv(path, index=False), or save it as Parquet." in message
    assert "declare its columns" not in message
