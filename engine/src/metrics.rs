//! Counters a running job keeps, shared by its workers and read by whoever
//! shows progress.
//!
//! Some count frames (admitted, refused before any stream read them, late,
//! dropped as duplicates); the rest count what each stream's operator made
//! of the frames it read, since a frame two streams read has an outcome in
//! each.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Metrics {
    pub frames_admitted: AtomicU64,
    /// Frames refused before any stream read them: at intake, as
    /// undecodable, or by a source's screen that failed on them.
    pub frames_rejected: AtomicU64,
    /// Frames a source's screen dropped as near duplicates.
    pub frames_duplicate: AtomicU64,
    pub frames_late: AtomicU64,
    pub detections: AtomicU64,
    pub windows_closed: AtomicU64,
    /// Frames admitted whose results the sinks have not yet delivered.
    pub frames_in_flight: AtomicI64,
    /// Their bytes: encoded frames and rows.
    pub bytes_in_flight: AtomicI64,
    /// Each vision operator's backlog, one entry per operator and worker.
    operators: Mutex<Vec<(Arc<str>, Arc<OperatorLag>)>>,
    /// Each stream's outcomes, one entry per stream and worker.
    streams: Mutex<Vec<(Arc<str>, Arc<StreamCounts>)>>,
}

/// What one stream's operator made of its frames, on one worker.
#[derive(Debug, Default)]
pub struct StreamCounts {
    pub processed: AtomicU64,
    /// Frames it skipped to catch up (its `max_lag` passed).
    pub degraded: AtomicU64,
    /// Frames it failed on.
    pub rejected: AtomicU64,
}

/// How far one vision operator on one worker is behind its input.
#[derive(Debug, Default)]
pub struct OperatorLag {
    /// Frames that reached the operator and wait for it.
    queued: AtomicU64,
    /// When the oldest of them came, in ms since [`epoch`] plus one; 0
    /// when none waits. The wait is worked out when read, so it grows
    /// while the operator is busy elsewhere.
    oldest: AtomicU64,
}

/// The instant lag times count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A consistent-enough copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub frames_admitted: u64,
    /// Refused before any stream read them.
    pub frames_rejected: u64,
    pub frames_duplicate: u64,
    pub frames_late: u64,
    pub detections: u64,
    pub windows_closed: u64,
    pub frames_in_flight: i64,
    pub bytes_in_flight: i64,
    /// Per vision operator, by stream name in plan order, over all workers.
    pub operators: Vec<OperatorLagSnapshot>,
    /// Per stream with an operator, in plan order, over all workers.
    pub streams: Vec<StreamSnapshot>,
}

/// One stream's outcomes over all workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSnapshot {
    pub name: Arc<str>,
    pub processed: u64,
    pub degraded: u64,
    pub rejected: u64,
}

/// One operator's lag over all workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorLagSnapshot {
    pub name: Arc<str>,
    /// Frames waiting, summed.
    pub queued: u64,
    /// The longest wait of a frame on any worker, in milliseconds.
    pub waited_ms: u64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A new lag gauge for the operator of stream `name` on one worker.
    pub fn operator(&self, name: &str) -> Arc<OperatorLag> {
        epoch();
        let lag = Arc::new(OperatorLag::default());
        let mut operators = self.operators.lock().unwrap_or_else(|p| p.into_inner());
        operators.push((name.into(), lag.clone()));
        lag
    }

    /// New outcome counters for stream `name` on one worker.
    pub fn stream(&self, name: &str) -> Arc<StreamCounts> {
        let counts = Arc::new(StreamCounts::default());
        self.streams.lock().unwrap_or_else(|p| p.into_inner()).push((name.into(), counts.clone()));
        counts
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut operators: Vec<OperatorLagSnapshot> = Vec::new();
        for (name, lag) in self.operators.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let at = summed(
                &mut operators,
                |o| &o.name == name,
                || OperatorLagSnapshot { name: name.clone(), ..Default::default() },
            );
            at.queued += get(&lag.queued);
            let oldest = get(&lag.oldest);
            let now = epoch().elapsed().as_millis() as u64 + 1;
            let waited = if oldest == 0 { 0 } else { now.saturating_sub(oldest) };
            at.waited_ms = at.waited_ms.max(waited);
        }
        let mut streams: Vec<StreamSnapshot> = Vec::new();
        for (name, counts) in self.streams.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let at = summed(
                &mut streams,
                |s| &s.name == name,
                || StreamSnapshot { name: name.clone(), ..Default::default() },
            );
            at.processed += get(&counts.processed);
            at.degraded += get(&counts.degraded);
            at.rejected += get(&counts.rejected);
        }
        MetricsSnapshot {
            frames_admitted: get(&self.frames_admitted),
            frames_rejected: get(&self.frames_rejected),
            frames_duplicate: get(&self.frames_duplicate),
            frames_late: get(&self.frames_late),
            detections: get(&self.detections),
            windows_closed: get(&self.windows_closed),
            frames_in_flight: self.frames_in_flight.load(Ordering::Relaxed),
            bytes_in_flight: self.bytes_in_flight.load(Ordering::Relaxed),
            operators,
            streams,
        }
    }
}

/// The entry of `entries` that `is` picks, made by `new` (at the end, so
/// that entries keep the order of their first worker) if there is none.
fn summed<T>(entries: &mut Vec<T>, is: impl Fn(&T) -> bool, new: impl FnOnce() -> T) -> &mut T {
    let at = match entries.iter().position(is) {
        Some(at) => at,
        None => {
            entries.push(new());
            entries.len() - 1
        }
    };
    &mut entries[at]
}

impl OperatorLag {
    /// Records the backlog after the operator ran: `queued` frames, the
    /// oldest of which arrived at `oldest`.
    pub fn set(&self, queued: usize, oldest: Option<Instant>) {
        self.queued.store(queued as u64, Ordering::Relaxed);
        let since = oldest.map_or(0, |at| at.saturating_duration_since(epoch()).as_millis() as u64 + 1);
        self.oldest.store(since, Ordering::Relaxed);
    }
}
