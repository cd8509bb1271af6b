//! How the engine runs vision operators: lag in the metrics, batches equal
//! to frame-by-frame runs, a failed batch costing only its bad frame, and
//! load shed by policy when an operator falls behind.
//!
//! The jobs are built in memory: frames from a list, a decoder that makes a
//! one-pixel image, and operators that stand in for models (a fixed time
//! per frame, a result computed from the frame). What is tested is the
//! engine's handling of them; the real operators have their own tests.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

use frameflow_engine as engine;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::metrics::Metrics;
use engine::model::{DecodedFrame, Detection, Frame, FrameOutcome, MediaType, Outcome, Pixels, Record};
use engine::plan::{JobPlan, LatePolicy, OUTCOMES, Options, SinkSpec, SourceRows, SourceSpec, StreamInput, StreamSpec};
use engine::registry::{
    Decoder, FrameResult, OperatorFactory, Partition, PreparedOperator, Registry, Sink, SinkFactory, Source,
    SourceFactory, SourcePoll, VisionOperator,
};
use engine::runtime::{RunConfig, RunSummary, run};
use engine::time::Millis;

struct ListSource(VecDeque<Frame>);

impl Source for ListSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String> {
        if self.0.is_empty() {
            return Ok(SourcePoll::Done);
        }
        let n = max.min(self.0.len());
        Ok(SourcePoll::Frames(self.0.drain(..n).collect()))
    }

    fn watermark(&mut self) -> Option<Millis> {
        self.0.front().map(|f| f.event_time)
    }
}

/// `frames` frames from each of `cameras` cameras, 100 ms apart.
struct Frames {
    cameras: usize,
    frames: usize,
}

impl SourceFactory for Frames {
    fn validate(&self, _: &SourceSpec) -> Result<(), String> {
        Ok(())
    }

    fn open(&self, _: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        let mut frames: Vec<Frame> = (0..self.frames)
            .flat_map(|i| (0..self.cameras).map(move |c| (i, c)))
            .map(|(i, c)| Frame {
                frame_id: format!("cam{c}-{i}").into(),
                tenant: "t".into(),
                source_id: format!("cam{c}").into(),
                seq: i as u64,
                event_time: 100 * i as Millis,
                ingest_time: 0,
                media_type: MediaType::Png,
                bytes: vec![0u8; 16].into(),
                late: None,
                refused: None,
            })
            .filter(|f| partition.owns(&f.source_id))
            .collect();
        frames.sort_by_key(|f| f.event_time);
        Ok(Box::new(ListSource(frames.into())))
    }
}

struct OnePixel;

impl Decoder for OnePixel {
    fn decode(&self, _: &Frame) -> Result<Pixels, String> {
        Ok(Pixels { width: 1, height: 1, rgb: vec![0u8; 3].into() })
    }
}

/// Stands in for a model: takes `cost` per frame, and per frame finds
/// one "thing" whose confidence comes from the frame's number. A frame
/// numbered 13 makes it fail; with `batch_fails`, a batch holding one
/// fails as a whole. Records the sizes of the batches it gets.
#[derive(Clone)]
struct Stand {
    cost: Duration,
    batch: usize,
    batch_fails: bool,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Stand {
    fn new(cost: Duration, batch: usize) -> Stand {
        Stand { cost, batch, batch_fails: false, batches: Arc::default() }
    }
}

impl VisionOperator for Stand {
    fn process(&mut self, frame: &DecodedFrame) -> FrameResult {
        std::thread::sleep(self.cost);
        let f = &frame.frame;
        if f.seq == 13 {
            return Err("frame 13 is cursed".to_owned().into());
        }
        Ok(vec![Detection {
            frame_id: f.frame_id.clone(),
            tenant: f.tenant.clone(),
            source_id: f.source_id.clone(),
            event_time: f.event_time,
            operator: "stand".into(),
            label: "thing".into(),
            confidence: (f.seq % 10) as f32 / 10.0,
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
            track_id: None,
            text: None,
            attributes: BTreeMap::new(),
        }])
    }

    fn preferred_batch(&self) -> usize {
        self.batch
    }

    fn process_batch(&mut self, frames: &[&DecodedFrame]) -> Result<Vec<FrameResult>, String> {
        self.batches.lock().unwrap().push(frames.len());
        if self.batch_fails && frames.iter().any(|f| f.frame.seq == 13) {
            return Err("a cursed frame spoils the batch".to_owned());
        }
        Ok(frames.iter().map(|f| self.process(f)).collect())
    }
}

impl PreparedOperator for Stand {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(self.clone()))
    }
}

impl OperatorFactory for Stand {
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        match options.keys().next() {
            Some(unknown) => Err(format!("no option `{unknown}`")),
            None => Ok(Arc::new(self.clone())),
        }
    }
}

/// Keeps every record it is given.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Record>>>);

impl Sink for Collect {
    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl SinkFactory for Collect {
    fn open(&self, _: &SinkSpec, _: arrow::datatypes::SchemaRef) -> Result<Box<dyn Sink>, String> {
        Ok(Box::new(self.clone()))
    }
}

/// A vision stream: its name, its operator and the options of the call.
type Stream<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// One stream per entry, all on one source; every stream's detections,
/// and the outcomes, go to sinks.
fn plan(streams: &[Stream]) -> JobPlan {
    let sink = |name: &str, input: &str| SinkSpec {
        name: format!("{name}_out"),
        input: input.into(),
        kind: "collect".into(),
        location: None,
        options: BTreeMap::new(),
    };
    JobPlan {
        sources: vec![SourceSpec {
            name: "cams".into(),
            rows: SourceRows::Frames,
            kind: "list".into(),
            location: None,
            options: BTreeMap::new(),
            tenant: "t".into(),
            lateness_ms: 0,
            late: LatePolicy::DeadLetter,
            screen: None,
        }],
        streams: streams
            .iter()
            .map(|(name, operator, options)| StreamSpec {
                name: (*name).into(),
                input: StreamInput::Vision {
                    operator: (*operator).into(),
                    sources: vec!["cams".into()],
                    options: options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                },
                filter: None,
                projection: None,
                input_schema: None,
            })
            .collect(),
        views: Vec::new(),
        sinks: streams.iter().map(|(name, ..)| sink(name, name)).chain([sink("outcomes", OUTCOMES)]).collect(),
        explain: Vec::new(),
    }
}

struct Ran {
    summary: RunSummary,
    /// Per sink name, its records as JSON lines, sorted.
    rows: BTreeMap<String, Vec<String>>,
    outcomes: Vec<FrameOutcome>,
}

fn run_job(
    frames: Frames,
    operators: &[(&'static str, Stand)],
    plan: JobPlan,
    config: RunConfig,
    metrics: Arc<Metrics>,
) -> Ran {
    let mut registry = Registry::new(Arc::new(OnePixel));
    registry.sources.insert("list", Arc::new(frames));
    for (name, operator) in operators {
        registry.operators.insert(name, Arc::new(operator.clone()));
    }
    let collect = Collect::default();
    // One collector for all sinks; records are told apart by kind and stage.
    registry.sinks.insert("collect", Arc::new(collect.clone()));
    let summary = run(plan, &registry, &config, metrics).expect("the job runs");
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut outcomes = Vec::new();
    for record in collect.0.lock().unwrap().iter() {
        match record {
            Record::Detection(d) => {
                rows.entry(d.operator.to_string()).or_default().push(serde_json::to_string(d).unwrap())
            }
            Record::Outcome(o) => outcomes.push(o.clone()),
            Record::View(_) => unreachable!("no views here"),
        }
    }
    rows.values_mut().for_each(|r| r.sort());
    outcomes.sort_by(|a, b| (&a.stage, &a.frame_id).cmp(&(&b.stage, &b.frame_id)));
    Ran { summary, rows, outcomes }
}

fn count(outcomes: &[FrameOutcome], stage: &str, outcome: Outcome) -> usize {
    outcomes.iter().filter(|o| &*o.stage == stage && o.outcome == outcome).count()
}

#[test]
fn a_slow_operator_shows_its_backlog_and_then_none() {
    const FRAMES: usize = 40;
    let metrics = Arc::new(Metrics::default());
    let done = Arc::new(AtomicBool::new(false));
    // Samples the metrics as a progress display would.
    let sampler = {
        let (metrics, done) = (metrics.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut queued, mut waited) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                for lag in metrics.snapshot().operators {
                    assert_eq!(&*lag.name, "slow");
                    queued = queued.max(lag.queued);
                    waited = waited.max(lag.waited_ms);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (queued, waited)
        })
    };
    let config = RunConfig { workers: 1, max_in_flight_frames: FRAMES, ..RunConfig::default() };
    let operators = [("stand", Stand::new(Duration::from_millis(10), 1))];
    let ran =
        run_job(Frames { cameras: 1, frames: FRAMES }, &operators, plan(&[("slow", "stand", &[])]), config, metrics);
    done.store(true, Ordering::Relaxed);
    let (queued, waited) = sampler.join().unwrap();
    // Frame 13 fails; the others are processed.
    let slow = &ran.summary.metrics.streams[0];
    assert_eq!((&*slow.name, slow.processed, slow.rejected), ("slow", FRAMES as u64 - 1, 1));
    // All frames are admitted at once, and the operator takes 10 ms each:
    // most of them wait, the last for about 400 ms.
    assert!(queued >= FRAMES as u64 / 2, "at most {queued} frames were seen waiting");
    assert!(waited >= 100, "the longest wait seen was {waited} ms");
    let end = &ran.summary.metrics.operators;
    assert_eq!(end.len(), 1);
    assert_eq!((end[0].queued, end[0].waited_ms), (0, 0), "the operator caught up: {end:?}");
}

#[test]
fn batches_give_what_frame_by_frame_gives() {
    let frames = || Frames { cameras: 3, frames: 30 };
    let config = || RunConfig { workers: 2, max_in_flight_frames: 64, ..RunConfig::default() };
    let one = Stand::new(Duration::ZERO, 1);
    let single = run_job(frames(), &[("stand", one)], plan(&[("s", "stand", &[])]), config(), Arc::default());
    let batched_op = Stand::new(Duration::ZERO, 8);
    let batches = batched_op.batches.clone();
    let batched = run_job(frames(), &[("stand", batched_op)], plan(&[("s", "stand", &[])]), config(), Arc::default());
    assert_eq!(single.rows, batched.rows);
    assert_eq!(single.outcomes, batched.outcomes);
    assert_eq!(single.rows["stand"].len(), 90 - 3, "frame 13 of each camera fails");
    let batches = batches.lock().unwrap();
    assert!(batches.iter().all(|n| (1..=8).contains(n)));
    assert!(batches.iter().any(|n| *n > 1), "frames were batched: {batches:?}");
    // `batch => 1` overrides what the operator prefers.
    let forced = Stand::new(Duration::ZERO, 8);
    let forced_batches = forced.batches.clone();
    run_job(frames(), &[("stand", forced)], plan(&[("s", "stand", &[("batch", "1")])]), config(), Arc::default());
    assert!(forced_batches.lock().unwrap().is_empty(), "batch => 1 runs frames one by one");
}

#[test]
fn a_failed_batch_costs_only_its_bad_frame() {
    let mut op = Stand::new(Duration::ZERO, 8);
    op.batch_fails = true;
    let ran = run_job(
        Frames { cameras: 2, frames: 20 },
        &[("stand", op)],
        plan(&[("s", "stand", &[])]),
        RunConfig { workers: 1, ..RunConfig::default() },
        Arc::default(),
    );
    let rejected: Vec<&FrameOutcome> = ran.outcomes.iter().filter(|o| o.outcome == Outcome::Rejected).collect();
    assert_eq!(rejected.len(), 2, "frame 13 of each camera, and nothing else: {rejected:?}");
    for o in rejected {
        assert_eq!((&*o.stage, o.reason.as_deref()), ("s", Some("frame 13 is cursed")));
        assert!(o.is_dead_letter(), "dead-lettered with frame, source, operator and reason");
    }
    assert_eq!(count(&ran.outcomes, "s", Outcome::Processed), 38);
}

/// A slow model behind by more than `max_lag` sheds frames by its policy,
/// marking each degraded with the reason, while a cheap operator on the
/// same frames (motion, say) keeps up with every frame.
#[test]
fn an_operator_behind_its_max_lag_sheds_frames_and_says_so() {
    const FRAMES: usize = 60;
    let slow = Stand::new(Duration::from_millis(20), 1);
    let ran = run_job(
        Frames { cameras: 2, frames: FRAMES },
        &[("stand", slow)],
        plan(&[
            ("model", "stand", &[("max_lag", "100ms"), ("keep_every", "3"), ("batch", "1")]),
            ("cheap", "stand", &[("keep_every", "0"), ("batch", "1")]),
        ]),
        RunConfig { workers: 1, max_in_flight_frames: 2 * FRAMES, ..RunConfig::default() },
        Arc::default(),
    );
    let all = 2 * FRAMES;
    // Every frame has exactly one outcome per stream.
    for stage in ["model", "cheap"] {
        let mut ids: Vec<&str> = ran.outcomes.iter().filter(|o| &*o.stage == stage).map(|o| &*o.frame_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all, "{stage}: one outcome per frame");
        assert_eq!(ran.outcomes.iter().filter(|o| &*o.stage == stage).count(), all);
    }
    // The cheap stream has no max_lag: it never sheds, however far behind.
    assert_eq!(count(&ran.outcomes, "cheap", Outcome::Degraded), 0);
    // 120 frames at 20 ms each, all queued at once, against a bound of
    // 100 ms: the model falls behind and sheds, two frames in three.
    let degraded = count(&ran.outcomes, "model", Outcome::Degraded);
    let processed = count(&ran.outcomes, "model", Outcome::Processed);
    assert!(degraded >= all / 3, "only {degraded} of {all} frames were shed");
    assert!(processed >= all / 6, "only {processed} of {all} frames were kept");
    // Counted per stream: a frame both streams read is one frame, with an
    // outcome in each.
    let metrics = &ran.summary.metrics;
    assert_eq!(metrics.frames_admitted as usize, all);
    let streams: Vec<_> = metrics.streams.iter().map(|s| (&*s.name, s.processed, s.degraded, s.rejected)).collect();
    let of = |stage: &'static str| {
        let [p, d, r] =
            [Outcome::Processed, Outcome::Degraded, Outcome::Rejected].map(|o| count(&ran.outcomes, stage, o));
        assert_eq!(p + d + r, all, "{stage}: an outcome per frame");
        (stage, p as u64, d as u64, r as u64)
    };
    assert_eq!(streams, [of("model"), of("cheap")]);
    for o in ran.outcomes.iter().filter(|o| o.outcome == Outcome::Degraded) {
        let reason = o.reason.as_deref().unwrap_or_default();
        assert!(reason.starts_with("shed: model was ") && reason.ends_with("(max_lag 100 ms)"), "{reason}");
        assert!(!o.is_dead_letter(), "shedding is by policy, not an error");
    }
    // Shedding keeps one in three per camera: no camera loses a run of
    // more than two frames in a row.
    for camera in ["cam0", "cam1"] {
        let mut states: Vec<(u64, Outcome)> = ran
            .outcomes
            .iter()
            .filter(|o| &*o.stage == "model" && &*o.source_id == camera)
            .map(|o| (o.event_time as u64, o.outcome))
            .collect();
        states.sort_by_key(|(t, _)| *t);
        let longest = states.split(|(_, o)| *o != Outcome::Degraded).map(<[(u64, Outcome)]>::len).max().unwrap_or(0);
        assert!(longest <= 2, "{camera}: {longest} frames shed in a row");
    }
}
