"""An artifact its materializer cannot decode: the message says whether library versions or the
materializer are at fault, from the package versions the run that stored it recorded."""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import pytest

from orchestrator import pipeline, step
from orchestrator.context import Context
from orchestrator.environment import package_versions
from orchestrator.errors import UndecodableArtifactError
from orchestrator.serialize import register_materializer, unregister_materializer


class Bag:
    def __init__(self, *words: str) -> None:
        self.words = words


class BagMaterializer:
    """Writes a bag's words, then reads them back as keywords: a bug a real materializer could have."""

    name = "test.bag"
    needs_unpickling = False

    def can_write(self, value: object) -> bool:
        return isinstance(value, Bag)

    def write(self, value: Any, f: BinaryIO) -> dict[str, Any]:
        f.write(json.dumps(list(value.words)).encode())
        return {}

    def read(self, data: memoryview, meta: dict[str, Any]) -> object:
        return Bag(**json.loads(bytes(data)))  # TypeError: a list is not a mapping


@step
def bag(n: int) -> Bag:
    return Bag(*(f"w{i}" for i in range(n)))


@pipeline
def bagged(n: int = 3):
    return bag(n)


@pytest.fixture
def stored(tmp_path):
    register_materializer(BagMaterializer())
    try:
        store = tmp_path / "store"
        run = bagged.run(store=str(store))
        assert run.status == "succeeded"
        yield Context.open(store), run
    finally:
        unregister_materializer("test.bag")


def _record_packages(ctx: Context, run_id: str, packages: dict[str, str] | None) -> None:
    with ctx.lineage.transaction() as c:
        c.execute("UPDATE runs SET packages=? WHERE run_id=?", (json.dumps(packages) if packages else None, run_id))


def test_same_versions_name_the_materializer_not_the_libraries(stored) -> None:
    """It said 'Check that library versions match those of the process that stored it', though they did."""
    ctx, run = stored
    with pytest.raises(UndecodableArtifactError) as caught:
        run.output()
    message = str(caught.value)
    assert "\n" not in message and "library versions" not in message
    assert "materializer 'test.bag' cannot decode it: TypeError" in message
    assert ("had this process's package versions, so materializer 'test.bag' accepted a value of type "
            "tests.test_undecodable.Bag that it cannot rebuild") in message
    assert "Fix the read() of materializer 'test.bag'" in message
    assert isinstance(caught.value.__cause__, TypeError)


def test_other_versions_name_the_package_that_differs(stored) -> None:
    ctx, run = stored
    _record_packages(ctx, run.id, {**package_versions(), "pyarrow": "1.0.0"})
    with pytest.raises(UndecodableArtifactError, match=r"It was stored under pyarrow 1\.0\.0, and this process "
                       r"has pyarrow [\d.]+: install pyarrow 1\.0\.0 here \(pip install 'pyarrow==1\.0\.0'\)"):
        run.output()


def test_unrecorded_versions_keep_the_versions_advice(stored) -> None:
    ctx, run = stored
    _record_packages(ctx, run.id, None)
    with pytest.raises(UndecodableArtifactError,
                       match="Check that library versions match those of the process that stored it"):
        run.output()
