//! Runs a [`JobPlan`] on timely workers.
//!
//! [`run`] first prepares everything the plan names — connectors checked,
//! models loaded, sinks opened — so a bad job fails before any frame is
//! read. Then each worker builds the dataflow and drives its source
//! partitions: it admits frames while the frames in flight (admitted, not
//! yet past the probe at the sinks) are under budget, turns each source's
//! promise into a capability downgrade, and steps the dataflow.

mod checkpoints;
mod dataflow;
mod state;
pub mod vision;
mod window;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::WorkerConfig;
use timely::dataflow::ProbeHandle;

use crate::checkpoint::{Checkpoint, Positions, SourceContext};
use crate::error::EngineError;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::plan::{JobPlan, LatePolicy, StreamInput, WindowSpec};
use crate::registry::{Partition, Registry, Source, SourcePoll, SourceRow};
use crate::time::{Tick, TickClock};
use crate::watermark::late_row;
use checkpoints::{Checkpoints, Report};
use dataflow::{InputHandle, Prepared, SourceInput};
use state::{OperatorReport, SharedLog};
use timely::dataflow::operators::ActivateCapability;

/// How a job runs, beside what it computes.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Timely worker threads.
    pub workers: usize,
    /// Milliseconds of event time per timely tick.
    pub tick_ms: u64,
    /// Frames a worker admitted and the sinks have not yet delivered, beyond
    /// which that worker's sources stop reading.
    pub max_in_flight_frames: usize,
    /// The same in bytes (encoded frames and rows): whichever budget fills
    /// first stops the sources.
    pub max_in_flight_bytes: usize,
    /// Set (by a signal handler) to stop the job: sources stop taking
    /// input, what was accepted is finished and delivered, and `run`
    /// returns.
    pub stop: Arc<AtomicBool>,
    /// Where the job keeps its checkpoints and journals. A job given one
    /// resumes from its last checkpoint; without one nothing is durable.
    pub state_dir: Option<PathBuf>,
    /// How often a checkpoint is taken.
    pub checkpoint_interval: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            workers: 1,
            tick_ms: 50,
            max_in_flight_frames: 64,
            max_in_flight_bytes: 256 << 20,
            stop: Arc::default(),
            state_dir: None,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// What a finished job reports.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub metrics: MetricsSnapshot,
    pub elapsed: Duration,
}

/// Runs `plan` to completion (for finite sources) on `config.workers`
/// threads, updating `metrics` as it goes.
pub fn run(
    plan: JobPlan,
    registry: &Registry,
    config: &RunConfig,
    metrics: Arc<Metrics>,
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let job = Arc::new(prepare(plan, registry, config, metrics)?);
    let factories: Vec<_> = job
        .plan
        .sources
        .iter()
        .map(|s| registry.sources.get(s.kind.as_str()).cloned().map(|f| (s.clone(), f)))
        .collect::<Option<_>>()
        .ok_or_else(|| EngineError::Internal("a source kind vanished after validation".into()))?;
    let per_worker_budget = config.max_in_flight_frames.max(1);
    let byte_budget = config.max_in_flight_bytes.max(1);
    let timely_config = timely::Config {
        communication: timely::CommunicationConfig::Process(config.workers.max(1)),
        worker: WorkerConfig::default(),
    };
    let worker_job = job.clone();
    let stop = config.stop.clone();
    let resume = job.checkpoints.as_ref().map(|c| c.last()).unwrap_or_default();
    let state_dir = config.state_dir.clone();
    let guards = timely::execute(timely_config, move |worker| -> Result<(), String> {
        let job = &worker_job;
        let partition = Partition { worker: worker.index(), workers: worker.peers() };
        let mut sources = Vec::new();
        for (spec, factory) in &factories {
            let context = SourceContext {
                positions: resume.sources.get(&spec.name).cloned().unwrap_or_default(),
                state_dir: state_dir.as_ref().map(|d| d.join("sources").join(&spec.name)),
            };
            let source = factory.open_at(spec, partition, &context);
            sources.push(source.map_err(|e| format!("source `{}`: {e}", spec.name))?);
        }
        let probe = ProbeHandle::new();
        let index = worker.index();
        let (mut inputs, activators, operators) =
            worker.dataflow::<Tick, _, _>(|scope| dataflow::build(scope, index, job, &probe))?;
        let limits = (per_worker_budget, byte_budget, &*stop);
        let result = drive(worker, job, &mut sources, &mut inputs, &probe, limits, (&activators, operators));
        if result.is_err() {
            // Stop every worker, not just this one, so none waits on it.
            fail(job, result.as_ref().err().cloned().unwrap_or_default());
        }
        result
    })
    .map_err(EngineError::Runtime)?;
    let mut first_error = None;
    for result in guards.join() {
        if let Err(e) = result.and_then(|r| r) {
            first_error.get_or_insert(e);
        }
    }
    if let Some(failure) = job.failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(EngineError::Failed(failure));
    }
    if let Some(e) = first_error {
        return Err(EngineError::Failed(e));
    }
    if let Some(checkpoints) = &job.checkpoints {
        checkpoints.finish().map_err(EngineError::Failed)?;
    }
    Ok(RunSummary { metrics: job.metrics.snapshot(), elapsed: started.elapsed() })
}

use dataflow::fail;

/// Checks the plan against the registry and prepares operators and sinks.
fn prepare(
    plan: JobPlan,
    registry: &Registry,
    config: &RunConfig,
    metrics: Arc<Metrics>,
) -> Result<Prepared, EngineError> {
    let known = |names: Vec<&&str>| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    for spec in &plan.sources {
        let factory = registry.sources.get(spec.kind.as_str()).ok_or_else(|| EngineError::UnknownPlugin {
            what: "source kind",
            name: spec.kind.clone(),
            known: known(registry.sources.keys().collect()),
        })?;
        factory.validate(spec).map_err(|reason| EngineError::Plugin {
            what: "source",
            name: spec.name.clone(),
            reason,
        })?;
    }
    let mut screens = HashMap::new();
    for spec in &plan.sources {
        let Some((operator, options)) = &spec.screen else { continue };
        let factory = registry.operators.get(operator.as_str()).ok_or_else(|| EngineError::UnknownPlugin {
            what: "operator",
            name: operator.clone(),
            known: known(registry.operators.keys().collect()),
        })?;
        let prepared = factory.prepare(options).map_err(|reason| EngineError::Plugin {
            what: "source",
            name: spec.name.clone(),
            reason,
        })?;
        screens.insert(spec.name.clone(), prepared);
    }
    let mut operators = HashMap::new();
    let mut policies = HashMap::new();
    for spec in &plan.streams {
        let StreamInput::Vision { operator, options, .. } = &spec.input else { continue };
        let mut options = options.clone();
        let policy = vision::RunPolicy::take(&mut options).map_err(|reason| EngineError::Plugin {
            what: "stream",
            name: spec.name.clone(),
            reason,
        })?;
        policies.insert(spec.name.clone(), policy);
        let factory = registry.operators.get(operator.as_str()).ok_or_else(|| EngineError::UnknownPlugin {
            what: "operator",
            name: operator.clone(),
            known: known(registry.operators.keys().collect()),
        })?;
        let prepared = factory.prepare(&options).map_err(|reason| EngineError::Plugin {
            what: "stream",
            name: spec.name.clone(),
            reason,
        })?;
        operators.insert(spec.name.clone(), prepared);
    }
    let last = match &config.state_dir {
        Some(dir) => Checkpoint::load(dir).map_err(EngineError::Failed)?,
        None => None,
    };
    let mut sinks = HashMap::new();
    for spec in &plan.sinks {
        let factory = registry.sinks.get(spec.kind.as_str()).ok_or_else(|| EngineError::UnknownPlugin {
            what: "sink kind",
            name: spec.kind.clone(),
            known: known(registry.sinks.keys().collect()),
        })?;
        let schema = crate::columnar::schema_of(&plan, &spec.input);
        let sink = match &last {
            Some(last) => factory.resume(spec, schema, last.sinks.get(&spec.name).map(String::as_str)),
            None => factory.open(spec, schema),
        };
        let sink = sink.map_err(|reason| EngineError::Plugin { what: "sink", name: spec.name.clone(), reason })?;
        sinks.insert(spec.name.clone(), Mutex::new(Some(sink)));
    }
    // A durable job's first run records where its sinks start, before it
    // writes anything: a crash before its first checkpoint then resumes
    // there too (a Kafka sink cannot be cut back as a file can).
    let last = match (&config.state_dir, last) {
        (Some(dir), None) => {
            let mut first = Checkpoint::default();
            for (name, sink) in &sinks {
                let position = sink.lock().ok().and_then(|mut s| s.as_mut().map(|s| s.checkpoint()));
                if let Some(position) = position.transpose().map_err(EngineError::Failed)?.flatten() {
                    first.sinks.insert(name.clone(), position);
                }
            }
            first.store(dir).map_err(EngineError::Failed)?;
            Some(first)
        }
        (_, last) => last,
    };
    let clock = TickClock::new(config.tick_ms);
    let checkpoints = config.state_dir.as_ref().map(|dir| {
        Arc::new(Checkpoints::new(
            dir.clone(),
            last,
            clock,
            config.workers.max(1),
            plan.sinks.iter().map(|s| s.name.clone()).collect(),
            config.checkpoint_interval,
            horizon(&plan, clock),
        ))
    });
    Ok(Prepared {
        plan,
        clock,
        decoder: registry.decoder.clone(),
        operators,
        screens,
        policies,
        sinks,
        metrics,
        failure: Mutex::new(None),
        checkpoints,
        discard: AtomicBool::new(false),
    })
}

/// Ticks after a frame's own by which every output it causes is stamped:
/// its windows' lengths, summed along chains of views. `None` when a
/// session or global view may hold it without bound.
fn horizon(plan: &JobPlan, clock: TickClock) -> Option<Tick> {
    fn of(plan: &JobPlan, view: &crate::plan::ViewSpec, clock: TickClock) -> Option<Tick> {
        let own = match view.window {
            WindowSpec::Tumble { size_ms } | WindowSpec::Hop { size_ms, .. } => clock.tick_of(size_ms) + 2,
            WindowSpec::Session { .. } | WindowSpec::Global => return None,
        };
        let inner = match plan.views.iter().find(|v| v.name == view.input) {
            Some(input) => of(plan, input, clock)?,
            None => 0,
        };
        Some(own + inner)
    }
    plan.views.iter().try_fold(1, |horizon, view| Some(horizon.max(of(plan, view, clock)?)))
}

/// Frames (or rows) this worker admitted and the sinks have not yet
/// delivered, and their bytes, by timely tick.
#[derive(Default)]
struct InFlight {
    by_tick: BTreeMap<Tick, (usize, usize)>,
    total: usize,
    bytes: usize,
}

impl InFlight {
    fn admit(&mut self, tick: Tick, count: usize, bytes: usize, metrics: &Metrics) {
        let entry = self.by_tick.entry(tick).or_insert((0, 0));
        entry.0 += count;
        entry.1 += bytes;
        self.total += count;
        self.bytes += bytes;
        metrics.frames_in_flight.fetch_add(count as i64, Ordering::Relaxed);
        metrics.bytes_in_flight.fetch_add(bytes as i64, Ordering::Relaxed);
    }

    /// Forgets frames at ticks the probe has passed.
    fn retire(&mut self, probe: &ProbeHandle<Tick>, metrics: &Metrics) {
        let delivered_before = probe.with_frontier(|f| f.first().copied());
        let kept = match delivered_before {
            Some(tick) => self.by_tick.split_off(&tick),
            None => BTreeMap::new(),
        };
        let retired = std::mem::replace(&mut self.by_tick, kept);
        let (frames, bytes) = retired.values().fold((0, 0), |(f, b), (n, m)| (f + n, b + m));
        self.total -= frames;
        self.bytes -= bytes;
        metrics.frames_in_flight.fetch_sub(frames as i64, Ordering::Relaxed);
        metrics.bytes_in_flight.fetch_sub(bytes as i64, Ordering::Relaxed);
    }

    /// Frames in flight at ticks before `tick`: work the dataflow can finish
    /// without more input.
    fn before(&self, tick: Tick) -> usize {
        self.by_tick.range(..tick).map(|(_, (n, _))| n).sum()
    }

    /// How many more frames fit both budgets, judging frames to come by the
    /// average size of those in flight; `None` when either is full.
    fn room(&self, frames: usize, bytes: usize) -> Option<usize> {
        if self.total >= frames || self.bytes >= bytes {
            return None;
        }
        let by_frames = frames - self.total;
        let average = self.bytes.checked_div(self.total).unwrap_or(0).max(1);
        Some(by_frames.min(((bytes - self.bytes) / average).max(1)))
    }
}

/// What an admitted item costs the byte budget: its encoded bytes and its
/// row.
trait Footprint {
    fn footprint(&self) -> usize;
}

impl Footprint for crate::model::Frame {
    fn footprint(&self) -> usize {
        self.bytes.len() + std::mem::size_of::<Self>()
    }
}

impl Footprint for crate::model::Detection {
    fn footprint(&self) -> usize {
        std::mem::size_of::<Self>() + self.text.as_ref().map_or(0, String::len)
    }
}

impl Footprint for crate::model::FrameOutcome {
    fn footprint(&self) -> usize {
        std::mem::size_of::<Self>() + self.reason.as_ref().map_or(0, String::len)
    }
}

/// Sends items into the dataflow: `place` says what goes in for each item
/// and at which tick (at least `floor`, the capability's), or takes the
/// item elsewhere. Items of the same tick share one session.
fn admit<I, T: Footprint + 'static>(
    handle: &mut dataflow::Input<T>,
    capability: &ActivateCapability<Tick>,
    items: Vec<I>,
    in_flight: &mut InFlight,
    metrics: &Metrics,
    mut place: impl FnMut(I, Tick) -> Option<(T, Tick)>,
) -> Option<Tick> {
    let floor = *capability.time();
    let mut latest = None;
    let mut placed = items.into_iter().filter_map(|item| place(item, floor)).peekable();
    let mut handle = handle.activate();
    while let Some((item, tick)) = placed.next() {
        let at = capability.delayed(&tick);
        let mut session = handle.session(&at);
        let mut bytes = item.footprint();
        session.give(item);
        let mut count = 1;
        while let Some((item, _)) = placed.next_if(|(_, t)| *t == tick) {
            bytes += item.footprint();
            session.give(item);
            count += 1;
        }
        in_flight.admit(tick, count, bytes, metrics);
        latest = latest.max(Some(tick));
    }
    latest
}

/// A source's polls that returned input, with the earliest and latest
/// ticks each could place input at: which of them a checkpoint at some
/// tick has behind it.
#[derive(Default)]
struct PollLog {
    polls: VecDeque<Poll>,
    count: u64,
}

struct Poll {
    n: u64,
    /// The source's capability then: no input of the poll is before it.
    floor: Tick,
    latest: Tick,
}

impl PollLog {
    /// A poll that returned input, which the engine placed from `floor`
    /// to `latest`.
    fn record(&mut self, floor: Tick, latest: Tick) {
        self.count += 1;
        self.polls.push_back(Poll { n: self.count, floor, latest });
    }

    /// How many polls have every output stamped before `barrier`: a
    /// prefix, since sources resume from one position.
    fn behind(&self, barrier: Tick, horizon: Option<Tick>) -> u64 {
        let Some(horizon) = horizon else { return 0 };
        let first_ahead = self.polls.iter().find(|p| p.latest.saturating_add(horizon) > barrier);
        first_ahead.map_or(self.count, |p| p.n - 1)
    }

    /// The earliest tick of input that resuming after the first `behind`
    /// polls replays, if any: later polls place input at or after the
    /// capability the checkpoint's barrier has passed.
    fn replay_from(&self, behind: u64) -> Option<Tick> {
        self.polls.iter().find(|p| p.n > behind).map(|p| p.floor)
    }

    fn forget(&mut self, through: u64) {
        while self.polls.front().is_some_and(|p| p.n <= through) {
            self.polls.pop_front();
        }
    }
}

/// A worker's part in taking checkpoints.
#[derive(Default)]
struct Participation {
    logs: Vec<PollLog>,
    /// The state logs of the worker's stateful operators, by name.
    operators: Vec<(String, SharedLog)>,
    reported: u64,
    /// The round reported, its barrier, and each source's polls behind
    /// it: released once that checkpoint is durable.
    releasing: Option<(u64, Tick, Vec<u64>)>,
    version: u64,
}

impl Participation {
    fn turn(
        &mut self,
        checkpoints: &Checkpoints,
        worker: usize,
        job: &Prepared,
        sources: &mut [Box<dyn Source>],
        probe: &ProbeHandle<Tick>,
        sinks: &[timely::scheduling::Activator],
    ) -> Result<(), String> {
        let frontier = probe.with_frontier(|f| f.first().copied());
        if worker == 0 {
            checkpoints.maybe_start(frontier);
            let version = checkpoints.version();
            if version != self.version {
                self.version = version;
                sinks.iter().for_each(timely::scheduling::Activator::activate);
            }
        }
        if let Some(barrier) = checkpoints.barrier()
            && barrier.id != self.reported
            && frontier.is_none_or(|f| f >= barrier.tick)
            // each stateful operator has run every frame before the
            // barrier (it may not have had its turn since the probe moved)
            && let Some(operators) = self.operators_at(barrier.tick)
        {
            let counts: Vec<u64> = self.logs.iter().map(|l| l.behind(barrier.tick, checkpoints.horizon)).collect();
            let replay_from = self.logs.iter().zip(&counts).filter_map(|(l, n)| l.replay_from(*n)).min();
            let report = Report {
                positions: self.positions(job, sources, &counts),
                operators,
                replay_from: replay_from.unwrap_or(barrier.tick),
            };
            self.reported = barrier.id;
            self.releasing = Some((barrier.id, barrier.tick, counts));
            checkpoints.worker_reported(barrier.id, worker, report)?;
        }
        if let Some((_, barrier, counts)) = self.releasing.take_if(|(id, ..)| checkpoints.last_id() >= *id) {
            for ((source, log), n) in sources.iter_mut().zip(&mut self.logs).zip(counts) {
                source.committed(n);
                log.forget(n);
            }
            for (_, log) in &self.operators {
                log.lock().forget(barrier, checkpoints.replay_from());
            }
        }
        Ok(())
    }

    /// Each stateful operator's state at `tick`, once each has it.
    fn operators_at(&self, tick: Tick) -> Option<BTreeMap<String, OperatorReport>> {
        self.operators.iter().map(|(name, log)| Some((name.clone(), log.lock().at(tick)?))).collect()
    }

    fn positions(
        &self,
        job: &Prepared,
        sources: &mut [Box<dyn Source>],
        counts: &[u64],
    ) -> BTreeMap<String, Positions> {
        let specs = job.plan.sources.iter();
        specs
            .zip(sources.iter_mut())
            .zip(counts)
            .map(|((spec, source), n)| (spec.name.clone(), source.checkpoint(*n)))
            .collect()
    }
}

/// How long the in-flight budget holds a source back before it is told
/// to pause: short waits are the common case under load, and a pause costs
/// a source like Kafka its prefetched input.
const PAUSE_AFTER: Duration = Duration::from_millis(500);

/// The worker's loop: admit, promise, step — until every source is done and
/// every result delivered.
fn drive(
    worker: &mut timely::worker::Worker,
    job: &Prepared,
    sources: &mut [Box<dyn Source>],
    inputs: &mut [SourceInput],
    probe: &ProbeHandle<Tick>,
    (budget, byte_budget, stop): (usize, usize, &AtomicBool),
    (sinks, operators): (&[timely::scheduling::Activator], Vec<(String, SharedLog)>),
) -> Result<(), String> {
    let mut in_flight = InFlight::default();
    let mut stopping = false;
    let mut participation =
        Participation { logs: sources.iter().map(|_| PollLog::default()).collect(), operators, ..Default::default() };
    // Per source: since when the budget has held it back, and whether it
    // was told to pause.
    let mut held: Vec<Option<(Instant, bool)>> = vec![None; sources.len()];
    loop {
        if let Some(failure) = job.failure.lock().ok().and_then(|f| f.clone()) {
            return Err(failure);
        }
        if !stopping && stop.load(Ordering::SeqCst) {
            stopping = true;
            for (source, input) in sources.iter_mut().zip(inputs.iter_mut()) {
                // A durable job keeps its inputs open until it has taken a
                // last checkpoint: what it accepted is in its journals, and
                // a restart goes on from there.
                if !source.stop() && job.checkpoints.is_none() {
                    input.capability = None;
                    input.outcomes_capability = None;
                }
            }
        }
        // A durable job that is stopping ends once a checkpoint taken after
        // the stop is durable: the rest of its output is dropped, not
        // delivered early (open windows would be cut short), and comes
        // after the restart.
        if let Some(checkpoints) = job.checkpoints.as_ref().filter(|_| stopping)
            && checkpoints.stopped()
            && !job.discard.swap(true, Ordering::SeqCst)
        {
            eprintln!("frameflow: stopped at checkpoint {}; run the job again to go on", checkpoints.last_id());
        }
        if job.discard.load(Ordering::SeqCst) && inputs.iter().any(|i| i.capability.is_some()) {
            for input in inputs.iter_mut() {
                input.capability = None;
                input.outcomes_capability = None;
            }
        }
        in_flight.retire(probe, &job.metrics);
        if let Some(checkpoints) = &job.checkpoints {
            participation.turn(checkpoints, worker.index(), job, sources, probe, sinks)?;
        }
        let mut admitted_any = false;
        for (index, (source, input)) in sources.iter_mut().zip(inputs.iter_mut()).enumerate() {
            let Some(capability) = input.capability.as_mut() else { continue };
            // Frames held back only by allowed lateness cannot be finished
            // until more input moves the watermark, so they never block it.
            let room = if let Some(room) = in_flight.room(budget, byte_budget) {
                room
            } else if in_flight.before(*capability.time()) == 0 {
                1
            } else {
                let (since, paused) = held[index].get_or_insert((Instant::now(), false));
                if !*paused && since.elapsed() >= PAUSE_AFTER {
                    *paused = true;
                    source.pause();
                }
                continue;
            };
            held[index] = None;
            let policy = job.plan.sources[index].late;
            let clock = job.clock;
            let metrics = &job.metrics;
            let done = match (source.poll(room)?, &mut input.handle) {
                (SourcePoll::Frames(frames), InputHandle::Frames(handle)) => {
                    let polled = !frames.is_empty();
                    admitted_any |= polled;
                    Metrics::add(&metrics.frames_admitted, frames.len() as u64);
                    let latest = admit(handle, capability, frames, &mut in_flight, metrics, |mut frame, floor| {
                        let tick = clock.tick_of(frame.event_time);
                        // A frame that breaks its source's promise is late,
                        // and taken in, if at all, at its watermark.
                        if frame.late.is_none() && tick < floor {
                            frame.late = Some(clock.start_of(floor));
                        }
                        let at = frame.late.map_or(tick, |w| clock.tick_of(w));
                        Some((frame, at.max(floor)))
                    });
                    if polled {
                        let floor = *capability.time();
                        participation.logs[index].record(floor, latest.unwrap_or(floor));
                    }
                    false
                }
                (SourcePoll::Detections(rows), InputHandle::Detections(handle, outcomes_handle)) => {
                    let polled = !rows.is_empty();
                    admitted_any |= polled;
                    Metrics::add(&metrics.frames_admitted, rows.len() as u64);
                    let mut refused = Vec::new();
                    let latest = admit(handle, capability, rows, &mut in_flight, metrics, |row, floor| {
                        let (d, watermark) = match row {
                            SourceRow::Row(d) if clock.tick_of(d.event_time) >= floor => {
                                let tick = clock.tick_of(d.event_time);
                                return Some((d, tick));
                            }
                            // A row that breaks its source's promise is late.
                            SourceRow::Row(d) => (d, clock.start_of(floor)),
                            SourceRow::Late(d, watermark) => (d, watermark),
                            SourceRow::Refused(outcome) => {
                                Metrics::add(&metrics.frames_rejected, 1);
                                refused.push(outcome);
                                return None;
                            }
                        };
                        Metrics::add(&metrics.frames_late, 1);
                        if policy == LatePolicy::Admit {
                            Some((d, clock.tick_of(watermark).max(floor)))
                        } else {
                            refused.push(late_row(&d, policy));
                            None
                        }
                    });
                    let refused = match &input.outcomes_capability {
                        Some(at) => admit(outcomes_handle, at, refused, &mut in_flight, metrics, |o, f| Some((o, f))),
                        None => None,
                    };
                    if polled {
                        let floor = *capability.time();
                        participation.logs[index].record(floor, latest.max(refused).unwrap_or(floor));
                    }
                    false
                }
                (SourcePoll::Frames(_) | SourcePoll::Detections(_), _) => {
                    return Err(format!("source `{}` produced rows of the wrong kind", job.plan.sources[index].name));
                }
                (SourcePoll::Idle, _) => false,
                (SourcePoll::Done, _) => true,
            };
            match source.watermark() {
                Some(promise) if !done => {
                    let tick = job.clock.tick_of(promise);
                    if tick > *capability.time() {
                        capability.downgrade(&tick);
                        if let Some(outcomes) = input.outcomes_capability.as_mut() {
                            outcomes.downgrade(&tick);
                        }
                    }
                }
                _ => {
                    input.capability = None;
                    input.outcomes_capability = None;
                }
            }
        }
        let sources_done = inputs.iter().all(|i| i.capability.is_none());
        if sources_done && probe.with_frontier(|f| f.is_empty()) {
            in_flight.retire(probe, &job.metrics);
            if let Some(checkpoints) = job.checkpoints.as_ref().filter(|_| !job.discard.load(Ordering::SeqCst)) {
                let counts: Vec<u64> = participation.logs.iter().map(|l| l.count).collect();
                let operators = participation.operators.iter();
                let report = Report {
                    positions: participation.positions(job, sources, &counts),
                    operators: operators.map(|(name, log)| (name.clone(), (log.lock().latest(), Vec::new()))).collect(),
                    replay_from: Tick::MAX,
                };
                checkpoints.worker_finished(worker.index(), report);
            }
            return Ok(());
        }
        if admitted_any {
            worker.step();
        } else {
            worker.step_or_park(Some(Duration::from_millis(20)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_what_fits_both_budgets() {
        let metrics = Metrics::default();
        let mut in_flight = InFlight::default();
        assert_eq!(in_flight.room(10, 1_000), Some(10), "empty: the frame budget");
        in_flight.admit(1, 2, 400, &metrics);
        assert_eq!(in_flight.room(10, 1_000), Some(3), "600 bytes left at 200 a frame");
        in_flight.admit(2, 1, 600, &metrics);
        assert_eq!(in_flight.room(10, 1_000), None, "the byte budget is full");
        assert_eq!(in_flight.before(2), 2);
        assert_eq!(metrics.snapshot().bytes_in_flight, 1_000);
    }
}
