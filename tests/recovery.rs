//! Crash recovery: `frameflow run --durable` killed with SIGKILL at random
//! points, ten times, then run to the end. Whatever the kills hit, the
//! output is that of one uninterrupted run: every frame (every frame that
//! got a 202, over HTTP) is processed once, and every window count equals
//! a batch recount of the detections.
//!
//! The kill points are random; each test prints them, so a failure can be
//! replayed by hand.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const ROUNDS: usize = 10;

/// The frames of both quickstart cameras, 60 each.
fn frames() -> Vec<(String, PathBuf)> {
    let mut all = Vec::new();
    for camera in ["market-a", "market-b"] {
        all.extend(common::camera_frames(camera).into_iter().take(60).map(|p| (camera.to_owned(), p)));
    }
    // In capture order across cameras, as devices would send them.
    all.sort_by_key(|(camera, path)| (event_time(path), camera.clone()));
    all
}

fn event_time(path: &Path) -> i64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// A pseudo-random number below `n`, different every run.
fn random(n: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    (nanos ^ (nanos >> 7)).wrapping_mul(0x9e37_79b9_7f4a_7c15) % n
}

const VIEWS: &str = "
    CREATE STREAM found AS SELECT * FROM DETECT(cams, model => 'objects', min_confidence => 0.3);
    CREATE VIEW counts AS
      SELECT source_id, label, window_start, count(*) AS n
      FROM TUMBLE(found, event_time, INTERVAL '2' SECOND)
      GROUP BY source_id, label, window_start;
    CREATE SINK d FROM found INTO FILE 'out/detections.jsonl';
    CREATE SINK c FROM counts INTO FILE 'out/counts.jsonl';
    CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';";

/// A detection without its frame's id (which differs between sources).
fn detection_key(d: &Value) -> String {
    let fields = ["source_id", "event_time", "label", "confidence", "x", "y", "w", "h"];
    fields.iter().map(|f| d[f].to_string()).collect::<Vec<_>>().join(",")
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// Window counts recomputed in one batch from the detections.
fn recount(detections: &[Value]) -> Counts {
    let mut counts = BTreeMap::new();
    for d in detections {
        let at = engine::time::parse_rfc3339_ms(d["event_time"].as_str().unwrap()).unwrap();
        let key =
            (d["source_id"].as_str().unwrap().to_owned(), d["label"].as_str().unwrap().to_owned(), at - at % 2000);
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

fn counts_of(path: &Path) -> Counts {
    let mut counts = BTreeMap::new();
    for row in common::read_jsonl(path) {
        let start = engine::time::parse_rfc3339_ms(row["window_start"].as_str().unwrap()).unwrap();
        let key = (row["source_id"].as_str().unwrap().to_owned(), row["label"].as_str().unwrap().to_owned(), start);
        assert!(counts.insert(key.clone(), row["n"].as_i64().unwrap()).is_none(), "window {key:?} twice");
    }
    counts
}

/// The output of one uninterrupted run over the same frames, read from a
/// folder.
/// Window counts by camera, label and window start.
type Counts = BTreeMap<(String, String, i64), i64>;

fn reference(root: &Path) -> (Vec<String>, Counts) {
    let dir = root.join("reference");
    for (camera, path) in frames() {
        std::fs::create_dir_all(dir.join("frames").join(&camera)).unwrap();
        std::fs::copy(&path, dir.join("frames").join(&camera).join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.join("job.sql"),
        format!("CREATE SOURCE cams FROM DIRECTORY 'frames' WITH (lateness = '1s');{VIEWS}"),
    )
    .unwrap();
    let output = common::frameflow(&dir, false).output().unwrap();
    assert!(output.status.success(), "{}", common::stderr(&output));
    let detections = common::read_jsonl(&dir.join("out/detections.jsonl"));
    let mut keys: Vec<String> = detections.iter().map(detection_key).collect();
    keys.sort();
    (keys, counts_of(&dir.join("out/counts.jsonl")))
}

fn check_against(dir: &Path, reference: &(Vec<String>, Counts)) {
    let detections = common::read_jsonl(&dir.join("out/detections.jsonl"));
    let mut keys: Vec<String> = detections.iter().map(detection_key).collect();
    keys.sort();
    assert_eq!(keys.len(), reference.0.len(), "as many detections as one uninterrupted run");
    assert!(keys == reference.0, "the same detections as one uninterrupted run");
    let counts = counts_of(&dir.join("out/counts.jsonl"));
    assert_eq!(counts, recount(&detections), "every window count equals a batch recount");
    assert_eq!(counts, reference.1, "the same window counts as one uninterrupted run");
    // Every frame has exactly one outcome.
    let outcomes = common::read_jsonl(&dir.join("out/outcomes.jsonl"));
    let ids: BTreeSet<&str> = outcomes.iter().map(|o| o["frame_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), outcomes.len(), "no frame has two outcomes");
    assert_eq!(outcomes.len(), frames().len(), "every frame has an outcome");
}

/// Starts the durable job in `dir` (with `env` set) and kills it with
/// SIGKILL at a random point, `ROUNDS` times, then runs it to the end.
fn killed_then_finished(dir: &Path, env: &[(&str, &str)]) {
    let mut kills = Vec::new();
    for _ in 0..ROUNDS {
        let mut job = common::frameflow(dir, true).envs(env.iter().copied()).spawn().unwrap();
        let after = Duration::from_millis(300 + random(2500));
        kills.push(after.as_millis());
        std::thread::sleep(after);
        job.kill().unwrap();
        job.wait().unwrap();
    }
    eprintln!("killed after (ms): {kills:?}");
    let output = common::frameflow(dir, true).envs(env.iter().copied()).output().unwrap();
    assert!(output.status.success(), "{}", common::stderr(&output));
}

#[test]
fn kill_9_during_a_directory_job_loses_and_repeats_nothing() {
    let root = tempfile::tempdir().unwrap();
    let reference = reference(root.path());
    let dir = root.path().join("durable");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("job.sql"),
        format!("CREATE SOURCE cams FROM DIRECTORY 'frames' WITH (lateness = '1s');{VIEWS}"),
    )
    .unwrap();
    std::os::unix::fs::symlink(root.path().join("reference/frames"), dir.join("frames")).unwrap();
    killed_then_finished(&dir, &[]);
    check_against(&dir, &reference);

    // Run again, finished: nothing more is written.
    let before = sorted_lines(&dir.join("out/detections.jsonl"));
    let output = common::frameflow(&dir, true).output().unwrap();
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert_eq!(sorted_lines(&dir.join("out/detections.jsonl")), before);
}

/// What became of each frame in each stage, from an outcomes file: by
/// camera, event time and stage (a frame kept by `dedup` has an outcome
/// in each stream; one it drops has one, `duplicate`).
fn outcomes_by_frame(path: &Path) -> BTreeMap<(String, String, String), String> {
    let mut outcomes = BTreeMap::new();
    for o in common::read_jsonl(path) {
        let key = [&o["source_id"], &o["event_time"], &o["stage"]].map(|v| v.as_str().unwrap().to_owned());
        let outcome = o["outcome"].as_str().unwrap().to_owned();
        assert!(outcomes.insert(key.clone().into(), outcome).is_none(), "two outcomes for {key:?}");
    }
    outcomes
}

/// `dedup` on the source, the job killed at random: the frames it drops
/// are those one uninterrupted run drops. The checkpoints hold what each
/// camera last kept; without it, frames after a restart were judged
/// afresh, and a copy whose original came before the restart was kept.
#[test]
fn kill_9_during_a_deduplicating_job_drops_what_one_run_drops() {
    deduplicating_job_killed(
        "CREATE SOURCE cams FROM DIRECTORY 'frames' WITH (lateness = '1s', dedup = '10s', max_distance = 0);
         CREATE STREAM hashes AS SELECT * FROM HASH(cams);",
    );
}

/// The same with `dedup` on the HASH stream.
#[test]
fn kill_9_during_a_deduplicating_stream_drops_what_one_run_drops() {
    deduplicating_job_killed(
        "CREATE SOURCE cams FROM DIRECTORY 'frames' WITH (lateness = '1s');
         CREATE STREAM hashes AS SELECT * FROM HASH(cams, dedup => '10s', max_distance => 0);",
    );
}

/// The same with `dedup` on HASH inside ANNOTATE, which writes a JPEG of
/// each frame kept.
#[test]
fn kill_9_during_an_annotated_deduplicating_stream_drops_what_one_run_drops() {
    deduplicating_job_killed(
        "CREATE SOURCE cams FROM DIRECTORY 'frames' WITH (lateness = '1s');
         CREATE STREAM hashes AS SELECT * FROM
           ANNOTATE(cams, into => 'out/annotated', operator => 'hash', dedup => '10s', max_distance => 0);",
    );
}

/// Runs a job that dedups `hashes` (from `dedup`, the statements that make
/// it) once whole and once killed ten times at random, and compares.
fn deduplicating_job_killed(dedup: &str) {
    let root = tempfile::tempdir().unwrap();
    // Cameras that stick: each shows one of its frames for two seconds
    // (ten copies, 200 ms apart), then the next, 12 times. A restart
    // almost always falls between a kept frame and its copies.
    let frames_dir = root.path().join("frames");
    for camera in ["market-a", "market-b"] {
        let dir = frames_dir.join(camera);
        std::fs::create_dir_all(&dir).unwrap();
        for path in common::camera_frames(camera).into_iter().take(120).step_by(10) {
            for k in 0..10 {
                std::fs::copy(&path, dir.join(format!("{}.jpg", event_time(&path) + 200 * k))).unwrap();
            }
        }
    }
    // `all` reads the same frames without dedup: DETECT on every one of
    // them makes the job long enough for the kills to land in it.
    let job = format!(
        "{dedup}
        CREATE SOURCE all FROM DIRECTORY 'frames' WITH (lateness = '1s');
        CREATE STREAM found AS SELECT * FROM DETECT(all, model => 'objects', min_confidence => 0.3);
        CREATE VIEW kept AS SELECT source_id, window_start, count(*) AS n
          FROM TUMBLE(hashes, event_time, INTERVAL '4' SECOND) GROUP BY source_id, window_start;
        CREATE SINK h FROM hashes INTO FILE 'out/hashes.jsonl';
        CREATE SINK k FROM kept INTO FILE 'out/kept.jsonl';
        CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';"
    );
    let run_in = |name: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("job.sql"), &job).unwrap();
        std::os::unix::fs::symlink(&frames_dir, dir.join("frames")).unwrap();
        dir
    };
    let reference = run_in("reference");
    let output = common::frameflow(&reference, false).output().unwrap();
    assert!(output.status.success(), "{}", common::stderr(&output));
    let expected = outcomes_by_frame(&reference.join("out/outcomes.jsonl"));
    let duplicates = expected.values().filter(|o| *o == "duplicate").count();
    assert_eq!(duplicates, 216, "every copy is a duplicate");

    let dir = run_in("durable");
    // small polls, so that the sources' positions move on and a restart
    // replays only a little: the state must come from the checkpoint
    killed_then_finished(&dir, &[("FRAMEFLOW_MAX_IN_FLIGHT", "8")]);
    let decided = outcomes_by_frame(&dir.join("out/outcomes.jsonl"));
    let keys: BTreeSet<_> = expected.keys().chain(decided.keys()).collect();
    let otherwise: Vec<String> = keys
        .into_iter()
        .filter(|k| expected.get(*k) != decided.get(*k))
        .map(|k| format!("{k:?}: {:?}, not {:?}", decided.get(k), expected.get(k)))
        .collect();
    assert!(otherwise.is_empty(), "{} outcomes differ from one uninterrupted run's: {otherwise:?}", otherwise.len());
    let text = |d: &Path| {
        let mut rows: Vec<String> = common::read_jsonl(&d.join("out/hashes.jsonl"))
            .iter()
            .map(|r| format!("{} {} {}", r["source_id"], r["event_time"], r["text"]))
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(text(&dir), text(&reference), "one hash row per frame kept");
    let kept = |d: &Path| sorted_lines(&d.join("out/kept.jsonl"));
    assert_eq!(kept(&dir), kept(&reference), "the windows of one uninterrupted run");
}

/// Waits (up to a minute) until the outcomes file has `n` rows: a durable
/// job that is stopped delivers only what its last checkpoint holds.
fn wait_for_outcomes(dir: &Path, n: usize) {
    common::wait_for_lines(&dir.join("out/outcomes.jsonl"), n);
}

/// The job, with an HTTP source, started and listening.
struct Server(Child);

impl Server {
    fn start(dir: &Path, port: u16) -> Server {
        let child = common::frameflow(dir, true).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut child = child;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if child.try_wait().unwrap().is_some() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                panic!("the job ended before it listened: {stderr}");
            }
            assert!(Instant::now() < deadline, "the HTTP source never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// POSTs a frame as a device does; the status (0: no answer).
fn post(port: u16, token: &str, camera: &str, path: &Path) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "--max-time", "30"])
        .args(["-H", &format!("Authorization: Bearer {token}"), "-H", "Content-Type: image/jpeg"])
        .args(["-H", &format!("X-Event-Time: {}", event_time(path))])
        .arg("--data-binary")
        .arg(format!("@{}", path.display()))
        .arg(format!("http://127.0.0.1:{port}/v1/frames/{camera}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn kill_9_during_an_http_job_loses_no_acknowledged_frame() {
    let root = tempfile::tempdir().unwrap();
    let reference = reference(root.path());
    let dir = root.path().join("http");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), "a secret of the recovery test, long enough").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Quiet cameras hold their windows open while frames come (a restart
    // takes a while); the last run lets them go.
    let job = |idle: &str| {
        format!(
            "CREATE SOURCE cams FROM HTTP WITH (listen = '127.0.0.1:{port}', jwt_secret_file = 'secret',
               queue = 8, lateness = '1s', idle_timeout = '{idle}');{VIEWS}"
        )
    };
    std::fs::write(dir.join("job.sql"), job("1h")).unwrap();
    let token = common::device_token(&dir.join("secret"), "default");
    let frames = frames();
    // Kill after a random number of acknowledged frames, at a random
    // moment after it: often with requests in flight.
    let mut kill_at: Vec<usize> = (0..ROUNDS).map(|_| random(frames.len() as u64) as usize).collect();
    kill_at.sort();
    eprintln!("killed after frames: {kill_at:?}");
    let mut acknowledged = BTreeSet::new();
    let mut server = Server::start(&dir, port);
    let mut next = 0;
    while next < frames.len() {
        if kill_at.first().is_some_and(|&k| k <= next) {
            kill_at.remove(0);
            let victim = server.0.id();
            let delay = random(40);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay));
                let _ = Command::new("kill").args(["-KILL", &victim.to_string()]).status();
            });
        }
        let (camera, path) = &frames[next];
        match post(port, &token, camera, path) {
            (202, body) => {
                let answer: Value = serde_json::from_str(&body).unwrap();
                acknowledged.insert(answer["frame_id"].as_str().unwrap().to_owned());
                next += 1;
            }
            (503, _) => std::thread::sleep(Duration::from_millis(20)),
            (0, _) => {
                // No answer: the job died. Restart it and send the frame again.
                let _ = server.0.wait();
                server = Server::start(&dir, port);
            }
            (status, body) => panic!("{status}: {body}"),
        }
        if server.0.try_wait().unwrap().is_some() {
            server = Server::start(&dir, port);
        }
    }
    // Restarted once more with cameras quiet after a second: event time then
    // goes on with the clock and every window closes. Then stop (at a
    // checkpoint).
    drop(server);
    std::fs::write(dir.join("job.sql"), job("1s")).unwrap();
    let mut server = Server::start(&dir, port);
    wait_for_outcomes(&dir, acknowledged.len());
    common::wait_for_lines(&dir.join("out/counts.jsonl"), reference.1.len());
    Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    let status = server.0.wait().unwrap();
    assert!(status.success(), "the job stops cleanly");
    check_against(&dir, &reference);
    let outcomes = common::read_jsonl(&dir.join("out/outcomes.jsonl"));
    let processed: BTreeSet<String> = outcomes.iter().map(|o| o["frame_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(processed, acknowledged, "every acknowledged frame is processed, once");
}

#[test]
fn a_damaged_journal_is_repaired_and_reported_and_the_rest_replayed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    std::fs::write(dir.join("secret"), "a secret of the recovery test, long enough").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // A session view keeps every frame in the journal until the job ends.
    std::fs::write(
        dir.join("job.sql"),
        format!(
            "CREATE SOURCE cams FROM HTTP WITH (listen = '127.0.0.1:{port}', jwt_secret_file = 'secret',
               lateness = '1s', idle_timeout = '1s');
             CREATE STREAM found AS SELECT * FROM DETECT(cams, model => 'objects', min_confidence => 0.3);
             CREATE VIEW visits AS SELECT source_id, window_start, count(*) AS n
               FROM SESSION(found, event_time, INTERVAL '1' HOUR) GROUP BY source_id, window_start;
             CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';"
        ),
    )
    .unwrap();
    let token = common::device_token(&dir.join("secret"), "default");
    let frames: Vec<(String, PathBuf)> = frames().into_iter().take(12).collect();
    let mut ids = Vec::new();
    let server = Server::start(dir, port);
    for (camera, path) in &frames {
        let (status, body) = post(port, &token, camera, path);
        assert_eq!(status, 202, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        ids.push(answer["frame_id"].as_str().unwrap().to_owned());
    }
    drop(server); // SIGKILL

    // Flip a byte inside the fourth record, and cut the last one short.
    let journal = dir.join(".frameflow/jobs/job/sources/cams/journal");
    let segment = std::fs::read_dir(&journal).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&segment).unwrap();
    let mut offsets = vec![0usize];
    while *offsets.last().unwrap() < bytes.len() {
        let at = *offsets.last().unwrap();
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        offsets.push(at + 16 + len);
    }
    assert_eq!(offsets.len(), frames.len() + 1, "one record per frame");
    bytes[offsets[3] + 16 + 100] ^= 0x20;
    bytes.truncate(offsets[11] + 40);
    std::fs::write(&segment, &bytes).unwrap();

    let mut server = Server::start(dir, port);
    wait_for_outcomes(dir, frames.len() - 2);
    Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(server.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(server.0.wait().unwrap().success(), "{stderr}");
    assert!(stderr.contains("records 3 to 3 are lost"), "the damaged record is reported: {stderr}");
    assert!(stderr.contains("cut a torn tail"), "the torn tail is reported: {stderr}");
    let outcomes = common::read_jsonl(&dir.join("out/outcomes.jsonl"));
    let processed: BTreeSet<&str> = outcomes.iter().map(|o| o["frame_id"].as_str().unwrap()).collect();
    let expected: BTreeSet<&str> =
        ids.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 11).map(|(_, id)| id.as_str()).collect();
    assert_eq!(processed, expected, "every record but the damaged two is replayed, once");
}
