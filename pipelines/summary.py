"""Print where to look after `make run`: the run, the production model, the drift reports, the audit commands.

    python pipelines/summary.py churn [--store cache]
"""

from __future__ import annotations

import argparse
import os
import sys

from orchestrator.context import Context
from orchestrator.errors import OrchestratorError
from orchestrator.monitor import history_rows
from orchestrator.registry import Registry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--store", default=os.environ.get("ORCH_STORE", "cache"))
    args = parser.parse_args()
    try:
        context = Context.open(args.store, create=False)
        row = Registry(context.lineage).resolve(args.model)
    except OrchestratorError as exc:  # an unknown model or store: one line, as orch says it, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    runs = context.lineage.runs(limit=1, pipeline="lifecycle")
    print("\nwhere to look")
    for run in runs:  # none when the model came from a pipeline of another name
        print(f"  last run         {run['run_id']} ({run['status']})    orch show {run['run_id']}")
    print(f"  production model {row['name']} v{row['version']} (registered by run {row['run_id']})    "
          f"orch models show {row['name']}@production")
    for check in history_rows(context, args.model, limit=2):
        print(f"  drift report     {'alert' if check['alert'] else check['status']}: {check['report_html']}")
    print(f"  audit trail      orch lineage {row['name']}@production --format json")
    print(f"  serve it         orch serve {row['name']}@production --port 8000")


if __name__ == "__main__":
    main()
