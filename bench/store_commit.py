"""The cost of one durable label: ``Store.label()`` per commit on each backend and durability setting.

One command: ``.venv/bin/python bench/store_commit.py`` (about a minute on 2 CPU cores).

- SQLite (WAL), ``synchronous=NORMAL`` (today's default: a killed process loses nothing, a power cut
  may lose the last commits) and ``synchronous=FULL`` (one fsync per commit: survives a power cut);
  the file lives in ``bench/out`` (the disk workdirs live on, not a tmpfs).
- PostgreSQL: a throwaway local server (tests/pg_server.py: Debian's binaries, 127.0.0.1,
  ``fsync=on``, ``synchronous_commit=on``), through TCP as a team's notebook would (a remote
  server adds its network round trips: about 9 per label).

For each: ``label()`` of fresh images (p50, p99, mean), ``label_many`` of a 24-image page per
image, and a bare commit (one row updated, committed) to separate the durability cost from the
store's own SQL. ``--n`` labels each (default 500). Writes ``bench/results/store_commit.csv``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from _report import report  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))  # pg_server: the tests' throwaway PostgreSQL

from oal_widget.data.store import Store, open_store  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_labels(store, n: int, prefix: str) -> list[float]:
    store.set_label_names(["cat", "dog"])
    out = []
    for i in range(n):
        start = time.perf_counter()
        store.label(f"{prefix}/{i:05d}.png", "cat" if i % 2 else "dog")
        out.append(time.perf_counter() - start)
    return out


def time_pages(store, n: int, prefix: str, page: int = 24) -> list[float]:
    out = []
    for start_i in range(0, n, page):
        items = [(f"{prefix}/{i:05d}.png", "cat") for i in range(start_i, min(n, start_i + page))]
        start = time.perf_counter()
        store.label_many(items, source="accepted", model_labels=start_i)
        out.append((time.perf_counter() - start) / len(items))
    return out


def bare_sqlite(path: Path, synchronous: str, n: int) -> list[float]:
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER)")
    db.execute("INSERT OR IGNORE INTO t VALUES (1, 0)")
    out = []
    for i in range(n):
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE t SET v = ? WHERE k = 1", (i,))
        db.execute("COMMIT")
        out.append(time.perf_counter() - start)
    db.close()
    return out


def bare_postgres(url: str, n: int) -> list[float]:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v INTEGER)")
        conn.execute("INSERT INTO t VALUES (1, 0) ON CONFLICT DO NOTHING")
        conn.commit()
        out = []
        for i in range(n):
            start = time.perf_counter()
            conn.execute("UPDATE t SET v = %s WHERE k = 1", (i,))
            conn.commit()
            out.append(time.perf_counter() - start)
    return out


def rows_for(name: str, label_s: list[float], page_s: list[float], bare_s: list[float], n: int) -> list:
    ms = 1000.0
    return [
        (f"{name}: label() p50", percentile(label_s, 0.5) * ms, "ms", "", f"{n} labels, fresh images"),
        (f"{name}: label() p99", percentile(label_s, 0.99) * ms, "ms", "< 20 ms (key p99)", ""),
        (f"{name}: label() mean", statistics.fmean(label_s) * ms, "ms", "", ""),
        (f"{name}: label_many per image", statistics.median(page_s) * ms, "ms", "", "pages of 24, median"),
        (f"{name}: bare commit p50", percentile(bare_s, 0.5) * ms, "ms", "", "one row, committed"),
        (f"{name}: bare commit p99", percentile(bare_s, 0.99) * ms, "ms", "", ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="labels per configuration")
    parser.add_argument("--out", type=Path, default=RESULTS / "store_commit.csv")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    work = ROOT / "bench" / "out" / "store_commit"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load_before = os.getloadavg()[0]
    rows = []
    for synchronous in ("NORMAL", "FULL"):
        with Store(work / synchronous, synchronous=synchronous, annotator="bench") as store:
            labels = time_labels(store, args.n, "l")
            pages = time_pages(store, args.n, "p")
        bare = bare_sqlite(work / f"bare-{synchronous}.sqlite", synchronous, args.n)
        rows += rows_for(f"SQLite {synchronous}", labels, pages, bare, args.n)
    if not args.no_postgres:
        from pg_server import PgServer

        server = PgServer()
        try:
            server.start()
            url = server.url(server.create_database("bench"))
            with open_store(url, project="bench", annotator="bench") as store:
                labels = time_labels(store, args.n, "l")
                pages = time_pages(store, args.n, "p")
            rows += rows_for("PostgreSQL (local, TCP)", labels, pages, bare_postgres(url, args.n), args.n)
        finally:
            server.close()
    load = f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    report("Store commit cost", rows, args.out, extra={"load_1min": load})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
