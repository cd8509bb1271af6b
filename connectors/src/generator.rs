//! `CREATE SOURCE g FROM GENERATOR WITH (...)`: synthetic detections, or
//! synthetic frames, at a set rate, for trying queries, tests and
//! benchmarks without a camera.
//!
//! With `output = 'frames'` (and `width`, `height`, default 640×360) each
//! row is a JPEG frame instead: a dark gradient with one bright square per
//! frame, which moves across the picture from frame to frame of a camera.
//!
//! Options: `rate` (rows per second of event time, default 1000), `count`
//! (rows in all; without it the source never ends), `cameras` (default 4,
//! named `cam0`, `cam1`, ...), `labels` (comma-separated, default
//! `person,car,bicycle`), `start` (RFC 3339 event time of the first row,
//! default 2026-01-01T00:00:00Z), `seed` (default 1), and `pace` (`true`:
//! emit rows no faster than their event time advances on the wall clock).
//! Row i is camera i mod `cameras`, at `start + i / rate`; its label,
//! confidence and box come from a seeded generator, so a run is
//! reproducible.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use engine::model::{Detection, Frame, MediaType, stable_hash};
use engine::plan::{Options, SourceSpec};
use engine::registry::{Partition, Source, SourceFactory, SourcePoll, SourceRow};
use engine::time::{Millis, now_ms, parse_rfc3339_ms};

use crate::options::{parse_bool, reject_unknown};

const OPTIONS: &[&str] = &[
    "rate", "count", "cameras", "labels", "start", "seed", "pace", "output", "width", "height", "tenant", "lateness",
    "late",
];

#[derive(Clone, Debug)]
struct GeneratorConfig {
    rate: f64,
    count: Option<u64>,
    cameras: u64,
    labels: Vec<Arc<str>>,
    start: Millis,
    seed: u64,
    pace: bool,
    /// Frames of this width and height instead of detections.
    frames: Option<(u32, u32)>,
}

fn parse_number<T: std::str::FromStr>(options: &Options, name: &str) -> Result<Option<T>, String> {
    options.get(name).map(|v| v.parse::<T>().map_err(|_| format!("{name} = '{v}' is not a number"))).transpose()
}

impl GeneratorConfig {
    fn from_spec(spec: &SourceSpec) -> Result<GeneratorConfig, String> {
        reject_unknown(&spec.options, OPTIONS)?;
        let options = &spec.options;
        let rate: f64 = parse_number(options, "rate")?.unwrap_or(1000.0);
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(format!("rate = {rate} must be a positive number of rows per second"));
        }
        let cameras: u64 = parse_number(options, "cameras")?.unwrap_or(4);
        if cameras == 0 {
            return Err("cameras = 0: a generator needs at least one camera".to_owned());
        }
        let labels: Vec<Arc<str>> = options
            .get("labels")
            .map_or("person,car,bicycle", String::as_str)
            .split(',')
            .map(|l| Arc::from(l.trim()))
            .filter(|l: &Arc<str>| !l.is_empty())
            .collect();
        if labels.is_empty() {
            return Err("labels is empty".to_owned());
        }
        Ok(GeneratorConfig {
            rate,
            count: parse_number(options, "count")?,
            cameras,
            labels,
            start: options.get("start").map(|s| parse_rfc3339_ms(s)).transpose()?.unwrap_or(1_767_225_600_000),
            seed: parse_number(options, "seed")?.unwrap_or(1),
            pace: options.get("pace").map(|v| parse_bool("pace", v)).transpose()?.unwrap_or(false),
            frames: match options.get("output").map(String::as_str) {
                None | Some("detections") => None,
                Some("frames") => {
                    let width: u32 = parse_number(options, "width")?.unwrap_or(640);
                    let height: u32 = parse_number(options, "height")?.unwrap_or(360);
                    if !(16..=8192).contains(&width) || !(16..=8192).contains(&height) {
                        return Err(format!("frames of {width}x{height}: width and height go from 16 to 8192"));
                    }
                    Some((width, height))
                }
                Some(other) => return Err(format!("output = '{other}' is not 'detections' or 'frames'")),
            },
        })
    }
}

#[derive(Debug, Default)]
pub struct GeneratorSourceFactory;

impl SourceFactory for GeneratorSourceFactory {
    fn validate(&self, spec: &SourceSpec) -> Result<(), String> {
        GeneratorConfig::from_spec(spec).map(|_| ())
    }

    fn open(&self, spec: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        let config = GeneratorConfig::from_spec(spec)?;
        let cameras: Vec<(u64, Arc<str>)> = (0..config.cameras)
            .map(|c| (c, Arc::from(format!("cam{c}"))))
            .filter(|(_, name)| partition.owns(name))
            .collect();
        Ok(Box::new(GeneratorSource {
            tenant: spec.tenant.as_str().into(),
            operator: "generator".into(),
            config,
            cameras,
            round: 0,
            started: Instant::now(),
        }))
    }
}

struct GeneratorSource {
    tenant: Arc<str>,
    operator: Arc<str>,
    config: GeneratorConfig,
    /// This worker's cameras: index and name.
    cameras: Vec<(u64, Arc<str>)>,
    /// Rows `round * cameras .. (round + 1) * cameras` come next.
    round: u64,
    started: Instant,
}

impl GeneratorSource {
    fn event_time(&self, row: u64) -> Millis {
        self.config.start + (row as f64 * 1000.0 / self.config.rate) as Millis
    }

    fn row(&self, index: u64, camera: &Arc<str>) -> Detection {
        let random = stable_hash(&[&self.config.seed.to_le_bytes(), &index.to_le_bytes()]);
        let unit = |shift: u32| ((random >> shift) & 0xffff) as f32 / 65535.0;
        let label = self.config.labels[(random % self.config.labels.len() as u64) as usize].clone();
        Detection {
            frame_id: format!("gen-{index}").into(),
            tenant: self.tenant.clone(),
            source_id: camera.clone(),
            event_time: self.event_time(index),
            operator: self.operator.clone(),
            label,
            confidence: ((0.3 + 0.7 * unit(16)) * 1000.0).round() / 1000.0,
            x: (unit(24) * 600.0).round(),
            y: (unit(32) * 300.0).round(),
            w: (10.0 + unit(40) * 100.0).round(),
            h: (10.0 + unit(48) * 200.0).round(),
            track_id: None,
            text: None,
            attributes: BTreeMap::new(),
        }
    }

    /// Frame `index` of camera `c`, `seq` in its camera's sequence.
    fn frame(&self, index: u64, c: u64, seq: u64, camera: &Arc<str>, (width, height): (u32, u32)) -> Frame {
        let side = (width.min(height) / 6).max(4);
        let (span_x, span_y) = (u64::from(width - side), u64::from(height - side));
        let start = stable_hash(&[&self.config.seed.to_le_bytes(), &c.to_le_bytes()]);
        let x0 = ((start + seq * 9) % span_x) as u32;
        let y0 = ((start / 7 + seq * 5) % span_y) as u32;
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            if (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y) {
                image::Rgb([240, 220 - (c % 4) as u8 * 50, 60])
            } else {
                let shade = (20 + 60 * x / width + 40 * y / height) as u8;
                image::Rgb([shade, shade, shade + 10])
            }
        });
        let mut bytes = Vec::new();
        let refused = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
            .encode_image(&picture)
            .err()
            .map(|e| format!("the generator could not encode its frame: {e}"));
        Frame {
            frame_id: format!("gen-{index}").into(),
            tenant: self.tenant.clone(),
            source_id: camera.clone(),
            seq,
            event_time: self.event_time(index),
            ingest_time: now_ms(),
            media_type: MediaType::Jpeg,
            bytes: bytes.into(),
            late: None,
            refused,
        }
    }

    fn finished(&self) -> bool {
        self.cameras.is_empty() || self.config.count.is_some_and(|n| self.round * self.config.cameras >= n)
    }
}

impl Source for GeneratorSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String> {
        if self.finished() {
            return Ok(SourcePoll::Done);
        }
        let mut rows = Vec::new();
        let mut frames = Vec::new();
        while rows.len() + frames.len() < max && !self.finished() {
            let first = self.round * self.config.cameras;
            if self.config.pace
                && self.event_time(first) - self.config.start > self.started.elapsed().as_millis() as Millis
            {
                break;
            }
            for (c, name) in &self.cameras {
                let index = first + c;
                match (self.config.count.is_none_or(|n| index < n), self.config.frames) {
                    (false, _) => {}
                    (true, Some(size)) => frames.push(self.frame(index, *c, self.round, name, size)),
                    (true, None) => rows.push(SourceRow::Row(self.row(index, name))),
                }
            }
            self.round += 1;
        }
        Ok(match (rows.is_empty(), frames.is_empty()) {
            (true, true) => SourcePoll::Idle,
            (false, _) => SourcePoll::Detections(rows),
            (true, false) => SourcePoll::Frames(frames),
        })
    }

    fn watermark(&mut self) -> Option<Millis> {
        (!self.finished()).then(|| self.event_time(self.round * self.config.cameras))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: &[(&str, &str)]) -> SourceSpec {
        SourceSpec {
            name: "g".into(),
            rows: engine::plan::SourceRows::Detections,
            kind: "generator".into(),
            location: None,
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            tenant: "default".into(),
            lateness_ms: 0,
            late: engine::plan::LatePolicy::DeadLetter,
            screen: None,
        }
    }

    fn drain(source: &mut dyn Source) -> Vec<Detection> {
        let mut rows = Vec::new();
        while let SourcePoll::Detections(batch) = source.poll(7).unwrap() {
            rows.extend(batch.into_iter().map(|row| match row {
                SourceRow::Row(d) => d,
                other => panic!("expected a row: {other:?}"),
            }));
        }
        rows
    }

    #[test]
    fn generates_count_rows_over_workers_reproducibly() {
        let spec = spec(&[("rate", "100"), ("count", "50"), ("cameras", "3"), ("seed", "7")]);
        let mut all: Vec<Detection> = (0..2)
            .flat_map(|worker| {
                drain(GeneratorSourceFactory.open(&spec, Partition { worker, workers: 2 }).unwrap().as_mut())
            })
            .collect();
        all.sort_by(|a, b| a.frame_id.cmp(&b.frame_id));
        assert_eq!(all.len(), 50);
        let again = drain(GeneratorSourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap().as_mut());
        assert_eq!(again.len(), 50);
        let row = again.iter().find(|d| &*d.frame_id == "gen-10").unwrap();
        assert_eq!(row.event_time, 1_767_225_600_000 + 100, "row 10 at 100 rows/s");
        assert_eq!(&*row.source_id, "cam1");
        assert_eq!(all.iter().find(|d| &*d.frame_id == "gen-10").unwrap(), row, "the same row whoever makes it");
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(GeneratorSourceFactory.validate(&spec(&[("rate", "-1")])).is_err());
        assert!(GeneratorSourceFactory.validate(&spec(&[("cameras", "many")])).unwrap_err().contains("not a number"));
        assert!(GeneratorSourceFactory.validate(&spec(&[("speed", "1")])).unwrap_err().contains("unknown option"));
    }

    #[test]
    fn frames_are_jpegs_whose_square_moves() {
        let frames = spec(&[("output", "frames"), ("count", "4"), ("cameras", "1"), ("width", "64"), ("height", "48")]);
        let mut source = GeneratorSourceFactory.open(&frames, Partition { worker: 0, workers: 1 }).unwrap();
        let SourcePoll::Frames(frames) = source.poll(10).unwrap() else { panic!("expected frames") };
        assert_eq!(frames.len(), 4);
        let pictures: Vec<image::RgbImage> =
            frames.iter().map(|f| image::load_from_memory(&f.bytes).unwrap().to_rgb8()).collect();
        assert_eq!(pictures[0].dimensions(), (64, 48));
        let brightest =
            |p: &image::RgbImage| p.enumerate_pixels().max_by_key(|(_, _, px)| px[0]).map(|(x, y, _)| (x, y));
        assert_ne!(brightest(&pictures[0]), brightest(&pictures[1]), "the square moves");
        assert!(GeneratorSourceFactory.validate(&spec(&[("output", "pictures")])).is_err());
    }
}
