//! What a view reads: detections, or the rows of another view. Both give
//! their columns to the window operators through [`WindowRow`].

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::columnar::{SchemaRef, detections_batch, printed, view_rows_batch};
use crate::model::{Detection, F64, FrameOutcome, Outcome, Record, Value, ViewRow};
use crate::plan::{Column, DetectionColumn, RowFilter};
use crate::time::Millis;

/// A row a view can window, group and aggregate.
pub(crate) trait WindowRow: timely::ExchangeData {
    fn value(&self, column: Column) -> Value;

    /// Whether `column` holds `value`, without building a `Value` where
    /// that can be avoided: this runs per row.
    fn equals(&self, column: Column, value: &Value) -> bool {
        self.value(column) == *value
    }

    /// Feeds `column` to `hash`; equal values hash alike.
    fn hash_column(&self, column: Column, hash: &mut impl Hasher) {
        self.value(column).hash(hash);
    }

    /// The time of `column`, if it holds one.
    fn time(&self, column: Column) -> Option<Millis> {
        match self.value(column) {
            Value::Time(t) => Some(t),
            _ => None,
        }
    }

    /// How many times the row counts: -1 for a retraction of a view in
    /// updates mode.
    fn multiplicity(&self) -> isize {
        1
    }

    /// The outcome that reports this row, for a row a view refuses.
    fn outcome(&self, outcome: Outcome, stage: Arc<str>, reason: Option<String>) -> FrameOutcome;

    /// `filter` applied to rows of this kind.
    fn filter(filter: &dyn RowFilter, rows: &[Self]) -> Result<Vec<bool>, String>;

    /// Rows of this kind as a batch; view rows of `schema`.
    fn batch(rows: &[Self], schema: &Option<SchemaRef>) -> Result<RecordBatch, String>;
}

impl WindowRow for Detection {
    fn value(&self, column: Column) -> Value {
        match column {
            Column::Detection(c) => detection_value(self, c),
            Column::EventTime => Value::Time(self.event_time),
            Column::Position(_) => Value::Null,
        }
    }

    fn equals(&self, column: Column, value: &Value) -> bool {
        // Sources share one `Arc` per camera and label, so the pointers
        // usually answer before the bytes must.
        let shared = |s: &Arc<str>| matches!(value, Value::Str(v) if Arc::ptr_eq(v, s) || **v == **s);
        let text = |s: &str| matches!(value, Value::Str(v) if **v == *s);
        match column {
            Column::Detection(DetectionColumn::FrameId) => shared(&self.frame_id),
            Column::Detection(DetectionColumn::Tenant) => shared(&self.tenant),
            Column::Detection(DetectionColumn::SourceId) => shared(&self.source_id),
            Column::Detection(DetectionColumn::Operator) => shared(&self.operator),
            Column::Detection(DetectionColumn::Label) => shared(&self.label),
            Column::Detection(DetectionColumn::Text) => self.text.as_deref().map_or(*value == Value::Null, text),
            other => self.value(other) == *value,
        }
    }

    fn hash_column(&self, column: Column, hash: &mut impl Hasher) {
        let bits = |v: f32| v.to_bits().to_le_bytes();
        let Column::Detection(column) = column else {
            return self.value(column).hash(hash);
        };
        match column {
            DetectionColumn::FrameId => hash.write(self.frame_id.as_bytes()),
            DetectionColumn::Tenant => hash.write(self.tenant.as_bytes()),
            DetectionColumn::SourceId => hash.write(self.source_id.as_bytes()),
            DetectionColumn::Operator => hash.write(self.operator.as_bytes()),
            DetectionColumn::Label => hash.write(self.label.as_bytes()),
            DetectionColumn::Text => hash.write(self.text.as_deref().unwrap_or("\u{0}null").as_bytes()),
            DetectionColumn::Confidence => hash.write(&bits(self.confidence)),
            DetectionColumn::X => hash.write(&bits(self.x)),
            DetectionColumn::Y => hash.write(&bits(self.y)),
            DetectionColumn::W => hash.write(&bits(self.w)),
            DetectionColumn::H => hash.write(&bits(self.h)),
        }
    }

    fn time(&self, column: Column) -> Option<Millis> {
        match column {
            Column::EventTime => Some(self.event_time),
            _ => None,
        }
    }

    fn outcome(&self, outcome: Outcome, stage: Arc<str>, reason: Option<String>) -> FrameOutcome {
        FrameOutcome::of_row(self, outcome, stage, reason)
    }

    fn filter(filter: &dyn RowFilter, rows: &[Self]) -> Result<Vec<bool>, String> {
        filter.keep(rows)
    }

    fn batch(rows: &[Self], _: &Option<SchemaRef>) -> Result<RecordBatch, String> {
        detections_batch(rows)
    }
}

/// The value of a detection's column, as views see it: numbers are the
/// f64 of the f32 as printed (0.8 rather than 0.800000011920929), what the
/// JSONL shows and a batch engine reading it computes with.
pub(crate) fn detection_value(d: &Detection, column: DetectionColumn) -> Value {
    let float = |v: f32| Value::Float(F64(printed(v)));
    match column {
        DetectionColumn::FrameId => Value::Str(d.frame_id.clone()),
        DetectionColumn::Tenant => Value::Str(d.tenant.clone()),
        DetectionColumn::SourceId => Value::Str(d.source_id.clone()),
        DetectionColumn::Operator => Value::Str(d.operator.clone()),
        DetectionColumn::Label => Value::Str(d.label.clone()),
        DetectionColumn::Text => d.text.as_deref().map_or(Value::Null, |t| Value::Str(t.into())),
        DetectionColumn::Confidence => float(d.confidence),
        DetectionColumn::X => float(d.x),
        DetectionColumn::Y => float(d.y),
        DetectionColumn::W => float(d.w),
        DetectionColumn::H => float(d.h),
    }
}

impl WindowRow for ViewRow {
    fn value(&self, column: Column) -> Value {
        match column {
            Column::Position(i) => self.values.get(i).cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    fn equals(&self, column: Column, value: &Value) -> bool {
        match column {
            Column::Position(i) => self.values.get(i).unwrap_or(&Value::Null) == value,
            _ => *value == Value::Null,
        }
    }

    fn hash_column(&self, column: Column, hash: &mut impl Hasher) {
        match column {
            Column::Position(i) => self.values.get(i).unwrap_or(&Value::Null).hash(hash),
            _ => Value::Null.hash(hash),
        }
    }

    fn multiplicity(&self) -> isize {
        match (self.columns.last(), self.values.last()) {
            (Some(name), Some(Value::Int(diff))) if &**name == "diff" => *diff as isize,
            _ => 1,
        }
    }

    fn outcome(&self, outcome: Outcome, stage: Arc<str>, reason: Option<String>) -> FrameOutcome {
        let text = |name: &str| match self.get(name) {
            Some(Value::Str(s)) => s.clone(),
            _ => Arc::from(""),
        };
        FrameOutcome {
            // The row itself identifies it: a view row has no frame.
            frame_id: Record::View(self.clone()).to_json().unwrap_or_default().into(),
            tenant: text("tenant"),
            source_id: text("source_id"),
            event_time: self
                .values
                .iter()
                .find_map(|v| if let Value::Time(t) = v { Some(*t) } else { None })
                .unwrap_or(0),
            outcome,
            stage,
            reason,
            detections: 0,
        }
    }

    fn filter(filter: &dyn RowFilter, rows: &[Self]) -> Result<Vec<bool>, String> {
        filter.keep_rows(rows)
    }

    fn batch(rows: &[Self], schema: &Option<SchemaRef>) -> Result<RecordBatch, String> {
        let schema = schema.as_ref().ok_or("rows without a schema")?;
        view_rows_batch(schema, rows)
    }
}
