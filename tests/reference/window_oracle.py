#!/usr/bin/env python3
"""Batch oracle for frameflow's incremental views: the same windows and
aggregates recomputed with DuckDB over the rows of a DETECTIONS file.

Usage: python tests/reference/window_oracle.py ROWS_JSONL LATENESS_MS
Prints one JSON object per line: {"view": "tumble"|"hop", ...columns}.

Lateness is applied as frameflow defines it, per camera in file order: a
row is late if its event time is behind the newest earlier row of its
camera minus the lateness; late rows are left out. The views are fixed:
  tumble: TUMBLE 2 s, by source_id, label: count(*), sum(w), avg(confidence),
          min(confidence), max(h), count(DISTINCT frame_id)
  hop:    HOP 1 s slide, 3 s size, by label: count(*), max(confidence)
  session: SESSION 250 ms gap, by source_id, label: count(*), max(confidence)
"""
import json
import sys
from datetime import datetime, timedelta, timezone

import duckdb


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def on_time_rows(path, lateness_ms):
    newest = {}
    rows = []
    for line in open(path):
        row = json.loads(line)
        when = datetime.fromisoformat(row["event_time"].replace("Z", "+00:00"))
        t = (when - EPOCH) // timedelta(milliseconds=1)
        camera = row["source_id"]
        if camera in newest and t < newest[camera] - lateness_ms:
            continue
        newest[camera] = max(newest.get(camera, t), t)
        rows.append((camera, row["label"], row["frame_id"], t, row["confidence"], row["w"], row["h"]))
    return rows


def main():
    path, lateness = sys.argv[1], int(sys.argv[2])
    con = duckdb.connect()
    con.execute("CREATE TABLE d (source_id VARCHAR, label VARCHAR, frame_id VARCHAR, t BIGINT, "
                "confidence DOUBLE, w DOUBLE, h DOUBLE)")
    con.executemany("INSERT INTO d VALUES (?, ?, ?, ?, ?, ?, ?)", on_time_rows(path, lateness))
    tumble = con.execute("""
        SELECT source_id, label, (t // 2000) * 2000 AS window_start, count(*), sum(w), avg(confidence),
               min(confidence), max(h), count(DISTINCT frame_id)
        FROM d GROUP BY ALL ORDER BY ALL""").fetchall()
    for r in tumble:
        print(json.dumps({"view": "tumble", "source_id": r[0], "label": r[1], "window_start": r[2],
                          "window_end": r[2] + 2000, "n": r[3],
                          "width": r[4], "conf": r[5], "lo": r[6], "tallest": r[7], "frames": r[8]}))
    hop = con.execute("""
        SELECT label, s AS window_start, count(*), max(confidence)
        FROM d, range((t // 1000 - 2) * 1000, (t // 1000) * 1000 + 1, 1000) AS starts(s)
        GROUP BY ALL ORDER BY ALL""").fetchall()
    for r in hop:
        print(json.dumps({"view": "hop", "label": r[0], "window_start": r[1], "window_end": r[1] + 3000,
                          "n": r[2], "hi": r[3]}))

    session = con.execute("""
        WITH gaps AS (
            SELECT *, t - lag(t) OVER (PARTITION BY source_id, label ORDER BY t) AS since FROM d),
        numbered AS (
            SELECT *, sum(CASE WHEN since IS NULL OR since >= 250 THEN 1 ELSE 0 END)
                      OVER (PARTITION BY source_id, label ORDER BY t ROWS UNBOUNDED PRECEDING) AS session
            FROM gaps)
        SELECT source_id, label, min(t), max(t) + 250, count(*), max(confidence)
        FROM numbered GROUP BY source_id, label, session ORDER BY ALL""").fetchall()
    for r in session:
        print(json.dumps({"view": "session", "source_id": r[0], "label": r[1], "window_start": r[2],
                          "window_end": r[3], "n": r[4], "hi": r[5]}))


if __name__ == "__main__":
    main()
