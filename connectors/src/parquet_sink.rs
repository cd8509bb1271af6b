//! `CREATE SINK s FROM v INTO PARQUET 'out/counts' [WITH (...)]`: rows as
//! Parquet files in a folder, in the Arrow schema of the rows
//! (`engine::columnar`: times as timestamp(ms, UTC)), readable by DuckDB,
//! pyarrow and `frameflow query`.
//!
//! Rows go into `part-NNNNN.parquet.inprogress`; a file is rolled — closed,
//! synced, and renamed to `part-NNNNN.parquet` in one atomic step — once it
//! holds `max_file_bytes` (default 64MiB), once it is `roll_interval` old
//! (checked as rows arrive; default: never), and when the job ends. A
//! reader therefore sees whole files only. A new run of the job replaces
//! the files of the last one, as the FILE sink replaces its file.
//!
//! In a durable job a checkpoint rolls the open file and records the next
//! part's number; a job resuming from it removes later parts and
//! unfinished files, and goes on from that number.
//!
//! Options: `max_file_bytes`, `roll_interval`, `compression` (`snappy`,
//! the default, `zstd` or `none`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use engine::columnar::records_batch;
use engine::model::Record;
use engine::plan::SinkSpec;
use engine::registry::{Sink, SinkFactory};

use crate::options::{parse_bytes, parse_duration, reject_unknown};

const OPTIONS: &[&str] = &["max_file_bytes", "roll_interval", "compression"];
const IN_PROGRESS: &str = ".inprogress";

#[derive(Debug, Default)]
pub struct ParquetSinkFactory;

impl SinkFactory for ParquetSinkFactory {
    fn open(&self, spec: &SinkSpec, schema: SchemaRef) -> Result<Box<dyn Sink>, String> {
        self.resume(spec, schema, None)
    }

    fn resume(&self, spec: &SinkSpec, schema: SchemaRef, position: Option<&str>) -> Result<Box<dyn Sink>, String> {
        reject_unknown(&spec.options, OPTIONS)?;
        let option = |name: &str| spec.options.get(name).map(String::as_str);
        let max_file_bytes = option("max_file_bytes").map(|v| parse_bytes("max_file_bytes", v)).transpose()?;
        let roll_interval = option("roll_interval").map(|v| parse_duration("roll_interval", v)).transpose()?;
        let compression = match option("compression").unwrap_or("snappy") {
            "snappy" => Compression::SNAPPY,
            "zstd" => Compression::ZSTD(ZstdLevel::default()),
            "none" => Compression::UNCOMPRESSED,
            other => return Err(format!("compression = '{other}' is not one of 'snappy', 'zstd', 'none'")),
        };
        let folder =
            PathBuf::from(spec.location.as_deref().ok_or("PARQUET needs a folder: INTO PARQUET 'out/detections'")?);
        fs::create_dir_all(&folder).map_err(|e| format!("cannot create folder `{}`: {e}", folder.display()))?;
        let next_part = match position {
            None => 0,
            Some(p) => p.parse().map_err(|_| format!("bad checkpoint position `{p}`"))?,
        };
        remove_parts(&folder, next_part)?;
        Ok(Box::new(ParquetSink {
            folder,
            schema,
            properties: WriterProperties::builder()
                .set_compression(compression)
                .set_max_row_group_row_count(Some(64 * 1024))
                .build(),
            max_file_bytes: max_file_bytes.unwrap_or(64 << 20).max(1),
            roll_interval,
            current: None,
            next_part,
        }))
    }
}

/// Removes the files of an earlier run: unfinished ones, and finished
/// parts from number `keep` on.
fn remove_parts(folder: &Path, keep: u32) -> Result<(), String> {
    let entries = fs::read_dir(folder).map_err(|e| format!("cannot list `{}`: {e}", folder.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let number = name.strip_prefix("part-").and_then(|n| n.split('.').next()).and_then(|n| n.parse::<u32>().ok());
        let ours = number.is_some() && (name.ends_with(".parquet") || name.ends_with(IN_PROGRESS));
        if ours && (name.ends_with(IN_PROGRESS) || number >= Some(keep)) {
            fs::remove_file(entry.path()).map_err(|e| format!("cannot remove old `{name}`: {e}"))?;
        }
    }
    Ok(())
}

struct OpenFile {
    writer: ArrowWriter<File>,
    path: PathBuf,
    opened: Instant,
}

struct ParquetSink {
    folder: PathBuf,
    schema: SchemaRef,
    properties: WriterProperties,
    max_file_bytes: u64,
    roll_interval: Option<Duration>,
    current: Option<OpenFile>,
    next_part: u32,
}

impl ParquetSink {
    fn part(&self, part: u32) -> PathBuf {
        self.folder.join(format!("part-{part:05}.parquet"))
    }

    fn open_file(&mut self) -> Result<&mut OpenFile, String> {
        if self.current.is_none() {
            let mut path = self.part(self.next_part).into_os_string();
            path.push(IN_PROGRESS);
            let path = PathBuf::from(path);
            let file = File::create(&path).map_err(|e| format!("cannot create `{}`: {e}", path.display()))?;
            let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(self.properties.clone()))
                .map_err(|e| format!("cannot start `{}`: {e}", path.display()))?;
            self.current = Some(OpenFile { writer, path, opened: Instant::now() });
        }
        self.current.as_mut().ok_or_else(|| "no open file".to_owned())
    }

    /// Finishes the open file and gives it its final name.
    fn roll(&mut self) -> Result<(), String> {
        let Some(open) = self.current.take() else { return Ok(()) };
        let fail = |e: &dyn std::fmt::Display| format!("cannot finish `{}`: {e}", open.path.display());
        open.writer.close().map_err(|e| fail(&e))?;
        File::open(&open.path).and_then(|f| f.sync_all()).map_err(|e| fail(&e))?;
        let done = self.part(self.next_part);
        fs::rename(&open.path, &done).map_err(|e| fail(&e))?;
        File::open(&self.folder).and_then(|d| d.sync_all()).map_err(|e| fail(&e))?;
        self.next_part += 1;
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        let batch = records_batch(&self.schema, records)?;
        let open = self.open_file()?;
        open.writer.write(&batch).map_err(|e| format!("cannot write `{}`: {e}", open.path.display()))
    }

    fn flush(&mut self) -> Result<(), String> {
        let Some(open) = &self.current else { return Ok(()) };
        let size = (open.writer.bytes_written() + open.writer.in_progress_size()) as u64;
        let old = self.roll_interval.is_some_and(|interval| open.opened.elapsed() >= interval);
        if size >= self.max_file_bytes || old { self.roll() } else { Ok(()) }
    }

    fn close(&mut self) -> Result<(), String> {
        self.roll()
    }

    fn checkpoint(&mut self) -> Result<Option<String>, String> {
        self.roll()?;
        Ok(Some(self.next_part.to_string()))
    }
}

impl Drop for ParquetSink {
    /// A job that failed leaves no unfinished file behind to be mistaken
    /// for output.
    fn drop(&mut self) {
        if let Some(open) = self.current.take() {
            let _ = fs::remove_file(&open.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use engine::columnar::{detection_schema, detections_from_batch};
    use engine::model::Detection;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn detection(i: usize) -> Detection {
        Detection {
            frame_id: format!("f{i}").into(),
            tenant: "t".into(),
            source_id: "cam".into(),
            event_time: 1_767_225_600_000 + i as i64,
            operator: "detect".into(),
            label: "person".into(),
            confidence: 0.5,
            x: 1.0,
            y: 2.0,
            w: 3.0,
            h: 4.0,
            track_id: None,
            text: Some(format!("row {i}")),
            attributes: BTreeMap::new(),
        }
    }

    fn read_parts(folder: &Path) -> Vec<Detection> {
        let mut parts: Vec<PathBuf> = fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()).collect();
        parts.sort();
        let mut rows = Vec::new();
        for part in parts {
            assert!(part.to_string_lossy().ends_with(".parquet"), "only finished parts remain: {}", part.display());
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&part).unwrap()).unwrap().build().unwrap();
            for batch in reader {
                rows.extend(detections_from_batch(&batch.unwrap()).unwrap().into_iter().map(Result::unwrap));
            }
        }
        rows
    }

    #[test]
    fn files_roll_by_size_and_hold_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out");
        let spec = SinkSpec {
            name: "s".into(),
            input: "d".into(),
            kind: "parquet".into(),
            location: Some(folder.display().to_string()),
            options: [("max_file_bytes".to_owned(), "1".to_owned())].into(),
        };
        let mut sink = ParquetSinkFactory.open(&spec, detection_schema()).unwrap();
        let rows: Vec<Detection> = (0..10).map(detection).collect();
        for chunk in rows.chunks(4) {
            sink.write(&chunk.iter().cloned().map(Record::Detection).collect::<Vec<_>>()).unwrap();
            sink.flush().unwrap();
        }
        sink.close().unwrap();
        assert_eq!(fs::read_dir(&folder).unwrap().count(), 3, "one file per flush at a one-byte limit");
        assert_eq!(read_parts(&folder), rows);
    }

    #[test]
    fn unfinished_files_are_not_left_behind_and_bad_options_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = SinkSpec {
            name: "s".into(),
            input: "d".into(),
            kind: "parquet".into(),
            location: Some(dir.path().display().to_string()),
            options: BTreeMap::new(),
        };
        let mut sink = ParquetSinkFactory.open(&spec, detection_schema()).unwrap();
        sink.write(&[Record::Detection(detection(0))]).unwrap();
        sink.flush().unwrap();
        drop(sink);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        spec.options.insert("compression".into(), "lzma".into());
        let error = ParquetSinkFactory.open(&spec, detection_schema()).err().unwrap();
        assert!(error.contains("'snappy'"), "{error}");
    }

    #[test]
    fn a_resumed_sink_keeps_the_parts_of_its_checkpoint_only() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SinkSpec {
            name: "s".into(),
            input: "d".into(),
            kind: "parquet".into(),
            location: Some(dir.path().display().to_string()),
            options: BTreeMap::new(),
        };
        let rows: Vec<Detection> = (0..6).map(detection).collect();
        let records = |r: &[Detection]| r.iter().cloned().map(Record::Detection).collect::<Vec<_>>();
        let mut sink = ParquetSinkFactory.open(&spec, detection_schema()).unwrap();
        sink.write(&records(&rows[..3])).unwrap();
        let position = sink.checkpoint().unwrap().unwrap();
        assert_eq!(position, "1");
        // Written after the checkpoint, then a crash: a finished part and an
        // unfinished one stay behind.
        sink.write(&records(&rows[3..])).unwrap();
        sink.checkpoint().unwrap();
        sink.write(&records(&rows[3..])).unwrap();
        std::mem::forget(sink);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
        let mut sink = ParquetSinkFactory.resume(&spec, detection_schema(), Some(&position)).unwrap();
        assert_eq!(read_parts(dir.path()), rows[..3], "what came after the checkpoint is gone");
        sink.write(&records(&rows[3..])).unwrap();
        sink.close().unwrap();
        assert_eq!(read_parts(dir.path()), rows, "and written again once");
    }
}
