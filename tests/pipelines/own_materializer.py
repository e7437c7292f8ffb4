"""A materializer registered at the top of the file (in the driver only), for a class of the file."""

import json
from dataclasses import dataclass

from orchestrator import pipeline, step
from orchestrator.serialize import register_materializer


@dataclass
class Vocab:
    words: list[str]


class VocabMaterializer:
    name = "test.vocab"
    needs_unpickling = False

    def can_write(self, value: object) -> bool:
        return isinstance(value, Vocab)

    def write(self, value, f) -> dict:  # type: ignore[no-untyped-def]
        f.write(json.dumps(value.words).encode())
        return {"n": len(value.words)}

    def read(self, data: memoryview, meta: dict) -> Vocab:
        return Vocab(json.loads(bytes(data)))


register_materializer(VocabMaterializer())


@step
def build(n: int) -> Vocab:
    return Vocab([f"w{i}" for i in range(n)])  # big enough for an object file, not inline


@step
def count(vocab: Vocab) -> int:
    return len(vocab.words)


@pipeline
def own_materializer(n: int = 2000):
    return count(build(n))
