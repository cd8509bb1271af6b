//! `CREATE SOURCE phones FROM HTTP WITH (listen = '127.0.0.1:8080',
//! jwt_secret_file = 'secret')`: devices push frames over HTTP.
//!
//! - `POST /v1/frames/{source_id}` with the image as the body
//!   (`image/jpeg`, `image/png` or `image/webp`) and optionally
//!   `X-Event-Time` (RFC 3339, or ms since the epoch; default: now); or a
//!   `multipart/form-data` body of several images, admitted together or not
//!   at all.
//! - `Authorization: Bearer <JWT>` ([`auth`]): the frame gets the token's
//!   tenant, and the token must allow the camera.
//! - Answers, at once: 202 with the frame ids once the frames are admitted;
//!   400 a body that is not the image it claims to be, or a bad
//!   `X-Event-Time`; 401 a missing, forged or expired token; 403 a camera the
//!   token does not allow; 413 a body over `max_bytes`; 415 another media
//!   type; 503 with `Retry-After` when the queue is full (the engine takes
//!   only what it can finish) or the job is stopping.
//!
//! In a durable job (`frameflow run --durable`) every admitted frame is
//! journaled ([`engine::journal`]) and synced to disk before the 202; a
//! restarted job replays the frames its last checkpoint had not put behind
//! it, then serves new ones. Without a state folder a 202 means admitted
//! to memory.
//!
//! Admitted frames wait in a queue of at most `queue` frames (default 64)
//! until the engine polls them, and at most `queue` requests are read at
//! once (each up to 4 × `max_bytes`, within 30 s), so memory stays bounded
//! at any request rate. Worker 0 serves; the engine spreads the frames over
//! all workers. Each camera of each tenant has its own watermark (newest
//! minus `lateness`); one quiet for `idle_timeout` (default 10s) stops
//! holding back the others, and once all are quiet event time is taken to
//! go on as the clock does since the last frame. Event times more than
//! five minutes ahead of the server's clock are refused. A source declared
//! with a `tenant` takes that tenant's tokens only.

pub mod auth;
pub mod client;
pub mod record;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use engine::checkpoint::{Positions, SourceContext};
use engine::journal::Journal;
use engine::model::{Frame, MediaType, stable_hash};
use engine::plan::SourceSpec;
use engine::registry::{Partition, Source, SourceFactory, SourcePoll};
use engine::time::{Millis, now_ms, parse_rfc3339_ms};
use engine::watermark::CameraWatermarks;

use crate::options::{parse_bytes, parse_duration, reject_unknown};
use auth::{Claims, Verifier};

const OPTIONS: &[&str] = &[
    "listen",
    "jwt_secret_file",
    "jwt_public_key_file",
    "max_bytes",
    "queue",
    "idle_timeout",
    "lateness",
    "late",
    "tenant",
];

struct Config {
    listen: SocketAddr,
    verifier: Verifier,
    max_bytes: usize,
    queue: usize,
    idle: Duration,
}

impl Config {
    fn from_spec(spec: &SourceSpec) -> Result<Config, String> {
        reject_unknown(&spec.options, OPTIONS)?;
        let option = |name: &str| spec.options.get(name).map(String::as_str);
        let listen = option("listen").unwrap_or("127.0.0.1:8080");
        let listen =
            listen.parse().map_err(|_| format!("listen = '{listen}' is not an address like '127.0.0.1:8080'"))?;
        let max_bytes = option("max_bytes").map(|v| parse_bytes("max_bytes", v)).transpose()?.unwrap_or(32 << 20);
        let queue = option("queue").map(|v| v.parse::<usize>().map_err(|_| format!("queue = '{v}' is not a number")));
        Ok(Config {
            listen,
            verifier: Verifier::from_files(option("jwt_secret_file"), option("jwt_public_key_file"))?,
            max_bytes: max_bytes as usize,
            queue: queue.transpose()?.unwrap_or(64).max(1),
            idle: option("idle_timeout")
                .map(|v| parse_duration("idle_timeout", v))
                .transpose()?
                .unwrap_or(Duration::from_secs(10)),
        })
    }
}

#[derive(Debug, Default)]
pub struct HttpSourceFactory;

impl SourceFactory for HttpSourceFactory {
    fn validate(&self, spec: &SourceSpec) -> Result<(), String> {
        Config::from_spec(spec).map(|_| ())
    }

    fn open(&self, spec: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        self.open_at(spec, partition, &SourceContext::default())
    }

    fn open_at(
        &self,
        spec: &SourceSpec,
        partition: Partition,
        context: &SourceContext,
    ) -> Result<Box<dyn Source>, String> {
        if partition.worker != 0 {
            return Ok(Box::new(ServedElsewhere));
        }
        let config = Config::from_spec(spec)?;
        let mut queue = Queue::new(spec.lateness_ms);
        let mut resume = Resume::default();
        let mut position = 0;
        let journal = match &context.state_dir {
            Some(dir) => {
                let (journal, damage) = Journal::open(&dir.join("journal"), SEGMENT_BYTES)?;
                for damage in damage {
                    eprintln!("frameflow: source `{}`: {damage}", spec.name);
                }
                let from = context.positions.get(JOURNAL_KEY).map_or(Ok(0), |p| {
                    p.parse::<u64>().map_err(|_| format!("bad journal position `{p}` in the checkpoint"))
                })?;
                // Frames handed on before they were synced may be behind a
                // checkpoint yet lost in a crash: numbering goes on past
                // the checkpoint, so that new frames are replayed.
                journal.skip_to(from);
                resume = Resume::read(&journal, from, &spec.name, &mut queue)?;
                position = from;
                Some(journal)
            }
            None => None,
        };
        let listener = std::net::TcpListener::bind(config.listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let ingest = Arc::new(Ingest {
            verifier: config.verifier,
            max_bytes: config.max_bytes,
            capacity: config.queue,
            tenant: (spec.tenant != "default").then(|| spec.tenant.clone()),
            reading: tokio::sync::Semaphore::new(config.queue),
            journal,
            queue: Mutex::new(queue),
        });
        let app = Router::new()
            .route("/v1/frames/{source_id}", post(receive))
            .layer(DefaultBodyLimit::max(config.max_bytes.saturating_mul(4)))
            .with_state(ingest.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP server: {e}"))?;
        let server = std::thread::Builder::new()
            .name("http-ingest".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                        .map_err(|e| e.to_string())
                })
            })
            .map_err(|e| format!("cannot start the HTTP server: {e}"))?;
        Ok(Box::new(HttpSource {
            ingest,
            idle: config.idle,
            stop: Some(stop),
            server: Some(server),
            resume,
            polls: VecDeque::new(),
            forgotten: 0,
            position,
            checkpointed: VecDeque::new(),
        }))
    }
}

/// What a worker other than 0 reads of the HTTP source: nothing.
struct ServedElsewhere;

impl Source for ServedElsewhere {
    fn poll(&mut self, _: usize) -> Result<SourcePoll, String> {
        Ok(SourcePoll::Done)
    }

    fn watermark(&mut self) -> Option<Millis> {
        None
    }
}

/// What the server and the source share.
struct Ingest {
    verifier: Verifier,
    max_bytes: usize,
    capacity: usize,
    /// The one tenant whose tokens the source takes, if it names one.
    tenant: Option<String>,
    /// Requests being read: at most `capacity` at once.
    reading: tokio::sync::Semaphore,
    /// Where admitted frames are made durable, in a durable job.
    journal: Option<Journal>,
    queue: Mutex<Queue>,
}

struct Queue {
    /// Cleared, under this lock, when the job stops: no frame is admitted
    /// after the source has said it is done.
    accepting: bool,
    /// Frames admitted, each with its journal sequence number (0 without
    /// a journal).
    frames: VecDeque<(Frame, u64)>,
    /// Keyed by tenant and camera: tenants never share a watermark.
    watermarks: CameraWatermarks,
    /// Per tenant and camera: frames seen, and when the last came.
    cameras: HashMap<Arc<str>, (u64, Instant)>,
    /// The newest event time admitted, and when.
    newest: Option<(Millis, Instant)>,
    /// Ids of the frames admitted lately (and, after a restart, those
    /// replayed), oldest first: a client's retry of one is answered 202
    /// again, and not admitted twice.
    recent: (HashSet<Arc<str>>, VecDeque<Arc<str>>),
}

/// How many recent frame ids a source remembers to spot retries.
const RECENT: usize = 1 << 16;

impl Queue {
    fn new(lateness_ms: Millis) -> Queue {
        Queue {
            accepting: true,
            frames: VecDeque::new(),
            watermarks: CameraWatermarks::new(lateness_ms),
            cameras: HashMap::new(),
            newest: None,
            recent: Default::default(),
        }
    }

    /// Remembers `id`; `false` if it was already admitted.
    fn remember(&mut self, id: &Arc<str>) -> bool {
        let (known, order) = &mut self.recent;
        if !known.insert(id.clone()) {
            return false;
        }
        order.push_back(id.clone());
        if order.len() > RECENT
            && let Some(oldest) = order.pop_front()
        {
            known.remove(&oldest);
        }
        true
    }

    /// Notes a frame of `key` (tenant and camera) at `at`: its number in
    /// the camera's sequence, and the watermark it is late against, if so.
    fn observe(&mut self, key: &Arc<str>, at: Millis) -> (u64, Option<Millis>) {
        let (seen, _) = *self.cameras.get(key).unwrap_or(&(0, Instant::now()));
        self.cameras.insert(key.clone(), (seen + 1, Instant::now()));
        let late = self.watermarks.observe(key, at);
        if self.newest.is_none_or(|(newest, _)| at >= newest) {
            self.newest = Some((at, Instant::now()));
        }
        (seen, late)
    }
}

fn camera_key(tenant: &str, source_id: &str) -> Arc<str> {
    format!("{tenant}\u{0}{source_id}").into()
}

impl Ingest {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A handler that panicked mid-push leaves the queue usable.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct HttpSource {
    ingest: Arc<Ingest>,
    idle: Duration,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), String>>>,
    resume: Resume,
    /// Per poll not yet behind a checkpoint: the journal position after it.
    polls: VecDeque<u64>,
    /// Polls already behind a checkpoint.
    forgotten: u64,
    /// The journal position behind the latest checkpoint.
    position: u64,
    /// Checkpoints taken and not yet durable: polls, and position.
    checkpointed: VecDeque<(u64, u64)>,
}

/// The key of the journal position in a checkpoint.
const JOURNAL_KEY: &str = "journal";
const SEGMENT_BYTES: u64 = 64 << 20;

/// Journaled frames a restarted job replays before it polls new ones.
#[derive(Default)]
struct Resume {
    replay: Option<engine::journal::Replay>,
    /// The event times still to replay, to keep the promise behind them.
    times: BTreeMap<Millis, usize>,
    /// Per journal record, its frame's number in its camera and whether it
    /// was late. The number is decided at open, before any new frame, in
    /// journal order, as when the frames first came; the late mark is the
    /// journaled one (frames behind the checkpoint may have decided it).
    marks: HashMap<u64, (u64, Option<Millis>)>,
}

impl Resume {
    fn read(journal: &Journal, from: u64, name: &str, queue: &mut Queue) -> Result<Resume, String> {
        let mut resume = Resume { replay: Some(journal.replay(from)), ..Resume::default() };
        for record in journal.replay(from) {
            let (seq, payload) = record?;
            if let Ok(frame) = record::decode(&payload) {
                *resume.times.entry(frame.event_time).or_insert(0) += 1;
                let key = camera_key(&frame.tenant, &frame.source_id);
                // Observed all the same, so that new frames are judged
                // against the replayed ones.
                let (seen, late) = queue.observe(&key, frame.event_time);
                let late = if record::has_late_mark(&payload) { frame.late } else { late };
                resume.marks.insert(seq, (seen, late));
                queue.remember(&frame.frame_id);
            }
        }
        if !resume.marks.is_empty() {
            eprintln!(
                "frameflow: source `{name}`: replaying {} journaled frames from record {from}",
                resume.marks.len()
            );
        }
        Ok(resume)
    }

    /// Up to `max` replayed frames, and the journal position after them.
    fn next(&mut self, max: usize, name: &str) -> Result<(Vec<Frame>, Option<u64>), String> {
        let mut frames = Vec::new();
        let mut position = None;
        while frames.len() < max {
            let Some(replay) = self.replay.as_mut() else { break };
            let Some(record) = replay.next() else {
                self.replay = None;
                break;
            };
            let (seq, payload) = record?;
            position = Some(seq + 1);
            match record::decode(&payload) {
                Ok(mut frame) => {
                    (frame.seq, frame.late) = self.marks.remove(&seq).unwrap_or((frame.seq, None));
                    if let Some(n) = self.times.get_mut(&frame.event_time) {
                        *n -= 1;
                        if *n == 0 {
                            self.times.remove(&frame.event_time);
                        }
                    }
                    frames.push(frame);
                }
                Err(e) => eprintln!("frameflow: source `{name}`: journal record {seq} skipped: {e}"),
            }
        }
        Ok((frames, position))
    }
}

impl Source for HttpSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String> {
        if self.server.as_ref().is_some_and(|s| s.is_finished()) {
            match self.server.take().map(|s| s.join()) {
                Some(Ok(Err(e))) => return Err(format!("the HTTP server stopped: {e}")),
                Some(Err(_)) => return Err("the HTTP server panicked".to_owned()),
                _ => return Err("the HTTP server stopped".to_owned()),
            }
        }
        if self.resume.replay.is_some() {
            let (frames, position) = self.resume.next(max, "http")?;
            if let Some(position) = position {
                self.polls.push_back(position);
                return Ok(SourcePoll::Frames(frames));
            }
        }
        let mut queue = self.ingest.queue();
        if queue.frames.is_empty() {
            return Ok(if queue.accepting { SourcePoll::Idle } else { SourcePoll::Done });
        }
        let n = max.min(queue.frames.len());
        let frames: Vec<(Frame, u64)> = queue.frames.drain(..n).collect();
        if self.ingest.journal.is_some() {
            self.polls.push_back(frames.last().map_or(0, |(_, seq)| seq + 1));
        }
        Ok(SourcePoll::Frames(frames.into_iter().map(|(frame, _)| frame).collect()))
    }

    fn checkpoint(&mut self, polls: u64) -> Positions {
        if self.ingest.journal.is_none() {
            return Positions::new();
        }
        for _ in self.forgotten..polls {
            // A poll with no journaled frame leaves the position as it was.
            self.position = self.polls.pop_front().unwrap_or(self.position).max(self.position);
        }
        self.forgotten = self.forgotten.max(polls);
        self.checkpointed.push_back((polls, self.position));
        Positions::from([(JOURNAL_KEY.to_owned(), self.position.to_string())])
    }

    fn committed(&mut self, polls: u64) {
        let Some(journal) = &self.ingest.journal else { return };
        while let Some(&(n, position)) = self.checkpointed.front().filter(|(n, _)| *n <= polls) {
            self.checkpointed.pop_front();
            if n == polls
                && let Err(e) = journal.release(position)
            {
                eprintln!("frameflow: source `http`: {e}");
            }
        }
    }

    fn watermark(&mut self) -> Option<Millis> {
        let mut queue = self.ingest.queue();
        // Cameras quiet for long are forgotten: the map does not grow with
        // every name a client ever used.
        let forget = self.idle * 60;
        queue.cameras.retain(|_, (_, last)| last.elapsed() < forget);
        let Some((newest, when)) = queue.newest else {
            // Before the first frame there is no window to hold back, and
            // nothing to say about the time of the frames to come.
            return Some(0);
        };
        let lateness = queue.watermarks.lateness_ms();
        let active = queue.cameras.iter().filter(|(_, (_, last))| last.elapsed() < self.idle);
        let promise = active.filter_map(|(camera, _)| queue.watermarks.promise(camera, None)).min();
        // Once every camera has gone quiet, event time is taken to go on as
        // the clock has since the newest frame came.
        let promise = promise.unwrap_or_else(|| newest.saturating_add(when.elapsed().as_millis() as Millis) - lateness);
        // Frames admitted or journaled but not yet polled are not behind it.
        let waiting = queue.frames.iter().map(|(f, _)| f.event_time).chain(self.resume.times.keys().next().copied());
        Some(waiting.min().map_or(promise, |t| t.min(promise)))
    }

    fn stop(&mut self) -> bool {
        self.ingest.queue().accepting = false;
        true
    }
}

impl Drop for HttpSource {
    fn drop(&mut self) {
        self.ingest.queue().accepting = false;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// A request refused: its status and why, answered as `{"error": why}`.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response();
        let headers = response.headers_mut();
        if self.0 == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

fn refuse(status: StatusCode, why: impl Into<String>) -> Refusal {
    Refusal(status, why.into())
}

/// The token's claims, or the 401 or 403 to answer.
fn authorize(ingest: &Ingest, headers: &HeaderMap, source_id: &str) -> Result<Claims, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "no token: send Authorization: Bearer <token>"))?;
    let claims = ingest.verifier.check(token.trim()).map_err(|e| refuse(StatusCode::UNAUTHORIZED, e.0))?;
    if ingest.tenant.as_ref().is_some_and(|t| *t != claims.tenant) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("this source takes no frames of tenant `{}`", claims.tenant),
        ));
    }
    if !claims.may_write(source_id) {
        return Err(refuse(StatusCode::FORBIDDEN, format!("the token may not write camera `{source_id}`")));
    }
    Ok(claims)
}

/// The media type a content type names, or the 415 to answer.
fn media_type(content_type: Option<&str>) -> Result<MediaType, Refusal> {
    let essence = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "image/jpeg" => Ok(MediaType::Jpeg),
        "image/png" => Ok(MediaType::Png),
        "image/webp" => Ok(MediaType::Webp),
        other => Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("`{other}` is not image/jpeg, image/png or image/webp"),
        )),
    }
}

/// Whether `bytes` start as `media` does: a body that is not the image it
/// claims to be is refused at the door, not dead-lettered later.
fn looks_like(bytes: &[u8], media: MediaType) -> bool {
    match media {
        MediaType::Jpeg => bytes.starts_with(&[0xff, 0xd8, 0xff]),
        MediaType::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        MediaType::Webp => bytes.len() > 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP",
    }
}

/// How far ahead of the server's clock an event time may be: a device
/// whose clock runs ahead must not move every camera's windows past now.
const MAX_CLOCK_SKEW_MS: Millis = 5 * 60 * 1000;

fn event_time(headers: &HeaderMap) -> Result<Millis, Refusal> {
    let Some(value) = headers.get("x-event-time") else { return Ok(now_ms()) };
    let text = value.to_str().unwrap_or("").trim();
    let at = text.parse::<Millis>().or_else(|_| parse_rfc3339_ms(text)).map_err(|_| {
        refuse(StatusCode::BAD_REQUEST, format!("X-Event-Time `{text}` is not RFC 3339 nor ms since the epoch"))
    })?;
    if !(0..=now_ms() + MAX_CLOCK_SKEW_MS).contains(&at) {
        return Err(refuse(StatusCode::BAD_REQUEST, format!("X-Event-Time `{text}` is before 1970 or in the future")));
    }
    Ok(at)
}

/// A camera name: letters, digits, `.`, `_` and `-`, at most 128.
fn valid_camera(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

async fn receive(
    State(ingest): State<Arc<Ingest>>,
    Path(source_id): Path<String>,
    request: Request,
) -> Result<Response, Refusal> {
    let headers = request.headers().clone();
    if !valid_camera(&source_id) {
        return Err(refuse(StatusCode::BAD_REQUEST, "a camera name has letters, digits, `.`, `_` and `-` only"));
    }
    let claims = authorize(&ingest, &headers, &source_id)?;
    if !ingest.queue().accepting {
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "the job is stopping"));
    }
    let at = event_time(&headers)?;
    // Bodies are read a bounded number at a time, each within a deadline:
    // memory stays bounded, and a stalled upload cannot hold the server.
    let Ok(_reading) = ingest.reading.try_acquire() else {
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "frameflow is at capacity; retry shortly"));
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let read = async {
        if content_type.starts_with("multipart/form-data") {
            parts(request, &ingest).await
        } else {
            let media = media_type(Some(&content_type))?;
            let bytes = to_bytes(request.into_body(), ingest.max_bytes).await.map_err(|_| too_large(&ingest))?;
            Ok(vec![(media, bytes)])
        }
    };
    let images = tokio::time::timeout(READ_DEADLINE, read)
        .await
        .map_err(|_| refuse(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time"))??;
    if images.len() > ingest.capacity {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {} images in one request", ingest.capacity),
        ));
    }
    if images.is_empty() {
        return Err(refuse(StatusCode::BAD_REQUEST, "no image in the request"));
    }
    if let Some((media, _)) = images.iter().find(|(media, bytes)| !looks_like(bytes, *media)) {
        return Err(refuse(StatusCode::BAD_REQUEST, format!("the body is not a {} image", media.as_mime())));
    }
    admit(&ingest, &claims, &source_id, at, images).await
}

/// How long a request's body may take to arrive.
const READ_DEADLINE: Duration = Duration::from_secs(30);

fn too_large(ingest: &Ingest) -> Refusal {
    refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("an image may have at most {} bytes", ingest.max_bytes))
}

/// The images of a multipart body, each with its part's media type.
async fn parts(request: Request, ingest: &Arc<Ingest>) -> Result<Vec<(MediaType, Bytes)>, Refusal> {
    let bad = |e: &dyn std::fmt::Display| refuse(StatusCode::BAD_REQUEST, format!("bad multipart body: {e}"));
    let mut multipart = Multipart::from_request(request, ingest).await.map_err(|e| bad(&e))?;
    let mut images = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| if e.status() == StatusCode::PAYLOAD_TOO_LARGE { too_large(ingest) } else { bad(&e) })?
    {
        let media = media_type(field.content_type())?;
        let bytes = field.bytes().await.map_err(|e| bad(&e))?;
        if bytes.len() > ingest.max_bytes {
            return Err(too_large(ingest));
        }
        images.push((media, bytes));
    }
    Ok(images)
}

/// Queues the frames, all or none, journaling each in a durable job: 202
/// with their ids once they are on disk, 503 when the queue cannot take
/// them.
async fn admit(
    ingest: &Ingest,
    claims: &Claims,
    source_id: &str,
    at: Millis,
    images: Vec<(MediaType, Bytes)>,
) -> Result<Response, Refusal> {
    let mut ids = Vec::new();
    let mut durable = Vec::new();
    {
        let mut queue = ingest.queue();
        if !queue.accepting {
            return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "the job is stopping"));
        }
        if queue.frames.len() + images.len() > ingest.capacity {
            return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "frameflow is at capacity; retry shortly"));
        }
        let tenant: Arc<str> = claims.tenant.as_str().into();
        let camera: Arc<str> = source_id.into();
        // Watermarks and sequence numbers are per tenant and camera: another
        // tenant's camera of the same name is another camera.
        let key = camera_key(&tenant, source_id);
        for (media, bytes) in images {
            // The same image sent again for the same camera and X-Event-Time
            // (a client's retry) gets the same id, and is admitted once.
            let id = stable_hash(&[tenant.as_bytes(), source_id.as_bytes(), &at.to_le_bytes(), &bytes]);
            let frame_id: Arc<str> = format!("{id:016x}").into();
            ids.push(frame_id.to_string());
            if !queue.remember(&frame_id) {
                continue;
            }
            let (seen, late) = queue.observe(&key, at);
            let frame = Frame {
                frame_id,
                tenant: tenant.clone(),
                source_id: camera.clone(),
                seq: seen,
                event_time: at,
                ingest_time: now_ms(),
                media_type: media,
                bytes: bytes.to_vec().into(),
                late,
                refused: None,
            };
            // Journaled under the queue's lock: journal order is queue order.
            let seq = match &ingest.journal {
                Some(journal) => {
                    let (done, synced) = tokio::sync::oneshot::channel();
                    let seq = journal.append(
                        &record::encode(&frame),
                        Box::new(move |result| {
                            let _ = done.send(result);
                        }),
                    );
                    durable.push(synced);
                    seq
                }
                None => 0,
            };
            // A journal that has failed takes nothing: the frame is not
            // admitted (the answer is a 500).
            if seq == u64::MAX {
                queue.recent.0.remove(&frame.frame_id);
                continue;
            }
            queue.frames.push_back((frame, seq));
        }
    }
    for synced in durable {
        let result = synced.await.unwrap_or_else(|_| Err("the journal stopped".to_owned()));
        if let Err(e) = result {
            return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("the frame could not be made durable: {e}")));
        }
    }
    let body = if ids.len() == 1 {
        serde_json::json!({ "frame_id": ids[0] })
    } else {
        serde_json::json!({ "frame_ids": ids })
    };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: &str, event_time: Millis, late: Option<Millis>) -> Frame {
        Frame {
            frame_id: id.into(),
            tenant: "acme".into(),
            source_id: "gate".into(),
            seq: 0,
            event_time,
            ingest_time: event_time,
            media_type: engine::model::MediaType::Jpeg,
            bytes: vec![0xff, 0xd8].into(),
            late,
            refused: None,
        }
    }

    /// Frame `b` was late because of `a`, which is behind the checkpoint
    /// the replay starts from: `b` is late again on replay, though the
    /// replay alone would find it on time.
    #[test]
    fn a_replayed_frame_keeps_its_late_mark() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, damage) = Journal::open(dir.path(), SEGMENT_BYTES).unwrap();
        assert!(damage.is_empty());
        let (done, synced) = std::sync::mpsc::channel();
        for f in [frame("a", 10_000, None), frame("b", 5_000, Some(9_000))] {
            let done = done.clone();
            journal.append(&record::encode(&f), Box::new(move |r| done.send(r).unwrap()));
        }
        for _ in 0..2 {
            synced.recv().unwrap().unwrap();
        }
        // Replay reads what was on disk at open, as after a restart.
        drop(journal);
        let (journal, _) = Journal::open(dir.path(), SEGMENT_BYTES).unwrap();
        let mut queue = Queue::new(1_000);
        let mut resume = Resume::read(&journal, 1, "cameras", &mut queue).unwrap();
        let (frames, position) = resume.next(10, "cameras").unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!((&*frames[0].frame_id, frames[0].late), ("b", Some(9_000)));
        assert_eq!(position, Some(2));
    }
}
