"""The store a command works on: the artifact store and its metadata database, opened together.

Resolves where the store is (argument, ``$ORCH_STORE``, ``./cache``) and
reads the durability settings from the environment. Loading an artifact by
digest goes through here so that its recorded checksum (and, for pickled
objects, its signature) is checked before anything is deserialized.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError
from orchestrator.lineage import Lineage
from orchestrator.store import ArtifactInfo, ArtifactStore

DEFAULT_STORE = "cache"


def store_root(store: str | os.PathLike[str] | None) -> Path:
    """The store folder: the argument, else ``$ORCH_STORE``, else ``./cache``."""
    return Path(store or os.environ.get("ORCH_STORE") or DEFAULT_STORE)


@dataclass
class Context:
    """The store and metadata database a run or a CLI command works on."""

    root: Path
    store: ArtifactStore
    lineage: Lineage

    @classmethod
    def open(cls, store: str | os.PathLike[str] | None = None) -> Context:
        root = store_root(store)
        if root.exists() and not root.is_dir():
            raise UserError(f"store path {root} is a file, not a folder. Pass --store DIR.")
        durable = os.environ.get("ORCH_FSYNC", "1") != "0"
        sync = "FULL" if os.environ.get("ORCH_FSYNC") == "all" else "NORMAL"
        return cls(root, ArtifactStore(root, fsync=durable), Lineage(root / "metadata.db", synchronous=sync))

    def load(self, digest: str) -> Any:
        """Load an artifact by digest, verified against its checksum."""
        return self.store.get(self.artifact_info(digest))

    def artifact_info(self, digest: str) -> ArtifactInfo:
        row = self.lineage.artifact_row(digest)
        if row is None:
            return self.store.read_header(digest)
        return ArtifactInfo(digest=row["digest"], materializer=row["materializer"], type_name=row["type"],
                            size=row["size"], checksum=row["checksum"], meta=row["meta"],
                            inline=row["inline"])
