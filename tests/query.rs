//! `frameflow query`: ad-hoc SQL over the tables a job stored.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn query(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_frameflow"))
        .current_dir(dir)
        .arg("query")
        .args(args)
        .output()
        .expect("frameflow runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into(), common::stderr(&output))
}

#[test]
fn queries_read_the_sinks_a_job_stored() {
    let dir = tempfile::tempdir().unwrap();
    let rows = common::repo().join("tests/golden/data/late.jsonl");
    let market = common::repo().join("tests/golden/data/market.jsonl");
    let job = format!(
        "CREATE SOURCE d FROM DETECTIONS '{}';
         CREATE SOURCE late FROM DETECTIONS '{}' WITH (lateness = '2s');
         CREATE VIEW counts AS SELECT source_id, label, window_start, window_end, count(*) AS n, max(confidence) AS best
           FROM TUMBLE(d, event_time, INTERVAL '10' SECOND) GROUP BY source_id, label, window_start, window_end;
         CREATE SINK dets FROM d INTO FILE 'out/dets.jsonl';
         CREATE SINK counts_out FROM counts INTO FILE 'out/counts.jsonl';
         CREATE SINK late_rows FROM late INTO FILE 'out/late.jsonl';",
        market.display(),
        rows.display()
    );
    let output = common::run_job(dir.path(), &job, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));

    // Counting by label agrees with the rows themselves.
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for row in common::read_jsonl(&market) {
        *expected.entry(row["label"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let (ok, stdout, stderr) =
        query(dir.path(), &["SELECT label, count(*) AS n FROM dets GROUP BY label ORDER BY label", "--format", "json"]);
    assert!(ok, "{stderr}");
    let got: BTreeMap<String, i64> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| (r["label"].as_str().unwrap().to_owned(), r["n"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, expected);

    // Window rows keep their types: timestamps compare as timestamps.
    let sql = "SELECT sum(n) AS people FROM counts_out \
               WHERE label = 'person' AND window_start >= TIMESTAMP '2026-01-01T00:00:10Z'";
    let (ok, stdout, stderr) = query(dir.path(), &[sql, "--format", "csv"]);
    assert!(ok, "{stderr}");
    let people: i64 = common::read_jsonl(&dir.path().join("out/counts.jsonl"))
        .iter()
        .filter(|r| r["label"] == "person" && r["window_start"].as_str().unwrap() >= "2026-01-01T00:00:10")
        .map(|r| r["n"].as_i64().unwrap())
        .sum();
    assert_eq!(stdout, format!("people\n{people}\n"));

    // The dead-letter log is a table too.
    let (ok, stdout, stderr) = query(dir.path(), &["SELECT outcome, reason FROM dead_letter"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("late") && stdout.contains("watermark"), "{stdout}");

    // Mistakes say what is there.
    let (ok, _, stderr) = query(dir.path(), &["SELECT * FROM detections"]);
    assert!(!ok);
    assert!(stderr.contains("tables: counts_out, dead_letter, dets, late_rows"), "{stderr}");
    let (ok, _, stderr) = query(dir.path(), &["SELEC label FROM dets"]);
    assert!(!ok && stderr.contains("SELEC"), "{stderr}");
}

/// The rows of a query, as JSON objects, in the order printed.
fn rows(dir: &Path, sql: &str) -> Vec<serde_json::Value> {
    let (ok, stdout, stderr) = query(dir, &[sql, "--format", "json"]);
    assert!(ok, "{sql}: {stderr}");
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Two results hold the same rows; the first difference is named.
fn same_rows(got: &[serde_json::Value], expected: &[serde_json::Value]) {
    assert_eq!(got.len(), expected.len(), "row counts differ");
    if let Some((g, e)) = got.iter().zip(expected).find(|(g, e)| g != e) {
        panic!("rows differ:\n  got      {g}\n  expected {e}");
    }
}

#[test]
fn parquet_sinks_hold_what_file_sinks_hold_and_read_back_as_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let market = common::repo().join("tests/golden/data/market.jsonl");
    let job = format!(
        "CREATE SOURCE d FROM DETECTIONS '{}';
         CREATE VIEW counts AS SELECT source_id, label, window_start, count(*) AS n, avg(confidence) AS conf
           FROM TUMBLE(d, event_time, INTERVAL '10' SECOND) GROUP BY source_id, label, window_start;
         CREATE SINK dets_json FROM d INTO FILE 'out/dets.jsonl';
         CREATE SINK dets_pq FROM d INTO PARQUET 'out/dets' WITH (max_file_bytes = '4KiB');
         CREATE SINK counts_json FROM counts INTO FILE 'out/counts.jsonl';
         CREATE SINK counts_pq FROM counts INTO PARQUET 'out/counts' WITH (compression = 'zstd');",
        market.display()
    );
    let output = common::run_job(dir.path(), &job, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let parts = std::fs::read_dir(dir.path().join("out/dets")).unwrap().count();
    assert!(parts > 1, "4KiB files roll: {parts} part(s)");

    // The same questions of the JSONL and the Parquet tables agree, times
    // and types included.
    let detections = "SELECT frame_id, source_id, event_time, label, confidence, x, y, w, h FROM {} \
                      ORDER BY frame_id, label, confidence, x";
    let from_json = rows(dir.path(), &detections.replace("{}", "dets_json"));
    assert_eq!(from_json.len(), common::read_jsonl(&market).len());
    same_rows(&rows(dir.path(), &detections.replace("{}", "dets_pq")), &from_json);
    let counts = "SELECT source_id, label, window_start, n, conf FROM {} ORDER BY source_id, label, window_start";
    let counts_json = rows(dir.path(), &counts.replace("{}", "counts_json"));
    same_rows(&rows(dir.path(), &counts.replace("{}", "counts_pq")), &counts_json);

    // DuckDB reads the files, with times as timestamps with a time zone.
    let check = "import duckdb, sys; print(duckdb.sql(f\"SELECT count(*), sum(n), any_value(typeof(window_start)) \
                 FROM read_parquet('{sys.argv[1]}/*.parquet')\").fetchall()[0])";
    let output = Command::new(common::python())
        .args(["-c", check, &dir.path().join("out/counts").display().to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", common::stderr(&output));
    let total: i64 =
        common::read_jsonl(&dir.path().join("out/counts.jsonl")).iter().map(|r| r["n"].as_i64().unwrap()).sum();
    let windows = common::read_jsonl(&dir.path().join("out/counts.jsonl")).len();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("({windows}, {total}, 'TIMESTAMP WITH TIME ZONE')")
    );

    // The Parquet folder is a source of detections: the same windows again.
    let again = "CREATE SOURCE d FROM DETECTIONS 'out/dets';
         CREATE VIEW counts AS SELECT source_id, label, window_start, count(*) AS n, avg(confidence) AS conf
           FROM TUMBLE(d, event_time, INTERVAL '10' SECOND) GROUP BY source_id, label, window_start;
         CREATE SINK again FROM counts INTO FILE 'out/again.jsonl';";
    let output = common::run_job(dir.path(), again, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    same_rows(&rows(dir.path(), &counts.replace("{}", "again")), &counts_json);
}

#[test]
fn a_tenant_sees_only_its_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let market = common::repo().join("tests/golden/data/market.jsonl");
    let few = common::repo().join("tests/golden/data/few.jsonl");
    let job = format!(
        "CREATE SOURCE a FROM DETECTIONS '{}' WITH (tenant = 'acme');
         CREATE SOURCE g FROM DETECTIONS '{}' WITH (tenant = 'globex');
         CREATE VIEW counts AS SELECT label, window_start, count(*) AS n
           FROM TUMBLE(a, event_time, INTERVAL '1' MINUTE) GROUP BY label, window_start;
         CREATE VIEW g_counts AS SELECT label, window_start, count(*) AS n
           FROM TUMBLE(g, event_time, INTERVAL '1' MINUTE) GROUP BY label, window_start;
         CREATE SINK acme_rows FROM a INTO FILE 'out/a.jsonl';
         CREATE SINK globex_rows FROM g INTO PARQUET 'out/g';
         CREATE SINK acme_counts FROM counts INTO FILE 'out/counts.jsonl';
         CREATE SINK globex_counts FROM g_counts INTO FILE 'out/g_counts.jsonl';",
        market.display(),
        few.display()
    );
    let output = common::run_job(dir.path(), &job, &[]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let tenants = |sql: &str, tenant: Option<&str>| -> Vec<String> {
        let mut args = vec![sql, "--format", "csv"];
        if let Some(tenant) = tenant {
            args.extend(["--tenant", tenant]);
        }
        let (ok, stdout, stderr) = query(dir.path(), &args);
        assert!(ok, "{stderr}");
        stdout.lines().skip(1).map(str::to_owned).collect()
    };
    let everyone = "SELECT DISTINCT tenant FROM (SELECT tenant FROM acme_rows UNION ALL SELECT tenant FROM globex_rows \
                    UNION ALL SELECT tenant FROM acme_counts UNION ALL SELECT tenant FROM globex_counts) ORDER BY tenant";
    assert_eq!(tenants(everyone, None), ["acme", "globex"], "without --tenant: every tenant");
    assert_eq!(tenants(everyone, Some("acme")), ["acme"]);
    assert_eq!(tenants(everyone, Some("globex")), ["globex"]);
    // View rows carry their tenant, so one tenant's windows are its own.
    assert_eq!(tenants("SELECT count(*) FROM globex_counts", Some("acme")), ["0"], "acme sees no globex window");
    let n = tenants("SELECT sum(n) FROM acme_counts", Some("acme"));
    assert_eq!(n, [common::read_jsonl(&market).len().to_string()]);
}
