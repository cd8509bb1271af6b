//! A job as the engine runs it: named sources, vision streams over them,
//! windowed views over the streams, and sinks. The SQL layer (`queries`)
//! produces a [`JobPlan`]; the runtime turns it into one timely dataflow.

use std::collections::BTreeMap;

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
}

/// What happens to a frame that arrives behind its camera's watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatePolicy {
    /// Counted, and written to the dead-letter output with the reason.
    DeadLetter,
    /// Counted, and recorded as a `late` outcome only.
    Drop,
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
}

/// A stream of detections: one vision operator over one or more sources.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub name: String,
    /// Registry name of the operator: `detect`, ...
    pub operator: String,
    pub sources: Vec<String>,
    pub options: Options,
}

/// A column of the detection schema a view can group by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectionColumn {
    Tenant,
    SourceId,
    Operator,
    Label,
}

impl DetectionColumn {
    pub const ALL: [(&'static str, DetectionColumn); 4] = [
        ("tenant", DetectionColumn::Tenant),
        ("source_id", DetectionColumn::SourceId),
        ("operator", DetectionColumn::Operator),
        ("label", DetectionColumn::Label),
    ];

    pub fn from_name(name: &str) -> Option<DetectionColumn> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }
}

/// Event-time windows a view aggregates over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows of `size_ms`, aligned to the epoch.
    Tumble { size_ms: Millis },
}

/// One output column of a view, in SELECT order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewColumn {
    Key { name: String, column: DetectionColumn },
    WindowStart { name: String },
    WindowEnd { name: String },
    Count { name: String },
}

impl ViewColumn {
    pub fn name(&self) -> &str {
        match self {
            ViewColumn::Key { name, .. }
            | ViewColumn::WindowStart { name }
            | ViewColumn::WindowEnd { name }
            | ViewColumn::Count { name } => name,
        }
    }
}

/// A windowed aggregate over a stream, emitted once per window when the
/// frontier passes the window's end.
#[derive(Clone, Debug)]
pub struct ViewSpec {
    pub name: String,
    pub input: String,
    pub window: WindowSpec,
    pub group_by: Vec<DetectionColumn>,
    pub columns: Vec<ViewColumn>,
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
