//! `frameflow ingest`: pushes image files to an HTTP source as a device
//! would — several at once, each retried with backoff while the server
//! answers 503. Plain HTTP/1.1 over TCP (no TLS: put a proxy in front for
//! that).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// An HTTP answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `POST` of `body` to `url` (`http://host:port/path`) with `headers`.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Answer, String> {
    post_within(url, headers, body, Duration::from_secs(30))
}

/// The most of an answer that is read: answers here are short.
const MAX_ANSWER: u64 = 1 << 20;

/// [`post`], giving up when there is no whole answer within `timeout`.
pub fn post_within(url: &str, headers: &[(&str, &str)], body: &[u8], timeout: Duration) -> Result<Answer, String> {
    let deadline = std::time::Instant::now() + timeout;
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    // Every address the name has, in turn: `localhost` may be ::1 first
    // while the server listens on 127.0.0.1.
    let addresses =
        std::net::ToSocketAddrs::to_socket_addrs(host).map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut refused = format!("cannot resolve {host}");
    let mut connected = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(e) => refused = format!("cannot connect to {host}: {e}"),
        }
    }
    let mut stream = connected.ok_or(refused)?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut request =
        format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "\r\n";
    stream.write_all(request.as_bytes()).and_then(|()| stream.write_all(body)).map_err(|e| e.to_string())?;
    // Read in pieces against the deadline: a timeout on each read alone
    // would let a server that trickles hold the caller forever.
    let mut raw = Vec::new();
    let mut piece = [0u8; 8192];
    let mut reader = (&mut stream).take(MAX_ANSWER);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!("no whole answer from {host} within {timeout:?}"));
        }
        reader.get_mut().set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match reader.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&piece[..n]),
            Err(e) => return Err(format!("no answer from {host}: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("a truncated HTTP answer")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("an HTTP answer without a status")?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    Ok(Answer { status, headers, body: body.to_owned() })
}

/// The media type of an image file, by its extension.
pub fn content_type(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => Some("image/jpeg"),
        "png" => Some("image/png"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

/// What pushing one file came to.
#[derive(Debug)]
pub struct Pushed {
    pub file: PathBuf,
    /// The last answer, or why there was none.
    pub result: Result<Answer, String>,
    pub tries: u32,
}

/// Pushes `files` to the HTTP source at `url` with `token`, `parallel` at a
/// time. A file's camera is `source`, or else its folder's name; its event
/// time is its name where that is a number of ms since the epoch (as
/// DIRECTORY reads it), else the server's clock. A 503 is retried, after
/// `Retry-After` or a doubling backoff, up to `tries` times in all.
pub fn push(
    url: &str,
    token: &str,
    source: Option<&str>,
    files: &[PathBuf],
    parallel: usize,
    tries: u32,
) -> Vec<Pushed> {
    let next = Mutex::new(files.iter());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            scope.spawn(|| {
                while let Some(file) = next.lock().ok().and_then(|mut n| n.next().cloned()) {
                    let pushed = push_one(url, token, source, &file, tries.max(1));
                    if let Ok(mut results) = results.lock() {
                        results.push(pushed);
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by(|a, b| a.file.cmp(&b.file));
    results
}

fn push_one(url: &str, token: &str, source: Option<&str>, file: &Path, tries: u32) -> Pushed {
    let fail = |why: String| Pushed { file: file.to_owned(), result: Err(why), tries: 0 };
    let Some(kind) = content_type(file) else { return fail("not a .jpg, .png or .webp file".to_owned()) };
    let camera = source
        .map(str::to_owned)
        .or_else(|| file.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()));
    let Some(camera) = camera else { return fail("no camera: give --source".to_owned()) };
    let body = match std::fs::read(file) {
        Ok(body) => body,
        Err(e) => return fail(format!("cannot read it: {e}")),
    };
    let time = file.file_stem().and_then(|s| s.to_str()).filter(|s| s.parse::<i64>().is_ok());
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str()), ("Content-Type", kind)];
    if let Some(time) = time {
        headers.push(("X-Event-Time", time));
    }
    if !camera.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return fail(format!("camera `{camera}`: names have letters, digits, `.`, `_` and `-` only"));
    }
    let endpoint = format!("{}/v1/frames/{camera}", url.trim_end_matches('/'));
    let mut backoff = Duration::from_millis(100);
    let mut tries_made = 0;
    loop {
        tries_made += 1;
        let result = post(&endpoint, &headers, &body);
        let retry = matches!(&result, Ok(a) if a.status == 503) && tries_made < tries;
        if !retry {
            return Pushed { file: file.to_owned(), result, tries: tries_made };
        }
        let asked = result.ok().and_then(|a| a.header("retry-after").and_then(|s| s.parse::<u64>().ok()));
        // Back off as asked, but no less than the doubling backoff, with
        // jitter so retrying devices do not come back in step.
        let jitter = Duration::from_millis(random() % 100);
        std::thread::sleep(backoff.max(Duration::from_secs(asked.unwrap_or(0)).min(Duration::from_secs(5))) + jitter);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// A random number, for jitter: each `RandomState` is seeded afresh.
pub fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}
