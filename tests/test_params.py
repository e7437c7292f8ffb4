"""Parameters from `-p` text and from a parameters file: converted, or refused with one line per problem."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Literal

import pytest

from orchestrator.errors import ParameterError
from orchestrator.params import convert_params


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
])
def test_p_text_converts(texts, expected):
    assert _convert(texts) == expected


@pytest.mark.parametrize("texts,message", [
    ({"depths": '{"a":1}'}, """parameter 'depths': expected a JSON list like [1, 2], got {"a":1}."""),
    ({"depths": '"ab"'}, """parameter 'depths': expected a JSON list like [1, 2], got "ab"."""),
    ({"depths": "ab"}, "parameter 'depths': expected a JSON list like [1, 2], got ab (not JSON)."),
    ({"guessed": '{"a":1}'}, "parameter 'guessed': expected a JSON list like [1, 2]"),
    ({"pair": '{"a":1}'}, "parameter 'pair': expected a JSON list"),
    ({"tags": '"abc"'}, "parameter 'tags': expected a JSON list"),
    ({"table": "[1]"}, """parameter 'table': expected a JSON object like {"a": 1}, got [1]."""),
    ({"ints": '[1, "x"]'}, """parameter 'ints': item 1: expected an integer like 3, got "x"."""),
    ({"n": "3.5"}, "parameter 'n': cannot convert '3.5' to int"),
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
