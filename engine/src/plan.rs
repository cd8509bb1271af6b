//! A job as the engine runs it: named sources, vision streams over them,
//! windowed views over the streams, and sinks. The SQL layer (`queries`)
//! produces a [`JobPlan`]; the runtime turns it into one timely dataflow.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::model::{Detection, ViewRow};
use crate::time::Millis;

/// Options from a `WITH (...)` clause or a table function's named
/// arguments, keyed by lower-case name.
pub type Options = BTreeMap<String, String>;

/// The name of the built-in stream of per-frame outcomes.
pub const OUTCOMES: &str = "outcomes";
/// The name of the built-in stream of dead-lettered frames.
pub const DEAD_LETTER: &str = "dead_letter";

#[derive(Clone, Debug, Default)]
pub struct JobPlan {
    pub sources: Vec<SourceSpec>,
    pub streams: Vec<StreamSpec>,
    pub views: Vec<ViewSpec>,
    pub sinks: Vec<SinkSpec>,
    /// Relations the job asks to have explained (`EXPLAIN CREATE ...`),
    /// each with the SQL layer's logical plan of it where it has one: a job
    /// with any is explained, not run.
    pub explain: Vec<(String, Option<String>)>,
}

/// What happens to a frame that arrives behind its camera's watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatePolicy {
    /// Counted, and written to the dead-letter output with the reason.
    DeadLetter,
    /// Counted, and recorded as a `late` outcome only.
    Drop,
    /// Taken in: counted in every window of it not yet emitted; where its
    /// window was emitted already, dead-lettered as late by the view.
    Admit,
}

/// What a source's rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SourceRows {
    /// Encoded images, to be decoded and run through vision operators.
    #[default]
    Frames,
    /// Detections made elsewhere: the source is itself a stream.
    Detections,
}

#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub name: String,
    pub rows: SourceRows,
    /// Registry name of the connector, lower case: `directory`, ...
    pub kind: String,
    pub location: Option<String>,
    pub options: Options,
    pub tenant: String,
    /// How far behind the newest frame of a camera a frame may be and still
    /// count.
    pub lateness_ms: Millis,
    pub late: LatePolicy,
    /// An operator, by registry name, with its options, that screens the
    /// source's frames before any stream reads them (`dedup`): a frame it
    /// refuses goes no further, with that refusal as its outcome.
    pub screen: Option<(String, Options)>,
}

/// A predicate over rows (a `WHERE` clause), compiled outside the engine:
/// the SQL layer compiles it with DataFusion, against the schema of the
/// rows it reads — detections, or the rows of a view.
///
/// # Contract
/// `keep` and `keep_rows` answer one bool per row. An `Err` rejects the
/// rows of that batch, which are dead-lettered with the message; the stream
/// goes on.
pub trait RowFilter: Send + Sync {
    fn keep(&self, rows: &[Detection]) -> Result<Vec<bool>, String>;
    fn keep_rows(&self, rows: &[ViewRow]) -> Result<Vec<bool>, String>;
    /// The predicate as written.
    fn text(&self) -> &str;
}

/// A shared [`RowFilter`].
#[derive(Clone)]
pub struct Filter(pub Arc<dyn RowFilter>);

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({})", self.0.text())
    }
}

/// A stream's projection (`SELECT label, w * h AS area`), compiled outside
/// the engine: the SQL layer compiles it with DataFusion.
///
/// # Contract
/// One output row per row of `rows` (a batch of the input's schema), with
/// the columns of `schema`. An `Err` rejects the rows of that batch, which
/// are dead-lettered with the message; the stream goes on.
pub trait RowProjection: Send + Sync {
    fn project(&self, rows: &arrow::array::RecordBatch) -> Result<Vec<ViewRow>, String>;
    /// The schema of the rows it makes.
    fn schema(&self) -> SchemaRef;
    /// The projection as written.
    fn text(&self) -> String;
}

/// A shared [`RowProjection`].
#[derive(Clone)]
pub struct Projection(pub Arc<dyn RowProjection>);

impl fmt::Debug for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Projection({})", self.0.text())
    }
}

/// What a view computes from its base rows — group keys, window bounds,
/// every aggregate, and `diff` in updates mode — when that is more than
/// picking columns: `HAVING`, and expressions over aggregates. Compiled
/// outside the engine: the SQL layer uses DataFusion.
///
/// # Contract
/// One answer per base row: its output row, or `None` where `HAVING`
/// rejects it. A `diff` column of the input is carried to the output. An
/// `Err` fails the job: it is a mistake in the query, not in the data.
pub trait ViewFinish: Send + Sync {
    fn finish(&self, rows: &[crate::model::ViewRow]) -> Result<Vec<Option<crate::model::ViewRow>>, String>;
    /// Output column names and types (`text`, `int`, `float`, `timestamp`,
    /// `bool`), `diff` excluded.
    fn output_columns(&self) -> Vec<(String, String)>;
}

/// A shared [`ViewFinish`].
#[derive(Clone)]
pub struct Finish(pub Arc<dyn ViewFinish>);

impl fmt::Debug for Finish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Finish({:?})", self.0.output_columns())
    }
}

/// Where a stream's detections come from.
#[derive(Clone, Debug)]
pub enum StreamInput {
    /// A vision operator (registry name: `detect`, ...) over sources of
    /// frames, with its arguments.
    Vision { operator: String, sources: Vec<String>, options: Options },
    /// An earlier stream, or a source of detections.
    Stream(String),
}

/// A stream: detections, optionally filtered (`WHERE`), and optionally
/// projected to rows of other columns (`SELECT a, b * 2 AS c`).
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub name: String,
    pub input: StreamInput,
    pub filter: Option<Filter>,
    /// Applied after the filter.
    pub projection: Option<Projection>,
    /// The schema of the input's rows when they are projected rows; `None`
    /// for detections.
    pub input_schema: Option<SchemaRef>,
}

/// A column of the detection schema, as views group and aggregate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectionColumn {
    FrameId,
    Tenant,
    SourceId,
    Operator,
    Label,
    Text,
    Confidence,
    X,
    Y,
    W,
    H,
}

impl DetectionColumn {
    pub const ALL: [(&'static str, DetectionColumn); 11] = [
        ("frame_id", DetectionColumn::FrameId),
        ("tenant", DetectionColumn::Tenant),
        ("source_id", DetectionColumn::SourceId),
        ("operator", DetectionColumn::Operator),
        ("label", DetectionColumn::Label),
        ("text", DetectionColumn::Text),
        ("confidence", DetectionColumn::Confidence),
        ("x", DetectionColumn::X),
        ("y", DetectionColumn::Y),
        ("w", DetectionColumn::W),
        ("h", DetectionColumn::H),
    ];

    pub fn from_name(name: &str) -> Option<DetectionColumn> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, c)| *c == self).map_or("?", |(n, _)| n)
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            DetectionColumn::Confidence
                | DetectionColumn::X
                | DetectionColumn::Y
                | DetectionColumn::W
                | DetectionColumn::H
        )
    }
}

/// A column of the rows a view reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// A column of detections.
    Detection(DetectionColumn),
    /// The `event_time` of detections.
    EventTime,
    /// The column at this position of the rows of a view the view reads.
    Position(usize),
}

/// An aggregate function of a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFunction {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

/// One aggregate: `count(*)` has no column; `count(DISTINCT label)` is
/// distinct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregateSpec {
    pub function: AggregateFunction,
    pub column: Option<Column>,
    pub distinct: bool,
}

/// When a view's rows go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EmitMode {
    /// One row per window and group, once the frontier passes its end.
    #[default]
    Final,
    /// Every change as it is computed, with a `diff` column of +1 or -1.
    Updates,
}

/// Event-time windows a view aggregates over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows of `size_ms`, aligned to the epoch.
    Tumble { size_ms: Millis },
    /// Windows of `size_ms` starting every `slide_ms`, aligned to the epoch:
    /// a row belongs to every window that covers it.
    Hop { slide_ms: Millis, size_ms: Millis },
    /// Per group, runs of rows less than `gap_ms` apart; a session runs from
    /// its first row to its last plus the gap.
    Session { gap_ms: Millis },
    /// No window: one group for all time, updated as rows arrive.
    Global,
}

impl WindowSpec {
    /// The length of a fixed window; for a session, the gap.
    pub fn size_ms(&self) -> Millis {
        match *self {
            WindowSpec::Tumble { size_ms } | WindowSpec::Hop { size_ms, .. } => size_ms,
            WindowSpec::Session { gap_ms } => gap_ms,
            WindowSpec::Global => 0,
        }
    }

    /// The starts of the fixed windows holding event time `t`, earliest
    /// first (none for sessions, which have no fixed starts).
    pub fn starts(&self, t: Millis) -> impl Iterator<Item = Millis> {
        let (first, last, slide) = match *self {
            WindowSpec::Tumble { size_ms } => {
                (t.div_euclid(size_ms) * size_ms, t.div_euclid(size_ms) * size_ms, size_ms)
            }
            WindowSpec::Hop { slide_ms, size_ms } => {
                ((t - size_ms).div_euclid(slide_ms) * slide_ms + slide_ms, t.div_euclid(slide_ms) * slide_ms, slide_ms)
            }
            WindowSpec::Session { .. } => (1, 0, 1),
            WindowSpec::Global => (0, 0, 1),
        };
        (first..=last).step_by(slide as usize)
    }
}

/// One output column of a view, in SELECT order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewColumn {
    Key {
        name: String,
        column: Column,
    },
    WindowStart {
        name: String,
    },
    WindowEnd {
        name: String,
    },
    /// The aggregate at `index` of the view's `aggregates`.
    Aggregate {
        name: String,
        index: usize,
    },
}

impl ViewColumn {
    pub fn name(&self) -> &str {
        match self {
            ViewColumn::Key { name, .. }
            | ViewColumn::WindowStart { name }
            | ViewColumn::WindowEnd { name }
            | ViewColumn::Aggregate { name, .. } => name,
        }
    }
}

/// A windowed aggregate over a stream of detections, or over the rows of
/// another view.
#[derive(Clone, Debug)]
pub struct ViewSpec {
    pub name: String,
    pub input: String,
    /// The schema of the input's rows when it is a view; `None` for
    /// detections.
    pub input_schema: Option<SchemaRef>,
    /// Rows of the input that count (`WHERE`).
    pub filter: Option<Filter>,
    pub window: WindowSpec,
    /// The column whose time places a row in windows: `event_time` of
    /// detections, or a timestamp column of a view's rows.
    pub time: Column,
    pub group_by: Vec<Column>,
    pub aggregates: Vec<AggregateSpec>,
    /// With `finish`, the base row's columns; else the output's.
    pub columns: Vec<ViewColumn>,
    pub finish: Option<Finish>,
    pub emit: EmitMode,
}

#[derive(Clone, Debug)]
pub struct SinkSpec {
    pub name: String,
    /// A stream, a view, or one of the built-ins [`OUTCOMES`] and
    /// [`DEAD_LETTER`].
    pub input: String,
    /// Registry name of the connector: `file`, `stdout`, ...
    pub kind: String,
    pub location: Option<String>,
    pub options: Options,
}
