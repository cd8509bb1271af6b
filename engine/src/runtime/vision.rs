//! Running a vision operator inside the dataflow: in slices, in batches,
//! with each frame's failure its own, and shedding load by policy when the
//! operator falls behind.
//!
//! ```text
//!  frames ─▶ queue (per capability, with arrival time)
//!              │ behind by more than max_lag? ─▶ keep 1 in keep_every per camera, the rest: degraded
//!              ▼
//!           batch of up to N (waits up to batch_wait for N) ─▶ process_batch ─┬─▶ detections
//!              a failed batch is run again frame by frame                     └─▶ one outcome per frame
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::{Capability, Operator};

use super::dataflow::outcome;
use super::state::{Resumed, SharedLog, frame_key};
use crate::metrics::{Metrics, StreamCounts};
use crate::model::{DecodedFrame, Detection, FrameOutcome, Outcome};
use crate::plan::Options;
use crate::registry::{FrameResult, Refusal, VisionOperator};
use crate::time::Tick;

/// How long a vision operator runs before it lets the worker do other work.
const SLICE: Duration = Duration::from_millis(20);

/// How a stream runs its operator, from the options every vision call
/// takes beside the operator's own:
/// - `batch => 8`: frames per call (default: what the operator prefers);
/// - `batch_wait => '5ms'`: how long a short batch waits for more frames;
/// - `max_lag => '2s'`: how long a frame may wait for the operator before
///   the operator sheds load (default: never);
/// - `keep_every => 4`: while shedding, each camera keeps one frame in
///   this many (default 4); `0` keeps none, so the operator is skipped
///   while other streams (motion, say) go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunPolicy {
    pub batch: Option<usize>,
    pub batch_wait: Duration,
    pub max_lag: Option<Duration>,
    pub keep_every: u64,
}

impl Default for RunPolicy {
    fn default() -> Self {
        RunPolicy { batch: None, batch_wait: Duration::from_millis(5), max_lag: None, keep_every: 4 }
    }
}

/// The option names [`RunPolicy`] takes.
pub const POLICY_OPTIONS: [&str; 4] = ["batch", "batch_wait", "max_lag", "keep_every"];

impl RunPolicy {
    /// Takes the policy's options out of a vision call's; the rest are the
    /// operator's own.
    ///
    /// # Errors
    /// A value that is not a count or a duration.
    pub fn take(options: &mut Options) -> Result<RunPolicy, String> {
        let mut policy = RunPolicy::default();
        let count =
            |name: &str, text: &str| text.parse::<u64>().map_err(|_| format!("{name} = {text} is not a whole number"));
        let duration = |name: &str, text: &str| {
            humantime::parse_duration(text)
                .map_err(|e| format!("{name} = '{text}' is not a duration such as '500ms': {e}"))
        };
        if let Some(text) = options.remove("batch") {
            policy.batch = Some(count("batch", &text).and_then(|n| {
                if (1..=1024).contains(&n) { Ok(n as usize) } else { Err(format!("batch = {n} is not 1 to 1024")) }
            })?);
        }
        if let Some(text) = options.remove("batch_wait") {
            policy.batch_wait = duration("batch_wait", &text)?;
        }
        if let Some(text) = options.remove("max_lag") {
            policy.max_lag = Some(duration("max_lag", &text)?);
        }
        if let Some(text) = options.remove("keep_every") {
            policy.keep_every = count("keep_every", &text)?;
        }
        Ok(policy)
    }
}

/// Frames waiting under one capability, in order, with when they came.
struct Waiting {
    capability: Capability<Tick>,
    frames: VecDeque<DecodedFrame>,
    arrived: Instant,
}

/// Runs a vision operator on each frame: its detections, and one outcome
/// per frame. A failure or a panic costs that frame only. An operator that
/// keeps state `per_camera` gets each tick's frames once the tick is
/// complete, in event-time order.
///
/// Frames are taken in slices of about [`SLICE`]: the rest wait here, with
/// their capabilities, and the operator asks to run again. Between slices
/// the worker admits input and takes checkpoints, so a model that takes a
/// second for a queue of frames does not stall the worker for that second.
pub(crate) fn run_operator<'scope>(
    frames: StreamVec<'scope, Tick, DecodedFrame>,
    name: &str,
    operator: Box<dyn VisionOperator>,
    per_camera: bool,
    policy: RunPolicy,
    metrics: Arc<Metrics>,
    state: Option<Stateful>,
) -> (StreamVec<'scope, Tick, Detection>, StreamVec<'scope, Tick, FrameOutcome>) {
    let stage: Arc<str> = name.into();
    let counts = metrics.stream(name);
    let (tally, totals) = (counts.clone(), metrics.clone());
    let found = move |decoded: DecodedFrame, found: Vec<Detection>| {
        Metrics::add(&tally.processed, 1);
        Metrics::add(&totals.detections, found.len() as u64);
        let processed = outcome(&decoded.frame, Outcome::Processed, &stage, None, found.len() as u32);
        found.into_iter().map(Ok).chain([Err(processed)]).collect()
    };
    let counters = Counters { job: metrics, stream: Some(counts) };
    run(frames, name, operator, (per_camera, state), policy, counters, found).ok_err(|result| result)
}

/// Runs an operator that screens frames (`dedup` on a source): the frames
/// it accepts go on, whatever rows it finds; those it refuses become
/// outcomes. An accepted frame has no outcome here: the streams that read
/// it give it theirs.
pub(crate) fn screen<'scope>(
    frames: StreamVec<'scope, Tick, DecodedFrame>,
    name: &str,
    operator: Box<dyn VisionOperator>,
    metrics: Arc<Metrics>,
    state: Option<Stateful>,
) -> (StreamVec<'scope, Tick, DecodedFrame>, StreamVec<'scope, Tick, FrameOutcome>) {
    let pass = |decoded: DecodedFrame, _: Vec<Detection>| vec![Ok(decoded)];
    let counters = Counters { job: metrics, stream: None };
    run(frames, name, operator, (true, state), RunPolicy::default(), counters, pass).ok_err(|result| result)
}

/// An operator with state per camera in a durable job: where it logs its
/// state for checkpoints, and what it resumed from.
pub(crate) struct Stateful {
    pub log: SharedLog,
    pub resumed: Resumed,
}

/// Where [`run`] counts outcomes.
struct Counters {
    job: Arc<Metrics>,
    /// The stream's own; `None` for a screen, whose outcomes are the
    /// frames' own (it runs before any stream).
    stream: Option<Arc<StreamCounts>>,
}

/// The operator of [`run_operator`] and [`screen`]: `found` makes what a
/// frame the operator accepted gives.
fn run<'scope, T: Clone + 'static>(
    frames: StreamVec<'scope, Tick, DecodedFrame>,
    name: &str,
    mut operator: Box<dyn VisionOperator>,
    (per_camera, state): (bool, Option<Stateful>),
    policy: RunPolicy,
    counters: Counters,
    found: impl Fn(DecodedFrame, Vec<Detection>) -> Vec<Result<T, FrameOutcome>> + 'static,
) -> StreamVec<'scope, Tick, Result<T, FrameOutcome>> {
    let stage: Arc<str> = name.into();
    let name = name.to_owned();
    let scope = frames.scope();
    let Counters { job: metrics, stream: counts } = counters;
    let lag = metrics.operator(&name);
    // An operator with state per camera runs frame by frame: a failed
    // batch run again frame by frame would meet state the batch changed.
    let batch = if per_camera { 1 } else { policy.batch.unwrap_or_else(|| operator.preferred_batch()).max(1) };
    let in_order = per_camera;
    frames.unary_frontier(Pipeline, &format!("Vision: {name}"), move |_, info| {
        let activator = scope.activator_for(info.address.clone());
        let mut waiting: VecDeque<Waiting> = VecDeque::new();
        // For an operator with state per camera: frames by tick until
        // the tick is complete, since a camera's frames may come from
        // several workers (decoding is spread), in any order.
        let mut incomplete: BTreeMap<Tick, Waiting> = BTreeMap::new();
        // Per tenant and camera, frames seen while shedding.
        let mut shed_count: HashMap<(Arc<str>, Arc<str>), u64> = HashMap::new();
        move |(input, frontier), output| {
            input.for_each_stamp(|cap, data| {
                let Some(capability) = cap.retain_least(0) else { return };
                let frames: VecDeque<DecodedFrame> = data.flat_map(std::mem::take).collect();
                if !in_order {
                    waiting.push_back(Waiting { capability, frames, arrived: Instant::now() });
                    return;
                }
                let at = *capability.time();
                let entry = incomplete.entry(at).or_insert_with(|| Waiting {
                    capability,
                    frames: VecDeque::new(),
                    arrived: Instant::now(),
                });
                entry.frames.extend(frames);
            });
            // Complete ticks, in order, each camera's frames in
            // event-time order.
            while let Some(entry) = incomplete.first_entry()
                && !frontier.less_equal(entry.key())
            {
                let mut complete = entry.remove();
                complete.frames.make_contiguous().sort_by_key(|f| f.frame.event_time);
                // Waiting for the operator starts now: the wait for
                // the tick to complete (the sources' lateness) is not
                // the operator falling behind.
                complete.arrived = Instant::now();
                waiting.push_back(complete);
            }
            let started = Instant::now();
            while started.elapsed() < SLICE {
                let queued: usize = waiting.iter().map(|w| w.frames.len()).sum();
                let Some(front) = waiting.front() else { break };
                // A short batch waits a little for more frames, unless
                // no more can come before the frontier moves on.
                if queued < batch
                    && !frontier.is_empty()
                    && let Some(rest) = policy.batch_wait.checked_sub(front.arrived.elapsed())
                    && !rest.is_zero()
                {
                    activator.activate_after(rest);
                    break;
                }
                // Up to `batch` frames, with the index of their batch
                // of arrival; frames to shed are answered at once.
                let mut taken: Vec<(usize, DecodedFrame)> = Vec::new();
                for (index, entry) in waiting.iter_mut().enumerate() {
                    let behind = entry.arrived.elapsed();
                    while taken.len() < batch
                        && let Some(decoded) = entry.frames.pop_front()
                    {
                        if let Some(max_lag) = policy.max_lag.filter(|max| behind > *max) {
                            let camera = (decoded.frame.tenant.clone(), decoded.frame.source_id.clone());
                            let n = shed_count.entry(camera).or_insert(0);
                            *n += 1;
                            if policy.keep_every == 0 || !(*n - 1).is_multiple_of(policy.keep_every) {
                                // only streams shed: a screen runs with the default policy
                                if let Some(counts) = &counts {
                                    Metrics::add(&counts.degraded, 1);
                                }
                                let reason = format!(
                                    "shed: {name} was {} ms behind (max_lag {} ms)",
                                    behind.as_millis(),
                                    max_lag.as_millis()
                                );
                                let degraded = outcome(&decoded.frame, Outcome::Degraded, &stage, Some(reason), 0);
                                output.session(&entry.capability).give(Err(degraded));
                                continue;
                            }
                        }
                        taken.push((index, decoded));
                    }
                    if taken.len() == batch {
                        break;
                    }
                }
                let results = match &state {
                    // one frame at a time (the operator is per camera)
                    Some(Stateful { log, resumed }) => taken
                        .iter()
                        .map(|(index, decoded)| {
                            let tick = *waiting[*index].capability.time();
                            if tick < resumed.tick {
                                let duplicate = resumed.duplicates.contains(&frame_key(&decoded.frame));
                                guarded(|| operator.replay(decoded, duplicate))
                            } else {
                                let result = guarded(|| operator.process(decoded));
                                log.lock().ran(tick, operator.changed());
                                result
                            }
                        })
                        .collect(),
                    None => run_batch(operator.as_mut(), &taken.iter().map(|(_, f)| f).collect::<Vec<_>>()),
                };
                for ((index, decoded), result) in taken.into_iter().zip(results) {
                    let mut session = output.session(&waiting[index].capability);
                    let frame = &decoded.frame;
                    match result {
                        Ok(rows) => session.give_iterator(found(decoded, rows).into_iter()),
                        Err(Refusal::Duplicate(reason)) => {
                            if let Some(Stateful { log, .. }) = &state {
                                log.lock().duplicate(*waiting[index].capability.time(), frame);
                            }
                            Metrics::add(&metrics.frames_duplicate, 1);
                            session.give(Err(outcome(frame, Outcome::Duplicate, &stage, Some(reason), 0)));
                        }
                        Err(Refusal::Failed(reason)) => {
                            Metrics::add(counts.as_ref().map_or(&metrics.frames_rejected, |c| &c.rejected), 1);
                            session.give(Err(outcome(frame, Outcome::Rejected, &stage, Some(reason), 0)));
                        }
                    }
                }
                while waiting.front().is_some_and(|w| w.frames.is_empty()) {
                    waiting.pop_front();
                }
            }
            if !waiting.is_empty() && started.elapsed() >= SLICE {
                activator.activate();
            }
            if waiting.is_empty() {
                shed_count.clear();
                // every frame stamped before the frontier has run
                if let Some(Stateful { log, .. }) = &state {
                    let settled = frontier.frontier().iter().min().copied().unwrap_or(Tick::MAX);
                    log.lock().settle(settled);
                }
            }
            let queued = waiting.iter().chain(incomplete.values()).map(|w| w.frames.len()).sum();
            let oldest = waiting.iter().chain(incomplete.values()).map(|w| w.arrived).min();
            lag.set(queued, oldest);
        }
    })
}

/// One batch through the operator. If the batch as a whole fails or
/// panics, each frame is run alone, so that a bad frame costs only itself.
fn run_batch(operator: &mut dyn VisionOperator, frames: &[&DecodedFrame]) -> Vec<FrameResult> {
    if frames.is_empty() {
        return Vec::new();
    }
    if frames.len() > 1 {
        let results = catch_unwind(AssertUnwindSafe(|| operator.process_batch(frames)));
        if let Ok(Ok(results)) = results
            && results.len() == frames.len()
        {
            return results;
        }
    }
    frames.iter().map(|frame| guarded(|| operator.process(frame))).collect()
}

/// One frame's result, a panic its failure.
fn guarded(process: impl FnOnce() -> FrameResult) -> FrameResult {
    catch_unwind(AssertUnwindSafe(process))
        .unwrap_or_else(|panic| Err(Refusal::Failed(format!("operator panicked: {}", panic_message(&panic)))))
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_options_are_taken_and_the_rest_left() {
        let mut options: Options = [("batch", "8"), ("max_lag", "250ms"), ("keep_every", "0"), ("model", "objects")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let policy = RunPolicy::take(&mut options).unwrap();
        assert_eq!(policy.batch, Some(8));
        assert_eq!(policy.max_lag, Some(Duration::from_millis(250)));
        assert_eq!(policy.keep_every, 0);
        assert_eq!(options.keys().collect::<Vec<_>>(), ["model"]);
        let mut bad: Options = [("max_lag".to_owned(), "soon".to_owned())].into();
        assert!(RunPolicy::take(&mut bad).unwrap_err().contains("max_lag = 'soon'"));
    }
}
