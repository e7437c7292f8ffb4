"""ast_text.dump: a syntax tree reads the same under every supported Python, as 3.11 wrote it."""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path

import pytest

from orchestrator import ast_text

ROOT = Path(__file__).parent.parent

# Syntax of every kind a step may hold: decorators, a class with keywords, async code, f-strings
# with a nested format spec (which 3.12.1 parsed with an extra empty constant), match, except*,
# walrus, lambda defaults, slices. Its text is pinned: Python 3.12 added type_params to each
# definition and 3.13 leaves empty lists out of ast.dump, so a step's key changed with Python.
SOURCE = '''
@dataclass(frozen=True)
class Report(Base, metaclass=Meta):
    """Text."""
    rows: list[int] = field(default_factory=list)

    async def render(self, width: int = 8, *args, sep: str = ", ", **kw) -> str:
        lines = [f"  {r.name:<{width}}  {r.score:>8.3f} {r!r}" for r in self.rows if (n := len(r)) > 0]
        match self.rows:
            case [first, *rest] if first:
                total = lambda x, y=2: x + y
            case {"k": value}:
                pass
            case _:
                raise ValueError(f"{width=}")
        async with lock as held:
            yield sep.join(lines)
        try:
            del kw["x"]
        except* KeyError:
            pass
        return (await other(*args, **kw))[1:-1:2]
'''
DIGEST_OF_311_TEXT = "f4f303f13e342796"  # of ast.dump's text under Python 3.11


def test_the_same_source_reads_the_same_under_every_python() -> None:
    text = ast_text.dump(ast.parse(SOURCE).body[0])
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == DIGEST_OF_311_TEXT


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="ast.dump writes 3.11's text only under 3.11")
def test_under_311_the_text_is_ast_dumps_so_no_key_changed() -> None:
    # Every statement of this package: keys made before ast_text existed stay as they were.
    checked = 0
    for path in sorted((ROOT / "orchestrator").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            assert ast_text.dump(node) == ast.dump(node, annotate_fields=True, include_attributes=False), path
            checked += 1
    assert checked > 500


def test_syntax_only_newer_pythons_have_keeps_its_fields() -> None:
    plain = ast_text.dump(ast.parse("def f(x):\n    return x\n").body[0])
    assert "type_params" not in plain
    if sys.version_info >= (3, 12):
        generic = ast_text.dump(ast.parse("def f[T](x):\n    return x\n").body[0])
        assert "type_params=[TypeVar(name='T')]" in generic
