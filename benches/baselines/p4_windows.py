#!/usr/bin/env python3
"""Baseline for P4: DuckDB computing the windowed count per (camera, label)
in batch over the same generated detections as benches/src/bin/p4_windows.rs,
on one thread. Building the table is not timed; the aggregate is.

Usage: python benches/baselines/p4_windows.py N
Prints: baseline events=<n> seconds=<s> events_per_second=<r> windows=<w>
"""
import sys
import time

import duckdb

CAMERAS, LABELS, EVENTS_PER_SECOND, BASE_MS = 100, 10, 10_000, 1_767_225_600_000


def main():
    n = int(sys.argv[1])
    con = duckdb.connect()
    con.execute("SET threads = 1")
    # Row i: camera i % 100, label (i / 100) % 10, event time BASE + i * 1000 / 10000 ms.
    con.execute(f"""
        CREATE TABLE d AS
        SELECT 'cam' || (i % {CAMERAS}) AS source_id,
               'label' || ((i // {CAMERAS}) % {LABELS}) AS label,
               {BASE_MS} + (i * 1000 // {EVENTS_PER_SECOND}) AS t
        FROM range({n}) AS r(i)""")
    start = time.perf_counter()
    windows = con.execute("""
        SELECT count(*) FROM (
            SELECT source_id, label, (t // 10000) * 10000 AS window_start, count(*) AS n
            FROM d GROUP BY ALL)""").fetchone()[0]
    seconds = time.perf_counter() - start
    print(f"baseline events={n} seconds={seconds:.3f} events_per_second={n / seconds:.0f} windows={windows}")


if __name__ == "__main__":
    main()
