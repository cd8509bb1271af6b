#!/usr/bin/env python3
"""Batch recomputation of tumbling-window counts with DuckDB, the oracle for
frameflow's incremental windows.

Usage: python tests/reference/window_counts.py DETECTIONS_JSONL WINDOW_MS
Prints one JSON array per line: [source_id, label, window_start_ms, count],
sorted. Windows are aligned to the Unix epoch, as frameflow's are.
"""
import json
import sys

import duckdb


def main():
    path, size = sys.argv[1], int(sys.argv[2])
    rows = duckdb.sql(
        f"""
        SELECT source_id, label,
               (epoch_ms(CAST(event_time AS TIMESTAMP)) // {size}) * {size} AS window_start,
               count(*) AS n
        FROM read_json(?, format = 'newline_delimited',
                       columns = {{'source_id': 'VARCHAR', 'label': 'VARCHAR', 'event_time': 'VARCHAR'}})
        GROUP BY ALL ORDER BY ALL
        """,
        params=[path],
    ).fetchall()
    for row in rows:
        print(json.dumps([row[0], row[1], int(row[2]), int(row[3])]))


if __name__ == "__main__":
    main()
