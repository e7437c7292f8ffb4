"""Issue 5, item 13: the model server refuses bad requests with a 4xx that names the problem.

One small model is trained and served once for the module. Every bad input
(wrong content type, malformed or deeply nested JSON, NaN/inf, missing, extra
and mistyped columns, pickle and npz bodies, too many records, a body over the
size cap) must get a 4xx with a ``detail``, never a 5xx; after each, a good
request is still served. An escape is a 5xx, an exception, or a bad input
accepted. The body cap is applied from ``Content-Length`` before the body is
read, and ``orch serve`` binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import io
import json
import pickle
import warnings
from typing import Any

import numpy as np
import pytest

from orchestrator.context import Context
from tests.test_lifecycle import PIPELINE

pytest.importorskip("fastapi")
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A client of the server of one freshly trained model, its store, and one good record."""
    from datasource import customers, write_table

    from orchestrator.loader import load_pipeline
    from orchestrator.serve import create_app

    with warnings.catch_warnings():  # starlette's note about httpx versions, not ours to fix
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    base = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as mp:  # the signing key stays under tmp, as in the suite's conftest
        mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
        mp.delenv("ORCH_SIGNING_KEY", raising=False)
        data = write_table(customers(600, seed=0), base / "customers.csv")
        run = load_pipeline(str(PIPELINE)).run(store=str(base / "store"), data=data, C=[1e-3])
        assert run.status == "succeeded", run.error
        app = create_app(Context.open(base / "store"), "churn@production")
    client = TestClient(app, raise_server_exceptions=False)  # a 5xx is counted, not raised
    features = client.get("/model").json()["features"]
    record = {f["name"]: (30.0 if f["kind"] == "number" else f["categories"][0]) for f in features}
    with client:
        yield {"client": client, "app": app, "store": base / "store", "record": record}


def _judge(served: dict[str, Any], answer: Any) -> tuple[bool, str]:
    """(refused properly, what happened): a 4xx with a detail, and a good request served right after."""
    detail = answer.json().get("detail", "") if answer.headers.get("content-type") == "application/json" else ""
    good = served["client"].post("/predict", json=[served["record"]])
    ok = 400 <= answer.status_code < 500 and isinstance(detail, str) and bool(detail) and good.status_code == 200
    return ok, f"{answer.status_code} {detail or answer.text[:80]!r}; then good request {good.status_code}"


def _bad_requests(record: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(name, keyword arguments of client.post, a word the detail must contain)."""
    npz = io.BytesIO()
    np.savez(npz, age=np.arange(3.0))
    body = json.dumps([record])
    return [
        ("not json", {"content": b"{not json", "headers": JSON}, "JSON"),
        ("not utf-8", {"content": b'[{"age": "\xff"}]', "headers": JSON}, "JSON"),
        ("pickle payload", {"content": pickle.dumps([record]), "headers": {"Content-Type": "application/python-pickle"}},
         "JSON"),
        ("npz payload", {"content": npz.getvalue(), "headers": {"Content-Type": "application/octet-stream"}}, "JSON"),
        ("NaN", {"content": body.replace("30.0", "NaN", 1), "headers": JSON}, "NaN"),
        ("Infinity", {"content": body.replace("30.0", "Infinity", 1), "headers": JSON}, "Infinity"),
        ("-Infinity", {"content": body.replace("30.0", "-Infinity", 1), "headers": JSON}, "Infinity"),
        ("1e400", {"content": body.replace("30.0", "1e400", 1), "headers": JSON}, "not finite"),
        ("missing column", {"json": [{k: v for k, v in record.items() if k != "age"}]}, "missing column age"),
        ("extra column", {"json": [{**record, "surprise": 1}]}, "unknown column surprise"),
        ("string for a number", {"json": [{**record, "age": "forty"}]}, "column age must be a number"),
        ("bool for a number", {"json": [{**record, "age": True}]}, "column age must be a number"),
        ("object for a number", {"json": [{**record, "age": {"v": 1}}]}, "column age must be a number"),
        ("number for a category", {"json": [{**record, "contract": 3}]}, "column contract must be a string"),
        ("list for a category", {"json": [{**record, "contract": ["a"]}]}, "column contract must be a string"),
        ("empty array", {"json": []}, "non-empty"),
        ("a bare string", {"json": "hello"}, "non-empty"),
        ("records not a list", {"json": {"records": 5}}, "non-empty"),
        ("records not objects", {"json": [1, 2]}, "JSON object"),
        ("too many records", {"json": [{}] * 10_001}, "at most"),  # small records: under the byte cap
        ("body over the cap", {"content": b"[" + b" " * (1 << 20) + b"]", "headers": JSON}, "limit"),
        ("chunked body over the cap", {"content": iter([b"[" + b" " * (1 << 19)] * 3 + [b"]"])}, "limit"),
        ("Content-Length not a number", {"content": b"[]", "headers": {**JSON, "Content-Length": "-1"}}, "Content-Length"),
    ]


def _header_only_413(app: Any) -> tuple[bool, str]:
    """A request claiming 10 GB: answered 413 from the header, the body never read."""
    sent: list[dict[str, Any]] = []
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"[]", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
             "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(10 << 30).encode())]}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    detail = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))["detail"]
    return status == 413 and reads == 0 and "limit" in detail, f"{status} {detail!r}, body read {reads} times"


def test_bad_requests_get_a_4xx_naming_the_problem(served, figure):
    client = served["client"]
    bad = rejected = 0
    escapes = []
    for name, request, word in _bad_requests(served["record"]):
        bad += 1
        ok, what = _judge(served, client.post("/predict", **request))
        if ok and word not in what:
            ok, what = False, f"{what} (the detail does not say {word!r})"
        rejected += ok
        if not ok:
            escapes.append((name, what))
    bad += 1
    ok, what = _header_only_413(served["app"])
    rejected += ok
    if not ok:
        escapes.append(("Content-Length of 10 GB", what))
    figure(bad_inputs=bad, rejected=rejected, escapes=len(escapes))
    assert not escapes and rejected == bad, escapes
    assert client.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize("name", ["text/plain", "form data", "deeply nested JSON", "integer too large for a float"])
def test_bad_request_edge_cases(served, name, figure):
    record = served["record"]
    body = json.dumps([record])
    request = {
        "text/plain": {"content": body, "headers": {"Content-Type": "text/plain"}},
        "form data": {"content": body, "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        "deeply nested JSON": {"content": b"[" * 50_000 + b"]" * 50_000, "headers": JSON},
        "integer too large for a float": {"content": body.replace("30.0", "1" + "0" * 400, 1), "headers": JSON},
    }[name]
    ok, what = _judge(served, served["client"].post("/predict", **request))
    figure(bad_inputs=1, rejected=int(ok), escapes=int(not ok))
    assert ok, what


def test_orch_serve_binds_loopback_by_default(served, monkeypatch):
    """`orch serve churn` binds 127.0.0.1:8000 itself and hands that socket to uvicorn."""
    import socket

    uvicorn = pytest.importorskip("uvicorn")
    from click.testing import CliRunner

    from orchestrator import serve
    from orchestrator.cli import cli

    asked: dict[str, Any] = {}
    handed: list[str] = []

    def bind(host: str, port: int) -> list[socket.socket]:  # the real port 8000 may be taken on this machine
        asked.update(host=host, port=port)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        return [sock]

    monkeypatch.setattr(serve, "bind", bind)
    def run(self: Any, sockets: list[socket.socket] | None = None) -> None:
        handed.extend(sock.getsockname()[0] for sock in sockets or [])
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(served["store"].parent / "config"))  # the key that signed the model
    done = CliRunner().invoke(cli, ["--store", str(served["store"]), "serve", "churn"])
    assert done.exit_code == 0, done.output
    assert asked == {"host": "127.0.0.1", "port": 8000}
    assert handed == ["127.0.0.1"]


def test_a_record_with_many_unknown_keys_gets_a_short_detail(served, figure):
    """60,000 unknown keys are named ten at a time, not all (the detail was over 400 KB)."""
    record = {**served["record"], **{f"k{i:05d}": 1 for i in range(60_000)}}
    answer = served["client"].post("/predict", json=[record])
    ok, what = _judge(served, answer)
    detail = answer.json()["detail"]
    figure(bad_inputs=1, rejected=int(ok), escapes=int(not ok))
    assert ok and answer.status_code == 422, what
    assert "unknown columns k00000, k00001" in detail and "k00010" not in detail
    assert "… and 59990 more" in detail and len(detail) < 300


def test_a_record_with_a_huge_unknown_key_gets_a_short_detail(served):
    answer = served["client"].post("/predict", json=[{**served["record"], "x" * 100_000: 1}])
    assert answer.status_code == 422 and len(answer.json()["detail"]) < 200


def test_a_record_the_model_itself_refuses_is_a_422_not_a_500(served, monkeypatch, figure):
    """Valid JSON that the model cannot take (a null it cannot impute, say) is the client's problem."""
    loaded = served["app"].state.loaded

    def refuse(frame):
        raise ValueError("Input X contains NaN.\nmore detail")

    monkeypatch.setattr(loaded, "predict", refuse)
    answer = served["client"].post("/predict", json=[served["record"]])
    monkeypatch.undo()
    ok, what = _judge(served, answer)
    figure(bad_inputs=1, rejected=int(ok), escapes=int(not ok))
    assert ok and answer.status_code == 422 and "Input X contains NaN." in answer.json()["detail"], what
