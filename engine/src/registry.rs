//! The plugin surface: sources, vision operators, sinks and the decoder,
//! found by name through a [`Registry`] that the binary fills in.
//!
//! Each plugin has two stages. A factory checks a spec and prepares what is
//! shared (a model, an open file) once per job, *before* anything runs, so a
//! bad job fails at start; the prepared plugin then makes one instance per
//! worker that needs it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::checkpoint::{Positions, SourceContext};
use crate::model::{DecodedFrame, Detection, Frame, FrameOutcome, Pixels, Record};
use crate::plan::{Options, SinkSpec, SourceSpec};
use crate::time::Millis;

/// Which part of the input a worker reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub worker: usize,
    pub workers: usize,
}

impl Partition {
    /// Whether this worker owns the camera `source_id`: cameras are spread
    /// over workers by a stable hash, so each camera is read, in order, by
    /// exactly one worker.
    pub fn owns(&self, source_id: &str) -> bool {
        crate::model::stable_hash(&[source_id.as_bytes()]) % self.workers as u64 == self.worker as u64
    }
}

/// What a source has for the engine right now.
#[derive(Debug)]
pub enum SourcePoll {
    /// Frames, in the order they should be admitted.
    Frames(Vec<Frame>),
    /// Detections made elsewhere, in the order they should be admitted.
    Detections(Vec<SourceRow>),
    /// Nothing now; more may come.
    Idle,
    /// Nothing now or later.
    Done,
}

/// One row a source of detections read.
#[derive(Debug)]
pub enum SourceRow {
    /// A detection, on time.
    Row(Detection),
    /// A detection behind its camera's watermark (the `Millis`): the
    /// engine admits it at that watermark, dead-letters or drops it, as the
    /// source's `late` policy says.
    Late(Detection, Millis),
    /// An input that is not a detection, with its reason, to be
    /// dead-lettered.
    Refused(FrameOutcome),
}

/// A source partition on one worker.
///
/// # Contract
/// Sources never see timely capabilities. Instead each states a promise,
/// [`Source::watermark`]: no frame with an earlier event time will come
/// unless it is marked late. The engine turns the promise into capability
/// downgrades, treats a frame that breaks the promise as late, and applies
/// the late policy.
pub trait Source: Send {
    /// Up to `max` frames that are ready now.
    ///
    /// # Errors
    /// Only for failures of the source itself (its folder vanished); a bad
    /// frame is a frame, and is rejected downstream.
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String>;

    /// The promise above; `None` once the source is finished.
    fn watermark(&mut self) -> Option<Millis>;

    /// The job is stopping: take no new input. Returns `true` if the
    /// source still has input it accepted to hand over, and will say `Done`
    /// once it has; `false` (the default) ends it at once.
    fn stop(&mut self) -> bool {
        false
    }

    /// The engine has had no room for more input (its in-flight budget is
    /// full) for a while, and will not poll until it has. A source that
    /// fetches ahead (a Kafka consumer) stops fetching; the next `poll`
    /// goes on. Called once per such pause.
    fn pause(&mut self) {}

    /// The positions to resume from once the first `polls` polls that
    /// returned input (frames or rows, even if none were admitted) are
    /// delivered (a camera's last file, a partition's
    /// next offset), for a checkpoint. `polls` only grows. The default,
    /// no positions, replays the source from its start.
    fn checkpoint(&mut self, polls: u64) -> Positions {
        let _ = polls;
        Positions::new()
    }

    /// The checkpoint holding the positions after `polls` polls is durable:
    /// what comes before them may be released (journal segments deleted,
    /// offsets committed to a broker).
    fn committed(&mut self, polls: u64) {
        let _ = polls;
    }
}

pub trait SourceFactory: Send + Sync {
    /// Checks the spec (the folder exists, options are known) before the job
    /// starts.
    fn validate(&self, spec: &SourceSpec) -> Result<(), String>;

    /// Opens the part of the source that `partition` owns.
    fn open(&self, spec: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String>;

    /// Opens the partition to resume from a checkpoint's positions, with
    /// the job's state folder. The default ignores both: the source is
    /// replayed from its start.
    fn open_at(
        &self,
        spec: &SourceSpec,
        partition: Partition,
        context: &SourceContext,
    ) -> Result<Box<dyn Source>, String> {
        let _ = context;
        self.open(spec, partition)
    }
}

/// Turns encoded frames into pixels, with limits on what it will allocate.
pub trait Decoder: Send + Sync {
    /// # Errors
    /// A reason, in one lowercase sentence, why the frame cannot be decoded.
    fn decode(&self, frame: &Frame) -> Result<Pixels, String>;
}

/// A vision operator on one worker.
///
/// # Contract
/// `process` may return any number of detections for a frame. An `Err` or a
/// panic costs that frame only: it is marked rejected with the message, and
/// the stream goes on.
pub trait VisionOperator {
    fn process(&mut self, frame: &DecodedFrame) -> FrameResult;

    /// How many frames the operator would rather take at once (a model
    /// that runs a batch in one call). The engine hands it up to that many
    /// through [`VisionOperator::process_batch`]; results must equal those
    /// of `process` frame by frame.
    fn preferred_batch(&self) -> usize {
        1
    }

    /// One result per frame, in order. An `Err` (or a panic) for the whole
    /// batch makes the engine run its frames one by one through `process`,
    /// so that one bad frame costs only itself.
    fn process_batch(&mut self, frames: &[&DecodedFrame]) -> Result<Vec<FrameResult>, String> {
        Ok(frames.iter().map(|frame| self.process(frame)).collect())
    }

    /// For an operator that keeps state per camera, which a durable job
    /// keeps in its checkpoints: the entries of its state that the frames
    /// since the last call changed, each under a key of its own (a
    /// camera); `null` for one it dropped. The checkpoint's state is the
    /// one resumed from with every worker's changes applied. None by
    /// default: a restarted job then starts the operator afresh.
    fn changed(&mut self) -> Vec<(String, serde_json::Value)> {
        Vec::new()
    }

    /// Takes back a checkpoint's state (every worker's entries), before
    /// the first frame.
    ///
    /// # Errors
    /// Entries it cannot read: the job does not start.
    fn restore(&mut self, _state: &BTreeMap<String, serde_json::Value>) -> Result<(), String> {
        Ok(())
    }

    /// A frame a restarted job replays from before its checkpoint, which
    /// the operator's restored state already holds: its result again,
    /// leaving the state as it is. `duplicate` says whether it was refused
    /// as a duplicate before the restart. By default, `process`.
    fn replay(&mut self, frame: &DecodedFrame, duplicate: bool) -> FrameResult {
        let _ = duplicate;
        self.process(frame)
    }
}

/// What an operator found in one frame, or why it has nothing for it.
pub type FrameResult = Result<Vec<Detection>, Refusal>;

/// Why an operator has no rows for a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It could not process the frame: the frame is rejected, with this
    /// reason, and dead-lettered.
    Failed(String),
    /// The frame repeats an earlier one of its camera, which this stream
    /// drops: its outcome is `duplicate`, with this reason.
    Duplicate(String),
}

impl From<String> for Refusal {
    fn from(reason: String) -> Refusal {
        Refusal::Failed(reason)
    }
}

/// A vision operator, checked and with its models loaded, ready to make
/// per-worker instances.
pub trait PreparedOperator: Send + Sync {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String>;

    /// Whether the operator keeps state per camera (a background model, the
    /// last frame's hash): then every frame of a camera goes to the same
    /// instance, in order, instead of being dealt to all workers.
    fn per_camera(&self) -> bool {
        false
    }
}

pub trait OperatorFactory: Send + Sync {
    /// Checks the options and loads what the operator needs.
    ///
    /// # Errors
    /// A clear message naming the bad option or missing model file.
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String>;
}

/// Where records leave the job.
///
/// # Contract
/// `write` gets records in batches, all of one kind (detections, view rows
/// or outcomes); once `flush` returns, what was written is delivered, or,
/// for a sink that delivers in files or to a broker, on its way (and
/// delivered by the next `checkpoint` or `close`). `close`
/// comes once, when the sink's input has ended, and delivers the rest.
/// Sinks run on one worker.
pub trait Sink: Send {
    fn write(&mut self, records: &[Record]) -> Result<(), String>;
    fn flush(&mut self) -> Result<(), String>;
    fn close(&mut self) -> Result<(), String> {
        self.flush()
    }

    /// Makes what was written durable for a checkpoint (a file synced, a
    /// Kafka transaction committed) and says where the sink stands, for
    /// [`SinkFactory::resume`]. The default flushes and keeps no position.
    fn checkpoint(&mut self) -> Result<Option<String>, String> {
        self.flush().map(|()| None)
    }
}

pub trait SinkFactory: Send + Sync {
    /// Opens the sink (creating its files) before the job starts. `schema`
    /// is that of the rows it will get ([`crate::columnar::schema_of`]).
    fn open(&self, spec: &SinkSpec, schema: SchemaRef) -> Result<Box<dyn Sink>, String>;

    /// Reopens the sink of a job resuming from a checkpoint, back where it
    /// stood then (`position`, from [`Sink::checkpoint`]). The default
    /// opens it anew.
    fn resume(&self, spec: &SinkSpec, schema: SchemaRef, position: Option<&str>) -> Result<Box<dyn Sink>, String> {
        let _ = position;
        self.open(spec, schema)
    }
}

/// Every plugin a job may name, by lower-case name.
#[derive(Clone)]
pub struct Registry {
    pub sources: BTreeMap<&'static str, Arc<dyn SourceFactory>>,
    pub operators: BTreeMap<&'static str, Arc<dyn OperatorFactory>>,
    pub sinks: BTreeMap<&'static str, Arc<dyn SinkFactory>>,
    pub decoder: Arc<dyn Decoder>,
}

impl Registry {
    pub fn new(decoder: Arc<dyn Decoder>) -> Registry {
        Registry { sources: BTreeMap::new(), operators: BTreeMap::new(), sinks: BTreeMap::new(), decoder }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("operators", &self.operators.keys().collect::<Vec<_>>())
            .field("sinks", &self.sinks.keys().collect::<Vec<_>>())
            .finish()
    }
}
