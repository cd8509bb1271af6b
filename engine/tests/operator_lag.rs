//! The metrics show each vision operator's lag while a job runs: frames
//! waiting for it and how long the oldest has waited, back to zero once it
//! has caught up.
//!
//! The job is built in memory: frames from a list, a decoder that makes a
//! one-pixel image, and an operator that takes a fixed time per frame (a
//! stand-in for a model; what is measured is the engine's bookkeeping).

use frameflow_engine as engine;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engine::metrics::Metrics;
use engine::model::{DecodedFrame, Detection, Frame, MediaType, Pixels, Record};
use engine::plan::{JobPlan, LatePolicy, OUTCOMES, Options, SinkSpec, SourceRows, SourceSpec, StreamInput, StreamSpec};
use engine::registry::{
    Decoder, OperatorFactory, Partition, PreparedOperator, Registry, Sink, SinkFactory, Source, SourceFactory,
    SourcePoll, VisionOperator,
};
use engine::runtime::{RunConfig, run};
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

struct Frames(usize);

impl SourceFactory for Frames {
    fn validate(&self, _: &SourceSpec) -> Result<(), String> {
        Ok(())
    }

    fn open(&self, _: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        let frames = (0..self.0)
            .map(|i| Frame {
                frame_id: format!("f{i}").into(),
                tenant: "t".into(),
                source_id: "cam".into(),
                seq: i as u64,
                event_time: 1_000 * i as Millis,
                ingest_time: 0,
                media_type: MediaType::Png,
                bytes: vec![0u8; 16].into(),
                late: None,
                refused: None,
            })
            .filter(|f| partition.owns(&f.source_id))
            .collect();
        Ok(Box::new(ListSource(frames)))
    }
}

struct OnePixel;

impl Decoder for OnePixel {
    fn decode(&self, _: &Frame) -> Result<Pixels, String> {
        Ok(Pixels { width: 1, height: 1, rgb: vec![0u8; 3].into() })
    }
}

/// Takes `0` per frame and finds nothing.
#[derive(Clone, Copy)]
struct Slow(Duration);

impl VisionOperator for Slow {
    fn process(&mut self, _: &DecodedFrame) -> Result<Vec<Detection>, String> {
        std::thread::sleep(self.0);
        Ok(Vec::new())
    }
}

impl PreparedOperator for Slow {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(*self))
    }
}

impl OperatorFactory for Slow {
    fn prepare(&self, _: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        Ok(Arc::new(*self))
    }
}

struct Discard;

impl Sink for Discard {
    fn write(&mut self, _: &[Record]) -> Result<(), String> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl SinkFactory for Discard {
    fn open(&self, _: &SinkSpec, _: arrow::datatypes::SchemaRef) -> Result<Box<dyn Sink>, String> {
        Ok(Box::new(Discard))
    }
}

fn plan() -> JobPlan {
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
        }],
        streams: vec![StreamSpec {
            name: "slow".into(),
            input: StreamInput::Vision {
                operator: "slow".into(),
                sources: vec!["cams".into()],
                options: BTreeMap::new(),
            },
            filter: None,
            projection: None,
            input_schema: None,
        }],
        views: Vec::new(),
        sinks: vec![SinkSpec {
            name: "out".into(),
            input: OUTCOMES.into(),
            kind: "discard".into(),
            location: None,
            options: BTreeMap::new(),
        }],
        explain: Vec::new(),
    }
}

#[test]
fn a_slow_operator_shows_its_backlog_and_then_none() {
    const FRAMES: usize = 40;
    let mut registry = Registry::new(Arc::new(OnePixel));
    registry.sources.insert("list", Arc::new(Frames(FRAMES)));
    registry.operators.insert("slow", Arc::new(Slow(Duration::from_millis(10))));
    registry.sinks.insert("discard", Arc::new(Discard));
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
    let summary = run(plan(), &registry, &config, metrics).expect("the job runs");
    done.store(true, Ordering::Relaxed);
    let (queued, waited) = sampler.join().unwrap();
    assert_eq!(summary.metrics.frames_processed, FRAMES as u64);
    // All frames are admitted at once, and the operator takes 10 ms each:
    // most of them wait, the last for about 400 ms.
    assert!(queued >= FRAMES as u64 / 2, "at most {queued} frames were seen waiting");
    assert!(waited >= 100, "the longest wait seen was {waited} ms");
    let end = &summary.metrics.operators;
    assert_eq!(end.len(), 1);
    assert_eq!((end[0].queued, end[0].waited_ms), (0, 0), "the operator caught up: {end:?}");
}
