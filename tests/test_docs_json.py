"""The ``--json`` documents docs/cli.md and ``--help`` describe are the ones the commands print.

A wrapper script is written against the keys the reference lists. Those lists are prose, edited by
hand as commands gain keys, so they drift: `orch logs --help` listed an attempt's keys without
`recorded`. Each documented key set is checked against a real command's output, on one small store
made once: two runs of a pipeline, three versions of a model and a drift check.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from orchestrator.cli import cli

from .test_registry import TINY

ROOT = Path(__file__).resolve().parent.parent
CLI_MD = (ROOT / "docs" / "cli.md").read_text()

# -- reading a key list as docs/cli.md writes it: {a, b, c: [{d, e}], ...} -------------------------

Spec = dict[str, Any]  # key -> the spec of its value (a nested object or list of them), or None


def parse_keys(text: str) -> tuple[Spec, bool]:
    """The keys of the first ``{...}`` in ``text`` and whether it ends in ``...`` (more keys than listed)."""
    start = text.index("{")
    spec, is_open, _ = _object(text, start)
    return spec, is_open


def _object(text: str, i: int) -> tuple[Spec, bool, int]:
    assert text[i] == "{"
    i += 1
    spec: Spec = {}
    is_open = False
    while True:
        i = _skip_space(text, i)
        if text.startswith("...", i) or text.startswith("…", i):
            is_open = True
            i += 3 if text.startswith("...", i) else 1
        else:
            name = re.match(r'"?([A-Za-z_][\w]*)"?', text[i:])
            assert name, f"no key at {text[i:i + 30]!r}"
            i += name.end()
            value: Any = None
            i = _skip_space(text, i)
            if text[i] == ":":
                i = _skip_space(text, i + 1)
                if text[i] == "{":
                    value, _, i = _object(text, i)
                elif text[i] == "[":
                    i = _skip_space(text, i + 1)
                    if text[i] == "{":
                        value, item_open, i = _object(text, i)
                        value = [(value, item_open)]
                    else:
                        i = text.index("]", i)
                    i = text.index("]", i) + 1
            spec[name.group(1)] = value
        i = _skip_space(text, i)
        if text[i] == "}":
            return spec, is_open, i + 1
        assert text[i] == ",", f"expected , or }} at {text[i:i + 30]!r}"
        i += 1


def _skip_space(text: str, i: int) -> int:
    while text[i] in " \n`":
        i += 1
    return i


def mismatches(spec: Spec, is_open: bool, real: Any, where: str = "") -> list[str]:
    """Keys documented but not printed, and (unless the list is open) printed but not documented."""
    if isinstance(real, list):
        return [m for item in real for m in mismatches(spec, is_open, item, where + "[]")][:10]
    assert isinstance(real, dict), f"{where}: not an object: {real!r}"
    found = [f"{where}.{k} documented, not printed" for k in spec if k not in real]
    if not is_open:
        found += [f"{where}.{k} printed, not documented" for k in real if k not in spec]
    for key, sub in spec.items():
        if sub is not None and real.get(key) is not None:
            if isinstance(sub, list):
                found += mismatches(sub[0][0], sub[0][1], real[key], f"{where}.{key}")
            else:
                found += mismatches(sub, False, real[key], f"{where}.{key}")
    return found


def test_a_key_list_is_read_with_its_nesting_and_a_drift_is_found() -> None:
    spec, is_open = parse_keys('prints `{"checked", "damaged": [{"hash", "problem"}], "repaired"}` as JSON')
    assert spec == {"checked": None, "damaged": [({"hash": None, "problem": None}, False)], "repaired": None}
    assert not is_open
    assert mismatches(spec, is_open, {"checked": 1, "damaged": [{"hash": "a", "problem": "b"}], "repaired": 0}) == []
    assert mismatches(spec, is_open, {"checked": 1, "damaged": [{"hash": "a"}], "repaired": 0, "new": 1}) == [
        ".new printed, not documented", ".damaged[].problem documented, not printed"]
    spec, is_open = parse_keys("{direction, roots, nodes: [{id, kind, label, ...}], edges: [...]}")
    assert mismatches(spec, is_open, {"direction": "up", "roots": [], "nodes": [{"id": 1, "kind": "s", "label": "x",
                                                                              "run_id": "r"}], "edges": []}) == []


# -- one small store with something for every command that prints JSON ----------------------------


@pytest.fixture(scope="module")
def orch(tmp_path_factory):
    """``orch(*args)``: the parsed ``--json`` document of ``orch --store STORE ARGS``, run in this process."""
    base = tmp_path_factory.mktemp("docs_json")
    store = base / "store"
    shutil.copytree(ROOT / "pipelines", base / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    (base / "tiny.py").write_text(TINY)
    (base / "batch.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(
        [0.0, 1, 2, 3, 4, 5, 6, 7] * 8, [0, 0, 0, 1, 0, 1, 1, 1] * 8)))
    runner = CliRunner()
    env = {"XDG_CONFIG_HOME": str(base / "config"), "ORCH_SIGNING_KEY": "docs-json-test-key", "COLUMNS": "200"}

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(cli, ["--store", str(store), *args], env=env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        return json.loads(result.stdout) if "--json" in args or "json" in args else result.stdout

    quickstart = str(base / "pipelines" / "quickstart.py")
    run("run", quickstart)
    run.run_json = run("run", quickstart, "-p", "C=0.5", "--json")  # type: ignore[attr-defined]
    for c in ("0.0", "1.0", "0.1"):
        run("run", str(base / "tiny.py"), "-p", f"c={c}")
    run("monitor", "tiny", "--batch", str(base / "batch.csv"))
    run.quickstart = quickstart  # type: ignore[attr-defined]
    return run


def _section(command: str) -> str:
    """The text of docs/cli.md under the heading of ``orch COMMAND``, up to the next heading of its level."""
    match = re.search(rf"^## `orch {re.escape(command)}[ `].*?(?=^## |\Z)", CLI_MD, re.S | re.M)
    assert match, f"docs/cli.md has no section for orch {command}"
    return match.group(0)


def _after(text: str, anchor: str) -> str:
    assert anchor in text, f"docs/cli.md no longer says {anchor!r}"
    return text[text.index(anchor) + len(anchor):]


# (the command, its docs/cli.md section, the words just before the key list, how to reach the part listed)
DOCUMENTED = [
    (("runs", "--json"), "runs", "`--json`: an array of", lambda d: d),
    (("plan", "QUICKSTART", "--json"), "plan", "`--json` lists every node:", lambda d: d),
    (("show", "latest", "--json"), "show", "`steps`: an array of", lambda d: d["steps"]),
    (("logs", "latest~3:train", "--json"), "logs", "`--json`: one object", lambda d: d),
    (("logs", "latest~3:train", "--json"), "logs", "attempts}`, each attempt", lambda d: d["attempts"]),
    (("diff", "tiny@1", "tiny@2", "--json"), "diff", "`a` and `b` (each", lambda d: [d["a"], d["b"]]),
    (("diff", "tiny@1", "tiny@2", "--json"), "diff", "`model` being", lambda d: d["a"]["model"]),
    (("diff", "latest~3", "latest", "--json"), "diff", "`only_in_a` and `only_in_b` (arrays of",
     lambda d: d["only_in_a"] + d["only_in_b"]),
    (("diff", "latest~4", "latest~3", "--json"), "diff", "`steps`\n(an array of", lambda d: d["steps"]),
    (("diff", "latest~4", "latest~3", "--json"), "diff", "`metrics` (an\narray of", lambda d: d["metrics"]),
    (("diff", "latest~4", "latest~3", "--json"), "diff", "`summary` (", lambda d: d["summary"]),
    (("doctor", "--json"), "doctor", "`--json`:", lambda d: d),
    (("cache", "ls", "--json"), "cache", "`ls [--json]`: every artifact:", lambda d: d),
    (("cache", "verify", "--json"), "cache", "`--json`:", lambda d: d),
    (("cache", "du", "--json"), "cache", "`du [--by pipeline|step|run] [--json]`", lambda d: d),
    (("cache", "du", "--by", "run", "--json"), "cache", "`du [--by pipeline|step|run] [--json]`", lambda d: d),
    (("models", "ls", "--json"), "models", "`--json`: an array of", lambda d: d),
    (("models", "show", "tiny", "--json"), "models", "(`--json`:", lambda d: d),
    (("models", "show", "tiny@2", "--json"), "models", "`show NAME@VERSION [--json]`", lambda d: d),
    (("models", "show", "tiny@2", "--json"), "models", "`run` as", lambda d: d["run"]),
    (("models", "show", "tiny@2", "--json"), "models", "each event", lambda d: d["events"]),
    (("lineage", "tiny@2", "--format", "json"), "models", "`show NAME@VERSION [--json]`", lambda d: d["model"]),
    (("monitor", "tiny", "--batch", "BATCH", "--json"), "monitor", "`--json`:\n", lambda d: d),
    (("monitor", "tiny", "--history", "--json"), "monitor", "(with `--history`: an array, oldest first, of",
     lambda d: d),
    (("lineage", "latest~3:train", "--format", "json"), "lineage", "`--format json` gives", lambda d: d),
]


def _args(orch, args: tuple[str, ...]) -> list[str]:
    batch = str(Path(orch.quickstart).parent.parent / "batch.csv")
    return [{"QUICKSTART": orch.quickstart, "BATCH": batch}.get(a, a) for a in args]


@pytest.mark.parametrize(("args", "section", "anchor", "part"), DOCUMENTED,
                         ids=[f"{' '.join(a)} / {anchor.strip()}" for a, _, anchor, _ in DOCUMENTED])
def test_every_key_list_of_cli_md_is_what_its_command_prints(orch, args, section, anchor, part) -> None:
    spec, is_open = parse_keys(_after(_section(section), anchor))
    real = part(orch(*_args(orch, args)))
    assert real, f"orch {' '.join(args)} printed nothing to compare"
    assert not mismatches(spec, is_open, real), f"orch {' '.join(args)}, docs/cli.md after {anchor!r}"


@pytest.mark.parametrize(("args", "section", "anchor"), [
    (("show", "latest", "--json"), "show", "`--json`: an object\nwith"),
    (("diff", "latest~4", "latest~3", "--json"), "diff", "`--json`: one object with"),
])
def test_every_key_a_described_document_has_is_named_in_cli_md(orch, args, section, anchor) -> None:
    """`orch show --json` and `orch diff --json` are described in sentences: each top-level key must be named."""
    named = set(re.findall(r"`(\w+)`", _after(_section(section), anchor)))
    missing = sorted(set(orch(*_args(orch, args))) - named)
    assert not missing, f"orch {' '.join(args)} prints keys docs/cli.md does not name: {missing}"


def _json_helps() -> list[tuple[tuple[str, ...], str]]:
    """Each command whose --json (or --format) help lists keys: (its words, that help)."""
    found = []

    def walk(group: click.Group, path: tuple[str, ...]) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, (*path, name))
                continue
            for param in command.params:
                if isinstance(param, click.Option) and "--json" in param.opts and "{" in (param.help or ""):
                    found.append(((*path, name), param.help or ""))
    walk(cli, ())
    return found


HELP_ARGS = {("logs",): ("logs", "latest~3:train", "--json"), ("doctor",): ("doctor", "--json"),
             ("cache", "ls"): ("cache", "ls", "--json"), ("cache", "verify"): ("cache", "verify", "--json"),
             ("cache", "du"): ("cache", "du", "--json"),
             ("models", "ls"): ("models", "ls", "--json")}


def test_every_command_whose_json_help_lists_keys_is_checked() -> None:
    assert sorted(path for path, _ in _json_helps()) == sorted(HELP_ARGS)


@pytest.mark.parametrize(("path", "help_text"), _json_helps(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_the_keys_a_json_help_lists_are_what_the_command_prints(orch, path, help_text) -> None:
    """`orch logs --help` listed an attempt's keys without `recorded`, which the attempt has."""
    real = orch(*HELP_ARGS[path])
    spec, is_open = parse_keys(help_text)
    found = mismatches(spec, is_open, real)
    assert not found, f"orch {' '.join(path)} --help"


def test_every_key_a_lineage_node_has_is_in_the_kind_table_of_cli_md(orch) -> None:
    """`orch lineage --format json` nodes: each key of a step, artifact or file node is named in its row."""
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*) \|$", _after(_section("lineage"), "| `kind` | keys |"), re.M))
    graph = orch("lineage", "latest~3:evaluate", "--format", "json")
    undocumented = {f"{node['kind']}.{key}" for node in graph["nodes"] for key in node
                    if key not in ("id", "kind", "label") and f"`{key}`" not in rows.get(node["kind"], "")}
    assert {node["kind"] for node in graph["nodes"]} >= {"step", "artifact"}
    assert not undocumented, "keys of lineage nodes docs/cli.md's kind table does not name"


def test_orch_run_json_is_the_document_orch_show_json_prints(orch) -> None:
    """docs/cli.md: `orch run --json` prints the run "as `orch show --json` does", which a job's wrapper relies on."""
    shown = orch("show", orch.run_json["run_id"], "--json")
    assert list(orch.run_json) == list(shown)
    assert [list(step) for step in orch.run_json["steps"]] == [list(step) for step in shown["steps"]]
