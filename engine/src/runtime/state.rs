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
//! The state is a map, by a key of the operator's own (a camera), and an
//! instance tells what it changed after each frame
//! ([`VisionOperator::changed`]): the checkpoint's state is the one
//! resumed from with every worker's changes before `X` applied. The
//! operator runs ahead of the checkpoints, so its log keeps its changes
//! by tick until a checkpoint past them is durable.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::checkpoint::OperatorState;
use crate::model::Frame;
use crate::time::Tick;

/// An instance's changes since its restore, as of a barrier (each key's
/// last, with its tick; `null` for a key it dropped), and the duplicates
/// it refused before the barrier, with their ticks.
pub(crate) type OperatorReport = (BTreeMap<String, (Tick, Value)>, Vec<(Tick, Arc<str>)>);

/// One instance's changes and refusals, shared between the operator and
/// its worker's part in checkpoints.
#[derive(Default)]
pub(crate) struct StateLog {
    /// Changes stamped before the last durable checkpoint, folded.
    folded: BTreeMap<String, (Tick, Value)>,
    /// Later changes, by tick.
    pending: BTreeMap<Tick, Vec<(String, Value)>>,
    /// Every frame stamped before this has been run.
    settled: Tick,
    /// Frames refused as duplicates ([`frame_key`]), by tick.
    duplicates: BTreeMap<Tick, Vec<Arc<str>>>,
}

/// A [`StateLog`] as its operator and its worker hold it.
#[derive(Clone, Default)]
pub(crate) struct SharedLog(Arc<Mutex<StateLog>>);

impl SharedLog {
    pub fn lock(&self) -> MutexGuard<'_, StateLog> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StateLog {
    /// The operator ran a frame stamped `tick` (every frame stamped before
    /// it has run) and changed these entries.
    pub fn ran(&mut self, tick: Tick, changes: Vec<(String, Value)>) {
        self.settled = self.settled.max(tick);
        if !changes.is_empty() {
            self.pending.entry(tick).or_default().extend(changes);
        }
    }

    /// A frame stamped `tick` was refused as a duplicate.
    pub fn duplicate(&mut self, tick: Tick, frame: &Frame) {
        self.duplicates.entry(tick).or_default().push(frame_key(frame));
    }

    /// The operator has run every frame stamped before `frontier`.
    pub fn settle(&mut self, frontier: Tick) {
        self.settled = self.settled.max(frontier);
    }

    /// The changes of every frame stamped before `x`, and the duplicates
    /// stamped before it; `None` until the operator has run them all.
    pub fn at(&self, x: Tick) -> Option<OperatorReport> {
        if self.settled < x {
            return None;
        }
        let mut changes = self.folded.clone();
        fold(&mut changes, self.pending.range(..x));
        let duplicates = self.duplicates.range(..x).flat_map(|(t, ids)| ids.iter().map(|id| (*t, id.clone())));
        Some((changes, duplicates.collect()))
    }

    /// Every change so far (the job has finished).
    pub fn latest(&self) -> BTreeMap<String, (Tick, Value)> {
        let mut changes = self.folded.clone();
        fold(&mut changes, self.pending.iter());
        changes
    }

    /// A checkpoint at `x` is durable, and no restart replays a frame
    /// stamped before `replay_from` whose answer it needs: what only
    /// earlier checkpoints needed goes.
    pub fn forget(&mut self, x: Tick, replay_from: Tick) {
        let later = self.pending.split_off(&x);
        let earlier = std::mem::replace(&mut self.pending, later);
        fold(&mut self.folded, earlier.iter());
        self.duplicates = self.duplicates.split_off(&replay_from.min(x));
    }
}

/// Applies changes, in tick order, each key keeping its last.
fn fold<'a>(
    into: &mut BTreeMap<String, (Tick, Value)>,
    changes: impl Iterator<Item = (&'a Tick, &'a Vec<(String, Value)>)>,
) {
    for (tick, entries) in changes {
        for (key, value) in entries {
            into.insert(key.clone(), (*tick, value.clone()));
        }
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
    /// From the checkpoint resumed at `tick` and the operator's state in
    /// it. Without one (a checkpoint of an older frameflow, or a stream
    /// new to the job), every frame goes through the operator, so that
    /// replayed frames rebuild its state as they did.
    pub fn new(tick: Tick, saved: Option<&OperatorState>) -> Resumed {
        match saved {
            Some(saved) => {
                Resumed { tick, duplicates: saved.duplicates.iter().map(|id| Arc::from(id.as_str())).collect() }
            }
            None => Resumed { tick: 0, duplicates: HashSet::new() },
        }
    }
}

/// How a frame is named among the duplicates: by its source too, since
/// frame ids are unique only within a source.
pub(crate) fn frame_key(frame: &Frame) -> Arc<str> {
    format!("{}/{}/{}", frame.tenant, frame.source_id, frame.frame_id).into()
}

/// The state resumed from with every worker's changes applied (a key's
/// latest change wins; `null` removes it), and the duplicates a restart
/// may replay.
pub(crate) fn merge<'a>(
    resumed: Option<&OperatorState>,
    reports: impl Iterator<Item = &'a OperatorReport>,
    replay_from: Tick,
) -> OperatorState {
    let mut latest: BTreeMap<&String, &(Tick, Value)> = BTreeMap::new();
    let mut duplicates = BTreeSet::new();
    for (changes, refused) in reports {
        for (key, change) in changes {
            if latest.get(key).is_none_or(|(tick, _)| *tick <= change.0) {
                latest.insert(key, change);
            }
        }
        duplicates.extend(refused.iter().filter(|(t, _)| *t >= replay_from).map(|(_, id)| id.to_string()));
    }
    let mut state = resumed.map(|s| s.state.clone()).unwrap_or_default();
    for (key, (_, value)) in latest {
        match value {
            Value::Null => state.remove(key),
            value => state.insert(key.clone(), value.clone()),
        };
    }
    OperatorState { state, duplicates }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, value: i64) -> (String, Value) {
        (key.to_owned(), value.into())
    }

    #[test]
    fn a_round_reads_the_changes_before_its_barrier() {
        let mut log = StateLog::default();
        log.ran(3, vec![change("a", 1)]);
        log.ran(3, vec![]);
        log.ran(5, vec![change("a", 2), change("b", 1)]);
        log.duplicates.entry(5).or_default().push("f5".into());
        log.ran(9, vec![change("b", 2)]);
        // tick 9 may still have frames to come
        assert_eq!(log.at(10), None);
        let at = |log: &StateLog, x| log.at(x).map(|(changes, dups)| (changes, dups.len()));
        let a2b1 = BTreeMap::from([("a".into(), (5, 2.into())), ("b".into(), (5, 1.into()))]);
        assert_eq!(at(&log, 9), Some((a2b1.clone(), 1)));
        assert_eq!(at(&log, 5), Some((BTreeMap::from([("a".into(), (3, 1.into()))]), 0)));
        log.settle(12);
        assert_eq!(log.at(12).map(|(changes, _)| changes["b"].1.clone()), Some(2.into()));
        // a checkpoint at 6, from which no restart replays before 5
        log.forget(6, 5);
        assert_eq!(at(&log, 6), Some((a2b1, 1)));
        assert_eq!(log.latest()["b"], (9, 2.into()));
        log.forget(12, 12);
        assert_eq!(at(&log, 12).map(|(changes, dups)| (changes.len(), dups)), Some((2, 0)));
    }

    #[test]
    fn merging_applies_every_worker_s_changes_to_the_state_resumed_from() {
        let resumed = OperatorState {
            state: BTreeMap::from([("a".into(), 0.into()), ("gone".into(), 0.into()), ("kept".into(), 0.into())]),
            duplicates: BTreeSet::new(),
        };
        let one = (
            BTreeMap::from([("a".into(), (4, 1.into())), ("gone".into(), (4, Value::Null))]),
            vec![(2, Arc::from("old")), (7, Arc::from("new"))],
        );
        let two = (BTreeMap::from([("a".into(), (6, 2.into())), ("b".into(), (1, 1.into()))]), vec![]);
        let merged = merge(Some(&resumed), [&one, &two].into_iter(), 5);
        let expected = BTreeMap::from([("a".into(), 2.into()), ("b".into(), 1.into()), ("kept".into(), 0.into())]);
        assert_eq!(merged.state, expected);
        assert_eq!(merged.duplicates, BTreeSet::from(["new".to_owned()]));
    }
}
