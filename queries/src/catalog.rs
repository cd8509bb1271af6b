//! What a job stored, for `frameflow query`: each FILE and PARQUET sink
//! becomes a table named after the sink, with the Arrow schema of its rows. `frameflow run`
//! records them in `STATE_DIR/catalog.json`; a later run of a sink with the
//! same name replaces its entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{Field, Schema};
use serde::{Deserialize, Serialize};

use engine::columnar::{data_type, schema_of, type_name};
use engine::plan::JobPlan;

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

impl Catalog {
    pub fn load(state_dir: &Path) -> Result<Catalog, String> {
        let path = state_dir.join(CATALOG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("`{}` is damaged: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
        }
    }

    /// Records the FILE and PARQUET sinks of `plan` (paths made absolute
    /// from `cwd`).
    pub fn record(&mut self, plan: &JobPlan, cwd: &Path) {
        for sink in &plan.sinks {
            let format = match sink.kind.as_str() {
                "file" => "jsonl",
                "parquet" => "parquet",
                _ => continue,
            };
            let Some(location) = &sink.location else { continue };
            let columns = schema_of(plan, &sink.input)
                .fields()
                .iter()
                .map(|f| (f.name().clone(), type_name(f.data_type())))
                .collect();
            let table = Table { path: cwd.join(location), format: format.into(), columns };
            self.tables.insert(sink.name.clone(), table);
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
