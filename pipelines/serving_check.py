"""A short serving check for `make run`: start `orch serve` on loopback, ask it, stop it.

    python pipelines/serving_check.py churn [--store cache]

Starts the server on a free port, waits (bounded) for ``/health``, posts five
fresh records (made from the model's schema for a model of your own data), posts a malformed request and expects a 4xx, reads
``/model``, then stops the server. Exits 1 if anything is off. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from datasource import customers

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _records(features: list[dict], rows: int) -> list[dict]:
    """``rows`` records for the model's schema: fresh demo customers, or, for a model of your own data,
    records made from the schema (each category in turn, numbers 0, 1, 2...).

    Demo records only fitted the demo's columns: any other model stopped this check with a KeyError.
    """
    names = [f["name"] for f in features]
    frame = customers(rows, seed=1)  # fresh records of the demo's training distribution
    if all(name in frame.columns for name in names):
        return json.loads(frame[names].to_json(orient="records"))
    return [{f["name"]: (float(i) if f["kind"] == "number" else
                         f.get("min") or "2024-01-31T09:30:00" if f["kind"] == "datetime" else
                         (f.get("categories") or ["a"])[i % len(f.get("categories") or ["a"])])
             for f in features} for i in range(rows)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--store", default=os.environ.get("ORCH_STORE", "cache"))
    args = parser.parse_args()
    port = _free_port()
    orch = [sys.executable, "-m", "orchestrator", "--store", args.store]
    server = subprocess.Popen([*orch, "serve", args.model, "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # at most ~20 s
            try:
                status, _ = _call(f"{base}/health")
                if status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None:
                print("serving check: the server exited early", file=sys.stderr)
                return 1
            time.sleep(0.2)
        else:
            print("serving check: the server did not come up within 20 s", file=sys.stderr)
            return 1
        _, info = _call(f"{base}/model")
        records = _records(info["features"], 5)
        status, answer = _call(f"{base}/predict", json.dumps(records).encode())
        bad_status, bad = _call(f"{base}/predict", json.dumps([{"age": "forty"}]).encode())
        ok = status == 200 and len(answer["prediction"]) == 5 and 400 <= bad_status < 500
        print(f"serving check: {info['name']} v{info['version']} on {base}: POST /predict {status} "
              f"(predictions {answer.get('prediction')}), malformed request {bad_status} "
              f"({bad.get('detail', '')[:70]}…) — {'ok' if ok else 'FAILED'}")
        return 0 if ok else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
