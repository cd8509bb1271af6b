//! Per-camera watermarks, the bookkeeping behind a source's promise.
//!
//! A camera's watermark is the newest event time seen from it minus the
//! allowed lateness. Keeping it per camera (not per source or per worker)
//! makes lateness a property of the camera's own stream: whether a frame is
//! late does not depend on how cameras were spread over workers.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{Detection, FrameOutcome, Outcome};
use crate::plan::LatePolicy;
use crate::time::Millis;

/// Why a late frame or row is dead-lettered.
pub const LATE_REASON: &str = "event time is behind the camera's watermark (newest frame minus lateness)";

/// The outcome of a detection row that arrived behind its watermark: with
/// a reason (dead-lettered) or without (only counted), by `policy`.
pub fn late_row(d: &Detection, policy: LatePolicy) -> FrameOutcome {
    let reason = (policy == LatePolicy::DeadLetter).then(|| LATE_REASON.to_owned());
    FrameOutcome::of_row(d, Outcome::Late, "source".into(), reason)
}

#[derive(Debug)]
pub struct CameraWatermarks {
    lateness_ms: Millis,
    newest: BTreeMap<Arc<str>, Millis>,
}

impl CameraWatermarks {
    pub fn new(lateness_ms: Millis) -> CameraWatermarks {
        CameraWatermarks { lateness_ms: lateness_ms.max(0), newest: BTreeMap::new() }
    }

    pub fn lateness_ms(&self) -> Millis {
        self.lateness_ms
    }

    /// Records a frame; returns the camera's watermark if the frame is
    /// behind it (late).
    pub fn observe(&mut self, source_id: &Arc<str>, event_time: Millis) -> Option<Millis> {
        match self.newest.get_mut(source_id) {
            Some(newest) => {
                let watermark = newest.saturating_sub(self.lateness_ms);
                *newest = (*newest).max(event_time);
                (event_time < watermark).then_some(watermark)
            }
            None => {
                self.newest.insert(source_id.clone(), event_time);
                None
            }
        }
    }

    /// The newest event time seen from the camera.
    pub fn newest(&self, source_id: &str) -> Option<Millis> {
        self.newest.get(source_id).copied()
    }

    /// The newest event time seen from any camera.
    pub fn newest_of_all(&self) -> Option<Millis> {
        self.newest.values().copied().max()
    }

    /// The camera's promise: no on-time frame will come before this. For a
    /// camera not seen yet, `next` (its next frame's event time, if known)
    /// stands in for the newest.
    pub fn promise(&self, source_id: &str, next: Option<Millis>) -> Option<Millis> {
        // Once a camera is seen, its future on-time frames are at or after
        // newest - lateness whatever comes next.
        let newest = self.newest.get(source_id).copied().or(next)?;
        Some(newest.saturating_sub(self.lateness_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_behind_the_watermark_are_late_and_do_not_move_it() {
        let cam: Arc<str> = "cam".into();
        let mut marks = CameraWatermarks::new(1_000);
        assert_eq!(marks.observe(&cam, 10_000), None);
        assert_eq!(marks.observe(&cam, 9_000), None, "exactly at the watermark is on time");
        assert_eq!(marks.observe(&cam, 8_999), Some(9_000));
        assert_eq!(marks.promise("cam", None), Some(9_000));
        assert_eq!(marks.promise("cam", Some(5_000)), Some(9_000));
        assert_eq!(marks.promise("other", Some(5_000)), Some(4_000));
        assert_eq!(marks.promise("other", None), None);
    }
}
