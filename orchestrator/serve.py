"""The model server: a FastAPI app answering ``POST /predict``, ``GET /health`` and ``GET /model``.

``create_app`` loads one registered version and validates every request
against its training schema before the model sees it: a body over the size
cap (413, from ``Content-Length`` before the body is read), malformed JSON,
NaN or infinity, a missing, extra or mistyped column get a 4xx whose
``detail`` names the problem, and the server stays up. Each answered request
is logged to the store (``orchestrator.request_log``) for monitoring.

FastAPI is imported only inside ``create_app`` (it is the optional extra
``serve``), so importing this module stays light. This module must not train
or register models.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.context import Context
    from orchestrator.registry import LoadedModel

MAX_BODY = 1 << 20  # bytes
MAX_RECORDS = 10_000
_FLOAT_MAX = sys.float_info.max  # a JSON integer beyond this is infinite to the model
JSON_TYPES = ("application/json", "text/json")


def check_content_type(value: str | None) -> None:
    """Refuse a body that says it is not JSON (415); a missing Content-Type is read as JSON."""
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise RequestProblem(415, f"the body is sent as {media or 'an empty Content-Type'}; send JSON with "
                              "Content-Type: application/json")


class RequestProblem(Exception):
    """A request the server refuses: the HTTP status and the one-line reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _reject_constant(name: str) -> Any:
    raise RequestProblem(422, f"the body contains {name}, which is not a number JSON allows; send null "
                              "for a missing value")


def parse_records(body: bytes) -> list[dict[str, Any]]:
    """The records of a request body: a JSON array of objects, or ``{"records": [...]}``."""
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except RequestProblem:
        raise
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestProblem(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestProblem(400, "the body nests JSON too deeply; send a flat array of records") from None
    if isinstance(doc, dict) and set(doc) == {"records"}:
        doc = doc["records"]
    elif isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc:
        raise RequestProblem(422, 'send a non-empty JSON array of records, e.g. [{"age": 42, ...}], '
                                  'or {"records": [...]}')
    if len(doc) > MAX_RECORDS:
        raise RequestProblem(413, f"{len(doc)} records in one request; send at most {MAX_RECORDS}")
    if not all(isinstance(r, dict) for r in doc):
        raise RequestProblem(422, "every record must be a JSON object of column: value")
    return doc


def validate_records(records: list[dict[str, Any]], schema: list[dict[str, Any]]) -> None:
    """Check records against the training schema; raise a 422 naming every problem (first five)."""
    names = [f["name"] for f in schema]
    expected = set(names)
    problems: list[str] = []
    for i, record in enumerate(records):
        missing = [n for n in names if n not in record]
        extra = sorted(set(record) - expected)
        if missing:
            problems.append(f"record {i}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if extra:
            problems.append(f"record {i}: unknown column{'s' if len(extra) > 1 else ''} {', '.join(extra)}")
        for f in schema:
            value = record.get(f["name"])
            if value is None:
                continue
            if f["kind"] == "number":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    problems.append(f"record {i}: column {f['name']} must be a number, got {type(value).__name__} "
                                    f"{json.dumps(value)[:40]}")
                elif (isinstance(value, float) and not math.isfinite(value)) or abs(value) > _FLOAT_MAX:
                    problems.append(f"record {i}: column {f['name']} is not finite")
            elif not isinstance(value, str):
                problems.append(f"record {i}: column {f['name']} must be a string (a category), got "
                                f"{type(value).__name__} {json.dumps(value)[:40]}")
        if len(problems) >= 5:
            break
    if problems:
        raise RequestProblem(422, "; ".join(problems[:5]))


def create_app(context: Context, ref: str, *, max_body: int = MAX_BODY, log_requests: bool = True) -> Any:
    """A FastAPI app serving version ``ref`` (``NAME``, ``NAME@production``, ``NAME@VERSION``).

    Raises:
        UserError: FastAPI is not installed.
        NotFoundError: the model or version does not exist.
    """
    try:
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse
        from starlette.concurrency import run_in_threadpool
    except ImportError:
        raise UserError("serving needs FastAPI and uvicorn: pip install 'orchestrator[serve]'") from None
    import pandas as pd

    from orchestrator.registry import load_version
    from orchestrator.request_log import append_requests

    loaded: LoadedModel = load_version(context, ref)
    schema = loaded.candidate.features
    app = FastAPI(title=f"orchestrator: {loaded.name} v{loaded.version}", docs_url=None, redoc_url=None)
    app.state.loaded = loaded

    def problem(status: int, detail: str) -> Any:
        return JSONResponse({"detail": detail}, status_code=status)

    # Plain Starlette routes: the handlers read the raw request themselves, which the size cap needs.
    async def health(request: Any) -> Any:
        return JSONResponse({"status": "ok", "model": loaded.name, "version": loaded.version})

    async def model(request: Any) -> Any:
        row = loaded.row
        return JSONResponse({
            "name": loaded.name, "version": loaded.version, "task": loaded.candidate.task,
            "metrics": row["metrics"], "features": schema,
            "lineage": {"run_id": row["run_id"], "step": row["node"], "artifact": row["digest"],
                        "command": f"orch lineage {loaded.name}@{loaded.version}"},
        })

    async def predict(request: Any) -> Any:
        try:
            check_content_type(request.headers.get("content-type"))
        except RequestProblem as exc:
            return problem(exc.status, exc.detail)
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return problem(400, "the Content-Length header is not a number")
            if int(length) > max_body:
                return problem(413, f"the body is {length} bytes; the limit is {max_body}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return problem(413, f"the body is over the limit of {max_body} bytes")
        try:
            records = parse_records(bytes(body))
            validate_records(records, schema)
        except RequestProblem as exc:
            return problem(exc.status, exc.detail)
        # The model and the log write block: run them off the event loop so /health keeps answering.
        try:
            answer = await run_in_threadpool(answer_records, records)
        except (ValueError, TypeError, KeyError) as exc:  # valid JSON the model itself refuses (e.g. null it cannot impute)
            return problem(422, f"the model cannot predict these records: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:300] if str(exc) else ''}")
        return JSONResponse({"model": loaded.name, "version": loaded.version, **answer})

    def answer_records(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
        frame = pd.DataFrame.from_records(records, columns=[f["name"] for f in schema])
        for f in schema:
            if f["kind"] == "number":
                frame[f["name"]] = pd.to_numeric(frame[f["name"]], errors="coerce").astype(float)
            else:
                frame[f["name"]] = frame[f["name"]].astype(object)
        answer = loaded.predict(frame)
        if log_requests:
            try:
                append_requests(context, loaded.name, loaded.version, records, answer)
            except Exception as exc:  # noqa: BLE001 - a full disk must not stop predictions; say so in the log
                import logging

                logging.getLogger("orchestrator.serve").warning("request not logged: %s", exc)
        return answer

    app.add_route("/health", health, methods=["GET"])
    app.add_route("/model", model, methods=["GET"])
    app.add_route("/predict", predict, methods=["POST"])
    return app


def serve(context: Context, ref: str, host: str = "127.0.0.1", port: int = 8000,
          announce: Callable[[LoadedModel], None] | None = None) -> None:
    """Run the app with uvicorn until interrupted; ``announce`` is called once the model is loaded."""
    try:
        import uvicorn
    except ImportError:
        raise UserError("serving needs FastAPI and uvicorn: pip install 'orchestrator[serve]'") from None
    app = create_app(context, ref)
    if announce is not None:
        announce(app.state.loaded)
    uvicorn.run(app, host=host, port=port, log_level=os.environ.get("ORCH_SERVE_LOG", "warning"))
