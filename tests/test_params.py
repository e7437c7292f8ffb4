"""Parameters from `-p` text and from a parameters file: converted, or refused with one line per problem."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import date, datetime
from decimal import Decimal
from enum import Enum, IntEnum
from pathlib import Path
from typing import Literal, Optional

import pytest

from orchestrator.errors import ParameterError
from orchestrator.params import convert_params, load_params_file


def _pipeline(depths: list = [1], n: int = 1, lr: float = 0.1, pair: tuple = (1, 2),  # noqa: B006
              table: dict | None = None, tags: set = frozenset(), ints: list[int] = [],  # noqa: B006
              flag: bool = False, name: str = "x", path: Path = Path("."), mode: Literal["a", "b"] = "a",
              maybe: int | None = None, loose=None, guessed=[1]):  # noqa: B006
    ...


def _convert(texts=None, typed=None):
    return convert_params(inspect.signature(_pipeline), _pipeline, "p", texts or {}, typed, source="p.toml")


@pytest.mark.parametrize("texts,expected", [
    ({"depths": "[1, 2]"}, {"depths": [1, 2]}),
    ({"pair": "[1, 2]"}, {"pair": (1, 2)}),
    ({"tags": '["a", "a"]'}, {"tags": {"a"}}),
    ({"table": '{"a": 1}'}, {"table": {"a": 1}}),
    ({"table": "none"}, {"table": None}),
    ({"ints": "[1, 2.0]"}, {"ints": [1, 2]}),
    ({"guessed": "[3]"}, {"guessed": [3]}),
    ({"maybe": "3"}, {"maybe": 3}),
    ({"lr": "1"}, {"lr": 1.0}),
    ({"name": "100"}, {"name": "100"}),
])
def test_p_text_converts(texts, expected):
    assert _convert(texts) == expected


@pytest.mark.parametrize("text,expected", [
    ("100", 100), ("-3", -3), ("0.5", 0.5), (".5", 0.5), ("1e-3", 0.001), ("true", True),
    ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}),
    ("rf", "rf"), ("007", "007"), ("2024-05-06", "2024-05-06"), ("[oops", "[oops"), ("nan", "nan"),
])
def test_p_text_for_an_untyped_parameter_is_taken_as_a_parameters_file_would_give_it(text, expected):
    """`loose=None` has no type to convert to: `-p loose=100` must not reach `df.head(loose)` as text."""
    converted = _convert({"loose": text})["loose"]
    assert (converted, type(converted)) == (expected, type(expected))
    assert converted == _convert(typed={"loose": expected})["loose"]


@pytest.mark.parametrize("texts,message", [
    ({"depths": '{"a":1}'}, """parameter 'depths': expected a JSON list like [1, 2], got {"a":1}."""),
    ({"depths": '"ab"'}, """parameter 'depths': expected a JSON list like [1, 2], got "ab"."""),
    ({"depths": "ab"}, "parameter 'depths': expected a JSON list like [1, 2], got ab (not JSON)."),
    ({"guessed": '{"a":1}'}, "parameter 'guessed': expected a JSON list like [1, 2]"),
    ({"pair": '{"a":1}'}, "parameter 'pair': expected a JSON list"),
    ({"tags": '"abc"'}, "parameter 'tags': expected a JSON list"),
    ({"table": "[1]"}, """parameter 'table': expected a JSON object like {"a": 1}, got [1]."""),
    ({"ints": '[1, "x"]'}, """parameter 'ints': item 1: expected an integer like 3, got "x"."""),
    ({"n": "3.5"}, "parameter 'n': expected an integer like 3, got 3.5 (not a whole number)."),
])
def test_p_text_of_the_wrong_kind_is_refused(texts, message):
    with pytest.raises(ParameterError) as exc:
        _convert(texts)
    assert str(exc.value).startswith(message)


def test_file_values_of_the_right_kind_are_kept_or_widened():
    typed = {"n": 3.0, "lr": 3, "flag": True, "name": "y", "path": "a/b", "mode": "b", "maybe": None,
             "loose": 5, "ints": [1, 2], "pair": [1, 2], "tags": ["a"], "table": {"a": 1}}
    assert _convert(typed=typed) == {
        "n": 3, "lr": 3.0, "flag": True, "name": "y", "path": Path("a/b"), "mode": "b", "maybe": None,
        "loose": 5, "ints": [1, 2], "pair": (1, 2), "tags": {"a"}, "table": {"a": 1}}
    assert type(_convert(typed={"lr": 3})["lr"]) is float


@pytest.mark.parametrize("typed,message", [
    ({"n": 3.7}, "parameter 'n' in p.toml: expected an integer like 3, got 3.7."),
    ({"n": True}, "parameter 'n' in p.toml: expected an integer like 3, got true."),
    ({"n": "3"}, """parameter 'n' in p.toml: expected an integer like 3, got "3"."""),
    ({"lr": "0.5"}, """parameter 'lr' in p.toml: expected a number like 0.5, got "0.5"."""),
    ({"lr": False}, "parameter 'lr' in p.toml: expected a number like 0.5, got false."),
    ({"depths": 3}, "parameter 'depths' in p.toml: expected a JSON list like [1, 2], got 3."),
    ({"depths": "ab"}, """parameter 'depths' in p.toml: expected a JSON list like [1, 2], got "ab"."""),
    ({"table": [1]}, "parameter 'table' in p.toml: expected a JSON object"),
    ({"flag": 1}, "parameter 'flag' in p.toml: expected true or false, got 1."),
    ({"mode": "c"}, """parameter 'mode' in p.toml: expected one of a, b, got "c"."""),
    ({"ints": [1, "a"]}, """parameter 'ints' in p.toml: item 1: expected an integer like 3, got "a"."""),
])
def test_file_values_of_the_wrong_kind_are_refused(typed, message):
    with pytest.raises(ParameterError) as exc:
        _convert(typed=typed)
    assert str(exc.value).startswith(message)


def test_every_problem_is_reported_and_p_wins_over_the_file():
    with pytest.raises(ParameterError) as exc:
        _convert(typed={"n": 3.7, "depths": 3})
    assert len(str(exc.value).splitlines()) == 2
    assert _convert({"n": "4"}, {"n": 3.7}) == {"n": 4}


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


def _typed(dt: datetime = datetime(2024, 1, 1), day: date = date(2024, 1, 1), guessed_day=date(2024, 1, 1),
           col: Color = Color.RED, lev: Level = Level.LOW, pair: tuple[int, str] = (1, "a"),
           many: tuple[int, ...] = (), path: Path = Path("x"), y: int | None = None,
           x: Optional[int] = None, n: int = 1, alpha: float = 1.0):  # noqa: UP045 - user code still writes Optional
    ...


def _convert_typed(texts=None, typed=None):
    return convert_params(inspect.signature(_typed), _typed, "p", texts or {}, typed, source="p.json")


@pytest.mark.parametrize("texts,expected", [
    ({"dt": "2024-05-06T10:11:12"}, {"dt": datetime(2024, 5, 6, 10, 11, 12)}),
    ({"dt": "2024-05-06"}, {"dt": datetime(2024, 5, 6)}),
    ({"day": "2024-02-03"}, {"day": date(2024, 2, 3)}),
    ({"guessed_day": "2024-02-03"}, {"guessed_day": date(2024, 2, 3)}),
    ({"col": "blue"}, {"col": Color.BLUE}),
    ({"col": "BLUE"}, {"col": Color.BLUE}),
    ({"lev": "2"}, {"lev": Level.HIGH}),
    ({"lev": "HIGH"}, {"lev": Level.HIGH}),
    ({"pair": '[2, "b"]'}, {"pair": (2, "b")}),
    ({"many": "[1, 2, 3]"}, {"many": (1, 2, 3)}),
    ({"many": "[]"}, {"many": ()}),
    ({"x": "none"}, {"x": None}),
    ({"n": "3.0", "x": "1e3", "alpha": "1_000"}, {"n": 3, "x": 1000, "alpha": 1000.0}),  # a file's 3.0 is taken too
])
def test_p_text_converts_dates_enums_and_tuples(texts, expected):
    assert _convert_typed(texts) == expected


@pytest.mark.parametrize("texts,message", [
    ({"dt": "yesterday"},
     "parameter 'dt': expected an ISO 8601 date and time like 2024-05-06T10:11:12, got yesterday."),
    ({"day": "03/02/2024"}, "parameter 'day': expected an ISO 8601 date like 2024-05-06, got 03/02/2024."),
    ({"col": "green"}, "parameter 'col': expected a Color name, one of RED, BLUE (or its value), got green."),
    ({"lev": "3"}, "parameter 'lev': expected a Level name, one of LOW, HIGH (or its value), got 3."),
    ({"pair": "[1]"}, "parameter 'pair': expected a JSON list of 2 items (int, str), got [1] (1 item)."),
    ({"pair": '[1, "a", 2]'}, "parameter 'pair': expected a JSON list of 2 items (int, str), got"),
    ({"path": ""}, "parameter 'path': empty path (write . for the current folder)."),
    ({"x": "abc"}, "parameter 'x': expected an integer like 3, got abc."),
    ({"y": "abc"}, "parameter 'y': expected an integer like 3, got abc."),
    ({"n": "3.7"}, "parameter 'n': expected an integer like 3, got 3.7 (not a whole number)."),
    ({"n": ""}, "parameter 'n': expected an integer like 3, got nothing (-p name=VALUE)."),
    ({"alpha": "high"}, "parameter 'alpha': expected a number like 0.5, got high."),
])
def test_p_text_refusals_name_the_expected_form(texts, message):
    with pytest.raises(ParameterError) as exc:
        _convert_typed(texts)
    assert str(exc.value).startswith(message)
    assert len(str(exc.value).splitlines()) == 1


def test_file_values_take_iso_dates_enum_names_and_fixed_length_tuples():
    typed = {"dt": "2024-05-06T10:11:12", "day": "2024-02-03", "col": "BLUE", "lev": 2, "pair": [2, "b"],
             "many": [1, 2, 3]}
    assert _convert_typed(typed=typed) == {
        "dt": datetime(2024, 5, 6, 10, 11, 12), "day": date(2024, 2, 3), "col": Color.BLUE, "lev": Level.HIGH,
        "pair": (2, "b"), "many": (1, 2, 3)}
    assert _convert_typed(typed={"lev": "HIGH"}) == {"lev": Level.HIGH}


def test_native_toml_dates_still_work(tmp_path):
    (tmp_path / "p.toml").write_text("dt = 2024-05-06T10:11:12\nday = 2024-02-03\n")
    assert _convert_typed(typed=load_params_file(str(tmp_path / "p.toml"))) == {
        "dt": datetime(2024, 5, 6, 10, 11, 12), "day": date(2024, 2, 3)}
    (tmp_path / "p.toml").write_text("dt = 2024-05-06\n")  # a date for a datetime: midnight, as -p reads it
    assert _convert_typed(typed=load_params_file(str(tmp_path / "p.toml"))) == {"dt": datetime(2024, 5, 6)}


def test_a_toml_date_and_time_is_refused_for_a_date_as_p_refuses_it(tmp_path):
    # A datetime is a date to isinstance, but a step comparing it with a date finds them unequal.
    (tmp_path / "p.toml").write_text("day = 2024-05-06T01:02:03\ndt = 10:11:12\n")
    with pytest.raises(ParameterError) as exc:
        _convert_typed(typed=load_params_file(str(tmp_path / "p.toml")))
    assert str(exc.value).splitlines() == [
        "parameter 'day' in p.json: expected an ISO 8601 date like 2024-05-06, got 2024-05-06T01:02:03.",
        "parameter 'dt' in p.json: expected an ISO 8601 date and time like 2024-05-06T10:11:12, got 10:11:12."]
    with pytest.raises(ParameterError, match="expected an ISO 8601 date like 2024-05-06, got 2024-05-06T01:02"):
        _convert_typed({"day": "2024-05-06T01:02:03"})


@pytest.mark.parametrize("typed,message", [
    ({"dt": "soon"}, """parameter 'dt' in p.json: expected an ISO 8601 date and time like 2024-05-06T10:11:12, \
got "soon"."""),
    ({"day": 20240203}, "parameter 'day' in p.json: expected an ISO 8601 date like 2024-05-06, got 20240203."),
    ({"col": "GREEN"}, """parameter 'col' in p.json: expected a Color name, one of RED, BLUE (or its value), \
got "GREEN"."""),
    ({"pair": [1]}, "parameter 'pair' in p.json: expected a JSON list of 2 items (int, str), got [1] (1 item)."),
    ({"path": ""}, "parameter 'path' in p.json: empty path (write . for the current folder)."),
])
def test_file_values_refusals_name_the_expected_form(typed, message):
    with pytest.raises(ParameterError) as exc:
        _convert_typed(typed=typed)
    assert str(exc.value) == message


@dataclasses.dataclass(frozen=True)
class _Cfg:
    lr: float
    layers: tuple[int, ...] = (1, 2)
    name: str = "base"


def _configured(cfg: _Cfg = _Cfg(0.1), amount: Decimal = Decimal("1.5")):
    ...


def _convert_config(texts=None, typed=None):
    return convert_params(inspect.signature(_configured), _configured, "p", texts or {}, typed,
                          source="p.toml")


@pytest.mark.parametrize("texts,typed", [
    ({"cfg": '{"lr": 0.5, "layers": [3]}'}, None),
    (None, {"cfg": {"lr": 0.5, "layers": [3]}}),
], ids=["p", "file"])
def test_a_dataclass_parameter_is_built_from_an_object_of_its_fields(texts, typed):
    assert _convert_config(texts, typed) == {"cfg": _Cfg(lr=0.5, layers=(3,))}


@pytest.mark.parametrize("texts,typed,message", [
    # Cfg("fast") would have put the text in `lr` and run with it.
    ({"cfg": "fast"}, None, "parameter 'cfg': expected a JSON object of _Cfg's fields like "
                            '{"lr": ..., "layers": ..., "name": ...}, got fast (not JSON).'),
    ({"cfg": '{"lr": "x"}'}, None, "parameter 'cfg': field 'lr' of _Cfg: expected a number like 0.5, got \"x\"."),
    ({"cfg": '{"nmae": "a", "lr": 1}'}, None, "parameter 'cfg': _Cfg has no field 'nmae'. Did you mean 'name'? "
                                              "Its fields: lr, layers, name."),
    ({"cfg": "{}"}, None, "parameter 'cfg': _Cfg needs field lr, got {}."),
    (None, {"cfg": "fast"}, "parameter 'cfg' in p.toml: expected a JSON object of _Cfg's fields like "),
    # decimal.Decimal("abc") raises an ArithmeticError, which reached the user as a traceback.
    ({"amount": "abc"}, None, "parameter 'amount': cannot convert 'abc' to Decimal (not a number)."),
    (None, {"amount": "abc"}, "parameter 'amount' in p.toml: expected a Decimal, got \"abc\" (not a number)."),
])
def test_a_dataclass_or_decimal_parameter_that_does_not_convert_is_one_line(texts, typed, message):
    with pytest.raises(ParameterError) as info:
        _convert_config(texts, typed)
    assert str(info.value).startswith(message)


def test_a_path_from_p_or_a_file_starting_with_a_tilde_is_in_the_home_folder(tmp_path, monkeypatch):
    """As a shell would give it: else it names a folder `~` here, and the step is keyed as a missing file."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _convert_typed({"path": "~/raw.csv"}) == {"path": tmp_path / "raw.csv"}
    assert _convert_typed(typed={"path": "~/raw.csv"}) == {"path": tmp_path / "raw.csv"}
    assert _convert_typed({"path": "data/~raw.csv"}) == {"path": Path("data/~raw.csv")}
    assert _convert_typed({"path": "~nosuchuser/raw.csv"}) == {"path": Path("~nosuchuser/raw.csv")}


def test_a_name_that_kwargs_takes_is_converted_as_an_unannotated_parameter_is():
    """`-p n=100` is 100 for `**options`, as for `n=None`; `**options: float` converts each to a float."""
    def loose(**options): ...

    def typed(**options: float): ...

    assert convert_params(inspect.signature(loose), loose, "p", {"n": "100", "flag": "true", "name": "rf"}) == \
        {"n": 100, "flag": True, "name": "rf"}
    assert convert_params(inspect.signature(typed), typed, "p", {"n": "1"}) == {"n": 1.0}
    with pytest.raises(ParameterError, match="parameter 'n': expected a number like 0.5, got x"):
        convert_params(inspect.signature(typed), typed, "p", {"n": "x"})
    assert convert_params(inspect.signature(typed), typed, "p", {}, {"n": 2}, source="p.toml") == {"n": 2.0}


def test_parameters_under_a_toml_table_are_asked_for_at_the_top_level(tmp_path, monkeypatch):
    (tmp_path / "p.toml").write_text("[train]\nn = 3\nlr = 0.5\n")
    with pytest.raises(ParameterError) as exc:
        _convert(typed=load_params_file(str(tmp_path / "p.toml")))
    assert str(exc.value) == ("pipeline 'p' has no parameter 'train' in p.toml. Its keys look like parameters: write them "
                              "at the top level of p.toml, not under [train], or name the table after the "
                              "pipeline: [p].")
    monkeypatch.setenv("HOME", str(tmp_path))  # quoted on the command line, ~ is still the home folder
    assert load_params_file("~/p.toml") == {"train": {"n": 3, "lr": 0.5}}


def test_a_kedro_parameter_group_or_prefix_says_how_parameters_are_named_here():
    """Kedro's `model_options:` group and its nodes' `params:` prefix got only "has no parameter"."""
    with pytest.raises(ParameterError) as exc:
        _convert(typed={"model_options": {"test_size": 0.2, "random_state": 3}})
    assert str(exc.value) == (
        "pipeline 'p' has no parameter 'model_options' in p.toml. Here a pipeline's parameters are its function's "
        "arguments, each at the top level of p.toml; to take the group 'model_options' whole, give the pipeline a "
        "parameter of it (`model_options: dict`), or write its keys at the top level.")
    with pytest.raises(ParameterError) as exc:
        _convert({"params:lr": "0.5"})
    assert str(exc.value) == ("pipeline 'p' has no parameter 'params:lr'. Parameters are named without Kedro's "
                              "'params:' prefix: -p lr=VALUE.")


def test_a_pydantic_model_parameter_is_built_from_an_object_of_its_fields_and_checked_by_it():
    """Dagster's and many projects' config is a pydantic model: `-p cfg={...}` said
    'BaseModel.__init__() takes 1 positional argument but 2 were given'."""
    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):
        lr: float = 0.1
        layers: list[int] = [8]

    def configured(cfg: Model = Model()):
        ...

    def convert(texts=None, typed=None):
        return convert_params(inspect.signature(configured), configured, "p", texts or {}, typed, source="p.toml")

    assert convert({"cfg": '{"lr": 0.5}'}) == {"cfg": Model(lr=0.5)}
    assert convert(typed={"cfg": {"layers": [1, 2]}}) == {"cfg": Model(layers=[1, 2])}
    for texts, typed, message in [
        ({"cfg": '{"lr": "fast"}'}, None, "parameter 'cfg': Model refused {\"lr\": \"fast\"}: field 'lr': Input "
                                          "should be a valid number, unable to parse string as a number."),
        ({"cfg": '{"lrr": 1}'}, None, "parameter 'cfg': Model has no field 'lrr'. Did you mean 'lr'? Its fields: lr, "
                                      "layers."),
        ({"cfg": "fast"}, None, "parameter 'cfg': expected a JSON object of Model's fields like {\"lr\": ..., "
                                "\"layers\": ...}, got fast (not JSON)."),
        (None, {"cfg": {"lr": "x"}}, "parameter 'cfg' in p.toml: Model refused {\"lr\": \"x\"}: field 'lr': Input "
                                     "should be a valid number"),
    ]:
        with pytest.raises(ParameterError) as info:
            convert(texts, typed)
        assert str(info.value).startswith(message), str(info.value)


def test_a_yaml_parameters_file_is_read_as_kedro_writes_parameters_yml(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "parameters.yml").write_text("p:\n  n: 3\n  lr: 0.5\nday: 2024-02-03\n")
    assert load_params_file(str(tmp_path / "parameters.yml")) == {"p": {"n": 3, "lr": 0.5}, "day": date(2024, 2, 3)}
    (tmp_path / "bad.yaml").write_text("p:\n  n: [1\n")
    with pytest.raises(ParameterError) as info:
        load_params_file(str(tmp_path / "bad.yaml"))
    assert str(info.value) == (f"cannot read parameters file {tmp_path / 'bad.yaml'}: expected ',' or ']', but got "
                               "'<stream end>' (line 3, column 1)")
    (tmp_path / "code.yml").write_text("n: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ParameterError, match="cannot read parameters file"):
        load_params_file(str(tmp_path / "code.yml"))  # read safely: a YAML file runs no code


class _Kind(Enum):
    A = "a"
    B = "b"


def _keyed(by_id: dict[int, float] = {}, by_day: dict[date, int] = {}, by_kind: dict[_Kind, str] = {},  # noqa: B006
           by_name: dict[str, int] = {}):  # noqa: B006
    ...


@pytest.mark.parametrize("typed", [False, True])
def test_the_keys_of_a_typed_dict_are_converted_as_their_type(typed):
    """JSON and TOML keys are text: `-p 'w={"1": 0.5}'` for dict[int, float] gave the step {'1': 0.5}."""
    import json

    values = {"by_id": {"1": 0.5}, "by_day": {"2024-02-03": 1}, "by_kind": {"b": "x", "A": "y"},
              "by_name": {"1": 2}}
    args = ({}, values) if typed else ({k: json.dumps(v) for k, v in values.items()}, None)
    out = convert_params(inspect.signature(_keyed), _keyed, "p", *args)
    assert out == {"by_id": {1: 0.5}, "by_day": {date(2024, 2, 3): 1}, "by_kind": {_Kind.B: "x", _Kind.A: "y"},
                   "by_name": {"1": 2}}
    with pytest.raises(ParameterError, match=r"^parameter 'by_id': key 'x': expected an integer like 3, got x.$"):
        convert_params(inspect.signature(_keyed), _keyed, "p", {"by_id": '{"x": 1.0}'})


if False:  # typing.TYPE_CHECKING: a name imported for type checkers only, as pipelines do for pandas
    from collections import OrderedDict as TypeCheckerOnly


def _half_resolvable(alpha: float = 1, mode: Literal["a", "b"] = "a", frame: TypeCheckerOnly | None = None):
    ...


def test_one_annotation_that_cannot_be_resolved_leaves_the_others_their_types():
    """Under `from __future__ import annotations` (this module), `frame`'s annotation names what only a type
    checker imports: every parameter lost its type, so `-p alpha=0.5` was refused for its default's int."""
    def convert(texts):
        return convert_params(inspect.signature(_half_resolvable), _half_resolvable, "p", texts, None, source="p.toml")

    assert convert({"alpha": "0.5"}) == {"alpha": 0.5}
    with pytest.raises(ParameterError, match="'mode'"):
        convert({"mode": "c"})


@pytest.mark.parametrize("name,text", [("P.TOML", "n = 4\n"), ("p.Json", '{"n": 4}')])
def test_a_parameters_file_ending_in_capitals_is_read(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    assert load_params_file(str(tmp_path / name)) == {"n": 4}


def test_a_key_given_twice_in_a_json_file_is_refused_as_toml_refuses_it(tmp_path):
    """`{"alpha": 1, "alpha": 2}` ran with alpha=2 and no word of the first."""
    from orchestrator.errors import ParameterError

    (tmp_path / "p.json").write_text('{"alpha": 1, "cfg": {"lr": 0.1, "lr": 0.2}}')
    with pytest.raises(ParameterError, match=r"cannot read parameters file .*p\.json: the key 'lr' is given twice"):
        load_params_file(str(tmp_path / "p.json"))
    (tmp_path / "p.json").write_text('{"alpha": 1, "cfg": {"lr": 0.1}}')
    assert load_params_file(str(tmp_path / "p.json")) == {"alpha": 1, "cfg": {"lr": 0.1}}


def test_a_key_given_twice_in_a_yaml_file_is_refused_but_a_merge_may_be_overridden(tmp_path):
    """PyYAML keeps the last of `alpha: 0.1` ... `alpha: 0.5` silently; a `<<: *defaults` merge is no repeat."""
    from orchestrator.errors import ParameterError

    (tmp_path / "p.yml").write_text("alpha: 0.1\ncfg:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ParameterError, match=r"p\.yml: the key 'lr' is given twice in one mapping \(line 4"):
        load_params_file(str(tmp_path / "p.yml"))
    (tmp_path / "p.yml").write_text("base: &b {lr: 0.1, depth: 3}\ntrain:\n  <<: *b\n  lr: 0.2\n")
    assert load_params_file(str(tmp_path / "p.yml"))["train"] == {"lr": 0.2, "depth": 3}
