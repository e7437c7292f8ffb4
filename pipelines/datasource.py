"""The lifecycle demo's data source: a seeded generator of customer records, written as CSV or Parquet.

    python pipelines/datasource.py                     # data/lifecycle/{customers.csv, batch_clean.parquet,
                                                       #   batch_drifted.parquet}, each written once
    python pipelines/datasource.py --force             # rewrite them (same seeds: same bytes)
    python pipelines/datasource.py --batch b.parquet --rows 1000 --seed 5 --drift 0.5   # one more batch

The columns look like a churn table: numeric (``age``, ``tenure_months``,
``monthly_charges``, ``total_charges``, ``support_calls``), categorical
(``contract``, ``payment_method``, ``region``), missing values, a unique key
``customer_id`` and the binary label ``churned``. ``drift`` > 0 shifts ages,
charges, contract mix and support calls: the monitoring demo's drifted batch.
Offline, no downloads. Plain functions, no steps: the files are pipeline inputs.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path("data/lifecycle")
TRAIN_FILE = DATA / "customers.csv"
CLEAN_BATCH = DATA / "batch_clean.parquet"
DRIFTED_BATCH = DATA / "batch_drifted.parquet"


def customers(rows: int = 4000, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """``rows`` seeded customer records; ``drift`` (0 = the training distribution) shifts them."""
    rng = np.random.default_rng(seed)
    age = rng.normal(45 + 10 * drift, 12, rows).clip(18, 90).round()
    tenure = rng.gamma(2.0, 12 * (1 - 0.4 * min(drift, 1.0)), rows).clip(0, 120).round()
    monthly = rng.normal(65 + 25 * drift, 20, rows).clip(15, 200).round(2)
    p_month = min(0.5 + 0.3 * drift, 0.95)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows,
                          p=[p_month, (1 - p_month) * 0.55, (1 - p_month) * 0.45])
    payment = rng.choice(["card", "bank", "check", "wallet"], rows, p=[0.35, 0.3, 0.2, 0.15])
    region = rng.choice(["north", "south", "east", "west"], rows, p=[0.3, 0.25, 0.25, 0.2]).astype(object)
    calls = rng.poisson(1.5 + 1.5 * drift, rows)
    total = (monthly * tenure + rng.normal(0, 30, rows)).clip(0).round(2)
    logit = (-1.2 + 1.1 * (contract == "month-to-month") - 0.035 * tenure + 0.02 * (monthly - 65)
             + 0.4 * calls - 0.012 * (age - 45) + 0.4 * (payment == "check"))
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    age[rng.random(rows) < 0.03] = np.nan
    total[rng.random(rows) < 0.02] = np.nan
    region[rng.random(rows) < 0.05] = None
    return pd.DataFrame({
        "customer_id": np.arange(rows, dtype=np.int64) + seed * 1_000_000,
        "age": age, "tenure_months": tenure, "monthly_charges": monthly, "total_charges": total,
        "support_calls": calls.astype(np.int64), "contract": contract, "payment_method": payment,
        "region": region, "churned": churned,
    })


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write CSV or Parquet by extension, atomically (a temp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(temp, index=False)
    else:
        frame.to_csv(temp, index=False)
    temp.replace(path)
    return path


def ensure_dataset(path: Path, rows: int = 4000, seed: int = 0, drift: float = 0.0, force: bool = False,
                   resize: bool = False) -> Path:
    """Write the seeded dataset to ``path`` unless it is there already (your own file is never replaced).

    With ``resize``, a file this generator wrote with other ``rows`` or ``seed`` is written again with
    these: ``-p rows=500`` after a first run of the lifecycle demo was silently ignored, since its
    file was there. A file that is not exactly what the generator writes (edited) is kept.
    """
    path = Path(path)
    if force or not path.exists() or (resize and generated_with(path, drift) not in (None, (rows, seed))):
        write_table(customers(rows, seed, drift), path)
    return path


def generated_with(path: Path, drift: float = 0.0) -> tuple[int, int] | None:
    """The ``(rows, seed)`` the generator wrote ``path`` with, or None for a file it did not write as it is.

    The seed is read from the first key (``customer_id`` starts at ``seed * 1_000_000``), and the
    file is compared with what the generator writes for those ``rows`` and ``seed``.
    """
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        if list(frame.columns) != list(customers(1).columns) or not len(frame):
            return None
        rows, seed = len(frame), int(frame["customer_id"].iloc[0]) // 1_000_000
        expected = customers(rows, seed, drift)
        if path.suffix != ".parquet":
            expected = pd.read_csv(io.StringIO(expected.to_csv(index=False)))  # as the file reads back
        return (rows, seed) if frame.equals(expected) else None
    except Exception:  # noqa: BLE001 - unreadable: not the generator's; ingest says why
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--force", action="store_true", help="rewrite the files")
    parser.add_argument("--batch", type=Path, default=None,
                        help="write one batch to this .csv/.parquet file instead (with --seed, --drift)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--drift", type=float, default=0.0, help="0 = the training distribution; 1 = strong drift")
    args = parser.parse_args()
    if args.batch is not None:
        write_table(customers(args.rows, args.seed, args.drift), args.batch)
        print(f"data: {args.batch} ({args.rows} rows, seed {args.seed}, drift {args.drift})")
        return
    ensure_dataset(TRAIN_FILE, args.rows, seed=0, force=args.force)
    ensure_dataset(CLEAN_BATCH, 1000, seed=1, force=args.force)
    ensure_dataset(DRIFTED_BATCH, 1000, seed=2, drift=1.0, force=args.force)
    print(f"data: {TRAIN_FILE} (training), {CLEAN_BATCH} (a fresh batch), {DRIFTED_BATCH} (a drifted batch)")


if __name__ == "__main__":
    main()
