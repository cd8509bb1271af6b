//! `CREATE SOURCE d FROM DETECTIONS 'rows.jsonl'`: detections made
//! elsewhere, one JSON object per line in the schema frameflow writes
//! (`frame_id`, `source_id`, `event_time` as RFC 3339, `operator`, `label`,
//! `confidence`, `x`, `y`, `w`, `h`, ...), so that queries run on them as
//! on a live stream.
//!
//! Rows are admitted in file order; each camera (`source_id`) has its own
//! watermark, so rows out of order within the lateness count and later ones
//! are late. A line that is not a valid row is dead-lettered with its line
//! number; the rest go on. Every row gets the source's tenant, whatever the
//! file says: a file cannot write into another tenant.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::sync::Arc;

use engine::model::{Detection, FrameOutcome, Outcome};
use engine::plan::LatePolicy;
use engine::plan::SourceSpec;
use engine::registry::{Partition, Source, SourceFactory, SourcePoll};
use engine::time::Millis;
use engine::watermark::{CameraWatermarks, late_row};

#[derive(Debug, Default)]
pub struct DetectionsSourceFactory;

impl SourceFactory for DetectionsSourceFactory {
    fn validate(&self, spec: &SourceSpec) -> Result<(), String> {
        if let Some(option) = spec.options.keys().next() {
            return Err(format!("DETECTIONS takes no option `{option}`; its options: lateness, late, tenant"));
        }
        let path = spec.location.as_deref().ok_or("DETECTIONS needs a file: FROM DETECTIONS 'rows.jsonl'")?;
        if !path.ends_with(".jsonl") {
            return Err(format!("`{path}` is not a .jsonl file; DETECTIONS reads JSON lines"));
        }
        fs::metadata(path).map(|_| ()).map_err(|e| format!("cannot read `{path}`: {e}"))
    }

    fn open(&self, spec: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        let path = spec.location.as_deref().unwrap_or_default();
        let text = fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
        let tenant: Arc<str> = spec.tenant.as_str().into();
        let mut rows = VecDeque::new();
        let mut earliest: BTreeMap<Arc<str>, Millis> = BTreeMap::new();
        for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row = serde_json::from_str::<Detection>(line)
                .map(|mut d| {
                    d.tenant = tenant.clone();
                    d
                })
                .map_err(|e| refused(&tenant, path, number + 1, &e.to_string()));
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
        Ok(Box::new(DetectionsSource {
            rows,
            earliest,
            watermarks: CameraWatermarks::new(spec.lateness_ms),
            late: spec.late,
        }))
    }
}

/// The outcome of a line that is not a detection row.
fn refused(tenant: &Arc<str>, path: &str, line: usize, error: &str) -> FrameOutcome {
    FrameOutcome {
        frame_id: format!("{path}:{line}").into(),
        tenant: tenant.clone(),
        source_id: path.into(),
        event_time: 0,
        outcome: Outcome::Rejected,
        stage: "source".into(),
        reason: Some(format!("line {line} is not a detection row: {error}")),
        detections: 0,
    }
}

struct DetectionsSource {
    rows: VecDeque<Result<Detection, FrameOutcome>>,
    /// Each camera's earliest row: the promise for a camera not yet seen.
    earliest: BTreeMap<Arc<str>, Millis>,
    watermarks: CameraWatermarks,
    late: LatePolicy,
}

impl Source for DetectionsSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String> {
        if self.rows.is_empty() {
            return Ok(SourcePoll::Done);
        }
        let batch = self.rows.drain(..max.min(self.rows.len())).map(|row| match row {
            Ok(d) if self.watermarks.observe(&d.source_id, d.event_time) => Err(late_row(&d, self.late)),
            row => row,
        });
        Ok(SourcePoll::Detections(batch.collect()))
    }

    fn watermark(&mut self) -> Option<Millis> {
        if self.rows.is_empty() {
            return None;
        }
        self.earliest.iter().filter_map(|(camera, first)| self.watermarks.promise(camera, Some(*first))).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_with_the_sources_tenant_and_bad_lines_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let row = r#"{"frame_id":"f1","tenant":"other","source_id":"cam","event_time":"2026-01-01T00:00:01.000Z","operator":"detect","label":"person","confidence":0.9,"x":1,"y":2,"w":3,"h":4}"#;
        fs::write(&path, format!("{row}\nnot json\n")).unwrap();
        let spec = SourceSpec {
            name: "d".into(),
            rows: engine::plan::SourceRows::Detections,
            kind: "detections".into(),
            location: Some(path.display().to_string()),
            options: Default::default(),
            tenant: "acme".into(),
            lateness_ms: 0,
            late: engine::plan::LatePolicy::DeadLetter,
        };
        DetectionsSourceFactory.validate(&spec).unwrap();
        let mut source = DetectionsSourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap();
        let SourcePoll::Detections(rows) = source.poll(10).unwrap() else { panic!("expected rows") };
        assert_eq!(rows[0].as_ref().unwrap().tenant.as_ref(), "acme");
        assert!(rows[1].as_ref().unwrap_err().reason.as_ref().unwrap().starts_with("line 2 is not a detection row"));
        assert_eq!(source.watermark(), None);
    }
}
