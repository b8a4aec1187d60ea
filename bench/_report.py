"""What the timing benches share: timing, peak memory, and one report (CSV + table, machine, date)."""

from __future__ import annotations

import csv
import os
import platform
import resource
import time

COLUMNS = ["metric", "value", "unit", "target", "note"]


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(fn):
    """(seconds, result) of ``fn()``."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores, no GPU"


def report(title: str, rows, out, extra: dict | None = None) -> None:
    """Write ``rows`` (metric, value, unit, target, note) to the CSV ``out`` and print them as a table.

    ``extra`` adds constant columns (e.g. the pool size) before the machine and the date.
    """
    extra = extra or {}
    where, date = machine(), time.strftime("%Y-%m-%d")
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS, *extra, "machine", "date"])
        for metric, value, unit, target, note in rows:
            writer.writerow([metric, f"{value:.4g}", unit, target, note, *extra.values(), where, date])
    print(f"\n{title}, {where}, {date}")
    width = max(len(r[0]) for r in rows)
    for metric, value, unit, target, note in rows:
        print(f"{metric:<{width}}  {value:>10.4g} {unit:<3} {target:>10}  {note}")
    print(f"written {out}")
