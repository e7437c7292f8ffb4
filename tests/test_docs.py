"""The documentation a newcomer reads agrees with the package.

README.md and docs/*.md are edited by many hands; these checks catch the drift a reader
trips over: a link to a page or heading that no longer exists, and an ``orch`` option that
``--help`` lists but docs/cli.md does not explain.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from orchestrator.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page: lower case, punctuation dropped, spaces as dashes."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if fenced or not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_exists(page: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and anchor not in _anchors(linked):
            broken.append(f"{target} (no such heading in {linked.name})")
    assert not broken, f"{page.name}: {broken}"


def _sections(text: str) -> dict[str, str]:
    """docs/cli.md split by its ``## `orch NAME ...` `` headings (kept); '' is the text above them."""
    parts = re.split(r"^(## `orch ([a-z]+).*)$", text, flags=re.MULTILINE)
    sections = {"": parts[0]}
    for heading, name, body in zip(parts[1::3], parts[2::3], parts[3::3]):
        sections[name] = sections.get(name, "") + heading + body
    return sections


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = [(prefix, group)]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


def test_cli_md_explains_every_option_that_help_lists() -> None:
    sections = _sections((ROOT / "docs" / "cli.md").read_text())
    missing = []
    for path, command in _commands(cli):
        if path and path[0] not in sections:
            missing.append(f"orch {' '.join(path)}: no section")
            continue
        text = sections[path[0] if path else ""]
        for param in command.params:
            if not isinstance(param, click.Option) or "--help" in param.opts:
                continue
            if not any(re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text) for opt in param.opts):
                missing.append(f"orch {' '.join(path)} {'/'.join(param.opts)}")
    assert not missing, f"options --help lists but docs/cli.md does not explain: {missing}"


def _options(command: click.Command) -> set[str]:
    return {"-h", "--help"} | {opt for param in command.params
                               for opt in (*param.opts, *getattr(param, "secondary_opts", []))}


def _orch_command_lines(text: str) -> list[str]:
    """Every `orch ...` command a page shows: in fenced blocks (up to a # comment) and in code spans."""
    lines = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            lines += re.findall(r"(?<![\w/-])orch (?:-|[a-z])[^#`]*", line)
        else:
            lines += re.findall(r"`+(orch [^`]+)`+", line)
    return lines


def _unknown_options(text: str) -> list[str]:
    """Options written on an `orch` command line that neither `orch` nor that command takes."""
    unknown = []
    for line in _orch_command_lines(text):
        words = line.split()[1:]
        command = next((cli.commands[w] for w in words if w in cli.commands), None)
        if command is None:
            continue
        allowed = _options(cli) | _options(command)
        if isinstance(command, click.Group):  # `orch cache ls | verify [--repair] | gc --keep-last 5`
            allowed |= {opt for w in words if w in command.commands for opt in _options(command.commands[w])}
        unknown += [f"{opt} in `{line.strip()}`" for opt in re.findall(r"(?<![\w-])(?:--[a-z][\w-]*|-[a-zA-Z])\b",
                                                                         " ".join(words)) if opt not in allowed]
    return unknown


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_option_an_orch_command_line_shows_is_taken_by_that_command(page: Path) -> None:
    """A reader types the examples as written: an option renamed or moved in the CLI must be renamed here too."""
    assert not _unknown_options(page.read_text()), page.name


def test_an_option_a_command_does_not_take_is_found() -> None:
    text = "text `orch runs --jsn`\n```bash\norch cache gc --keep 5   # --bogus\norch --store s3://b lineage X --upstrem\n```\n"
    assert _unknown_options(text) == ["--jsn in `orch runs --jsn`", "--keep in `orch cache gc --keep 5`",
                                      "--upstrem in `orch --store s3://b lineage X --upstrem`"]
    assert _unknown_options("`orch run f.py -p a=1 --executor process --workers 2` `orch cache verify --repair`") == []


def test_every_option_and_command_says_what_it_does_in_its_help() -> None:
    """`orch dag --help` listed `--format [tree|dot|mermaid]` with no word on what it does."""
    silent = [f"orch {' '.join(path)} {'/'.join(param.opts)}" for path, command in _commands(cli)
              for param in command.params if isinstance(param, click.Option) and not param.help]
    silent += [f"orch {' '.join(path)}" for path, command in _commands(cli) if not command.help]
    assert not silent, f"no help text: {silent}"


def _misnested_code_spans(text: str) -> list[str]:
    """Single-backtick code spans that begin or end with a space: a span nested in another.

    ```error: ... `orch doctor` lists ...``` written with single backticks closes at the inner
    backtick, so the message renders as code, plain text, code; the outer span needs double
    backticks. Fenced blocks are left out.
    """
    text = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        runs = list(re.finditer(r"`+", paragraph))
        i = 0
        while i < len(runs):
            width = len(runs[i].group(0))
            close = next((k for k in range(i + 1, len(runs)) if len(runs[k].group(0)) == width), None)
            if close is None:
                found.append(f"unclosed: {paragraph[runs[i].start():][:60]!r}")
                break
            content = paragraph[runs[i].end():runs[close].start()]
            if width == 1 and content.strip() and (content[0].isspace() or content[-1].isspace()):
                found.append(repr(content[:60]))
            i = close + 1
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_code_span_is_nested_in_another(page: Path) -> None:
    assert not _misnested_code_spans(page.read_text()), page.name


def test_a_nested_code_span_is_found() -> None:
    assert _misnested_code_spans("stops with `error: bad (…). `orch doctor` lists it.` Then") != []
    assert _misnested_code_spans("stops with ``error: bad. `orch doctor` lists it.`` Then") == []


def test_cli_md_lists_every_environment_variable_the_package_reads() -> None:
    read = set()
    for source in (ROOT / "orchestrator").rglob("*.py"):
        read |= set(re.findall(r"\bORCH_[A-Z_]*[A-Z]\b", source.read_text()))
    listed = set(re.findall(r"^\| `(ORCH_[A-Z_]+)`(?:, `(ORCH_[A-Z_]+)`)?", (ROOT / "docs" / "cli.md").read_text(),
                            flags=re.MULTILINE))
    documented = {name for row in listed for name in row if name}
    assert read <= documented, f"not in the environment table of docs/cli.md: {sorted(read - documented)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_table_row_has_as_many_cells_as_its_header(page: Path) -> None:
    """A `|` inside a cell (`a | b` in a code span too) splits it unless written `\\|`."""
    uneven = []
    header = None
    fenced = False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not line.startswith("|"):
            header = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line))
        if header is None:
            header = cells
        elif cells != header:
            uneven.append(f"line {number}: {cells - 1} cells, the header has {header - 1}")
    assert not uneven, f"{page.name}: {uneven}"


def test_the_readmes_tested_floors_are_the_ones_pyproject_declares() -> None:
    """The README names the minimum versions the suite was run with; a floor raised in pyproject.toml
    and not there (or the other way round) tells a user with older packages the wrong thing."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["serve"],
                *project["optional-dependencies"]["dask"]]
    floors = {}
    for requirement in declared:
        match = re.fullmatch(r"([\w-]+)(?:\[[\w,]+\])?>=([\d.]+)", requirement)
        assert match, requirement
        floors[match.group(1)] = match.group(2)
    paragraph = " ".join((ROOT / "README.md").read_text().split("tested, not guessed")[1].split("\n\n")[0].split())
    named = dict(re.findall(r"([a-z][\w/-]*) (\d[\d.]*)", paragraph))
    named = {("dask" if name == "dask/distributed" else name): version for name, version in named.items()}
    for name in ("pandas", "numpy", "pyarrow", "scikit-learn", "scipy", "click", "dask", "fastapi", "uvicorn", "httpx"):
        assert named.get(name) == floors[name], (name, named.get(name), floors[name])


def test_every_python_name_the_docs_give_exists() -> None:
    """`orchestrator.registry.load_model`, `orchestrator.serialize.register_materializer`...: a name a reader
    imports as written, which a rename or a move would otherwise leave pointing at nothing."""
    import importlib

    missing = []
    for page in PAGES:
        for name in sorted(set(re.findall(r"\borchestrator(?:\.[A-Za-z_]\w*)+", page.read_text()))):
            parts = name.split(".")
            for i in range(len(parts), 0, -1):  # the longest prefix that is a module, then attributes
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                except ImportError:
                    continue
                try:
                    for attr in parts[i:]:
                        obj = getattr(obj, attr)
                except AttributeError:
                    missing.append(f"{page.name}: {name}")
                break
            else:
                missing.append(f"{page.name}: {name}")
    assert not missing, missing


def test_the_readme_shows_every_command_orch_help_lists_and_no_other() -> None:
    """The front page's command list and `orch --help` agree: `orch dag` was missing from it."""
    shown = {line.split()[1] for line in _orch_command_lines((ROOT / "README.md").read_text())
             if len(line.split()) > 1 and not line.split()[1].startswith("-")}
    assert shown - set(cli.commands) == set(), "README shows commands orch does not have"
    assert set(cli.commands) - shown == set(), "orch --help lists commands README does not show"


def test_store_md_shows_everything_a_run_leaves_in_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The layout block of docs/store.md lacked `keys.lock`, which every run writes beside metadata.db."""
    from orchestrator import pipeline, step

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    @step
    def double(x: int) -> object:
        return {"doubled": [x * 2]}

    @pipeline
    def tiny(x: int = 2):
        return double(x)

    assert tiny.run(store=str(tmp_path / "cache")).status == "succeeded"
    layout = re.search(r"^```\n(cache/\n.*?)^```", (ROOT / "docs" / "store.md").read_text(), re.S | re.M)
    assert layout, "docs/store.md no longer opens with the layout of cache/"
    shown = {line.split()[0].split("/")[0] for line in layout.group(1).splitlines()[1:]}
    made = {re.sub(r"-(wal|shm)$", "", p.name) for p in (tmp_path / "cache").iterdir()}  # SQLite's files of metadata.db
    assert made <= shown
