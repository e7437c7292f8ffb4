"""How the run options are written where the user is: ``--rerun fit`` in a shell, ``rerun="fit"`` in Python.

The same checks and reasons serve ``orch run`` and ``Pipeline.run``; a
message that names the option tells the user what to type, so it must name
it as they pass it. A notebook user told ``--rerun: pipeline 'p' has no step
'fitt'`` or shown the reason ``forced with --rerun`` has to translate it back.
The runner and the planner take a ``Spelling`` and build their messages from
it; ``CLI`` and ``PYTHON`` are the two there are.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spelling:
    """The options of a run as one place writes them (``CLI`` or ``PYTHON``)."""

    cli: bool

    @property
    def rerun(self) -> str:
        """``--rerun`` or ``rerun=``: what forces a step (``--rerun fit``, ``rerun="fit"``)."""
        return "--rerun" if self.cli else "rerun="

    def rerun_of(self, names: list[str]) -> str:
        """``--rerun fit_7, fit_9`` or ``rerun=['fit_7', 'fit_9']``: the names as the user gave them."""
        if self.cli:
            return f"--rerun {', '.join(names)}"
        return f"rerun={names[0]!r}" if len(names) == 1 else f"rerun={names!r}"

    @property
    def no_cache(self) -> str:
        """``--no-cache`` or ``no_cache=True``: what runs every step."""
        return "--no-cache" if self.cli else "no_cache=True"

    def param(self, name: str) -> str:
        """``-p n=VALUE`` or ``n=VALUE``: how a pipeline parameter is given (a keyword, from Python)."""
        return f"-p {name}=VALUE" if self.cli else f"{name}=VALUE"

    def executor(self, name: str) -> str:
        """``--executor sequential`` or ``executor="sequential"``."""
        return f"--executor {name}" if self.cli else f'executor="{name}"'

    @property
    def address(self) -> str:
        """``--address`` or ``address=``: the Dask scheduler to submit to."""
        return "--address" if self.cli else "address="

    def option(self, name: str, placeholder: str = "") -> str:
        """``--store DIR`` or ``store=DIR``: an option of ``orch`` (``store``, ``metadata``) with what it takes."""
        if self.cli:
            return f"--{name.replace('_', '-')}" + (f" {placeholder}" if placeholder else "")
        return f"{name}={placeholder}"

    def given(self, name: str, value: str) -> str:
        """``--metadata s3://x`` or ``metadata='s3://x'``: an option with the value the user gave it."""
        return f"--{name.replace('_', '-')} {value}" if self.cli else f"{name}={value!r}"

    def address_of(self, value: str) -> str:
        """``--address 'tcp://x'`` or ``address='tcp://x'``: a scheduler address as the user gave it."""
        return f"--address '{value}'" if self.cli else f"address={value!r}"

    @property
    def force(self) -> str:
        """``--force`` or ``force=True``: what overrides a safety check (``orch cache gc --force``)."""
        return "--force" if self.cli else "force=True"

    @property
    def first_run(self) -> str:
        """How a store comes to be: ``orch run FILE``, or a pipeline's ``.run()``."""
        return "orch run FILE" if self.cli else "pipeline.run()"


CLI = Spelling(cli=True)
PYTHON = Spelling(cli=False)
