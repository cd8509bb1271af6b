//! `CREATE SOURCE d FROM DETECTIONS 'rows.jsonl'`: detections made
//! elsewhere, so that queries run on them as on a live stream. Three forms:
//!
//! - a `.jsonl` file, one JSON object per line in the schema frameflow
//!   writes (`frame_id`, `source_id`, `event_time` as RFC 3339, `operator`,
//!   `label`, `confidence`, `x`, `y`, `w`, `h`, ...);
//! - a `.parquet` file in the Arrow schema of `engine::columnar`
//!   (`event_time` a timestamp, UTC, of any unit);
//! - a folder of `.parquet` files, read in name order: what a PARQUET sink
//!   writes.
//!
//! Rows are admitted in file order; each camera (`source_id`) has its own
//! watermark, so rows out of order within the lateness count and later ones
//! are late. With `idle_timeout`, a camera whose newest row is that far (in
//! event time) behind the newest row of any camera is idle: it no longer
//! holds back the windows of the others, and a row it sends later behind
//! their progress is late. A row that cannot be read is dead-lettered with where it was
//! (line, or file and row); the rest go on. Every row gets the source's
//! tenant, whatever the file says: a file cannot write into another tenant.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use engine::columnar::detections_from_batch;
use engine::model::{Detection, FrameOutcome, Outcome};
use engine::plan::SourceSpec;
use engine::registry::{Partition, Source, SourceFactory, SourcePoll, SourceRow};
use engine::time::Millis;
use engine::watermark::CameraWatermarks;

use crate::options::{parse_duration, reject_unknown};

/// A row, or why the row at a place in the input could not be read.
type Read = Result<Detection, (String, String)>;

/// The files a location names, and whether they are Parquet.
fn files_of(path: &str) -> Result<(Vec<PathBuf>, bool), String> {
    let location = Path::new(path);
    if location.is_dir() {
        let entries = fs::read_dir(location).map_err(|e| format!("cannot list `{path}`: {e}"))?;
        let mut files: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "parquet")).collect();
        files.sort();
        return Ok((files, true));
    }
    fs::metadata(location).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    match location.extension().and_then(|e| e.to_str()) {
        Some("jsonl") => Ok((vec![location.to_owned()], false)),
        Some("parquet") => Ok((vec![location.to_owned()], true)),
        _ => Err(format!("`{path}` is not a .jsonl or .parquet file, nor a folder of .parquet files")),
    }
}

fn read_jsonl(path: &Path) -> Result<Vec<Read>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str::<Detection>(line).map_err(|e| {
                let place = format!("{}:{}", path.display(), number + 1);
                (place, format!("line {} is not a detection row: {e}", number + 1))
            })
        })
        .collect())
}

/// A whole Parquet file: one that cannot be opened, or lacks a column,
/// fails the job at start, since none of its rows could be read.
fn read_parquet(path: &Path) -> Result<Vec<Read>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot read `{}`: {e}", path.display());
    let file = fs::File::open(path).map_err(|e| fail(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(|e| fail(&e))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| fail(&e))?;
        let first = rows.len();
        rows.extend(detections_from_batch(&batch).map_err(|e| fail(&e))?.into_iter().map(|row| {
            row.map_err(|(i, why)| {
                (
                    format!("{}#{}", path.display(), first + i),
                    format!("row {} is not a detection row: {why}", first + i),
                )
            })
        }));
    }
    Ok(rows)
}

#[derive(Debug, Default)]
pub struct DetectionsSourceFactory;

impl SourceFactory for DetectionsSourceFactory {
    fn validate(&self, spec: &SourceSpec) -> Result<(), String> {
        idle_timeout(spec)?;
        let path = spec.location.as_deref().ok_or("DETECTIONS needs a file: FROM DETECTIONS 'rows.jsonl'")?;
        let (files, parquet) = files_of(path)?;
        if parquet {
            // A Parquet file states its schema up front: check it now.
            for file in &files {
                let opened = fs::File::open(file).map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
                ParquetRecordBatchReaderBuilder::try_new(opened)
                    .map_err(|e| format!("`{}` is not a Parquet file: {e}", file.display()))?;
            }
        }
        Ok(())
    }

    fn open(&self, spec: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        let path = spec.location.as_deref().unwrap_or_default();
        let (files, parquet) = files_of(path)?;
        let tenant: Arc<str> = spec.tenant.as_str().into();
        let mut rows = VecDeque::new();
        let mut earliest: BTreeMap<Arc<str>, Millis> = BTreeMap::new();
        for file in files {
            let read = if parquet { read_parquet(&file)? } else { read_jsonl(&file)? };
            for row in read {
                let row = row
                    .map(|mut d| {
                        d.tenant = tenant.clone();
                        d
                    })
                    .map_err(|(place, why)| refused(&tenant, &place, why));
                let owner = match &row {
                    Ok(d) => d.source_id.clone(),
                    Err(outcome) => outcome.source_id.clone(),
                };
                if partition.owns(&owner) {
                    if let Ok(d) = &row {
                        let first = earliest.entry(d.source_id.clone()).or_insert(d.event_time);
                        *first = (*first).min(d.event_time);
                    }
                    rows.push_back(row);
                }
            }
        }
        Ok(Box::new(DetectionsSource {
            rows,
            earliest,
            watermarks: CameraWatermarks::new(spec.lateness_ms),
            idle_ms: idle_timeout(spec)?,
        }))
    }
}

/// The one option of DETECTIONS besides those of every source.
fn idle_timeout(spec: &SourceSpec) -> Result<Option<Millis>, String> {
    reject_unknown(&spec.options, &["idle_timeout", "lateness", "late", "tenant"])?;
    let timeout = spec.options.get("idle_timeout").map(|v| parse_duration("idle_timeout", v)).transpose()?;
    Ok(timeout.map(|t| t.as_millis() as Millis))
}

/// The outcome of a row that cannot be read, at `place` (file and line).
fn refused(tenant: &Arc<str>, place: &str, reason: String) -> FrameOutcome {
    FrameOutcome {
        frame_id: place.into(),
        tenant: tenant.clone(),
        source_id: place.rsplit_once([':', '#']).map_or(place, |(file, _)| file).into(),
        event_time: 0,
        outcome: Outcome::Rejected,
        stage: "source".into(),
        reason: Some(reason),
        detections: 0,
    }
}

struct DetectionsSource {
    rows: VecDeque<Result<Detection, FrameOutcome>>,
    /// Each camera's earliest row: the promise for a camera not yet seen.
    earliest: BTreeMap<Arc<str>, Millis>,
    watermarks: CameraWatermarks,
    idle_ms: Option<Millis>,
}

impl Source for DetectionsSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String> {
        if self.rows.is_empty() {
            return Ok(SourcePoll::Done);
        }
        let batch = self.rows.drain(..max.min(self.rows.len())).map(|row| match row {
            Ok(d) => match self.watermarks.observe(&d.source_id, d.event_time) {
                Some(watermark) => SourceRow::Late(d, watermark),
                None => SourceRow::Row(d),
            },
            Err(refused) => SourceRow::Refused(refused),
        });
        Ok(SourcePoll::Detections(batch.collect()))
    }

    fn watermark(&mut self) -> Option<Millis> {
        if self.rows.is_empty() {
            return None;
        }
        let newest = self.watermarks.newest_of_all();
        let idle = |camera: &str| match (self.idle_ms, self.watermarks.newest(camera), newest) {
            (Some(idle), Some(own), Some(newest)) => own + idle < newest,
            _ => false,
        };
        let promises = self.earliest.iter().filter(|(camera, _)| !idle(camera));
        promises.filter_map(|(camera, first)| self.watermarks.promise(camera, Some(*first))).min()
    }
}

#[cfg(test)]
mod tests {
    use engine::columnar::detection_schema;
    use engine::model::Record;
    use engine::plan::SinkSpec;
    use engine::registry::SinkFactory;

    use super::*;

    fn spec(location: &Path) -> SourceSpec {
        SourceSpec {
            name: "d".into(),
            rows: engine::plan::SourceRows::Detections,
            kind: "detections".into(),
            location: Some(location.display().to_string()),
            options: Default::default(),
            tenant: "acme".into(),
            lateness_ms: 0,
            late: engine::plan::LatePolicy::DeadLetter,
            screen: None,
        }
    }

    #[test]
    fn rows_are_read_with_the_sources_tenant_and_bad_lines_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let row = r#"{"frame_id":"f1","tenant":"other","source_id":"cam","event_time":"2026-01-01T00:00:01.000Z","operator":"detect","label":"person","confidence":0.9,"x":1,"y":2,"w":3,"h":4}"#;
        fs::write(&path, format!("{row}\nnot json\n")).unwrap();
        let spec = spec(&path);
        DetectionsSourceFactory.validate(&spec).unwrap();
        let mut source = DetectionsSourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap();
        let SourcePoll::Detections(rows) = source.poll(10).unwrap() else { panic!("expected rows") };
        let SourceRow::Row(first) = &rows[0] else { panic!("expected a row: {:?}", rows[0]) };
        assert_eq!(first.tenant.as_ref(), "acme");
        let SourceRow::Refused(second) = &rows[1] else { panic!("expected a refusal: {:?}", rows[1]) };
        assert!(second.reason.as_ref().unwrap().starts_with("line 2 is not a detection row"));
        assert_eq!(source.watermark(), None);
    }

    #[test]
    fn a_folder_a_parquet_sink_wrote_reads_back_as_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let row = r#"{"frame_id":"f1","tenant":"other","source_id":"cam","event_time":"2026-01-01T00:00:01.250Z","operator":"detect","label":"person","confidence":0.9,"x":1,"y":2,"w":3,"h":4,"text":"hi"}"#;
        let written: Detection = serde_json::from_str(row).unwrap();
        let sink_spec = SinkSpec {
            name: "out".into(),
            input: "d".into(),
            kind: "parquet".into(),
            location: Some(dir.path().join("out").display().to_string()),
            options: Default::default(),
        };
        let mut sink = crate::parquet_sink::ParquetSinkFactory.open(&sink_spec, detection_schema()).unwrap();
        sink.write(&[Record::Detection(written.clone())]).unwrap();
        sink.close().unwrap();

        let spec = spec(&dir.path().join("out"));
        DetectionsSourceFactory.validate(&spec).unwrap();
        let mut source = DetectionsSourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap();
        assert_eq!(source.watermark(), Some(written.event_time));
        let SourcePoll::Detections(rows) = source.poll(10).unwrap() else { panic!("expected rows") };
        let SourceRow::Row(read) = &rows[0] else { panic!("expected a row: {:?}", rows[0]) };
        assert_eq!(read.tenant.as_ref(), "acme", "the source's tenant, not the file's");
        assert_eq!(Detection { tenant: written.tenant.clone(), ..read.clone() }, written);
    }

    #[test]
    fn a_file_that_is_not_parquet_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        fs::write(&path, "not parquet").unwrap();
        let error = DetectionsSourceFactory.validate(&spec(&path)).unwrap_err();
        assert!(error.contains("is not a Parquet file"), "{error}");
    }

    #[test]
    fn an_idle_camera_stops_holding_back_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let row = |camera: &str, second: u32| {
            format!(
                r#"{{"frame_id":"{camera}{second}","tenant":"t","source_id":"{camera}","event_time":"2026-01-01T00:00:{second:02}.000Z","operator":"detect","label":"person","confidence":0.9,"x":1,"y":2,"w":3,"h":4}}"#
            )
        };
        let lines = [row("a", 0), row("b", 1), row("a", 20), row("a", 40), row("b", 5)];
        fs::write(&path, lines.join("\n")).unwrap();
        let watermarks = |idle: Option<&str>| {
            let mut spec = spec(&path);
            if let Some(idle) = idle {
                spec.options.insert("idle_timeout".into(), idle.into());
            }
            DetectionsSourceFactory.validate(&spec).unwrap();
            let mut source = DetectionsSourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap();
            (0..4)
                .map(|_| {
                    source.poll(1).unwrap();
                    source.watermark().unwrap() % 60_000
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(watermarks(None), [0, 0, 1_000, 1_000], "b (newest 00:01) holds the source back");
        assert_eq!(watermarks(Some("10s")), [0, 0, 20_000, 40_000], "b is idle once a is 10 s ahead");
        let mut bad = spec(&path);
        bad.options.insert("idle_timeout".into(), "soon".into());
        assert!(DetectionsSourceFactory.validate(&bad).unwrap_err().contains("idle_timeout = 'soon'"));
    }
}
