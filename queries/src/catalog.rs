//! What a job stored, for `frameflow query`: each FILE sink becomes a table
//! named after the sink, with the Arrow schema of its rows. `frameflow run`
//! records them in `STATE_DIR/catalog.json`; a later run of a sink with the
//! same name replaces its entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use engine::plan::{
    AggregateFunction, DEAD_LETTER, DetectionColumn, EmitMode, JobPlan, OUTCOMES, ViewColumn, ViewSpec,
};

use crate::filter::detection_schema;

/// One stored table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub path: PathBuf,
    pub format: String,
    /// Column names and types, as DataFusion reads them.
    pub columns: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub tables: BTreeMap<String, Table>,
}

const CATALOG_FILE: &str = "catalog.json";

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn type_name(kind: &DataType) -> String {
    match kind {
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Utf8 => "text".into(),
        DataType::Int64 => "int".into(),
        DataType::Float64 => "float".into(),
        DataType::UInt64 => "uint".into(),
        other => other.to_string(),
    }
}

fn data_type(name: &str) -> DataType {
    match name {
        "timestamp" => timestamp(),
        "int" => DataType::Int64,
        "float" => DataType::Float64,
        "uint" => DataType::UInt64,
        "bool" => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

fn outcome_schema() -> Schema {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Schema::new(vec![
        text("frame_id", false),
        text("tenant", false),
        text("source_id", false),
        Field::new("event_time", timestamp(), false),
        text("outcome", false),
        text("stage", false),
        text("reason", true),
        Field::new("detections", DataType::Int64, false),
    ])
}

fn column_type(column: DetectionColumn) -> DataType {
    if column.is_numeric() { DataType::Float64 } else { DataType::Utf8 }
}

fn view_schema(view: &ViewSpec) -> Schema {
    if let Some(finish) = &view.finish {
        let mut fields: Vec<Field> =
            finish.0.output_columns().iter().map(|(name, kind)| Field::new(name, data_type(kind), true)).collect();
        if view.emit == EmitMode::Updates {
            fields.push(Field::new("diff", DataType::Int64, false));
        }
        return Schema::new(fields);
    }
    let mut fields: Vec<Field> = view
        .columns
        .iter()
        .map(|column| {
            let kind = match column {
                ViewColumn::Key { column, .. } => column_type(*column),
                ViewColumn::WindowStart { .. } | ViewColumn::WindowEnd { .. } => timestamp(),
                ViewColumn::Aggregate { index, .. } => {
                    let aggregate = view.aggregates[*index];
                    match (aggregate.function, aggregate.column) {
                        (AggregateFunction::Count, _) => DataType::Int64,
                        (AggregateFunction::Min | AggregateFunction::Max, Some(c)) => column_type(c),
                        _ => DataType::Float64,
                    }
                }
            };
            Field::new(column.name(), kind, true)
        })
        .collect();
    if view.emit == EmitMode::Updates {
        fields.push(Field::new("diff", DataType::Int64, false));
    }
    Schema::new(fields)
}

/// The schema of what a sink of `plan` reading `input` writes.
pub fn schema_of(plan: &JobPlan, input: &str) -> Schema {
    if input == OUTCOMES || input == DEAD_LETTER {
        return outcome_schema();
    }
    match plan.views.iter().find(|v| v.name == input) {
        Some(view) => view_schema(view),
        None => detection_schema().as_ref().clone(),
    }
}

impl Catalog {
    pub fn load(state_dir: &Path) -> Result<Catalog, String> {
        let path = state_dir.join(CATALOG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("`{}` is damaged: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
        }
    }

    /// Records the FILE sinks of `plan` (paths made absolute from `cwd`).
    pub fn record(&mut self, plan: &JobPlan, cwd: &Path) {
        for sink in plan.sinks.iter().filter(|s| s.kind == "file") {
            let Some(location) = &sink.location else { continue };
            let columns = schema_of(plan, &sink.input)
                .fields()
                .iter()
                .map(|f| (f.name().clone(), type_name(f.data_type())))
                .collect();
            self.tables.insert(sink.name.clone(), Table { path: cwd.join(location), format: "jsonl".into(), columns });
        }
    }

    /// Writes the catalog atomically (a temporary file, then a rename).
    pub fn save(&self, state_dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(state_dir).map_err(|e| format!("cannot create `{}`: {e}", state_dir.display()))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let temporary = state_dir.join(format!(".{CATALOG_FILE}.{}", std::process::id()));
        std::fs::write(&temporary, text).map_err(|e| format!("cannot write `{}`: {e}", temporary.display()))?;
        std::fs::rename(&temporary, state_dir.join(CATALOG_FILE)).map_err(|e| format!("cannot save the catalog: {e}"))
    }
}

impl Table {
    pub fn schema(&self) -> Schema {
        Schema::new(self.columns.iter().map(|(name, kind)| Field::new(name, data_type(kind), true)).collect::<Vec<_>>())
    }
}
