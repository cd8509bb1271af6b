//! Incremental views against batch recomputation: random detections,
//! shuffled within the allowed lateness and with late rows among them, run
//! through TUMBLE, HOP and SESSION views with every aggregate, with 1 and 2 workers,
//! and compared at every closed window with DuckDB over the same rows
//! (tests/reference/window_oracle.py). `emit = 'updates'`, folded, must
//! equal `emit = 'final'`.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use engine::time::{format_rfc3339_ms, parse_rfc3339_ms};
use serde_json::{Value, json};

const LATENESS_MS: i64 = 1_000;
const BASE_MS: i64 = 1_767_225_600_000;

const JOB: &str = "
CREATE SOURCE d FROM DETECTIONS 'rows.jsonl' WITH (lateness = '1s');
CREATE VIEW tumble AS
  SELECT source_id, label, window_start, window_end, count(*) AS n, sum(w) AS width, avg(confidence) AS conf,
         min(confidence) AS lo, max(h) AS tallest, count(DISTINCT frame_id) AS frames
  FROM TUMBLE(d, event_time, INTERVAL '2' SECOND)
  GROUP BY source_id, label, window_start, window_end;
CREATE VIEW tumble_updates WITH (emit = 'updates') AS
  SELECT source_id, label, window_start, window_end, count(*) AS n, sum(w) AS width, avg(confidence) AS conf,
         min(confidence) AS lo, max(h) AS tallest, count(DISTINCT frame_id) AS frames
  FROM TUMBLE(d, event_time, INTERVAL '2' SECOND)
  GROUP BY source_id, label, window_start, window_end;
CREATE VIEW hop AS
  SELECT label, window_start, window_end, count(*) AS n, max(confidence) AS hi
  FROM HOP(d, event_time, INTERVAL '1' SECOND, INTERVAL '3' SECOND)
  GROUP BY label, window_start, window_end;
CREATE VIEW sessions AS
  SELECT source_id, label, window_start, window_end, count(*) AS n, max(confidence) AS hi
  FROM SESSION(d, event_time, INTERVAL '250' MILLISECOND)
  GROUP BY source_id, label, window_start, window_end;
CREATE SINK a FROM tumble INTO FILE 'out/tumble.jsonl';
CREATE SINK s FROM sessions INTO FILE 'out/sessions.jsonl';
CREATE SINK b FROM tumble_updates INTO FILE 'out/tumble_updates.jsonl';
CREATE SINK c FROM hop INTO FILE 'out/hop.jsonl';
";

/// A small deterministic generator (xorshift), so a failure can be rerun.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Rows from three cameras over ~30 s: mostly in order, some up to 800 ms
/// out of order (inside the lateness), and a few 3–6 s behind (late).
fn write_rows(path: &Path, seed: u64) -> usize {
    let mut random = Random(seed);
    let labels = ["person", "car", "bicycle", "horse", "bus"];
    let mut lines = Vec::new();
    let mut late = 0;
    for i in 0..1_500i64 {
        let camera = format!("cam{}", random.below(3));
        let mut t = BASE_MS + i * 20 - random.below(800) as i64;
        if random.below(100) == 0 {
            t -= 3_000 + random.below(3_000) as i64;
            late += 1;
        }
        let row = json!({
            "frame_id": format!("{camera}-{}", i / 3),
            "tenant": "default",
            "source_id": camera,
            "event_time": format_rfc3339_ms(t),
            "operator": "detect",
            "label": labels[random.below(5) as usize],
            "confidence": (300 + random.below(700)) as f64 / 1000.0,
            "x": random.below(600) as f64,
            "y": random.below(300) as f64,
            "w": (5 + random.below(200)) as f64 / 4.0,
            "h": (5 + random.below(200)) as f64 / 4.0,
        });
        lines.push(row.to_string());
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    assert!(late > 5, "the rows should include late ones");
    lines.len()
}

type Rows = BTreeMap<String, Value>;

/// Rows keyed by their group columns, with window starts as ms.
fn keyed(rows: impl IntoIterator<Item = Value>, keys: &[&str]) -> Rows {
    rows.into_iter()
        .map(|mut row| {
            let object = row.as_object_mut().unwrap();
            object.remove("view");
            // Every view groups by tenant; the rows here are all one
            // tenant's, so the batch queries leave it out.
            if let Some(tenant) = object.remove("tenant") {
                assert_eq!(tenant, "default");
            }
            for bound in ["window_start", "window_end"] {
                if let Some(Value::String(time)) = object.get(bound) {
                    object.insert(bound.into(), json!(parse_rfc3339_ms(time).unwrap()));
                }
            }
            let key = keys.iter().map(|k| object[*k].to_string()).collect::<Vec<_>>().join("|");
            (key, row)
        })
        .collect()
}

fn assert_rows_equal(ours: &Rows, theirs: &Rows, what: &str) {
    let only_ours: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    let only_theirs: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{what}: only frameflow {only_ours:?}; only batch {only_theirs:?}"
    );
    for (key, row) in ours {
        for (column, value) in row.as_object().unwrap() {
            let expected = &theirs[key][column];
            let close = match (value.as_f64(), expected.as_f64()) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
                _ => value == expected,
            };
            assert!(close, "{what} {key}: {column} is {value}, batch says {expected}");
        }
    }
}

/// Folds an updates stream: the rows whose +1s outnumber their -1s.
fn fold_updates(rows: Vec<Value>) -> Vec<Value> {
    let mut multiplicity: BTreeMap<String, (Value, i64)> = BTreeMap::new();
    for mut row in rows {
        let diff = row.as_object_mut().unwrap().remove("diff").unwrap().as_i64().unwrap();
        multiplicity.entry(row.to_string()).or_insert((row, 0)).1 += diff;
    }
    multiplicity
        .into_values()
        .filter(|(_, n)| *n > 0)
        .map(|(row, n)| {
            assert_eq!(n, 1, "a window row survived folding more than once: {row}");
            row
        })
        .collect()
}

#[test]
fn incremental_views_equal_batch_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let rows = dir.path().join("rows.jsonl");
    let count = write_rows(&rows, 0x5eed_f00d);
    let oracle =
        common::run_python("tests/reference/window_oracle.py", &[rows.to_str().unwrap(), &LATENESS_MS.to_string()]);
    let oracle: Vec<Value> = oracle.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let batch_tumble =
        keyed(oracle.iter().filter(|r| r["view"] == "tumble").cloned(), &["source_id", "label", "window_start"]);
    let batch_hop = keyed(oracle.iter().filter(|r| r["view"] == "hop").cloned(), &["label", "window_start"]);
    let batch_sessions =
        keyed(oracle.iter().filter(|r| r["view"] == "session").cloned(), &["source_id", "label", "window_start"]);
    assert!(batch_tumble.len() > 100 && batch_hop.len() > 50, "too few windows to mean much");
    assert!(batch_sessions.len() > 200, "too few sessions to mean much: {}", batch_sessions.len());

    for workers in ["1", "2"] {
        let output = common::run_job(dir.path(), JOB, &["--workers", workers, "--tick-ms", "10"]);
        let stderr = common::stderr(&output);
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains(&format!("{count} frames")), "{stderr}");
        let out = dir.path().join("out");
        let tumble = keyed(common::read_jsonl(&out.join("tumble.jsonl")), &["source_id", "label", "window_start"]);
        assert_rows_equal(&tumble, &batch_tumble, &format!("TUMBLE with {workers} worker(s)"));
        let hop = keyed(common::read_jsonl(&out.join("hop.jsonl")), &["label", "window_start"]);
        assert_rows_equal(&hop, &batch_hop, &format!("HOP with {workers} worker(s)"));
        let sessions = keyed(common::read_jsonl(&out.join("sessions.jsonl")), &["source_id", "label", "window_start"]);
        assert_rows_equal(&sessions, &batch_sessions, &format!("SESSION with {workers} worker(s)"));
        let folded = keyed(
            fold_updates(common::read_jsonl(&out.join("tumble_updates.jsonl"))),
            &["source_id", "label", "window_start"],
        );
        assert_rows_equal(&folded, &tumble, &format!("folded updates with {workers} worker(s)"));
    }
}
