//! HTTP ingest from a real client (curl) against the real binary: every
//! answer the source gives, tenants from the tokens, nothing stored for a
//! refused request, and a graceful stop on SIGTERM that delivers what was
//! accepted.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use connectors::http::auth::{Claims, mint};

const BASE_MS: i64 = 1_767_225_600_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(dir: &Path, tenant: &str, sources: &[&str], exp: u64) -> String {
    let claims = Claims {
        tenant: tenant.into(),
        sources: sources.iter().map(|s| s.to_string()).collect(),
        scope: "ingest".into(),
        exp,
        nbf: None,
    };
    mint(&claims, &dir.join("secret")).unwrap()
}

/// The running job; killed if the test fails before it stops it.
struct Job(Child);

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// Starts `frameflow run` on a job with an HTTP source; waits until it
/// listens.
fn start(dir: &Path, port: u16) -> Job {
    let job = format!(
        "CREATE SOURCE phones FROM HTTP WITH (listen = '127.0.0.1:{port}', jwt_secret_file = 'secret',
           max_bytes = '200KiB', queue = 1, lateness = '10s');
         CREATE STREAM found AS SELECT * FROM DETECT(phones, model => 'objects');
         CREATE SINK o FROM outcomes INTO FILE 'out/outcomes.jsonl';"
    );
    std::fs::write(dir.join("job.sql"), job).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_frameflow"))
        .current_dir(dir)
        .args(["run", "job.sql", "--progress", "none", "--workers", "2"])
        .env("FRAMEFLOW_ASSETS", common::assets())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for_port(port, "the HTTP source");
    Job(child)
}

/// `curl` POSTs `body` with `headers`; the status and the answer's body.
fn post(port: u16, camera: &str, headers: &[String], body: &Path) -> (u16, serde_json::Value) {
    let mut command = Command::new("curl");
    command.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"]);
    for header in headers {
        command.args(["-H", header]);
    }
    command.arg("--data-binary").arg(format!("@{}", body.display()));
    command.arg(format!("http://127.0.0.1:{port}/v1/frames/{camera}"));
    let output = command.output().expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (answer, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), serde_json::from_str(answer).unwrap_or(serde_json::Value::Null))
}

/// As a device does: a 503 is tried again, after a moment.
fn post_until_taken(port: u16, camera: &str, headers: &[String], body: &Path) -> (u16, serde_json::Value) {
    for _ in 0..100 {
        let (status, answer) = post(port, camera, headers, body);
        if status != 503 {
            return (status, answer);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("503 for five seconds");
}

fn frame_headers(token: &str, kind: &str, at: i64) -> Vec<String> {
    vec![format!("Authorization: Bearer {token}"), format!("Content-Type: {kind}"), format!("X-Event-Time: {at}")]
}

#[test]
fn every_answer_of_the_http_source_and_a_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("secret"), "a test secret that is long enough for HS256\n").unwrap();
    let port = free_port();
    let mut job = start(root, port);

    let frames = common::camera_frames("market-a");
    let jpeg = &frames[0];
    let acme = token(root, "acme", &["cam1"], now() + 600);
    let globex = token(root, "globex", &["*"], now() + 600);
    let mut accepted = BTreeSet::new();

    // 202: admitted, with the frame's id; the tenant comes from the token.
    for (i, frame) in frames.iter().take(3).enumerate() {
        let headers = frame_headers(&acme, "image/jpeg", BASE_MS + i as i64 * 200);
        let (status, answer) = post_until_taken(port, "cam1", &headers, frame);
        assert_eq!(status, 202, "{answer}");
        accepted.insert(answer["frame_id"].as_str().unwrap().to_owned());
    }
    let (status, answer) = post_until_taken(port, "cam9", &frame_headers(&globex, "image/jpeg", BASE_MS), jpeg);
    assert_eq!(status, 202, "{answer}");
    let globex_frame = answer["frame_id"].as_str().unwrap().to_owned();
    accepted.insert(globex_frame.clone());

    // 401: no token, a forged one, an expired one.
    let no_token = vec!["Content-Type: image/jpeg".to_owned()];
    assert_eq!(post(port, "cam1", &no_token, jpeg).0, 401);
    // The same claims, signed with another key.
    std::fs::write(root.join("other"), "another secret, just as long as the right one").unwrap();
    let claims = Claims {
        tenant: "acme".into(),
        sources: vec!["cam1".into()],
        scope: "ingest".into(),
        exp: now() + 600,
        nbf: None,
    };
    let forged = mint(&claims, &root.join("other")).unwrap();
    let (status, answer) = post(port, "cam1", &frame_headers(&forged, "image/jpeg", BASE_MS), jpeg);
    assert_eq!((status, answer["error"].as_str().unwrap()), (401, "the token's signature does not match"));
    let expired = token(root, "acme", &["cam1"], now() - 600);
    let (status, answer) = post(port, "cam1", &frame_headers(&expired, "image/jpeg", BASE_MS), jpeg);
    assert_eq!((status, answer["error"].as_str().unwrap()), (401, "the token has expired"));

    // 403: a camera the token does not allow.
    assert_eq!(post(port, "cam2", &frame_headers(&acme, "image/jpeg", BASE_MS), jpeg).0, 403);
    // 415: not an image type; 400: not the image it claims to be, or a bad time.
    assert_eq!(post(port, "cam1", &frame_headers(&acme, "text/plain", BASE_MS), jpeg).0, 415);
    assert_eq!(post(port, "cam1", &frame_headers(&acme, "image/png", BASE_MS), jpeg).0, 400);
    let mut bad_time = frame_headers(&acme, "image/jpeg", BASE_MS);
    bad_time[2] = "X-Event-Time: yesterday".into();
    assert_eq!(post(port, "cam1", &bad_time, jpeg).0, 400);
    // A clock far ahead would move every camera's windows past now.
    let ahead = (now() as i64 + 3600) * 1000;
    assert_eq!(post(port, "cam1", &frame_headers(&acme, "image/jpeg", ahead), jpeg).0, 400);
    let globex_everywhere = frame_headers(&globex, "image/jpeg", BASE_MS);
    assert_eq!(post(port, "cam%20one", &globex_everywhere, jpeg).0, 400, "camera names are plain");
    // 413: over max_bytes (a real frame, padded past 200 KiB).
    let mut big = std::fs::read(jpeg).unwrap();
    big.resize(300 * 1024, 0);
    std::fs::write(root.join("big.jpg"), &big).unwrap();
    assert_eq!(post(port, "cam1", &frame_headers(&acme, "image/jpeg", BASE_MS), &root.join("big.jpg")).0, 413);
    // 413 too: two frames at once can never fit a queue of one.
    let mut two = Command::new("curl");
    two.args(["-s", "-D", "-", "-o", "/dev/null", "-X", "POST", "-H", &format!("Authorization: Bearer {acme}")]);
    two.args(["-F", &format!("a=@{};type=image/jpeg", frames[4].display())]);
    two.args(["-F", &format!("b=@{};type=image/jpeg", frames[5].display())]);
    let head =
        String::from_utf8_lossy(&two.arg(format!("http://127.0.0.1:{port}/v1/frames/cam1")).output().unwrap().stdout)
            .to_lowercase();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    // 503 with Retry-After: while an upload that stalls holds the one
    // request the source reads at a time, the next is turned away at once.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let start = format!(
        "POST /v1/frames/cam1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {acme}\r\nContent-Type: image/jpeg\r\n\
         Content-Length: 100000\r\n\r\n\u{ff}"
    );
    std::io::Write::write_all(&mut stalled, start.as_bytes()).unwrap();
    let mut turned_away = false;
    for i in 0..100 {
        let headers = frame_headers(&acme, "image/jpeg", BASE_MS + 900 + i);
        let (status, answer) = post(port, "cam1", &headers, &frames[6]);
        if status == 503 {
            turned_away = true;
            // Still stalled: the answer says when to come back.
            let mut head = Command::new("curl");
            head.args(["-s", "-D", "-", "-o", "/dev/null", "-X", "POST"]);
            for header in &headers {
                head.args(["-H", header]);
            }
            head.arg("--data-binary").arg(format!("@{}", frames[6].display()));
            let url = format!("http://127.0.0.1:{port}/v1/frames/cam1");
            let head = String::from_utf8_lossy(&head.arg(url).output().unwrap().stdout).to_lowercase();
            assert!(head.starts_with("http/1.1 503") && head.contains("retry-after: 1"), "{head}");
            break;
        }
        // The stalled request may not have reached the server yet; a frame
        // taken meanwhile is accepted like any other.
        assert_eq!(status, 202, "{answer}");
        accepted.insert(answer["frame_id"].as_str().unwrap().to_owned());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(turned_away, "a second request was never turned away");
    drop(stalled);

    // SIGTERM: the job stops taking frames, finishes the accepted ones and
    // exits cleanly.
    let killed = Command::new("kill").args(["-TERM", &job.0.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = job.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the job did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(job.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    let n = accepted.len();
    assert!(stderr.contains(&format!("{n} frames ({n} processed, 0 degraded, 0 rejected, 0 late)")), "{stderr}");

    // What was stored: exactly the accepted frames, each with its tenant.
    let outcomes = common::read_jsonl(&root.join("out/outcomes.jsonl"));
    let stored: BTreeSet<String> = outcomes.iter().map(|o| o["frame_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(stored, accepted);
    for outcome in &outcomes {
        let expected = if outcome["frame_id"] == globex_frame.as_str() { "globex" } else { "acme" };
        assert_eq!(outcome["tenant"], expected, "{outcome}");
        assert_eq!(outcome["outcome"], "processed", "{outcome}");
    }
}
