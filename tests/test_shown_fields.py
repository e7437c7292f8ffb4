"""Reasons name the fields of a config parameter that changed, from the text each run recorded."""

from __future__ import annotations

import pytest

from orchestrator.dag import _shown
from orchestrator.shown_fields import field_changes


def _cut(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


@pytest.mark.parametrize(("old", "new", "said"), [
    ("Cfg(kind='forest', n_estimators=30, seed=0)", "Cfg(kind='forest', n_estimators=40, seed=0)",
     "n_estimators: 30 → 40"),
    ({"lr": 0.1, "opt": {"name": "adam", "beta": 0.9}}, {"lr": 0.1, "opt": {"name": "adam", "beta": 0.8}},
     "opt.beta: 0.9 → 0.8"),
    # A library estimator prints only what was given: a field it now prints was not set before.
    ("RandomForestClassifier(max_depth=3)", "RandomForestClassifier(max_depth=3, n_estimators=40)",
     "n_estimators: (not set) → 40"),
    # Commas and brackets inside a field's text do not split it.
    ("Cfg(cols=('a', 'b'), sep=', ', w={'x': [1, 2]})", "Cfg(cols=('a', 'b'), sep=', ', w={'x': [1, 3]})",
     "w.x: [1, 2] → [1, 3]"),
    ("Cfg(path=PosixPath('a.csv'), n=1)", "Cfg(path=PosixPath('b.csv'), n=1)",
     "path: PosixPath('a.csv') → PosixPath('b.csv')"),
    ("C(a=1, b=2, c=3, d=4, e=5)", "C(a=0, b=0, c=0, d=0, e=0)", "a: 1 → 0, b: 2 → 0, c: 3 → 0 and 2 more fields"),
    # Text the user gave in a dict is shown as text, not read as a repr of fields.
    ({"s": "f(x=1)"}, {"s": "f(x=2)"}, 's: "f(x=1)" → "f(x=2)"'),
    ("Cfg(text='" + "x" * 60 + "', n=1)", "Cfg(text='" + "y" * 60 + "', n=1)", "text changed"),
])
def test_the_fields_that_differ_are_named(old, new, said):
    assert field_changes(old, new) == said


@pytest.mark.parametrize(("old", "new"), [
    ("A(x=1)", "B(x=2)"),  # another type: its fields are not these
    ("Point(1, 2)", "Point(1, 3)"),  # positional: no field names to give
    ("<function f>", "<function g>"),
    ([1, 2], [1, 3]),
    (1.0, 2.0),
    ("Cfg(a=(1, 2)", "Cfg(a=(1, 3)"),  # unbalanced, not cut: not a repr this module reads
])
def test_values_that_are_not_fields_by_name_name_none(old, new):
    assert field_changes(old, new) is None


def test_a_value_cut_where_lineage_shows_it_compares_its_complete_fields_only():
    fields = {f"h{i:02d}": i for i in range(40)}
    old = _shown(_Config(fields))
    assert old.endswith("...") and len(old) == 200
    assert field_changes(old, _shown(_Config({**fields, "h03": 33}))) == "h03: 3 → 33"
    # Past the cut nothing shows: no field is named, rather than one cut in its middle.
    assert field_changes(old, _shown(_Config({**fields, "h39": 0}))) is None


class _Config:
    def __init__(self, fields: dict[str, int]) -> None:
        self.fields = fields

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{k}={v}" for k, v in self.fields.items()) + ")"


def test_a_frame_or_table_is_shown_by_its_shape_not_its_rows():
    """A frame's repr lays out its rows (2 ms for three): a map over 20,000 small frames spent a quarter of
    its fully cached run making labels of them, each cut to 200 characters of rows."""
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
    assert _shown(frame) == "<DataFrame 3 × 2>"
    assert _shown(frame["a"]) == "<Series 3>"
    assert _shown(pa.table({"a": [1]})) == "<Table 1 × 1>"


def test_a_stored_frame_item_is_shown_by_its_shape_as_the_frame_itself_is(tmp_path):
    """An item of a map over a map's result that is a small frame stays unread until its step runs; shown,
    it read `<stored pandas.DataFrame, 1,850 bytes>` where the same item made in this run read its shape."""
    pd = pytest.importorskip("pandas")
    from orchestrator.store import ArtifactStore
    from orchestrator.task import ArtifactRef, stored_item

    store = ArtifactStore(tmp_path)
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
    from orchestrator.hashing import hash_value

    info = store.put(frame, hash_value(frame))
    item = stored_item(info, store.get)
    assert isinstance(item, ArtifactRef) and _shown(item) == _shown(frame) == "<DataFrame 3 × 2>"
    np = pytest.importorskip("numpy")
    scalar = np.float64(1) / 3  # a small value: loaded, and shown as itself
    assert stored_item(store.put(scalar, hash_value(scalar)), store.get) == scalar
