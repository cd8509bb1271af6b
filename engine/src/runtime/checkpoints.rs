//! Taking checkpoints while a job runs (see [`crate::checkpoint`]).
//!
//! A round, every `interval`:
//! 1. Worker 0 sets a barrier at tick `X`: the furthest any sink has
//!    written. Sinks write no tick at or after `X` until the round ends.
//! 2. Each sink, once it has written every tick before `X`, makes that
//!    durable ([`Sink::checkpoint`](crate::registry::Sink::checkpoint)) and
//!    reports where it stands.
//! 3. Each worker, once its probe has passed `X`, reports its sources'
//!    positions past the polls whose every output is stamped before `X`,
//!    and its stateful operators' state after every frame before `X`.
//! 4. The last report writes the checkpoint; the barrier lifts, and the
//!    sources may release what the checkpoint no longer needs.
//!
//! Sinks thus stand exactly at `X` in every checkpoint, whatever the
//! timing, and the sources' positions are consistent with them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::checkpoint::{Checkpoint, OperatorState, Positions};
use crate::time::{Tick, TickClock};

use super::state::OperatorReport;

/// A worker's part of a round.
#[derive(Clone, Debug, Default)]
pub(crate) struct Report {
    /// Per source, where its partitions on the worker resume.
    pub positions: BTreeMap<String, Positions>,
    /// Per stateful operator, its instance's changes before the barrier
    /// and the duplicates it refused ([`super::state::StateLog::at`]).
    pub operators: BTreeMap<String, OperatorReport>,
    /// No frame whose answer a restart needs is stamped before this: the
    /// frames of the polls not yet behind the barrier start here. (Sources
    /// may replay earlier frames too, a generator from its start; their
    /// outputs are all stamped before the barrier, and dropped.)
    pub replay_from: Tick,
}

pub(crate) struct Checkpoints {
    dir: PathBuf,
    clock: TickClock,
    workers: usize,
    sinks: Vec<String>,
    interval: Duration,
    /// Outputs stamped before this tick were delivered before a restart.
    pub resume_tick: Tick,
    /// Sinks that had delivered everything before a restart.
    closed_before: BTreeSet<String>,
    /// The checkpoint resumed from.
    resumed: Checkpoint,
    /// Ticks after a frame's own by which its every output is stamped;
    /// `None` when a session or global view may need it forever.
    pub horizon: Option<Tick>,
    state: Mutex<State>,
}

struct State {
    last: Checkpoint,
    round: Option<Round>,
    since: Instant,
    /// Per sink, the tick before which it has written everything.
    written: BTreeMap<String, Tick>,
    /// The latest tick of any record a sink wrote.
    latest: Option<Tick>,
    /// Changes when a round starts or ends: sinks then have work.
    version: u64,
    finals: Vec<Option<Report>>,
    /// The last checkpoint's: no restart replays a frame stamped before it.
    replay_from: Tick,
    closed_sinks: BTreeMap<String, Option<String>>,
    /// Once stopping: the last round that began before the stop.
    stop_after: Option<u64>,
    /// Once the last round of a stopping job is durable: its barrier,
    /// which stays, so that no sink writes past it.
    frozen: Option<Barrier>,
}

struct Round {
    id: u64,
    barrier: Tick,
    workers: Vec<Option<Report>>,
    sinks: BTreeMap<String, Option<String>>,
}

/// A round as workers and sinks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Barrier {
    pub id: u64,
    pub tick: Tick,
}

impl Checkpoints {
    pub fn new(
        dir: PathBuf,
        last: Option<Checkpoint>,
        clock: TickClock,
        workers: usize,
        sinks: Vec<String>,
        interval: Duration,
        horizon: Option<Tick>,
    ) -> Checkpoints {
        let resume_tick = last.as_ref().map_or(0, |c| clock.tick_of(c.frontier));
        Checkpoints {
            dir,
            clock,
            workers,
            sinks,
            interval,
            resume_tick,
            closed_before: last.as_ref().map(|c| c.closed.clone()).unwrap_or_default(),
            resumed: last.clone().unwrap_or_default(),
            horizon,
            state: Mutex::new(State {
                last: last.unwrap_or_default(),
                round: None,
                since: Instant::now(),
                written: BTreeMap::new(),
                latest: None,
                version: 0,
                finals: vec![None; workers],
                replay_from: 0,
                closed_sinks: BTreeMap::new(),
                stop_after: None,
                frozen: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn last(&self) -> Checkpoint {
        self.lock().last.clone()
    }

    /// The checkpoint the job resumed from (empty on a first run).
    pub fn resumed(&self) -> &Checkpoint {
        &self.resumed
    }

    /// No restart from the last checkpoint replays a frame stamped before
    /// this.
    pub fn replay_from(&self) -> Tick {
        self.lock().replay_from
    }

    /// Before which tick a sink drops what it gets: it delivered that
    /// before a restart (everything, if it had closed).
    pub fn resume_tick_for(&self, sink: &str) -> Tick {
        if self.closed_before.contains(sink) { Tick::MAX } else { self.resume_tick }
    }

    pub fn last_id(&self) -> u64 {
        self.lock().last.id
    }

    pub fn barrier(&self) -> Option<Barrier> {
        let state = self.lock();
        state.round.as_ref().map(|r| Barrier { id: r.id, tick: r.barrier }).or(state.frozen)
    }

    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// Whether a checkpoint taken after the job was asked to stop is
    /// durable. The first call asks for one at once.
    pub fn stopped(&self) -> bool {
        let mut state = self.lock();
        match state.stop_after {
            Some(after) => state.last.id > after,
            None => {
                let after = state.round.as_ref().map_or(state.last.id, |r| r.id);
                state.stop_after = Some(after);
                state.since = Instant::now() - self.interval;
                false
            }
        }
    }

    /// Worker 0, each turn: starts a round when one is due and there is
    /// progress to record. `probe` is its probe's frontier.
    pub fn maybe_start(&self, probe: Option<Tick>) {
        let Some(probe) = probe else { return };
        let mut state = self.lock();
        if state.round.is_some() || state.frozen.is_some() || state.since.elapsed() < self.interval {
            return;
        }
        // Never behind the checkpoint resumed from: outputs before it are
        // not written again, so a sink's position there is its position
        // at any earlier tick too.
        let barrier = state.written.values().copied().max().unwrap_or(probe).max(probe).max(self.resume_tick);
        // Without progress there is nothing to record, unless the job is
        // stopping and waits for a checkpoint.
        if state.last.id > 0 && barrier <= self.clock.tick_of(state.last.frontier) && state.stop_after.is_none() {
            return;
        }
        state.since = Instant::now();
        let id = state.last.id + 1;
        // A sink that has closed stands where it closed, whatever the round.
        let sinks =
            self.sinks.iter().map(|s| (s.clone(), state.closed_sinks.get(s).map(|p| p.clone().unwrap_or_default())));
        state.round = Some(Round { id, barrier, workers: vec![None; self.workers], sinks: sinks.collect() });
        state.version += 1;
    }

    /// A sink has written every tick before `tick`, the latest of them
    /// at `latest`.
    pub fn sink_written(&self, sink: &str, tick: Tick, latest: Option<Tick>) {
        let mut state = self.lock();
        // A sink whose input has ended is no bound on a barrier.
        if tick != Tick::MAX {
            state.written.insert(sink.to_owned(), tick);
        }
        state.latest = state.latest.max(latest);
    }

    /// A sink stands at the barrier of round `id`, at `position`.
    pub fn sink_reported(&self, id: u64, sink: &str, position: Option<String>) -> Result<(), String> {
        let mut state = self.lock();
        let Some(round) = state.round.as_mut().filter(|r| r.id == id) else { return Ok(()) };
        round.sinks.insert(sink.to_owned(), Some(position.unwrap_or_default()));
        self.complete(&mut state)
    }

    /// A worker's part of round `id`.
    pub fn worker_reported(&self, id: u64, worker: usize, report: Report) -> Result<(), String> {
        let mut state = self.lock();
        let Some(round) = state.round.as_mut().filter(|r| r.id == id) else { return Ok(()) };
        round.workers[worker] = Some(report);
        self.complete(&mut state)
    }

    fn complete(&self, state: &mut State) -> Result<(), String> {
        let Some(round) = state.round.as_ref() else { return Ok(()) };
        if round.workers.iter().any(Option::is_none) || round.sinks.values().any(Option::is_none) {
            return Ok(());
        }
        let replay_from = round.workers.iter().flatten().map(|r| r.replay_from).min().unwrap_or(round.barrier);
        let checkpoint = Checkpoint {
            id: round.id,
            frontier: self.clock.start_of(round.barrier),
            sources: merge(&round.workers),
            operators: operators(&self.resumed, &round.workers, replay_from),
            sinks: round
                .sinks
                .iter()
                .filter_map(|(n, p)| Some((n.clone(), p.clone()?)).filter(|(_, p)| !p.is_empty()))
                .collect(),
            closed: state.closed_sinks.keys().chain(&self.closed_before).cloned().collect(),
        };
        checkpoint.store(&self.dir)?;
        if state.stop_after.is_some_and(|after| checkpoint.id > after) {
            state.frozen = Some(Barrier { id: checkpoint.id, tick: round.barrier });
        }
        state.last = checkpoint;
        state.replay_from = replay_from;
        state.round = None;
        state.version += 1;
        Ok(())
    }

    /// A worker has finished: every output is delivered; its sources'
    /// final positions and its operators' final state.
    pub fn worker_finished(&self, worker: usize, report: Report) {
        self.lock().finals[worker] = Some(report);
    }

    /// A sink has delivered everything and closed, at `position`: that is
    /// where it stands for a round under way, too.
    pub fn sink_closed(&self, sink: &str, position: Option<String>) -> Result<(), String> {
        let mut state = self.lock();
        state.closed_sinks.insert(sink.to_owned(), position.clone());
        if let Some(round) = state.round.as_mut() {
            round.sinks.insert(sink.to_owned(), Some(position.unwrap_or_default()));
        }
        self.complete(&mut state)
    }

    /// Once the job has finished: a checkpoint after every output, so
    /// running the job again resumes after its input. Its frontier is just
    /// past the latest output: input replayed again (a source without
    /// positions) is not delivered twice, and new input, later, is.
    pub fn finish(&self) -> Result<(), String> {
        let mut state = self.lock();
        if state.finals.iter().any(Option::is_none) || self.sinks.iter().any(|s| !state.closed_sinks.contains_key(s)) {
            return Ok(());
        }
        let after = state.latest.map_or(0, |t| t + 1).max(self.resume_tick);
        let checkpoint = Checkpoint {
            id: state.last.id + 1,
            frontier: self.clock.start_of(after.max(self.clock.tick_of(state.last.frontier))),
            sources: merge(&state.finals),
            sinks: state.closed_sinks.iter().filter_map(|(n, p)| Some((n.clone(), p.clone()?))).collect(),
            closed: Default::default(),
            // frames replayed again (a source without positions) are
            // behind the frontier, so they are outputs no more
            operators: operators(&self.resumed, &state.finals, Tick::MAX),
        };
        checkpoint.store(&self.dir)?;
        state.last = checkpoint;
        Ok(())
    }
}

/// The positions of every worker's partitions, per source.
fn merge(workers: &[Option<Report>]) -> BTreeMap<String, Positions> {
    let mut merged: BTreeMap<String, Positions> = BTreeMap::new();
    for report in workers.iter().flatten() {
        for (source, entries) in &report.positions {
            merged.entry(source.clone()).or_default().extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    merged
}

/// Each stateful operator's state: the one resumed from with every
/// worker's changes applied.
fn operators(resumed: &Checkpoint, workers: &[Option<Report>], replay_from: Tick) -> BTreeMap<String, OperatorState> {
    let names: BTreeSet<&String> = workers.iter().flatten().flat_map(|r| r.operators.keys()).collect();
    names
        .into_iter()
        .map(|name| {
            let reports = workers.iter().flatten().filter_map(|r| r.operators.get(name));
            (name.clone(), super::state::merge(resumed.operators.get(name), reports, replay_from))
        })
        .collect()
}
