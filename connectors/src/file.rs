//! `CREATE SINK out FROM view INTO FILE 'out/counts.jsonl'`: one JSON object
//! per line. The file is created (with its folder) when the job starts and
//! replaced if it exists; every batch is flushed as it is written.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use engine::model::Record;
use engine::plan::SinkSpec;
use engine::registry::{Sink, SinkFactory};

use crate::options::reject_unknown;

#[derive(Debug, Default)]
pub struct FileSinkFactory;

impl SinkFactory for FileSinkFactory {
    fn open(&self, spec: &SinkSpec, _schema: engine::columnar::SchemaRef) -> Result<Box<dyn Sink>, String> {
        reject_unknown(&spec.options, &["format"])?;
        if let Some(format) = spec.options.get("format").filter(|f| f.as_str() != "jsonl") {
            return Err(format!("format = '{format}' is not supported by FILE; supported: 'jsonl'"));
        }
        let path = PathBuf::from(spec.location.as_deref().ok_or("FILE needs a path: INTO FILE 'out/rows.jsonl'")?);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| format!("cannot create folder `{}`: {e}", parent.display()))?;
        }
        let file = fs::File::create(&path).map_err(|e| format!("cannot create `{}`: {e}", path.display()))?;
        Ok(Box::new(JsonLinesSink { out: BufWriter::new(Box::new(file)) }))
    }
}

/// `INTO STDOUT`: the same lines on standard output.
#[derive(Debug, Default)]
pub struct StdoutSinkFactory;

impl SinkFactory for StdoutSinkFactory {
    fn open(&self, spec: &SinkSpec, _schema: engine::columnar::SchemaRef) -> Result<Box<dyn Sink>, String> {
        reject_unknown(&spec.options, &[])?;
        Ok(Box::new(JsonLinesSink { out: BufWriter::new(Box::new(std::io::stdout())) }))
    }
}

struct JsonLinesSink {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl Sink for JsonLinesSink {
    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        for record in records {
            let line = record.to_json().map_err(|e| format!("cannot encode a row: {e}"))?;
            writeln!(self.out, "{line}").map_err(|e| format!("write failed: {e}"))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.out.flush().map_err(|e| format!("flush failed: {e}"))
    }
}
