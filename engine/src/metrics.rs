//! Counters a running job keeps, shared by its workers and read by whoever
//! shows progress.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub frames_admitted: AtomicU64,
    pub frames_processed: AtomicU64,
    pub frames_rejected: AtomicU64,
    pub frames_late: AtomicU64,
    pub detections: AtomicU64,
    pub windows_closed: AtomicU64,
    /// Frames admitted whose results the sinks have not yet delivered.
    pub frames_in_flight: AtomicI64,
    /// Their bytes: encoded frames and rows.
    pub bytes_in_flight: AtomicI64,
}

/// A consistent-enough copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub frames_admitted: u64,
    pub frames_processed: u64,
    pub frames_rejected: u64,
    pub frames_late: u64,
    pub detections: u64,
    pub windows_closed: u64,
    pub frames_in_flight: i64,
    pub bytes_in_flight: i64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            frames_admitted: get(&self.frames_admitted),
            frames_processed: get(&self.frames_processed),
            frames_rejected: get(&self.frames_rejected),
            frames_late: get(&self.frames_late),
            detections: get(&self.detections),
            windows_closed: get(&self.windows_closed),
            frames_in_flight: self.frames_in_flight.load(Ordering::Relaxed),
            bytes_in_flight: self.bytes_in_flight.load(Ordering::Relaxed),
        }
    }
}
