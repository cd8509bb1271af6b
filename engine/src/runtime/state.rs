//! The state of operators that keep it per camera (dedup's last kept
//! frame), for checkpoints.
//!
//! A checkpoint at tick `X` holds each such operator's state after every
//! frame stamped before `X`, and the frames before `X` that it refused as
//! duplicates and that a restart may replay (the sources resume from
//! positions behind `X`, see [`crate::checkpoint`]). After a restart the
//! operator starts from that state; a replayed frame stamped before `X`
//! is answered as before ([`VisionOperator::replay`]), not judged anew,
//! and frames from `X` on meet the state they met the first time.
//!
//! The operator runs ahead of the checkpoints, so its log keeps the state
//! after each tick since the last checkpoint, and a round reads the one
//! before its barrier.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::checkpoint::OperatorState;
use crate::model::Frame;
use crate::registry::VisionOperator;
use crate::time::Tick;

/// An instance's state at a barrier, and the duplicates it refused
/// before it, with their ticks.
pub(crate) type OperatorReport = (Vec<Value>, Vec<(Tick, Arc<str>)>);

/// One instance's states and refusals since the last checkpoint, shared
/// between the operator and its worker's part in checkpoints.
#[derive(Default)]
pub(crate) struct StateLog {
    /// The state before the first of `after`.
    base: Vec<Value>,
    /// The state after every frame of each tick, up to the key.
    after: BTreeMap<Tick, Vec<Value>>,
    /// The tick of the last frame run through the operator.
    last: Option<Tick>,
    /// Whether the operator ran a frame since `after` was last written.
    dirty: bool,
    /// Every frame stamped before this has been run.
    settled: Tick,
    /// Frames refused as duplicates ([`frame_key`]), by tick.
    duplicates: BTreeMap<Tick, Vec<Arc<str>>>,
}

/// A [`StateLog`] as its operator and its worker hold it.
#[derive(Clone, Default)]
pub(crate) struct SharedLog(Arc<Mutex<StateLog>>);

impl SharedLog {
    pub fn new(base: Vec<Value>) -> SharedLog {
        SharedLog(Arc::new(Mutex::new(StateLog { base, ..StateLog::default() })))
    }

    pub fn lock(&self) -> MutexGuard<'_, StateLog> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StateLog {
    /// Before the operator runs a frame stamped `tick`: the state after
    /// the ticks before it, if this is a new one.
    pub fn before(&mut self, tick: Tick, operator: &dyn VisionOperator) {
        if let Some(last) = self.last
            && tick > last
        {
            if self.dirty {
                self.after.insert(last, operator.save());
                self.dirty = false;
            }
            self.settled = self.settled.max(tick);
        }
        self.last = Some(self.last.map_or(tick, |last| last.max(tick)));
        self.dirty = true;
    }

    /// A frame stamped `tick` was refused as a duplicate.
    pub fn duplicate(&mut self, tick: Tick, frame: &Frame) {
        self.duplicates.entry(tick).or_default().push(frame_key(frame));
    }

    /// The operator has run every frame stamped before `frontier`.
    pub fn settle(&mut self, frontier: Tick, operator: &dyn VisionOperator) {
        if self.dirty
            && let Some(last) = self.last
        {
            self.after.insert(last, operator.save());
            self.dirty = false;
        }
        self.settled = self.settled.max(frontier);
    }

    /// The state after every frame stamped before `x`, and the duplicates
    /// stamped before it with their ticks; `None` until the operator has
    /// run them all.
    pub fn at(&self, x: Tick) -> Option<OperatorReport> {
        if self.settled < x {
            return None;
        }
        let state = self.after.range(..x).next_back().map_or(&self.base, |(_, state)| state).clone();
        let duplicates = self.duplicates.range(..x).flat_map(|(t, ids)| ids.iter().map(|id| (*t, id.clone())));
        Some((state, duplicates.collect()))
    }

    /// The state after the last frame run (the job has finished).
    pub fn latest(&self) -> Vec<Value> {
        self.after.last_key_value().map_or(&self.base, |(_, state)| state).clone()
    }

    /// A checkpoint at `x` is durable, and no restart replays a frame
    /// stamped before `replay_from`: what only earlier checkpoints needed
    /// goes.
    pub fn forget(&mut self, x: Tick, replay_from: Tick) {
        if let Some((_, state)) = self.after.range(..x).next_back() {
            self.base = state.clone();
        }
        self.after = self.after.split_off(&x);
        self.duplicates = self.duplicates.split_off(&replay_from.min(x));
    }
}

/// What a restarted job's operator brings from the checkpoint.
pub(crate) struct Resumed {
    /// Frames stamped before this are replays.
    pub tick: Tick,
    /// The replays it refused as duplicates ([`frame_key`]).
    pub duplicates: HashSet<Arc<str>>,
}

impl Resumed {
    pub fn new(tick: Tick, state: &OperatorState) -> Resumed {
        Resumed { tick, duplicates: state.duplicates.iter().map(|id| Arc::from(id.as_str())).collect() }
    }
}

/// How a frame is named among the duplicates: by its source too, since
/// frame ids are unique only within a source.
pub(crate) fn frame_key(frame: &Frame) -> Arc<str> {
    format!("{}/{}/{}", frame.tenant, frame.source_id, frame.frame_id).into()
}

/// Every worker's report for one operator in one round, merged: the state
/// of every instance, and the duplicates a restart may replay.
pub(crate) fn merge<'a>(reports: impl Iterator<Item = &'a OperatorReport>, replay_from: Tick) -> OperatorState {
    let mut state = Vec::new();
    let mut duplicates = BTreeSet::new();
    for (entries, refused) in reports {
        state.extend(entries.iter().cloned());
        duplicates.extend(refused.iter().filter(|(t, _)| *t >= replay_from).map(|(_, id)| id.to_string()));
    }
    OperatorState { state, duplicates }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DecodedFrame;
    use crate::registry::FrameResult;

    /// Counts the frames it ran: its state.
    struct Counter(u64);

    impl VisionOperator for Counter {
        fn process(&mut self, _: &DecodedFrame) -> FrameResult {
            self.0 += 1;
            Ok(Vec::new())
        }

        fn save(&self) -> Vec<Value> {
            vec![self.0.into()]
        }
    }

    #[test]
    fn a_round_reads_the_state_before_its_barrier() {
        let mut log = StateLog { base: vec![0.into()], ..StateLog::default() };
        let mut counter = Counter(0);
        // two frames at tick 3, one at 5, one at 9
        for tick in [3, 3, 5, 9] {
            log.before(tick, &counter);
            counter.0 += 1;
        }
        log.duplicates.entry(5).or_default().push("f5".into());
        // tick 9 may still have frames to come
        assert_eq!(log.at(10), None);
        assert_eq!(log.at(9), Some((vec![3.into()], vec![(5, "f5".into())])));
        assert_eq!(log.at(5), Some((vec![2.into()], vec![])));
        assert_eq!(log.at(3), Some((vec![0.into()], vec![])));
        log.settle(12, &counter);
        assert_eq!(log.at(12).map(|(state, _)| state), Some(vec![4.into()]));
        // a checkpoint at 6, from which no restart replays before 5
        log.forget(6, 5);
        assert_eq!(log.at(6), Some((vec![3.into()], vec![(5, "f5".into())])));
        assert_eq!(log.at(12).map(|(state, _)| state), Some(vec![4.into()]));
        log.forget(12, 12);
        assert_eq!(log.at(12), Some((vec![4.into()], vec![])));
    }

    #[test]
    fn merged_reports_keep_the_duplicates_a_restart_replays() {
        let a = (vec![Value::from("a")], vec![(2, Arc::from("old")), (7, Arc::from("new"))]);
        let b = (vec![Value::from("b")], vec![]);
        let merged = merge([&a, &b].into_iter(), 5);
        assert_eq!(merged.state, vec![Value::from("a"), Value::from("b")]);
        assert_eq!(merged.duplicates, BTreeSet::from(["new".to_owned()]));
    }
}
