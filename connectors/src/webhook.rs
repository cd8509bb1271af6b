//! `CREATE SINK s FROM v INTO WEBHOOK 'http://host:port/path' [WITH (...)]`:
//! rows POSTed as JSON arrays, in batches, without overloading the client.
//!
//! - At most `concurrency` requests at once (default 2), and at most `rate`
//!   requests per second (default 10; a token bucket of one second).
//! - A 5xx, a 408, a 429 or a timeout (`timeout`, default 5s: for the
//!   whole request) is retried after an
//!   exponential backoff with jitter (or the `Retry-After` the client asks
//!   for), up to `max_retries` times (default 5); then the job fails, since
//!   rows it accepted would otherwise be lost.
//! - A redirect fails the job at once: the client is not where it says.
//! - Another 4xx refuses the batch for good: its rows go, one per line
//!   with the status and the answer, to the `dead_letter` file (default
//!   `<sink>.rejected.jsonl`), and the job goes on.
//! - Rows are sent before the sink's flush returns, on the worker that
//!   runs the sink: a slow client slows the dataflow, whose in-flight
//!   budget then stops the sources — backpressure, not a growing buffer.
//!
//! Options: `batch` (rows per request, default 100), `concurrency`,
//! `rate`, `timeout`, `max_retries`, `dead_letter`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use engine::columnar::SchemaRef;
use engine::model::Record;
use engine::plan::SinkSpec;
use engine::registry::{Sink, SinkFactory};

use crate::http::client::{Answer, post_within, random};
use crate::options::{parse_duration, reject_unknown};

const OPTIONS: &[&str] = &["batch", "concurrency", "rate", "timeout", "max_retries", "dead_letter"];

#[derive(Debug, Default)]
pub struct WebhookSinkFactory;

impl SinkFactory for WebhookSinkFactory {
    fn open(&self, spec: &SinkSpec, _schema: SchemaRef) -> Result<Box<dyn Sink>, String> {
        reject_unknown(&spec.options, OPTIONS)?;
        let url = spec.location.clone().ok_or("WEBHOOK needs a URL: INTO WEBHOOK 'http://host:port/path'")?;
        if !url.starts_with("http://") {
            return Err(format!("`{url}` is not an http:// URL"));
        }
        let number = |name: &str, default: f64| -> Result<f64, String> {
            match spec.options.get(name) {
                None => Ok(default),
                Some(v) => {
                    v.parse::<f64>().ok().filter(|n| *n > 0.0).ok_or(format!("{name} = '{v}' is not a positive number"))
                }
            }
        };
        let dead_letter = spec.options.get("dead_letter").cloned().unwrap_or(format!("{}.rejected.jsonl", spec.name));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&dead_letter)
            .map_err(|e| format!("cannot open `{dead_letter}`: {e}"))?;
        Ok(Box::new(WebhookSink {
            url,
            batch: number("batch", 100.0)? as usize,
            concurrency: number("concurrency", 2.0)? as usize,
            limiter: Mutex::new(Bucket::new(number("rate", 10.0)?)),
            timeout: spec
                .options
                .get("timeout")
                .map(|v| parse_duration("timeout", v))
                .transpose()?
                .unwrap_or(Duration::from_secs(5)),
            max_retries: number("max_retries", 5.0)? as u32,
            pending: Vec::new(),
            rejected: Mutex::new(BufWriter::new(file)),
        }))
    }
}

/// A token bucket holding at most one second of requests.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        Bucket { rate, tokens: rate.max(1.0), last: Instant::now() }
    }

    /// How long to wait before the next request may go; takes its token.
    fn take(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate.max(1.0));
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate) }
    }
}

struct WebhookSink {
    url: String,
    batch: usize,
    concurrency: usize,
    limiter: Mutex<Bucket>,
    timeout: Duration,
    max_retries: u32,
    pending: Vec<String>,
    rejected: Mutex<BufWriter<File>>,
}

impl WebhookSink {
    /// Sends one batch until it is taken, refused for good, or retries
    /// run out.
    fn send(&self, rows: &[String]) -> Result<(), String> {
        let body = format!("[{}]", rows.join(","));
        let headers = [("Content-Type", "application/json")];
        let mut backoff = Duration::from_millis(100);
        for attempt in 0..=self.max_retries {
            let wait = self.limiter.lock().map_err(|e| e.to_string())?.take();
            std::thread::sleep(wait);
            let answer = post_within(&self.url, &headers, body.as_bytes(), self.timeout);
            let retry_after = match &answer {
                Ok(a) if (200..300).contains(&a.status) => return Ok(()),
                Ok(a) if matches!(a.status, 408 | 429) || a.status >= 500 => retry_after(a),
                Ok(a) if (400..500).contains(&a.status) => return self.reject(rows, a),
                // A redirect or another surprise: the client is not where
                // the job says, which retrying will not mend.
                Ok(a) => return Err(format!("{} answers {} {}: not a webhook", self.url, a.status, a.body.trim())),
                Err(_) => None,
            };
            if attempt == self.max_retries {
                let why = answer.map_or_else(|e| e, |a| format!("{} {}", a.status, a.body.trim()));
                return Err(format!("{} still failing after {} tries: {why}", self.url, attempt + 1));
            }
            // Jitter, so that retrying sinks do not come back in step.
            let jitter = Duration::from_millis(random() % 100);
            std::thread::sleep(retry_after.unwrap_or(backoff).max(backoff) + jitter);
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        Ok(())
    }

    fn reject(&self, rows: &[String], answer: &Answer) -> Result<(), String> {
        let mut file = self.rejected.lock().map_err(|e| e.to_string())?;
        let error = serde_json::to_string(answer.body.trim()).unwrap_or_default();
        for row in rows {
            writeln!(file, r#"{{"status":{},"error":{error},"row":{row}}}"#, answer.status)
                .map_err(|e| format!("cannot write the rejected rows: {e}"))?;
        }
        file.flush().map_err(|e| format!("cannot write the rejected rows: {e}"))
    }
}

fn retry_after(answer: &Answer) -> Option<Duration> {
    answer.header("retry-after")?.parse::<u64>().ok().map(|s| Duration::from_secs(s.min(60)))
}

impl Sink for WebhookSink {
    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        for record in records {
            self.pending.push(record.to_json().map_err(|e| format!("cannot encode a row: {e}"))?);
        }
        Ok(())
    }

    /// Sends what is pending, `concurrency` batches at a time, and returns
    /// once every batch is taken or refused.
    fn flush(&mut self) -> Result<(), String> {
        let rows = std::mem::take(&mut self.pending);
        let batches: Vec<&[String]> = rows.chunks(self.batch.max(1)).collect();
        let next = Mutex::new(batches.into_iter());
        let failure = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..self.concurrency.max(1) {
                scope.spawn(|| {
                    // Once a batch has failed for good the job fails: the
                    // other threads stop taking batches.
                    while failure.lock().is_ok_and(|f| f.is_none())
                        && let Some(batch) = next.lock().ok().and_then(|mut n| n.next())
                    {
                        if let Err(e) = self.send(batch)
                            && let Ok(mut failure) = failure.lock()
                        {
                            failure.get_or_insert(e);
                        }
                    }
                });
            }
        });
        match failure.into_inner().ok().flatten() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_lets_a_second_of_requests_through_then_spaces_them() {
        let mut bucket = Bucket::new(4.0);
        let waits: Vec<Duration> = (0..6).map(|_| bucket.take()).collect();
        assert!(waits[..4].iter().all(|w| w.is_zero()), "{waits:?}");
        assert!(waits[4] > Duration::from_millis(200) && waits[5] > waits[4], "{waits:?}");
    }
}
