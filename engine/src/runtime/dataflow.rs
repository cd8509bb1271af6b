//! Builds one job's timely dataflow on one worker.
//!
//! ```text
//!  source ─(UnorderedInput at watermark)─▶ Exchange(round-robin) ─▶ Decode ─┬─▶ vision op ─┬─▶ detections ─▶ views
//!                                                                       │              └─▶ outcomes
//!                                                                       └─▶ outcomes (rejected, late)
//!  every sink: its input as records ─▶ Exchange(→ worker 0) ─▶ Sink ─▶ probe
//! ```
//!
//! Decode and detection are stateless per frame, so frames are dealt to
//! workers round-robin per camera: one busy camera still uses every core.
//! Operators with per-camera state exchange by `source_id` instead, and so
//! does a source's screen (`dedup`) between Decode and the streams.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::unordered_input::UnorderedHandle;
use timely::dataflow::operators::core::{Exchange as _, Filter as _, OkErr, UnorderedInput};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{ActivateCapability, Capability, Concatenate, Operator, Probe};
use timely::dataflow::{ProbeHandle, Scope, StreamVec};

use super::state::{Resumed, SharedLog};
use super::vision::{self, RunPolicy, Stateful, run_operator};
use super::window::WindowRow;
use crate::metrics::Metrics;
use crate::model::{DecodedFrame, Detection, Frame, FrameOutcome, Outcome, Record, ViewRow, stable_hash};
use crate::plan::{
    DEAD_LETTER, Filter, JobPlan, LatePolicy, OUTCOMES, Projection, SourceRows, StreamInput, StreamSpec, ViewSpec,
};
use crate::registry::{Decoder, PreparedOperator, Sink, VisionOperator};
use crate::time::{Tick, TickClock};

pub(crate) type Input<T> = UnorderedHandle<Tick, CapacityContainerBuilder<Vec<T>>>;

pub(crate) enum InputHandle {
    Frames(Input<Frame>),
    /// Detections, and beside them the outcomes of rows refused or late:
    /// two inputs, so that rows are not copied again to be told apart.
    Detections(Input<Detection>, Input<FrameOutcome>),
}

/// A source's way into the dataflow on one worker.
pub(crate) struct SourceInput {
    pub handle: InputHandle,
    /// Held at the source's watermark; dropped when the source is done.
    pub capability: Option<ActivateCapability<Tick>>,
    /// The same for the outcomes input of a source of detections.
    pub outcomes_capability: Option<ActivateCapability<Tick>>,
}

/// Everything the job shares between workers, prepared before it starts.
pub(crate) struct Prepared {
    pub plan: JobPlan,
    pub clock: TickClock,
    pub decoder: Arc<dyn Decoder>,
    pub operators: HashMap<String, Arc<dyn PreparedOperator>>,
    /// Per source with a screen (`dedup`), its operator.
    pub screens: HashMap<String, Arc<dyn PreparedOperator>>,
    /// How each vision stream runs its operator (batches, shedding).
    pub policies: HashMap<String, RunPolicy>,
    /// Opened sinks; worker 0 takes them, since every record is routed there.
    pub sinks: HashMap<String, Mutex<Option<Box<dyn Sink>>>>,
    pub metrics: Arc<Metrics>,
    /// The first failure of a sink, which ends the job.
    pub failure: Mutex<Option<String>>,
    /// With a state folder: the checkpoints being taken, and the one the
    /// job resumed from.
    pub checkpoints: Option<Arc<super::checkpoints::Checkpoints>>,
    /// Set when a stopping durable job has taken its last checkpoint:
    /// sinks drop the rest, which comes again after a restart.
    pub discard: std::sync::atomic::AtomicBool,
}

/// What [`build`] gives the worker: one input per plan source, in plan
/// order; what wakes the sinks; and the state logs of the operators that
/// keep state per camera, by name, in a durable job.
pub(crate) type Built = (Vec<SourceInput>, Vec<timely::scheduling::Activator>, Vec<(String, SharedLog)>);

/// Builds the dataflow.
pub(crate) fn build<'scope>(
    scope: Scope<'scope, Tick>,
    worker: usize,
    job: &Arc<Prepared>,
    probe: &ProbeHandle<Tick>,
) -> Result<Built, String> {
    let mut logs = Vec::new();
    // An operator with state per camera: restored from the checkpoint
    // resumed from, and logging its state for the next ones.
    let mut stateful = |name: &str, operator: &mut dyn VisionOperator| -> Result<Option<Stateful>, String> {
        let Some(checkpoints) = &job.checkpoints else { return Ok(None) };
        let saved = checkpoints.resumed().operators.get(name);
        if let Some(saved) = saved {
            operator
                .restore(&saved.state)
                .map_err(|e| format!("`{name}` cannot take back its checkpointed state: {e}"))?;
        }
        // from here on, the log has its changes
        drop(operator.changed());
        let log = SharedLog::default();
        logs.push((name.to_owned(), log.clone()));
        Ok(Some(Stateful { log, resumed: Resumed::new(checkpoints.resume_tick, saved) }))
    };
    let mut inputs = Vec::new();
    let mut activators = Vec::new();
    let mut decoded: HashMap<&str, StreamVec<'scope, Tick, DecodedFrame>> = HashMap::new();
    let mut outcomes = Vec::new();
    let mut detections = HashMap::new();
    for spec in &job.plan.sources {
        if spec.rows == SourceRows::Detections {
            let ((handle, capability), rows) = scope.new_unordered_input::<CapacityContainerBuilder<Vec<Detection>>>();
            let ((refused_handle, refused_capability), refused) =
                scope.new_unordered_input::<CapacityContainerBuilder<Vec<FrameOutcome>>>();
            inputs.push(SourceInput {
                handle: InputHandle::Detections(handle, refused_handle),
                capability: Some(capability),
                outcomes_capability: Some(refused_capability),
            });
            detections.insert(spec.name.as_str(), rows);
            outcomes.push(refused);
            continue;
        }
        let ((handle, capability), frames) = scope.new_unordered_input::<CapacityContainerBuilder<Vec<Frame>>>();
        inputs.push(SourceInput {
            handle: InputHandle::Frames(handle),
            capability: Some(capability),
            outcomes_capability: None,
        });
        // Consecutive frames of a camera go to consecutive workers: an even
        // spread even for few frames, where hashing ids leaves some idle.
        let frames = frames.exchange(|f: &Frame| stable_hash(&[f.source_id.as_bytes()]).wrapping_add(f.seq));
        let (mut ok, rejected) = decode(frames, job.clone(), spec.late);
        outcomes.push(rejected);
        if let Some(screen) = job.screens.get(&spec.name) {
            // A camera's frames to one worker, in order, to be screened;
            // then spread again for the streams.
            let camera = ok.exchange(|f: &DecodedFrame| stable_hash(&[f.frame.source_id.as_bytes()]));
            let name = format!("{} dedup", spec.name);
            let mut operator = screen.instance()?;
            let state = stateful(&name, operator.as_mut())?;
            let (kept, refused) = vision::screen(camera, &name, operator, job.metrics.clone(), state);
            outcomes.push(refused);
            ok = kept
                .exchange(|f: &DecodedFrame| stable_hash(&[f.frame.source_id.as_bytes()]).wrapping_add(f.frame.seq));
        }
        decoded.insert(&spec.name, ok);
    }

    let mut views: HashMap<&str, StreamVec<'scope, Tick, Record>> = HashMap::new();
    // Streams whose rows are projected: rows of other columns.
    let mut projected: HashMap<&str, StreamVec<'scope, Tick, ViewRow>> = HashMap::new();
    for spec in &job.plan.streams {
        let name = spec.name.as_str();
        let found = match &spec.input {
            StreamInput::Vision { sources, .. } => {
                let mut input = scope.concatenate(sources.iter().filter_map(|s| decoded.get(s.as_str()).cloned()));
                let operator = job.operators.get(name).ok_or_else(|| format!("stream `{name}` was not prepared"))?;
                let per_camera = operator.per_camera();
                if per_camera {
                    // Every frame of a camera to one worker. They come
                    // from the workers that decoded them, in any order:
                    // the operator puts each complete tick in order.
                    input = input.exchange(|f: &DecodedFrame| stable_hash(&[f.frame.source_id.as_bytes()]));
                }
                let mut instance = operator.instance()?;
                let state = if per_camera { stateful(name, instance.as_mut())? } else { None };
                let (found, outcome) =
                    run_operator(input, name, instance, per_camera, job.policies[name], job.metrics.clone(), state);
                outcomes.push(outcome);
                found
            }
            StreamInput::Stream(input) => match (detections.get(input.as_str()), projected.get(input.as_str())) {
                (Some(found), _) => found.clone(),
                (None, Some(rows)) => {
                    let rows = filtered(rows.clone(), spec, &mut outcomes);
                    let rows = match &spec.projection {
                        Some(projection) => project(rows, spec, projection.clone(), &mut outcomes),
                        None => rows,
                    };
                    projected.insert(name, rows);
                    continue;
                }
                (None, None) => return Err(format!("stream `{name}` reads unknown stream `{input}`")),
            },
        };
        let found = filtered(found, spec, &mut outcomes);
        match &spec.projection {
            Some(projection) => {
                projected.insert(name, project(found, spec, projection.clone(), &mut outcomes));
            }
            None => {
                detections.insert(name, found);
            }
        }
    }
    for spec in &job.plan.views {
        let input = spec.input.as_str();
        let (rows, refused) = match (detections.get(input), projected.get(input), views.get(input)) {
            (Some(found), _, _) => view_over(found.clone(), spec, job, &mut outcomes),
            (None, Some(rows), _) => view_over(rows.clone(), spec, job, &mut outcomes),
            (None, None, Some(records)) => {
                let rows = records.clone().flat_map(|r| if let Record::View(row) = r { Some(row) } else { None });
                view_over(rows, spec, job, &mut outcomes)
            }
            (None, None, None) => return Err(format!("view `{}` reads unknown input `{input}`", spec.name)),
        };
        outcomes.push(refused);
        views.insert(spec.name.as_str(), rows);
    }
    let outcomes = scope.concatenate(outcomes);
    outcomes.clone().probe_with(probe);

    // Rows become records only where a sink reads them.
    for spec in &job.plan.sinks {
        let records = match spec.input.as_str() {
            DEAD_LETTER => outcomes.clone().filter(|o: &FrameOutcome| o.is_dead_letter()).map(Record::Outcome),
            OUTCOMES => outcomes.clone().map(Record::Outcome),
            name => match (detections.get(name), projected.get(name), views.get(name)) {
                (Some(found), _, _) => found.clone().map(Record::Detection),
                (None, Some(rows), _) => rows.clone().map(Record::View),
                (None, None, Some(rows)) => rows.clone(),
                (None, None, None) => return Err(format!("sink `{}` reads unknown input `{name}`", spec.name)),
            },
        };
        let sink = if worker == 0 { job.sinks.get(&spec.name).and_then(|slot| slot.lock().ok()?.take()) } else { None };
        write_to_sink(records, &spec.name, sink, job.clone(), &mut activators).probe_with(probe);
    }
    Ok((inputs, activators, logs))
}

/// A stream's rows after its `WHERE`.
fn filtered<'scope, R: WindowRow>(
    rows: StreamVec<'scope, Tick, R>,
    spec: &StreamSpec,
    outcomes: &mut Vec<StreamVec<'scope, Tick, FrameOutcome>>,
) -> StreamVec<'scope, Tick, R> {
    let Some(filter) = &spec.filter else { return rows };
    let (kept, refused) = filter_rows(rows, &spec.name, filter.clone());
    outcomes.push(refused);
    kept
}

/// A stream's rows projected; a batch the projection cannot evaluate is
/// dead-lettered, row by row, with the reason.
fn project<'scope, R: WindowRow>(
    rows: StreamVec<'scope, Tick, R>,
    spec: &StreamSpec,
    projection: Projection,
    outcomes: &mut Vec<StreamVec<'scope, Tick, FrameOutcome>>,
) -> StreamVec<'scope, Tick, ViewRow> {
    let schema = spec.input_schema.clone();
    let (rows, refused) = batchwise(rows, "Select", "select", &spec.name, move |batch| {
        R::batch(batch, &schema).and_then(|b| projection.0.project(&b))
    });
    outcomes.push(refused);
    rows
}

/// A stage that turns each batch of rows into output rows as a whole (a
/// `WHERE`, a projection): a batch it cannot take is dead-lettered, row by
/// row, with the reason, and the stream goes on.
fn batchwise<'scope, R: WindowRow, O: timely::ExchangeData>(
    rows: StreamVec<'scope, Tick, R>,
    operator: &str,
    stage: &str,
    name: &str,
    mut logic: impl FnMut(&mut Vec<R>) -> Result<Vec<O>, String> + 'static,
) -> (StreamVec<'scope, Tick, O>, StreamVec<'scope, Tick, FrameOutcome>) {
    let stage: Arc<str> = format!("{stage}: {name}").into();
    let results: StreamVec<'scope, Tick, Result<O, FrameOutcome>> =
        rows.unary(Pipeline, &format!("{operator}: {name}"), move |_, _| {
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    let mut session = output.session(&cap);
                    for batch in data {
                        match logic(batch) {
                            Ok(rows) => session.give_iterator(rows.into_iter().map(Ok)),
                            Err(reason) => session.give_iterator(
                                batch
                                    .drain(..)
                                    .map(|r| Err(r.outcome(Outcome::Rejected, stage.clone(), Some(reason.clone())))),
                            ),
                        }
                        batch.clear();
                    }
                })
            }
        });
    results.ok_err(|result| result)
}

/// A view over detections or over the rows of a view, after its `WHERE`.
fn view_over<'scope, R: WindowRow>(
    mut input: StreamVec<'scope, Tick, R>,
    spec: &ViewSpec,
    job: &Arc<Prepared>,
    outcomes: &mut Vec<StreamVec<'scope, Tick, FrameOutcome>>,
) -> (StreamVec<'scope, Tick, Record>, StreamVec<'scope, Tick, FrameOutcome>) {
    if let Some(filter) = &spec.filter {
        let (kept, refused) = filter_rows(input, &spec.name, filter.clone());
        outcomes.push(refused);
        input = kept;
    }
    super::window::build_view(input, spec, job)
}

/// Decodes frames; late and undecodable frames become outcomes.
fn decode<'scope>(
    frames: StreamVec<'scope, Tick, Frame>,
    job: Arc<Prepared>,
    late: LatePolicy,
) -> (StreamVec<'scope, Tick, DecodedFrame>, StreamVec<'scope, Tick, FrameOutcome>) {
    frames.ok_err(move |frame: Frame| {
        if frame.late.is_some() {
            Metrics::add(&job.metrics.frames_late, 1);
        }
        if frame.late.is_some() && late != LatePolicy::Admit {
            let reason = (late == LatePolicy::DeadLetter).then(|| crate::watermark::LATE_REASON.to_owned());
            return Err(outcome(&frame, Outcome::Late, "source", reason, 0));
        }
        if let Some(reason) = &frame.refused {
            Metrics::add(&job.metrics.frames_rejected, 1);
            return Err(outcome(&frame, Outcome::Rejected, "source", Some(reason.clone()), 0));
        }
        match job.decoder.decode(&frame) {
            Ok(pixels) => Ok(DecodedFrame { frame, pixels }),
            Err(reason) => {
                Metrics::add(&job.metrics.frames_rejected, 1);
                Err(outcome(&frame, Outcome::Rejected, "decode", Some(reason), 0))
            }
        }
    })
}

pub(crate) fn outcome(
    frame: &Frame,
    outcome: Outcome,
    stage: &str,
    reason: Option<String>,
    detections: u32,
) -> FrameOutcome {
    FrameOutcome {
        frame_id: frame.frame_id.clone(),
        tenant: frame.tenant.clone(),
        source_id: frame.source_id.clone(),
        event_time: frame.event_time,
        outcome,
        stage: stage.into(),
        reason,
        detections,
    }
}

/// Keeps the rows a `WHERE` accepts.
fn filter_rows<'scope, R: WindowRow>(
    rows: StreamVec<'scope, Tick, R>,
    name: &str,
    filter: Filter,
) -> (StreamVec<'scope, Tick, R>, StreamVec<'scope, Tick, FrameOutcome>) {
    batchwise(rows, "Where", "where", name, move |batch| {
        let keep = R::filter(filter.0.as_ref(), batch)?;
        Ok(batch.drain(..).zip(keep).filter(|(_, keep)| *keep).map(|(row, _)| row).collect())
    })
}

/// Routes every record to worker 0, which writes them and closes the sink
/// when its input ends; its output carries no data, only progress for the
/// probe, which passes a tick once the sink has delivered it.
///
/// Without checkpoints, records are written as they come and flushed after
/// each batch. With checkpoints, a tick is written once the frontier has
/// passed it, in tick order, and never at or past a checkpoint's barrier
/// before the sink has reported for it; records stamped before the
/// checkpoint a job resumed from were delivered then, and are dropped.
fn write_to_sink<'scope>(
    records: StreamVec<'scope, Tick, Record>,
    name: &str,
    mut sink: Option<Box<dyn Sink>>,
    job: Arc<Prepared>,
    activators: &mut Vec<timely::scheduling::Activator>,
) -> StreamVec<'scope, Tick, ()> {
    let name = name.to_owned();
    let scope = records.scope();
    let checkpoints = job.checkpoints.clone();
    let resume = checkpoints.as_ref().map_or(0, |c| c.resume_tick_for(&name));
    records.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Exchange::new(|_: &Record| 0),
        &format!("Sink: {name}"),
        move |_, info| {
            activators.push(scope.activator_for(info.address.clone()));
            // Records not yet written, by tick, with a capability each so
            // that the probe waits for them.
            let mut pending: BTreeMap<Tick, (Capability<Tick>, Vec<Record>)> = BTreeMap::new();
            let mut reported = 0;
            move |(input, frontier), _output| {
                input.for_each_stamp(|cap, data| {
                    let Some(&time) = cap.least() else { return };
                    if time < resume {
                        data.for_each(Vec::clear);
                        return;
                    }
                    let Some(held) = cap.retain_least(0) else { return };
                    let entry = pending.entry(time).or_insert_with(|| (held, Vec::new()));
                    data.for_each(|batch| entry.1.append(batch));
                });
                let Some(out) = sink.as_mut() else { return };
                if job.discard.load(std::sync::atomic::Ordering::SeqCst) {
                    pending.clear();
                    if frontier.is_empty()
                        && let Err(e) = out.close()
                    {
                        fail(&job, format!("sink `{name}`: {e}"));
                    }
                    if frontier.is_empty() {
                        sink = None;
                    }
                    return;
                }
                let upto = frontier.frontier().first().copied().unwrap_or(Tick::MAX);
                let barrier = checkpoints.as_ref().and_then(|c| c.barrier());
                let limit = match (&checkpoints, barrier) {
                    (None, _) => Tick::MAX,
                    (Some(_), None) => upto,
                    (Some(_), Some(b)) => upto.min(b.tick),
                };
                let rest = pending.split_off(&limit);
                let ready = std::mem::replace(&mut pending, rest);
                let latest = ready.keys().next_back().copied();
                let result = (|| {
                    for (_, records) in ready.values() {
                        out.write(records)?;
                    }
                    if !ready.is_empty() {
                        out.flush()?;
                    }
                    // Capabilities go (with `ready`) only once delivered.
                    drop(ready);
                    let Some(checkpoints) = &checkpoints else { return Ok(()) };
                    checkpoints.sink_written(&name, limit, latest);
                    if let Some(b) = barrier.filter(|b| b.id != reported && upto >= b.tick) {
                        reported = b.id;
                        let position = out.checkpoint()?;
                        checkpoints.sink_reported(b.id, &name, position)?;
                    }
                    Ok::<_, String>(())
                })();
                if let Err(e) = result {
                    fail(&job, format!("sink `{name}`: {e}"));
                }
                if frontier.is_empty() && pending.is_empty() {
                    let mut out = sink.take();
                    let closed = out.as_mut().map(|s| {
                        let position = if checkpoints.is_some() { s.checkpoint()? } else { None };
                        s.close().map(|()| position)
                    });
                    match closed {
                        Some(Ok(position)) => {
                            if let Some(Err(e)) = checkpoints.as_ref().map(|c| c.sink_closed(&name, position)) {
                                fail(&job, format!("sink `{name}`: {e}"));
                            }
                        }
                        Some(Err(e)) => fail(&job, format!("sink `{name}`: {e}")),
                        None => {}
                    }
                }
            }
        },
    )
}

pub(crate) fn fail(job: &Prepared, message: String) {
    if let Ok(mut failure) = job.failure.lock() {
        failure.get_or_insert(message);
    }
}
