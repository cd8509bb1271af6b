//! `HASH(src, dedup => '10s', max_distance => 4)`: a perceptual hash per
//! frame, and optionally near duplicates dropped.
//!
//! The hash is the 64-bit difference hash of the `imagehash` Python
//! library (`imagehash.dhash`), computed as Pillow computes it: grey as
//! `L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`, resized to 9×8 with
//! Pillow's Lanczos filter (two passes, horizontal first, in fixed point
//! with 22 fractional bits, each pass rounded to 8 bits: [`pillow`]), then one bit per
//! pair of neighbours in a row: left < right. The first bit is the top
//! left pair; the hex form is imagehash's `str(hash)`.
//!
//! One row per frame: `label` is `hash`, `text` the 16 hex digits, the box
//! the whole frame. With `dedup`, a frame whose hash is within
//! `max_distance` bits (default 4) of the last frame its camera kept, and
//! no more than `dedup` after it, is dropped: no row, and the outcome
//! `duplicate` names the frame it repeats. Frames of a camera go to one
//! worker, in event-time order; a camera quiet for longer than `dedup` is
//! forgotten.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use engine::model::{DecodedFrame, Detection, Pixels};
use engine::plan::Options;
use engine::registry::{FrameResult, OperatorFactory, PreparedOperator, Refusal, VisionOperator};
use engine::time::Millis;
use serde_json::{Value, json};

use crate::pillow::{self, Filter};
use crate::{check_options, detection};

const OPTIONS: [&str; 2] = ["dedup", "max_distance"];

#[derive(Clone, Copy, Debug, Default)]
pub struct HashFactory;

/// Dedup settings: the span and the largest distance that is a duplicate.
#[derive(Clone, Copy, Debug)]
struct Dedup {
    span_ms: Millis,
    max_distance: u32,
}

#[derive(Clone, Copy, Debug)]
struct PreparedHash {
    dedup: Option<Dedup>,
}

impl OperatorFactory for HashFactory {
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        check_options("HASH", options, &OPTIONS)?;
        let max_distance = match options.get("max_distance") {
            None => 4,
            Some(text) => {
                text.parse().ok().filter(|d| *d <= 64).ok_or(format!("max_distance = {text} is not 0 to 64"))?
            }
        };
        let dedup = match options.get("dedup") {
            None if options.contains_key("max_distance") => {
                return Err("max_distance needs dedup => 'SPAN', the time within which frames are compared".into());
            }
            None => None,
            Some(text) => {
                let span = humantime::parse_duration(text)
                    .map_err(|e| format!("dedup = '{text}' is not a duration such as '10s': {e}"))?;
                Some(Dedup { span_ms: span.as_millis() as Millis, max_distance })
            }
        };
        Ok(Arc::new(PreparedHash { dedup }))
    }
}

impl PreparedOperator for PreparedHash {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(Hasher { dedup: self.dedup, kept: HashMap::new(), changed: HashSet::new() }))
    }

    fn per_camera(&self) -> bool {
        self.dedup.is_some()
    }
}

struct Hasher {
    dedup: Option<Dedup>,
    /// Per tenant and camera, the last frame kept.
    kept: HashMap<Camera, Kept>,
    /// Cameras whose entry changed since [`VisionOperator::changed`] was
    /// last called.
    changed: HashSet<Camera>,
}

/// A tenant and a camera.
type Camera = (Arc<str>, Arc<str>);

struct Kept {
    frame_id: Arc<str>,
    hash: u64,
    at: Millis,
}

impl Hasher {
    /// The frame's row, with its hash.
    fn row(decoded: &DecodedFrame, hash: u64) -> Detection {
        let (w, h) = (decoded.pixels.width as f32, decoded.pixels.height as f32);
        let mut row = detection(&decoded.frame, "hash", "hash", 1.0, [0.0, 0.0, w, h]);
        row.text = Some(format!("{hash:016x}"));
        row
    }
}

impl VisionOperator for Hasher {
    fn process(&mut self, decoded: &DecodedFrame) -> FrameResult {
        let frame = &decoded.frame;
        let hash = dhash(&decoded.pixels);
        if let Some(dedup) = self.dedup {
            let camera = (frame.tenant.clone(), frame.source_id.clone());
            if let Some(Kept { frame_id: id, hash: last, at, .. }) = self.kept.get(&camera) {
                let distance = (hash ^ last).count_ones();
                let since = frame.event_time.saturating_sub(*at);
                if (0..=dedup.span_ms).contains(&since) && distance <= dedup.max_distance {
                    return Err(Refusal::Duplicate(format!(
                        "a near duplicate of frame {id} ({distance} bits apart, {since} ms later)"
                    )));
                }
            }
            // A late frame (older than the one kept) is hashed, not kept.
            if self.kept.get(&camera).is_none_or(|kept| kept.at <= frame.event_time) {
                self.kept.insert(camera.clone(), Kept { frame_id: frame.frame_id.clone(), hash, at: frame.event_time });
                self.changed.insert(camera);
            }
            if self.kept.len() > 1024 {
                let newest = frame.event_time;
                let changed = &mut self.changed;
                self.kept.retain(|camera, kept| {
                    let keep = newest.saturating_sub(kept.at) <= dedup.span_ms;
                    if !keep {
                        changed.insert(camera.clone());
                    }
                    keep
                });
            }
        }
        Ok(vec![Hasher::row(decoded, hash)])
    }

    /// Per camera (`tenant/source_id`), the frame it last kept; `null`
    /// for one forgotten.
    fn changed(&mut self) -> Vec<(String, Value)> {
        let entries = self.changed.drain().map(|camera| {
            let entry = self.kept.get(&camera).map_or(Value::Null, |kept| {
                json!({
                    "tenant": &*camera.0,
                    "source_id": &*camera.1,
                    "frame_id": &*kept.frame_id,
                    "hash": format!("{:016x}", kept.hash),
                    "at": kept.at,
                })
            });
            (format!("{}/{}", camera.0, camera.1), entry)
        });
        entries.collect()
    }

    fn restore(&mut self, state: &BTreeMap<String, Value>) -> Result<(), String> {
        for entry in state.values() {
            let text = |field: &str| entry[field].as_str().ok_or(format!("no `{field}` in {entry}"));
            let hash = u64::from_str_radix(text("hash")?, 16).map_err(|e| format!("bad hash in {entry}: {e}"))?;
            let at = entry["at"].as_i64().ok_or(format!("no `at` in {entry}"))?;
            let camera = (Arc::from(text("tenant")?), Arc::from(text("source_id")?));
            self.kept.insert(camera, Kept { frame_id: text("frame_id")?.into(), hash, at });
        }
        Ok(())
    }

    /// The row, or the refusal, of before the restart; what the camera
    /// kept since is in the state restored.
    fn replay(&mut self, decoded: &DecodedFrame, duplicate: bool) -> FrameResult {
        if duplicate {
            return Err(Refusal::Duplicate("a near duplicate, as found before the job restarted".to_owned()));
        }
        Ok(vec![Hasher::row(decoded, dhash(&decoded.pixels))])
    }
}

/// imagehash's `dhash` (hash size 8) of an RGB image, bit for bit as with
/// Pillow 12.
pub fn dhash(pixels: &Pixels) -> u64 {
    let (w, h) = (pixels.width as usize, pixels.height as usize);
    let mut grey = vec![0u8; w * h];
    crate::vectorized(
        #[inline(always)]
        || {
            for (g, p) in grey.iter_mut().zip(pixels.rgb.chunks_exact(3)) {
                *g =
                    ((19595 * u32::from(p[0]) + 38470 * u32::from(p[1]) + 7471 * u32::from(p[2]) + 0x8000) >> 16) as u8;
            }
        },
    );
    let small = pillow::resize(&grey, 1, (w, h), (9, 8), Filter::Lanczos);
    let mut hash = 0u64;
    for row in small.chunks_exact(9) {
        for pair in row.windows(2) {
            hash = (hash << 1) | u64::from(pair[1] > pair[0]);
        }
    }
    hash
}
