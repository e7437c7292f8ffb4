"""The model server: a FastAPI app answering ``POST /predict``, ``GET /health`` and ``GET /model``.

``create_app`` loads one registered version and validates every request
against its training schema before the model sees it: a body over the size
cap (413, from ``Content-Length`` before the body is read), malformed JSON,
NaN or infinity, a missing, extra or mistyped column get a 4xx whose
``detail`` names the problem, and the server stays up. Each answered request
is appended to the store's request log for monitoring (``orchestrator.request_writer``), whose
segments are sealed by size and age (a timer in the app's lifespan seals an idle server's
segment) and when the server stops (SIGINT, SIGTERM: uvicorn's shutdown
runs the app's lifespan end); their index rows are written by ``orchestrator.request_indexer``, so
an answer never waits on another process's database lock.

``serve`` binds the listening socket itself before handing it to uvicorn, so a
busy port or a host that is not an address of this machine is one line naming
``host:port`` (a ``UserError``), not uvicorn's log and exit code.

FastAPI is imported only inside ``create_app`` (it is the optional extra
``serve``), so importing this module stays light. This module must not train
or register models.
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UserError
from orchestrator.feature_codes import as_codes, code_text, is_code
from orchestrator.feature_times import as_times, is_time, time_example, time_problem
from orchestrator.model_checks import closest_choice
from orchestrator.request_writer import ROLL_ROWS, ROLL_SECONDS

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.context import Context
    from orchestrator.registry import LoadedModel

MAX_BODY = 1 << 20  # bytes
MAX_RECORDS = 10_000
MAX_NAMES = 10  # column names listed in one 422 detail; a record with 60,000 unknown keys names 10
_FLOAT_MAX = sys.float_info.max  # a JSON integer beyond this is infinite to the model
JSON_TYPES = ("application/json", "text/json")


def check_content_type(value: str | None) -> None:
    """Refuse a body that says it is not JSON (415); a missing Content-Type is read as JSON."""
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    # curl -d sends a form unless told otherwise: the commonest way to get here, so say how to fix it.
    hint = (" (curl -d sends this unless given -H 'Content-Type: application/json')"
            if media == "application/x-www-form-urlencoded" else "")
    raise RequestProblem(415, f"the body is sent as {media or 'an empty Content-Type'}{hint}; send JSON with "
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


def parse_records(body: bytes, schema: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The records of a request body: a JSON array of objects, or ``{"records": [...]}``.

    ``schema`` (the training schema) gives the example in the message for a body that holds no records.
    """
    if not body.strip():
        raise RequestProblem(400, f"the body is empty; send a JSON array of records, e.g. [{_example(schema)}]")
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
        raise RequestProblem(422, f"send a non-empty JSON array of records, e.g. [{_example(schema)}], "
                                  'or {"records": [...]}')
    if len(doc) > MAX_RECORDS:
        raise RequestProblem(413, f"{len(doc)} records in one request; send at most {MAX_RECORDS}")
    if not all(isinstance(r, dict) for r in doc):
        raise RequestProblem(422, "every record must be a JSON object of column: value")
    return doc


def _example(schema: list[dict[str, Any]] | None) -> str:
    """``{"x": 1.0, "colour": "red", ...}``: a record of this model's first features (the model's own
    columns, not another model's)."""
    if not schema:
        return '{"column": value, ...}'
    shown = []
    for f in schema[:2]:
        value = (1.0 if f["kind"] == "number" else time_example(f) if is_time(f) else True if _is_flag(f)
                 else json.loads((f.get("categories") or ["1"])[0]) if is_code(f)  # a code's text is a number
                 else (f.get("categories") or ["text"])[0])
        shown.append(f"{json.dumps(f['name'][:40])}: {json.dumps(value[:40] if isinstance(value, str) else value)}")
    return "{" + ", ".join(shown) + (", ...}" if len(schema) > 2 else "}")


def _names(names: list[str]) -> str:
    """The first ``MAX_NAMES`` names, each cut to 40 characters, then ``… and N more``."""
    shown = ", ".join(n if len(n) <= 40 else n[:40] + "…" for n in names[:MAX_NAMES])
    return shown + (f" … and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def _meant(extra: list[str], missing: list[str]) -> str:
    """`` (did you mean age for Age?)``: the missing columns the unknown ones look like (case, spaces, typos).

    Only read on a refusal, so the closest-match search never slows an answer.
    """
    import difflib

    if not missing or len(extra) > 100:
        return ""
    folded = {n.casefold().replace(" ", "_").replace("-", "_"): n for n in missing}
    pairs = []
    for name in extra:
        same = folded.get(name.casefold().replace(" ", "_").replace("-", "_"))
        close = same or next(iter(difflib.get_close_matches(name, missing, n=1, cutoff=0.8)), None)
        if close is not None:
            pairs.append(f"{_names([close])} for {_names([name])}")
    return f" (did you mean {', '.join(pairs[:3])}?)" if pairs else ""


def validate_records(records: list[dict[str, Any]], schema: list[dict[str, Any]]) -> None:
    """Check records against the training schema; raise a 422 naming every problem (first five).

    Column lists are capped (``MAX_NAMES``), so the detail stays short whatever the request holds.
    """
    names = [f["name"] for f in schema]
    expected = set(names)
    problems: list[str] = []
    for i, record in enumerate(records):
        missing = [n for n in names if n not in record]
        extra = sorted(set(record) - expected)
        if missing:
            problems.append(f"record {i}: missing column{'s' if len(missing) > 1 else ''} {_names(missing)}")
        if extra:
            problems.append(f"record {i}: unknown column{'s' if len(extra) > 1 else ''} {_names(extra)}"
                            + _meant(extra, missing))
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
            elif is_time(f):
                wrong = time_problem(value, f)
                if wrong:
                    problems.append(f"record {i}: column {f['name']} must be a date and time as text, e.g. "
                                    f"{json.dumps(time_example(f))}, {wrong}")
            elif _is_flag(f):
                if not isinstance(value, bool) and str(value).lower() not in _FLAGS:
                    problems.append(f"record {i}: column {f['name']} must be true or false, got "
                                    f"{type(value).__name__} {json.dumps(value)[:40]}")
            elif is_code(f):
                problems += _code_problem(i, f["name"], value)
            elif not isinstance(value, str):
                problems.append(f"record {i}: column {f['name']} must be a string (a category), got "
                                f"{type(value).__name__} {json.dumps(value)[:40]}")
        if len(problems) >= 5:
            break
    if problems:
        raise RequestProblem(422, "; ".join(problems[:5]))


def _code_problem(i: int, name: str, value: Any) -> list[str]:
    """Why ``value`` cannot be a code of a category written in numbers: it takes a number or text.

    Text that is no number (``"Paris"`` for a postcode) is taken, and warned about as a category the
    model never saw; a boolean, a list or an object is refused, and so is a number that is not finite.
    """
    if isinstance(value, str):
        return []
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [f"record {i}: column {name} must be a number or a string (a category written in numbers), got "
                f"{type(value).__name__} {json.dumps(value)[:40]}"]
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > _FLOAT_MAX:
        return [f"record {i}: column {name} is not finite"]
    return []


MAX_WARNINGS = 5  # unseen categories named per answer; the count of the rest follows


def known_categories(schema: list[dict[str, Any]]) -> dict[str, tuple[set[str], bool]]:
    """Each category column's training values, and whether they are codes written in numbers, by column.

    No entry for flags, or in an older model's schema. The values of a category written in numbers are
    its codes' texts (``75001``), to which a request's ``75001.0`` or ``"75001"`` is compared.
    """
    return {f["name"]: (set(f["categories"]), is_code(f)) for f in schema
            if f["kind"] == "category" and f.get("categories") and not _is_flag(f)}


def unseen_categories(records: list[dict[str, Any]], known: dict[str, tuple[set[str], bool]]) -> list[str]:
    """One line per category value the model never saw in training (first ``MAX_WARNINGS``, then a count).

    The model still answers (a one-hot encoder with ``handle_unknown="ignore"`` scores the row as if
    the column were missing), but the caller is told, instead of learning it from ``orch monitor``
    later: a typo (``"Red"`` for ``"red"``), a new kind of customer or a postcode it never saw is worth
    knowing at once. ``known`` is ``known_categories`` of the schema, made once per server.
    """
    if not known:
        return []
    lines: list[str] = []
    left_out = 0
    for i, record in enumerate(records):
        for name, (categories, codes) in known.items():
            value = record.get(name)
            text = None if value is None else code_text(value) if codes else str(value)
            if text is not None and text not in categories:
                if len(lines) < MAX_WARNINGS:
                    # A code spelled like another (75010 for 75001) is another place or store: no guess. Text
                    # is matched ignoring case, as model names are: "WEB" for "web" got no hint.
                    close = None if codes else closest_choice(text, sorted(categories))
                    hint = f" (did you mean {close!r}?)" if close else ""
                    lines.append(f"record {i}: {name} {text[:40]!r} was not seen in training{hint}; "
                                 "the model scored it as unknown")
                else:
                    left_out += 1
    if left_out:
        lines.append(f"and {left_out} more values not seen in training")
    return lines


def _without_label(records: list[dict[str, Any]], label: str | None,
                   schema: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records without the model's label column, and a warning when any held it.

    Rows posted straight from a labelled table carry the label: it is not a feature (the model
    predicts it), so it is dropped with a word instead of refused as an unknown column.
    """
    if not label or any(f["name"] == label for f in schema) or not any(label in r for r in records):
        return records, []
    kept = [{k: v for k, v in r.items() if k != label} for r in records]
    return kept, [f"column {label} is the model's label, not a feature: ignored"]


def _without_key(records: list[dict[str, Any]], key: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The records without the model's key column, and ``{"keys": [...]}`` when any record held it.

    A row posted from the table the model was trained on carries its id (``customer_id``): it names
    the row, so the answer gives it back, in record order (``null`` where a record had none), for
    the caller to match predictions with rows, instead of refusing it as an unknown column.
    """
    if not key or not any(key in r for r in records):
        return records, {}
    keys = [r.get(key) for r in records]
    return [{k: v for k, v in r.items() if k != key} for r in records], {"keys": keys}


# A column trained as booleans: the model knows True and False, not the text "True" (which a
# one-hot encoder would silently treat as an unknown category), so JSON true/false are what it takes.
_FLAGS = {"true": True, "false": False}


def _is_flag(feature: dict[str, Any]) -> bool:
    return feature["kind"] == "category" and str(feature.get("dtype", "")).lower() in ("bool", "boolean")


def records_frame(records: list[dict[str, Any]], schema: list[dict[str, Any]]) -> Any:
    """The validated records as the DataFrame the model was trained on: numbers as floats, categories
    as objects, a boolean column as True/False (also from the text "true"/"false"), and a category
    written in numbers as floats (also from their text, ``"75001"``; other text is scored as unknown),
    and a time as the training dtype, parsed from its text (``"2024-04-10 15:57"``).

    A ``null`` is NaN in every column, as a blank cell of a CSV or Parquet file is: a category column
    whose values in a request were all null (one record with a null) stayed None, which passed a
    ``SimpleImputer`` (it looks for NaN) and was scored as an unknown category, so such a row got
    another answer from the server than from ``load_model(...).predict`` or ``orch monitor``.
    """
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame.from_records(records, columns=[f["name"] for f in schema])
    for f in schema:
        if f["kind"] == "number":
            frame[f["name"]] = pd.to_numeric(frame[f["name"]], errors="coerce").astype(float)
        elif is_code(f):
            frame[f["name"]] = as_codes(frame[f["name"]])
        elif is_time(f):
            frame[f["name"]] = as_times(frame[f["name"]], f)
        elif _is_flag(f):
            flags = [np.nan if pd.isna(v) else v if isinstance(v, bool) else _FLAGS[str(v).lower()]
                     for v in frame[f["name"]]]
            frame[f["name"]] = pd.Series(flags, index=frame.index, dtype=object)
        else:
            column = frame[f["name"]].astype(object)
            frame[f["name"]] = column.where(column.notna(), np.nan)
    return frame


def create_app(context: Context, ref: str, *, max_body: int = MAX_BODY, log_requests: bool = True,
               segment_rows: int = ROLL_ROWS, segment_seconds: float = ROLL_SECONDS) -> Any:
    """A FastAPI app serving version ``ref`` (``NAME``, ``NAME@production``, ``NAME@VERSION``).

    ``segment_rows`` and ``segment_seconds`` bound a request-log segment before it is sealed and
    indexed: it is sealed once it holds that many rows, or is that old (seen by the next request, or
    by a timer while the server is idle).

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
    import contextlib
    from contextlib import asynccontextmanager

    from orchestrator.json_values import strict_json
    from orchestrator.registry import usable_version
    from orchestrator.request_indexer import SegmentIndexer, index_left_over
    from orchestrator.request_writer import RequestWriter, timer_seconds

    loaded: LoadedModel = usable_version(context, ref)
    label = loaded.candidate.label
    key = getattr(loaded.candidate, "key", None)  # none in a candidate pickled before keys were kept
    unloggable = _unloggable(context, loaded.name) if log_requests else None
    if unloggable is not None:
        # An archived (read-only) store still serves; said once here, not as a warning per request.
        print(f"warning: requests to {loaded.name} are answered but not logged: {unloggable}, so `orch monitor "
              f"{loaded.name}` will not see them. To log them, serve a writable copy of the store "
              "(orch --store COPY serve ...).", file=sys.stderr, flush=True)
        log_requests = False
    indexer = SegmentIndexer(context.lineage) if log_requests else None
    writer = None if indexer is None else RequestWriter(context.root, loaded.name, loaded.version, indexer.add,
                                                        rows=segment_rows, seconds=segment_seconds)
    if log_requests:
        index_left_over(context, loaded.name)  # what a server stopped or killed before indexing left behind

    async def seal_on_age(writer: RequestWriter) -> None:
        """Seal an idle server's open segment once it is old enough: the per-request check needs a request."""
        import asyncio

        while True:
            await asyncio.sleep(timer_seconds(segment_seconds))
            try:
                await run_in_threadpool(writer.seal_if_old)
            except Exception as exc:  # noqa: BLE001 - the next request, or the stop, seals it instead
                import logging

                logging.getLogger("orchestrator.serve").warning("request log segment not sealed: %s", exc)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        import asyncio

        timer = None if writer is None else asyncio.ensure_future(seal_on_age(writer))
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
        if writer is not None and indexer is not None:
            await run_in_threadpool(writer.close)  # the requests it holds open: sealed, so the stop loses none
            await run_in_threadpool(indexer.close)
    schema = loaded.candidate.features
    categories = known_categories(schema)
    # A classifier's classes, and the one ``probability`` is of (the second of two): an answer
    # {"prediction": ["fraud"], "probability": [0.00003]} read as a contradiction without it.
    classes = [_plain(c) for c in getattr(loaded.candidate.model, "classes_", [])] \
        if loaded.candidate.task == "classification" else []
    app = FastAPI(title=f"orchestrator: {loaded.name} v{loaded.version}", docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    app.state.loaded = loaded
    app.state.indexer = indexer
    app.state.request_writer = writer

    def problem(status: int, detail: str) -> Any:
        return JSONResponse({"detail": detail}, status_code=status)

    # Plain Starlette routes: the handlers read the raw request themselves, which the size cap needs.
    async def health(request: Any) -> Any:
        return JSONResponse({"status": "ok", "model": loaded.name, "version": loaded.version})

    async def model(request: Any) -> Any:
        row = loaded.row
        return JSONResponse({
            "name": loaded.name, "version": loaded.version, "task": loaded.candidate.task,
            "metrics": strict_json(row["metrics"]), "features": schema,
            **({"classes": classes} if classes else {}),
            **({"probability_of": classes[1]} if len(classes) == 2 else {}),
            **({"key": key} if key else {}),
            "lineage": {"run_id": row["run_id"], "step": row["node"], "artifact": row["digest"],
                        "command": f"orch lineage {loaded.name}@{loaded.version}"},
        })

    async def predict(request: Any) -> Any:
        try:
            check_content_type(request.headers.get("content-type"))
        except RequestProblem as exc:
            return problem(exc.status, exc.detail)
        length = request.headers.get("content-length")
        # A client waiting for "100 Continue" has sent nothing yet: it takes the 413 instead of sending.
        waiting = request.headers.get("expect", "").lower() == "100-continue"
        if length is not None:
            if not length.isdigit():
                return problem(400, "the Content-Length header is not a number")
            if int(length) > max_body:
                if not waiting and int(length) <= MAX_DISCARD:  # a claim beyond it is not read at all
                    await _discard(request.stream(), 0)
                return problem(413, f"the body is {length} bytes; the limit is {max_body} bytes: {_SPLIT}")
        body = bytearray()
        stream = request.stream()
        async for chunk in stream:
            body += chunk
            if len(body) > max_body:
                await _discard(stream, len(body))
                return problem(413, f"the body is over the limit of {max_body} bytes: {_SPLIT}")
        try:
            records = parse_records(bytes(body), schema)
            records, notes = _without_label(records, label, schema)
            records, keys = _without_key(records, key)
            validate_records(records, schema)
        except RequestProblem as exc:
            return problem(exc.status, exc.detail)
        # The model and the log write block: run them off the event loop so /health keeps answering.
        try:
            answer = await run_in_threadpool(answer_records, records, keys.get("keys"))
        except (ValueError, TypeError, KeyError) as exc:  # valid JSON the model itself refuses (e.g. null it cannot impute)
            return problem(422, f"the model cannot predict these records: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:300] if str(exc) else ''}")
        of = {"probability_of": classes[1]} if "probability" in answer and len(classes) == 2 else {}
        warnings = notes + unseen_categories(records, categories)
        doc = {"model": loaded.name, "version": loaded.version, **keys, **answer, **of,
               **({"warnings": warnings} if warnings else {})}
        try:
            return JSONResponse(doc)
        except ValueError:  # a NaN or inf the model predicted, which strict JSON has no number for: null
            return JSONResponse(strict_json(doc))

    def answer_records(records: list[dict[str, Any]], keys: list[Any] | None) -> dict[str, list[Any]]:
        answer = loaded.predict(records_frame(records, schema))
        if writer is not None:
            try:
                writer.append(records, answer, keys)  # its index row, when sealed: never waits on a database lock
            except Exception as exc:  # noqa: BLE001 - a full disk must not stop predictions; say so in the log
                import logging

                logging.getLogger("orchestrator.serve").warning("request not logged: %s", exc)
        return answer

    app.add_route("/health", health, methods=["GET"])
    app.add_route("/model", model, methods=["GET"])
    app.add_route("/predict", predict, methods=["POST"])
    return app


def _unloggable(context: Context, name: str) -> str | None:
    """Why requests to model ``name`` cannot be logged in this store (read-only), or None if they can."""
    from orchestrator.request_log import segment_folder

    folder = segment_folder(context.root, name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {folder} ({exc.strerror or exc})"
    database = os.fspath(context.lineage.path)
    for path in (folder, database):
        if os.path.exists(path) and not os.access(path, os.W_OK):
            return f"{path} is not writable for you"
    return None


_SPLIT = "send the records in several smaller requests"
MAX_DISCARD = 256 << 20  # bytes of a refused body read and dropped, so that its 413 reaches the client


async def _discard(stream: Any, read: int) -> None:
    """Read the rest of a refused body and drop it, up to ``MAX_DISCARD`` bytes in all.

    A server that answers and closes the connection while the client is still sending makes the
    kernel reset it: a client that sent ``Connection: close`` (Python's urllib does) got
    'Connection reset by peer' instead of the 413 saying what the limit is.
    """
    try:
        async for chunk in stream:
            read += len(chunk)
            if read > MAX_DISCARD:
                return
    except Exception:  # noqa: BLE001 - the client went away (ClientDisconnect): nobody is left to answer
        return


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for ``host:port`` (every address the host resolves to), bound here.

    Binding before uvicorn starts turns its log line and exit code 3 into one line naming
    ``host:port`` and the fix. The sockets are then handed to uvicorn, so nothing can take
    the port in between.

    Raises:
        UserError: the host does not resolve, is not an address of this machine, or the
            port is in use or needs privileges.
    """
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else str(exc)
        raise UserError(f"cannot serve on {where}: host {host!r} does not resolve ({reason}); pass --host "
                        "127.0.0.1 (this machine only) or 0.0.0.0 (every interface).") from None
    try:
        return _bound(infos)
    except OSError as exc:
        raise UserError(_bind_problem(exc, host, port, where)) from None


def _bound(infos: list[Any]) -> list[socket.socket]:
    """Sockets bound to each address of ``getaddrinfo``'s ``infos``; on an OSError, none is left open."""
    sockets: list[socket.socket] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # As uvicorn and asyncio do: a port left in TIME_WAIT by a stopped server is reusable.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind_problem(exc: OSError, host: str, port: int, where: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        free = _free_port(host, port)
        instead = f"--port {free} (free now) or --port 0 (any free port)" if free else "--port 0 (any free port)"
        return f"port {port} on {host} is in use by another program; pass {instead}, or stop the other server."
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot serve on {where}: {host} is not an address of this machine; pass --host 127.0.0.1 "
                "(this machine only) or 0.0.0.0 (every interface).")
    if exc.errno == errno.EACCES:
        return (f"cannot serve on {where}: port {port} needs administrator rights; pass --port 1024 or "
                "higher (e.g. --port 8000).")
    return f"cannot serve on {where}: {exc.strerror or exc}; pass another --host or --port."


PORTS_TRIED = 20  # ports after a busy one probed for a free one to suggest


def _free_port(host: str, port: int) -> int | None:
    """The first of the ``PORTS_TRIED`` ports after ``port`` that ``host`` can bind now, or None.

    The next port was suggested without a look, and was often taken too (a second server started
    the same way). Free now is no promise for later: ``--port 0`` is suggested beside it.
    """
    for candidate in range(max(port + 1, 1024), min(port + 1 + PORTS_TRIED, 65536)):
        try:
            infos = socket.getaddrinfo(host or None, candidate, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            for sock in _bound(infos):
                sock.close()
        except (OSError, UnicodeError):
            continue
        return candidate
    return None


def serve(context: Context, ref: str, host: str = "127.0.0.1", port: int = 8000,
          announce: Callable[[LoadedModel, str], None] | None = None) -> None:
    """Run the app with uvicorn until interrupted.

    ``announce(loaded, "host:port")`` is called once the model is loaded and the port is
    bound (with ``--port 0``, the port the system chose).

    Raises:
        UserError: FastAPI/uvicorn missing, a bad reference, or ``host:port`` cannot be bound.
        NotFoundError: no such model or version.
        OrchestratorError: the server stopped before it started answering.
    """
    try:
        import uvicorn
    except ImportError:
        raise UserError("serving needs FastAPI and uvicorn: pip install 'orchestrator[serve]'") from None
    from orchestrator.errors import OrchestratorError

    app = create_app(context, ref)  # an unknown model or a missing artifact is reported before binding
    sockets = bind(host, port)
    try:
        bound = sockets[0].getsockname()
        address = f"{host}:{bound[1]}" if ":" not in host else f"[{host}]:{bound[1]}"
        if announce is not None:
            announce(app.state.loaded, address)
        config = uvicorn.Config(app, host=host, port=port, log_level=os.environ.get("ORCH_SERVE_LOG", "warning"))
        server = uvicorn.Server(config)
        try:
            server.run(sockets=sockets)
        except KeyboardInterrupt:
            pass
        if not server.started and not server.should_exit:
            raise OrchestratorError(f"the server on {address} stopped before it started; rerun with "
                                    "ORCH_SERVE_LOG=info for uvicorn's log.")
    finally:
        for sock in sockets:
            sock.close()


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON takes (``np.int64(1)`` → ``1``)."""
    return value.item() if hasattr(value, "item") else value
