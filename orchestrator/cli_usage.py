"""The command groups of ``orch`` and the wording of its usage mistakes, the same on every click it supports.

click words an unknown command or option differently from one release to the next:
before 8.4 it suggests no command for ``orch runz`` and says ``No such option: --jsn``.
A user on the oldest click ``orch`` installs with (8.2) gets the same one line, and the
same suggestion, as on the newest.
"""

from __future__ import annotations

from difflib import SequenceMatcher, get_close_matches
from typing import Any

import click


def _suggestion(matches: list[str]) -> str:
    """click's own wording of close matches (8.4 and later): one, or several in brackets."""
    if not matches:
        return ""
    names = ", ".join(repr(name) for name in sorted(matches))
    return f" Did you mean {names}?" if len(matches) == 1 else f" (Did you mean one of: {names}?)"


def _closest(name: str, matches: list[str]) -> list[str]:
    """The matches about as close to ``name`` as the closest: ``--jsn`` is ``--json``, not also ``--since``.

    click offers every option above its cutoff; a command with many options then
    answers the commonest typo with a list, the right one among near misses.
    """
    if len(matches) < 2:
        return matches
    ratios = {m: SequenceMatcher(None, name, m).ratio() for m in matches}
    best = max(ratios.values())
    return [m for m in matches if ratios[m] >= best - 0.15]


_RUN_AGAIN = ("run the pipeline again: `orch run FILE` reuses each step that finished (cached) and runs the "
              "rest, and `--rerun STEP` forces one")
#: Commands of other orchestrators (Metaflow's `resume`, Kedro's `viz`) and the command that does it here.
_PEER_COMMANDS = {
    "resume": _RUN_AGAIN,
    "retry": _RUN_AGAIN,
    "visualize": "`orch dag FILE` draws the pipeline (--format dot|mermaid)",
    "viz": "`orch dag FILE` draws the pipeline (--format dot|mermaid)",
    "graph": "`orch dag FILE` draws the pipeline (--format dot|mermaid)",
    "status": "`orch runs` lists the runs, `orch show RUN_ID` the steps of one",
}


class OrderedGroup(click.Group):
    """A group that lists its commands in the order they are defined in ``--help``, and suggests the
    commands nearest to an unknown one."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # `orch cache ls | head -1`: the rest is not wanted, which is no failure (click's answer is exit 1,
            # failing a script's pipeline under `set -o pipefail`). Not for `orch run`, whose exit says
            # how the run went.
            if ctx.invoked_subcommand == "run":
                raise
            from orchestrator.tables import reader_gone

            reader_gone()

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        name = click.utils.make_str(args[0]) if args and ctx.parent is None else ""
        if name in _PEER_COMMANDS and self.get_command(ctx, name) is None:
            raise click.UsageError(f"No such command {name!r}: {_PEER_COMMANDS[name]}.", ctx)
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            if type(exc) is not click.UsageError or not args:
                raise  # click 8.4 or later suggested the commands itself (NoSuchCommand), or no command
            name = click.utils.make_str(args[0])
            if ctx.token_normalize_func is not None:
                name = ctx.token_normalize_func(name)
            if self.get_command(ctx, name) is not None:
                raise  # not an unknown command: a mistake of another kind
            # Before click 8.4 an unknown command is a bare UsageError, without suggestions.
            raise click.UsageError(f"No such command {name!r}.{_suggestion(get_close_matches(name, self.commands))}",
                                   ctx) from exc


#: Options of other orchestrators' run commands that name the pipeline (Kedro's `kedro run --pipeline`).
_PIPELINE_OPTIONS = frozenset({"--pipeline", "--pipeline-name", "--flow", "--job"})


def usage_message(exc: click.UsageError) -> str:
    """What went wrong, in click 8.4's words whichever click raised ``exc``."""
    habit = _habit_message(exc)
    if habit:
        return habit
    if isinstance(exc, click.NoSuchOption) and exc.message == click.NoSuchOption(exc.option_name).message:
        # click's own message, not one a command gave: before 8.4 it read "No such option: --jsn".
        matches: Any = exc.possibilities or []
        return f"No such option {exc.option_name!r}.{_suggestion(_closest(exc.option_name, list(matches)))}"
    message = exc.format_message().rstrip()
    # A sentence, as the "See `orch ... --help`." after it needs: "Got unexpected extra argument (c)" has no stop.
    return message if message.rstrip(")").endswith((".", "?", "!", ":")) else f"{message}."


def _habit_message(exc: click.UsageError) -> str | None:
    """The way to write what another tool's habit wrote, for ``--pipeline NAME`` and ``-p NAME VALUE``."""
    ctx = exc.ctx
    if ctx is None or ctx.command.name not in ("run", "plan", "dag"):
        return None
    if isinstance(exc, click.NoSuchOption) and exc.option_name in _PIPELINE_OPTIONS:
        return (f"No such option {exc.option_name!r}: name the pipeline after its file, "
                f"`orch {ctx.command.name} FILE:PIPELINE` (as train.py:training).")
    message = exc.format_message()
    if message.startswith("Got unexpected extra argument"):
        bare = [item for item in ctx.params.get("params") or () if "=" not in item]
        extra = message.partition("(")[2].rstrip(")").split()
        if bare and extra:
            return (f"-p {bare[0]} {extra[0]}: a parameter is one word, name=value. "
                    f"Write -p {bare[0]}={extra[0]}.")
    return None
