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

from orchestrator import signing
from orchestrator.errors import UntrustedArtifactError, UserError
from orchestrator.lineage import Lineage
from orchestrator.serialize import needs_unpickling
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
        if "\0" in str(root):
            raise UserError("the store path contains a NUL character. Pass --store DIR with a plain path.")
        if root.exists() and not root.is_dir():
            raise UserError(f"store path {root} is a file, not a folder. Pass --store DIR.")
        durable = os.environ.get("ORCH_FSYNC", "1") != "0"
        sync = "FULL" if os.environ.get("ORCH_FSYNC") == "all" else "NORMAL"
        return cls(root, ArtifactStore(root, fsync=durable), Lineage(root / "metadata.db", synchronous=sync))

    def load(self, digest: str) -> Any:
        """Load an artifact by digest, verified against its signature and checksum first."""
        return self.store.get(self.artifact_info(digest))

    def artifact_info(self, digest: str) -> ArtifactInfo:
        """What is recorded about ``digest``, checked so that loading it is safe.

        A pickled artifact must carry a valid signature; one that has no row
        (only an object file) is refused, since nobody signed it. The checksum
        returned then protects the bytes: ``store.get`` checks it before decoding.

        Raises:
            UntrustedArtifactError: A pickled artifact is unsigned or its signature is wrong.
            MissingArtifactError: Neither a row nor an object exists.
            CorruptArtifactError: The object file's header is unreadable (no row).
        """
        row = self.lineage.artifact_row(digest)
        if row is None:
            info = self.store.read_header(digest)
            if needs_unpickling(info.materializer):
                raise UntrustedArtifactError(digest, "its object file has no signed record")
            return info
        info = ArtifactInfo(digest=row["digest"], materializer=row["materializer"], type_name=row["type"],
                            size=row["size"], checksum=row["checksum"], meta=row["meta"],
                            inline=row["inline"])
        if needs_unpickling(info.materializer):
            problem = signing.verify(info, self.signature(digest))
            if problem:
                raise UntrustedArtifactError(digest, problem)
        return info

    def signature(self, digest: str) -> str | None:
        """The recorded signature of ``digest``, if any."""
        row = self.lineage.conn.execute("SELECT hmac FROM signatures WHERE digest=?", (digest,)).fetchone()
        return str(row[0]) if row else None

    def forget_signatures(self, digests: list[str]) -> None:
        """Drop the signatures of artifacts that were removed."""
        with self.lineage.transaction() as c:
            c.executemany("DELETE FROM signatures WHERE digest=?", [(d,) for d in digests])
