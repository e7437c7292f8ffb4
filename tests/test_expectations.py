"""The lifecycle demo's data expectations (pipelines/expectations.py) on a user's own file with other columns."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "pipelines"))  # as the pipeline file imports it

from expectations import (  # noqa: E402
    DataValidationError,
    Expectation,
    check_features,
    check_frame,
    columns,
    raise_for_failures,
)

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
                              "pipeline's EXPECTATIONS, and set LABEL, KEY, NUMERIC and CATEGORICAL at its top")
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


def test_a_misspelt_column_is_pointed_at_even_when_the_list_of_columns_is_cut():
    """'Target' for 'target' was hidden in '… and 1 more' of the columns the data has."""
    frame = pd.DataFrame({f"x{i}": [1.0] for i in range(12)} | {"Target": [1]})
    with pytest.raises(DataValidationError, match=r"lacks the column target \(did you mean 'Target'\?\)"):
        raise_for_failures(check_frame(frame, columns(target="number")))
    with pytest.raises(DataValidationError, match=r"^the data has no column 'age client' \(NUMERIC\) \(did you mean "
                                                  r"'âge client'\?\); it has x0, "):
        check_features(frame.assign(**{"âge client": 1.0}), ["age client"], [], "Target")


def _table(rows: int = 120) -> pd.DataFrame:
    return pd.DataFrame({
        "id": range(rows), "amount": [float(i % 7) for i in range(rows)],
        "signup": pd.date_range("2024-01-01", periods=rows, freq="h"), "when": [f"2024-01-{i % 28 + 1:02d}" for i in range(rows)],
        "plan": ["a", "b", "c"] * (rows // 3), "comment": [f"said {i}" for i in range(rows)],
        "digits": [str(i) for i in range(rows)], "y": ["yes", "no"] * (rows // 2),
        "stamp": [f"2024-03-{i % 28 + 1:02d} {i % 24:02d}:00:00" for i in range(rows)]})


@pytest.mark.parametrize("numeric, categorical, said", [
    (["amount", "signup"], ["plan"], r"'signup' holds dates, which a model cannot take .*derive numbers from it"),
    (["amount"], ["signup"], r"'signup' holds dates"),
    (["amount", "when"], ["plan"], r"'when' holds dates, which a model cannot take"),  # dates written as text
    (["amount", "plan"], [], r"'plan' in NUMERIC holds text \(e\.g\. 'a'\): move it to CATEGORICAL"),
    (["amount"], ["stamp"], r"'stamp' holds dates"),  # as categories, 120 dates: each new one never seen
    (["amount", "id"], ["plan"], r"the key 'id' is in NUMERIC \(an id teaches a model nothing"),
    (["amount"], ["plan", "y"], r"the label 'y' is in CATEGORICAL \(it would be given the answer\)"),
    (["amount"], ["plan", "amount"], r"'amount' is in both NUMERIC and CATEGORICAL"),
    (["amount"], ["comment"], r"'comment' in CATEGORICAL has another value in each of its 120 rows, like an id"),
    ([], [], r"^no feature is declared: list the columns a model learns 'y' from in NUMERIC and CATEGORICAL \(the "
             r"data has id, amount, "),
])
def test_declared_features_the_data_cannot_train_on_are_named_with_the_fix(numeric, categorical, said):
    """They failed in scikit-learn (DTypePromotionError for a date among the numbers, 'Cannot use median
    strategy with non-numeric data' for text) or trained a useless model without a word."""
    with pytest.raises(DataValidationError, match=said + r".*Declare the columns in LABEL, KEY, NUMERIC and CATEGORICAL"):
        check_features(_table(), numeric, categorical, "y", key="id")


def test_usable_features_pass_and_unlabelled_rows_are_counted():
    check_features(_table(), ["amount", "digits"], ["plan", "when"], "y", key="id")  # numbers as text are numbers
    check_features(_table(60), ["amount"], ["comment"], "y")  # 60 distinct values: too few rows to call it an id
    with pytest.raises(DataValidationError, match=r"^1 of 120 rows have no 'y': drop them"):
        check_features(_table().assign(y=[None] + ["yes"] * 119), ["amount"], ["plan"], "y")


def test_a_category_written_in_numbers_meets_category_and_a_measure_declared_one_is_told_what_to_write():
    """Postcodes read as floats (75001.0, a blank as NaN), listed in CATEGORICAL, failed the template's
    dict.fromkeys(CATEGORICAL, "category") with 'zip: columns expected category, got float64' and no word of why."""
    frame = pd.DataFrame({"zip": [75001.0, 69002.0, float("nan"), 6000.0], "store": [3, 4, 5, 6],
                          "charges": [12.75, 3.5, 1.0, 2.0], "city": ["paris", "lyon", None, "nice"]})
    report = check_frame(frame, columns(zip="category", store="category", city="category"))
    assert report["passed"], report["checks"]
    with pytest.raises(DataValidationError, match=r"^1 of 1 expectations failed: charges: columns expected category, "
                                                  r"got float64 with fractions \(e\.g\. 12\.75\): a category written "
                                                  r"in numbers holds whole codes; declare a measure 'number' and "
                                                  r"list it in NUMERIC\. "):
        raise_for_failures(check_frame(frame, columns(charges="category")))


def test_allowed_categories_of_codes_written_in_numbers_match_however_the_codes_were_read():
    """A blank cell reads a postcode column as floats: allowed=('75001', '69002') then failed with
    'unexpected: 69002.0, 75001.0', though int codes passed."""
    allowed = Expectation("categories", "zip", allowed=("75001", "69002"))
    for zips in ([75001, 69002], [75001.0, 69002.0, float("nan")], ["75001", "69002", None]):
        report = check_frame(pd.DataFrame({"zip": zips}), [allowed])
        assert report["passed"], (zips, report["checks"])
    report = check_frame(pd.DataFrame({"zip": [75001.0, 6000.0, float("nan")]}), [allowed])
    assert not report["passed"] and report["checks"][0]["observed"] == "unexpected: 6000"


def test_text_in_a_regression_label_is_named_with_the_fix():
    """TASK = "regression" on a label written with its unit ('938.64 EUR') failed every candidate in scikit-learn
    with 'ValueError: could not convert string to float'; a classifier's label may be text, and a regression's
    numbers written as text are numbers."""
    frame = _table().assign(spend=[f"{i * 9.5:.2f} EUR" if i % 4 else f"{i * 9.5:.2f}" for i in range(120)])
    with pytest.raises(DataValidationError, match=r"^the label 'spend' of a regression holds text in 90 of its 120 "
                                                  r"rows \(e\.g\. '9\.50 EUR'\): make it numbers \(without a unit or "
                                                  r"a thousands separator\), or set TASK = \"classification\" for a "
                                                  r"label of classes\. Declare the columns"):
        check_features(frame, ["amount"], ["plan"], "spend", key="id", task="regression")
    check_features(frame, ["amount"], ["plan"], "spend", key="id")  # classes may be text
    for infinite in ("inf", float("inf")):  # 'Input contains infinity' in scikit-learn, after every earlier step
        spend = [infinite if i == 7 else (str(i * 9.5) if isinstance(infinite, str) else i * 9.5) for i in range(120)]
        with pytest.raises(DataValidationError, match=r"^the label 'spend' of a regression is infinite in 1 of its "
                                                      r"120 rows: drop those rows or give them a finite value"):
            check_features(frame.assign(spend=spend), ["amount"], ["plan"], "spend", task="regression")
    check_features(frame.assign(spend=[str(i * 9.5) for i in range(120)]), ["amount"], ["plan"], "spend",
                   task="regression")
    with pytest.raises(DataValidationError, match=r"^the label 'signup' of a regression holds dates"):
        check_features(frame, ["amount"], ["plan"], "signup", task="regression")
