//! `CREATE SINK out FROM view INTO FILE 'out/counts.jsonl'`: one JSON object
//! per line. The file is created (with its folder) when the job starts and
//! replaced if it exists; every batch is flushed as it is written.
//!
//! In a durable job a checkpoint syncs the file and records its length; a
//! job resuming from it cuts the file back to that length, so the lines
//! written after it, which the job writes again, are there once.

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
    fn open(&self, spec: &SinkSpec, schema: engine::columnar::SchemaRef) -> Result<Box<dyn Sink>, String> {
        self.resume(spec, schema, None)
    }

    fn resume(
        &self,
        spec: &SinkSpec,
        _schema: engine::columnar::SchemaRef,
        position: Option<&str>,
    ) -> Result<Box<dyn Sink>, String> {
        reject_unknown(&spec.options, &["format"])?;
        if let Some(format) = spec.options.get("format").filter(|f| f.as_str() != "jsonl") {
            return Err(format!("format = '{format}' is not supported by FILE; supported: 'jsonl'"));
        }
        let path = PathBuf::from(spec.location.as_deref().ok_or("FILE needs a path: INTO FILE 'out/rows.jsonl'")?);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| format!("cannot create folder `{}`: {e}", parent.display()))?;
        }
        let (file, written) = match position {
            None => (fs::File::create(&path).map_err(|e| format!("cannot create `{}`: {e}", path.display()))?, 0),
            Some(position) => {
                let length: u64 = position.parse().map_err(|_| format!("bad checkpoint position `{position}`"))?;
                let file = fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("cannot resume `{}`: {e}", path.display()))?;
                let found = file.metadata().map_err(|e| format!("cannot resume `{}`: {e}", path.display()))?.len();
                if found < length {
                    return Err(format!(
                        "cannot resume `{}`: it has {found} bytes, the checkpoint says {length}",
                        path.display()
                    ));
                }
                file.set_len(length).map_err(|e| format!("cannot cut `{}` back: {e}", path.display()))?;
                (file, length)
            }
        };
        let synced = file.try_clone().map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        Ok(Box::new(JsonLinesSink { out: BufWriter::new(Box::new(file)), file: Some(synced), written }))
    }
}

/// `INTO STDOUT`: the same lines on standard output.
#[derive(Debug, Default)]
pub struct StdoutSinkFactory;

impl SinkFactory for StdoutSinkFactory {
    fn open(&self, spec: &SinkSpec, _schema: engine::columnar::SchemaRef) -> Result<Box<dyn Sink>, String> {
        reject_unknown(&spec.options, &[])?;
        Ok(Box::new(JsonLinesSink { out: BufWriter::new(Box::new(std::io::stdout())), file: None, written: 0 }))
    }
}

struct JsonLinesSink {
    out: BufWriter<Box<dyn Write + Send>>,
    /// The file written, to sync at checkpoints (none for stdout).
    file: Option<fs::File>,
    /// Bytes in the file.
    written: u64,
}

impl Sink for JsonLinesSink {
    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        for record in records {
            let line = record.to_json().map_err(|e| format!("cannot encode a row: {e}"))?;
            writeln!(self.out, "{line}").map_err(|e| format!("write failed: {e}"))?;
            self.written += line.len() as u64 + 1;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.out.flush().map_err(|e| format!("flush failed: {e}"))
    }

    fn checkpoint(&mut self) -> Result<Option<String>, String> {
        self.flush()?;
        let Some(file) = &self.file else { return Ok(None) };
        file.sync_data().map_err(|e| format!("sync failed: {e}"))?;
        Ok(Some(self.written.to_string()))
    }
}
