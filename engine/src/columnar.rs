//! Rows as Arrow record batches (DESIGN.md §2): the one schema per relation
//! that `WHERE`, Parquet files and `frameflow query` all see.
//!
//! - Detections: strings, `event_time` as timestamp(ms, UTC), box and
//!   confidence as Float64 holding the f32 as printed (0.8, not
//!   0.800000011920929), `track_id` UInt64, `text` nullable.
//! - Outcomes: the frame, its outcome, the stage and reason.
//! - View rows: the view's columns, typed by the plan.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Array, Float64Builder, Int64Array, Int64Builder, RecordBatch, StringArray,
    StringBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder, UInt64Array,
};
use arrow::compute::cast;
pub use arrow::datatypes::SchemaRef;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::model::{Detection, F64, FrameOutcome, Record, Value, ViewRow};
use crate::plan::{AggregateFunction, Column, DEAD_LETTER, EmitMode, JobPlan, OUTCOMES, ViewColumn, ViewSpec};
use crate::time::Millis;

/// timestamp(ms, UTC), the type of every time column.
pub fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The Arrow type of a column type name of the plan (`text`, `int`,
/// `float`, `uint`, `bool`, `timestamp`).
pub fn data_type(name: &str) -> DataType {
    match name {
        "timestamp" => timestamp(),
        "int" => DataType::Int64,
        "float" => DataType::Float64,
        "uint" => DataType::UInt64,
        "bool" => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// The plan's name for an Arrow type, the inverse of [`data_type`]; types
/// it has no name for are text.
pub fn type_name(kind: &DataType) -> String {
    match kind {
        DataType::Timestamp(..) => "timestamp",
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "int",
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "uint",
        DataType::Float32 | DataType::Float64 => "float",
        DataType::Boolean => "bool",
        _ => "text",
    }
    .to_owned()
}

pub fn detection_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let number = |name: &str| Field::new(name, DataType::Float64, false);
        Arc::new(Schema::new(vec![
            text("frame_id", false),
            text("tenant", false),
            text("source_id", false),
            Field::new("event_time", timestamp(), false),
            text("operator", false),
            text("label", false),
            number("confidence"),
            number("x"),
            number("y"),
            number("w"),
            number("h"),
            Field::new("track_id", DataType::UInt64, true),
            text("text", true),
        ]))
    });
    SCHEMA.clone()
}

pub fn outcome_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        Arc::new(Schema::new(vec![
            text("frame_id", false),
            text("tenant", false),
            text("source_id", false),
            Field::new("event_time", timestamp(), false),
            text("outcome", false),
            text("stage", false),
            text("reason", true),
            Field::new("detections", DataType::Int64, false),
        ]))
    });
    SCHEMA.clone()
}

/// The type of a column of a view's input: of [`detection_schema`], or of
/// the input view's schema.
pub fn input_type(view: &ViewSpec, column: Column) -> DataType {
    match column {
        Column::Detection(c) if c.is_numeric() => DataType::Float64,
        Column::Detection(_) => DataType::Utf8,
        Column::EventTime => timestamp(),
        Column::Position(i) => {
            view.input_schema.as_ref().and_then(|s| s.fields().get(i)).map_or(DataType::Utf8, |f| f.data_type().clone())
        }
    }
}

/// The name of a column of a view's input.
pub fn input_name(view: &ViewSpec, column: Column) -> String {
    match column {
        Column::Detection(c) => c.name().to_owned(),
        Column::EventTime => "event_time".to_owned(),
        Column::Position(i) => {
            view.input_schema.as_ref().and_then(|s| s.fields().get(i)).map_or(format!("#{i}"), |f| f.name().clone())
        }
    }
}

/// The schema of a view's rows: its output columns, then `diff` in
/// updates mode.
pub fn view_schema(view: &ViewSpec) -> SchemaRef {
    let mut fields: Vec<Field> = match &view.finish {
        Some(finish) => {
            finish.0.output_columns().iter().map(|(name, kind)| Field::new(name, data_type(kind), true)).collect()
        }
        None => view
            .columns
            .iter()
            .map(|column| {
                let kind = match column {
                    ViewColumn::Key { column, .. } => input_type(view, *column),
                    ViewColumn::WindowStart { .. } | ViewColumn::WindowEnd { .. } => timestamp(),
                    ViewColumn::Aggregate { index, .. } => {
                        let aggregate = view.aggregates[*index];
                        match (aggregate.function, aggregate.column) {
                            (AggregateFunction::Count, _) => DataType::Int64,
                            (AggregateFunction::Min | AggregateFunction::Max, Some(c)) => input_type(view, c),
                            (AggregateFunction::Sum, Some(c)) if input_type(view, c) == DataType::Int64 => {
                                DataType::Int64
                            }
                            _ => DataType::Float64,
                        }
                    }
                };
                Field::new(column.name(), kind, true)
            })
            .collect(),
    };
    if view.emit == EmitMode::Updates {
        fields.push(Field::new("diff", DataType::Int64, false));
    }
    // The columns that name a row (its group and window), for sinks that
    // key rows: a replayed row then overwrites itself.
    let key: Vec<&str> = match &view.finish {
        Some(_) => Vec::new(),
        None => {
            view.columns.iter().filter(|c| !matches!(c, ViewColumn::Aggregate { .. })).map(ViewColumn::name).collect()
        }
    };
    let metadata = [(KEY_METADATA.to_owned(), key.join(","))].into_iter().filter(|(_, k)| !k.is_empty()).collect();
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// Schema metadata naming, comma-separated, the columns that identify a
/// view's row (see [`view_schema`]).
pub const KEY_METADATA: &str = "frameflow.key";

/// The schema of the rows of `input`, a stream, view or built-in output of
/// `plan`.
pub fn schema_of(plan: &JobPlan, input: &str) -> SchemaRef {
    if input == OUTCOMES || input == DEAD_LETTER {
        return outcome_schema();
    }
    if let Some(view) = plan.views.iter().find(|v| v.name == input) {
        return view_schema(view);
    }
    let stream = plan.streams.iter().find(|s| s.name == input);
    // A stream passes on its input's rows unless it projects them.
    stream
        .and_then(|s| s.projection.as_ref().map(|p| p.0.schema()).or_else(|| s.input_schema.clone()))
        .unwrap_or_else(detection_schema)
}

/// The type rows hold a value of `kind` in: every integer is Int64, every
/// float Float64, every time timestamp(ms, UTC); what has no such type is
/// text.
pub fn canonical(kind: &DataType) -> DataType {
    match type_name(kind).as_str() {
        "uint" => DataType::Int64,
        name => data_type(name),
    }
}

/// The i-th value of an evaluated column, as a row value, converted to its
/// [`canonical`] type.
pub fn value_at(array: &ArrayRef, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    let kind = canonical(array.data_type());
    let converted;
    let array = if *array.data_type() == kind {
        array
    } else {
        match cast(array, &kind) {
            Ok(c) => {
                converted = c;
                &converted
            }
            Err(_) => return Value::Null,
        }
    };
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        Value::Str(a.value(i).into())
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        Value::Int(a.value(i))
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        Value::Float(F64(a.value(i)))
    } else if let Some(a) = any.downcast_ref::<TimestampMillisecondArray>() {
        Value::Time(a.value(i))
    } else if let Some(a) = any.downcast_ref::<arrow::array::BooleanArray>() {
        Value::Bool(a.value(i))
    } else {
        Value::Null
    }
}

/// The f64 of an f32's printed form (0.8, not 0.800000011920929): what the
/// JSONL shows, and what a reader of it computes with. Printed as
/// serde_json prints it (ryu), which breaks ties between two shortest forms
/// as Rust's `Display` does not always.
pub fn printed(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    ryu::Buffer::new().format_finite(v).parse().unwrap_or(f64::from(v))
}

fn strings<T>(rows: &[T], f: impl Fn(&T) -> &str) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
}

fn times<T>(rows: &[T], f: impl Fn(&T) -> Millis) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"))
}

/// Detections as one batch of [`detection_schema`].
pub fn detections_batch(rows: &[Detection]) -> Result<RecordBatch, String> {
    let numbers = |f: fn(&Detection) -> f32| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|d| printed(f(d)))))
    };
    let columns: Vec<ArrayRef> = vec![
        strings(rows, |d| &d.frame_id),
        strings(rows, |d| &d.tenant),
        strings(rows, |d| &d.source_id),
        times(rows, |d| d.event_time),
        strings(rows, |d| &d.operator),
        strings(rows, |d| &d.label),
        numbers(|d| d.confidence),
        numbers(|d| d.x),
        numbers(|d| d.y),
        numbers(|d| d.w),
        numbers(|d| d.h),
        Arc::new(rows.iter().map(|d| d.track_id).collect::<UInt64Array>()),
        Arc::new(rows.iter().map(|d| d.text.as_deref()).collect::<StringArray>()),
    ];
    RecordBatch::try_new(detection_schema(), columns).map_err(|e| format!("cannot build a batch of detections: {e}"))
}

/// Outcomes as one batch of [`outcome_schema`].
pub fn outcomes_batch(rows: &[FrameOutcome]) -> Result<RecordBatch, String> {
    let outcomes: Vec<String> = rows.iter().map(|o| o.outcome.to_string()).collect();
    let columns: Vec<ArrayRef> = vec![
        strings(rows, |o| &o.frame_id),
        strings(rows, |o| &o.tenant),
        strings(rows, |o| &o.source_id),
        times(rows, |o| o.event_time),
        Arc::new(StringArray::from_iter_values(outcomes)),
        strings(rows, |o| &o.stage),
        Arc::new(rows.iter().map(|o| o.reason.as_deref()).collect::<StringArray>()),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|o| i64::from(o.detections)))),
    ];
    RecordBatch::try_new(outcome_schema(), columns).map_err(|e| format!("cannot build a batch of outcomes: {e}"))
}

/// View rows as one batch of `schema`, whose fields are the rows' values
/// in order (values past them are left out): each converted to its
/// field's type, `Null` where a value is missing or of another kind.
pub fn view_rows_batch(schema: &SchemaRef, rows: &[ViewRow]) -> Result<RecordBatch, String> {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let values = rows.iter().map(|row| row.values.get(i).unwrap_or(&Value::Null));
            match field.data_type() {
                DataType::Int64 => {
                    let mut b = Int64Builder::new();
                    values.for_each(|v| b.append_option(if let Value::Int(n) = v { Some(*n) } else { None }));
                    Arc::new(b.finish()) as ArrayRef
                }
                DataType::Float64 => {
                    let mut b = Float64Builder::new();
                    values.for_each(|v| {
                        b.append_option(match v {
                            Value::Float(f) => Some(f.0),
                            Value::Int(n) => Some(*n as f64),
                            _ => None,
                        })
                    });
                    Arc::new(b.finish())
                }
                DataType::Boolean => {
                    let mut b = BooleanBuilder::new();
                    values.for_each(|v| b.append_option(if let Value::Bool(x) = v { Some(*x) } else { None }));
                    Arc::new(b.finish())
                }
                DataType::Timestamp(..) => {
                    let mut b = TimestampMillisecondBuilder::new().with_timezone("UTC");
                    values.for_each(|v| b.append_option(if let Value::Time(t) = v { Some(*t) } else { None }));
                    Arc::new(b.finish())
                }
                _ => {
                    let mut b = StringBuilder::new();
                    values.for_each(|v| match v {
                        Value::Null => b.append_null(),
                        Value::Str(s) => b.append_value(s),
                        Value::Int(n) => b.append_value(n.to_string()),
                        Value::Float(f) => b.append_value(f.0.to_string()),
                        Value::Bool(x) => b.append_value(x.to_string()),
                        Value::Time(t) => b.append_value(crate::time::format_rfc3339_ms(*t)),
                    });
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| format!("cannot build a batch of view rows: {e}"))
}

/// Records of one kind as one batch of `schema` (from [`schema_of`]).
pub fn records_batch(schema: &SchemaRef, records: &[Record]) -> Result<RecordBatch, String> {
    match records.first() {
        None => Ok(RecordBatch::new_empty(schema.clone())),
        Some(Record::Detection(_)) => detections_batch(
            &records
                .iter()
                .filter_map(|r| if let Record::Detection(d) = r { Some(d.clone()) } else { None })
                .collect::<Vec<_>>(),
        ),
        Some(Record::Outcome(_)) => outcomes_batch(
            &records
                .iter()
                .filter_map(|r| if let Record::Outcome(o) = r { Some(o.clone()) } else { None })
                .collect::<Vec<_>>(),
        ),
        Some(Record::View(_)) => view_rows_batch(
            schema,
            &records
                .iter()
                .filter_map(|r| if let Record::View(v) = r { Some(v.clone()) } else { None })
                .collect::<Vec<_>>(),
        ),
    }
}

/// A detection read from a batch, or the index of a row that is not one
/// and why.
pub type BatchRow = Result<Detection, (usize, String)>;

/// Detections from a batch with the columns of [`detection_schema`] (by
/// name, any order; `track_id` and `text` may be missing). Times may be
/// in any unit, numbers of any float or integer type. `Err` names a row
/// that cannot be read, with its index and why; a missing or mistyped
/// column fails the whole batch.
pub fn detections_from_batch(batch: &RecordBatch) -> Result<Vec<BatchRow>, String> {
    let column = |name: &str, kind: &DataType, required: bool| -> Result<Option<ArrayRef>, String> {
        match batch.column_by_name(name) {
            Some(array) => cast(array, kind).map(Some).map_err(|e| format!("column `{name}` is not {kind}: {e}")),
            None if required => Err(format!("column `{name}` is missing")),
            None => Ok(None),
        }
    };
    let text = |name: &str, required: bool| -> Result<Option<StringArray>, String> {
        Ok(column(name, &DataType::Utf8, required)?.and_then(|a| a.as_any().downcast_ref::<StringArray>().cloned()))
    };
    let number = |name: &str| -> Result<Float64Array, String> {
        column(name, &DataType::Float64, true)?
            .and_then(|a| a.as_any().downcast_ref::<Float64Array>().cloned())
            .ok_or_else(|| format!("column `{name}` is missing"))
    };
    let required = |name: &str| text(name, true)?.ok_or_else(|| format!("column `{name}` is missing"));
    let (frame_id, source_id, operator, label) =
        (required("frame_id")?, required("source_id")?, required("operator")?, required("label")?);
    let tenant = text("tenant", false)?;
    let event_time = column("event_time", &timestamp(), true)?
        .and_then(|a| a.as_any().downcast_ref::<TimestampMillisecondArray>().cloned())
        .ok_or("column `event_time` is missing")?;
    let (confidence, x, y, w, h) = (number("confidence")?, number("x")?, number("y")?, number("w")?, number("h")?);
    let track_id =
        column("track_id", &DataType::UInt64, false)?.and_then(|a| a.as_any().downcast_ref::<UInt64Array>().cloned());
    let text_column = text("text", false)?;
    let rows = (0..batch.num_rows())
        .map(|i| {
            let null =
                [&frame_id as &dyn Array, &source_id, &operator, &label, &event_time, &confidence, &x, &y, &w, &h]
                    .iter()
                    .position(|a| a.is_null(i));
            if let Some(index) = null {
                let names =
                    ["frame_id", "source_id", "operator", "label", "event_time", "confidence", "x", "y", "w", "h"];
                return Err((i, format!("`{}` is null", names[index])));
            }
            Ok(Detection {
                frame_id: frame_id.value(i).into(),
                tenant: tenant.as_ref().filter(|t| t.is_valid(i)).map_or("", |t| t.value(i)).into(),
                source_id: source_id.value(i).into(),
                event_time: event_time.value(i),
                operator: operator.value(i).into(),
                label: label.value(i).into(),
                confidence: confidence.value(i) as f32,
                x: x.value(i) as f32,
                y: y.value(i) as f32,
                w: w.value(i) as f32,
                h: h.value(i) as f32,
                track_id: track_id.as_ref().filter(|t| t.is_valid(i)).map(|t| t.value(i)),
                text: text_column.as_ref().filter(|t| t.is_valid(i)).map(|t| t.value(i).to_owned()),
                attributes: Default::default(),
            })
        })
        .collect();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detections_round_trip_through_a_batch() {
        let d = Detection {
            frame_id: "f1".into(),
            tenant: "t".into(),
            source_id: "cam".into(),
            event_time: 1_767_225_600_123,
            operator: "detect".into(),
            label: "person".into(),
            confidence: 0.8,
            x: 1.5,
            y: 2.0,
            w: 3.0,
            h: 4.0,
            track_id: Some(7),
            text: None,
            attributes: Default::default(),
        };
        let batch = detections_batch(std::slice::from_ref(&d)).unwrap();
        let confidence = batch.column(6).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(confidence.value(0), 0.8, "the printed value, not the f32's nearest f64");
        let back = detections_from_batch(&batch).unwrap();
        assert_eq!(back, vec![Ok(d)]);
    }

    #[test]
    fn a_batch_without_a_required_column_is_refused_by_name() {
        let schema = Arc::new(Schema::new(vec![Field::new("frame_id", DataType::Utf8, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from_iter_values(["f"])) as ArrayRef]).unwrap();
        assert_eq!(detections_from_batch(&batch).unwrap_err(), "column `source_id` is missing");
    }

    #[test]
    fn view_rows_take_the_types_of_their_schema() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("label", DataType::Utf8, true),
            Field::new("window_start", timestamp(), true),
            Field::new("n", DataType::Int64, true),
            Field::new("avg", DataType::Float64, true),
        ]));
        let row = ViewRow {
            columns: vec!["label".into(), "window_start".into(), "n".into(), "avg".into()].into(),
            values: vec![Value::Str("car".into()), Value::Time(5), Value::Int(3), Value::Null],
        };
        let batch = view_rows_batch(&schema, &[row]).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(2).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 3);
        assert!(batch.column(3).is_null(0));
    }
}
