"""Fixtures of the reliability suite: a project with its pipelines, a private signing key, figure lines.

Each test of issue 5 prints exactly one figure line (``faults=N survived=N
data_lost=N``, ``bad_inputs=N rejected=N escapes=N`` or ``payloads=N
executed=N``) through the terminal reporter, so that it shows in the
``make test`` log even though pytest captures output.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PIPELINES

RELIABILITY_PIPELINES = Path(__file__).parent / "pipelines"


@pytest.fixture(autouse=True)
def _private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The signing key is created under tmp_path, never in the user's config directory."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("ORCH_SIGNING_KEY", raising=False)
    monkeypatch.delenv("ORCH_FAULT", raising=False)
    return config


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """tests/pipelines plus tests/reliability/pipelines, copied to tmp_path (overrides the shared one)."""
    dest = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(PIPELINES, dest, ignore=ignore)
    shutil.copytree(RELIABILITY_PIPELINES, dest, ignore=ignore, dirs_exist_ok=True)
    return dest


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[..., str]:
    """``figure(faults=3, survived=3, data_lost=0)`` prints the test's one figure line."""

    def emit(**counts: int) -> str:
        line = f"{request.node.name}: " + " ".join(f"{k}={v}" for k, v in counts.items())
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            print(line)
            return line
        with capture.global_and_fixture_disabled():  # else fd capture swallows it
            reporter.write("\n" + line + "\n")  # on its own line, also between -q's dots
        return line

    return emit
