//! `CLASSIFY(src, model => 'mobilenet', top_k => 5, min_confidence => 0)`:
//! ImageNet classes of the whole frame, with torchvision's MobileNetV2
//! (converted by `scripts/mobilenet2onnx.py`) on ONNX Runtime.
//!
//! The input is made as torchvision's evaluation transform makes it from a
//! PIL image, so frameflow and the reference (tests/reference/classify.py)
//! give the network the same tensor:
//!
//! ```text
//!  RGB ─shorter side to 256 (Pillow bilinear)─▶ centre 224² ─▶ /255, −mean, /std ─▶ net ─▶ softmax ─▶ top k
//! ```
//!
//! One row per class kept, best first: `label` is the class name (the
//! first of its synonyms), the confidence its probability, the box the
//! whole frame; attributes `class` (the ImageNet index), `rank` (1 = best)
//! and `names` (all synonyms). One frame per call by default: on one CPU
//! core batches of 8 ran 5% slower (P7); `batch => N` asks for batches.

use std::path::PathBuf;
use std::sync::Arc;

use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;

use engine::model::{DecodedFrame, Pixels};
use engine::plan::Options;
use engine::registry::{FrameResult, OperatorFactory, PreparedOperator, VisionOperator};

use crate::onnx::{ModelStore, Spare};
use crate::pillow::{self, Filter};
use crate::{check_options, count, detection, fraction};

const OPTIONS: [&str; 4] = ["model", "top_k", "min_confidence", "threads"];
const INPUT: &str = "input";
const OUTPUT: &str = "logits";

/// The model card: `{"architecture": "imagenet-classifier", "model": ...,
/// "labels": ..., "resize": 256, "crop": 224, "mean": [..], "std": [..]}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Card {
    model: PathBuf,
    labels: PathBuf,
    resize: usize,
    crop: usize,
    mean: [f32; 3],
    std: [f32; 3],
}

#[derive(Clone, Copy, Debug)]
pub struct ClassifyConfig {
    pub top_k: usize,
    pub min_confidence: f32,
    pub threads: usize,
}

#[derive(Debug)]
pub struct ClassifyFactory {
    store: ModelStore,
}

impl ClassifyFactory {
    pub fn new(store: ModelStore) -> ClassifyFactory {
        ClassifyFactory { store }
    }
}

impl OperatorFactory for ClassifyFactory {
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        check_options("CLASSIFY", options, &OPTIONS)?;
        let config = ClassifyConfig {
            top_k: count(options, "top_k", 5)?,
            min_confidence: fraction(options, "min_confidence", 0.0)?,
            threads: count(options, "threads", 1)?,
        };
        let model = options.get("model").map_or("mobilenet", String::as_str);
        Ok(Arc::new(PreparedClassify::load(&self.store, model, config)?))
    }
}

/// The model and labels checked once per job; workers make their own
/// sessions.
pub struct PreparedClassify {
    store: ModelStore,
    onnx: PathBuf,
    card: Arc<Card>,
    labels: Arc<[Arc<str>]>,
    config: ClassifyConfig,
    spare: Spare<Session>,
}

impl PreparedClassify {
    pub fn load(store: &ModelStore, model: &str, config: ClassifyConfig) -> Result<PreparedClassify, String> {
        let card: Card = store.card(model, "imagenet-classifier", "CLASSIFY")?;
        let labels_path = store.models_dir.join(&card.labels);
        let labels: Arc<[Arc<str>]> = std::fs::read_to_string(&labels_path)
            .map_err(|e| format!("model `{model}`: cannot read labels `{}`: {e}", labels_path.display()))?
            .lines()
            .map(Arc::from)
            .collect();
        if card.crop == 0 || card.resize < card.crop {
            return Err(format!(
                "model `{model}`: crop {} must be positive and at most resize {}",
                card.crop, card.resize
            ));
        }
        let onnx = store.models_dir.join(&card.model);
        let session = store.session(&onnx, config.threads)?;
        let has_input = session.inputs().iter().any(|i| i.name() == INPUT);
        let has_output = session.outputs().iter().any(|o| o.name() == OUTPUT);
        if !has_input || !has_output {
            return Err(format!("model `{model}` ({}) needs input `{INPUT}` and output `{OUTPUT}`", onnx.display()));
        }
        Ok(PreparedClassify {
            store: store.clone(),
            onnx,
            card: Arc::new(card),
            labels,
            config,
            spare: Spare::new(session),
        })
    }

    pub fn classifier(&self) -> Result<Classifier, String> {
        let session = self.spare.take_or(|| self.store.session(&self.onnx, self.config.threads))?;
        Ok(Classifier {
            session,
            card: self.card.clone(),
            labels: self.labels.clone(),
            config: self.config,
            input: Vec::new(),
        })
    }
}

impl PreparedOperator for PreparedClassify {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(self.classifier()?))
    }
}

/// One class of one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Class {
    pub index: usize,
    pub probability: f32,
}

/// A classifier with its own ONNX Runtime session.
pub struct Classifier {
    session: Session,
    card: Arc<Card>,
    labels: Arc<[Arc<str>]>,
    config: ClassifyConfig,
    input: Vec<f32>,
}

impl Classifier {
    /// The best `top_k` classes of each image, best first.
    pub fn classify(&mut self, images: &[&Pixels]) -> Result<Vec<Vec<Class>>, String> {
        let crop = self.card.crop;
        let plane = crop * crop;
        self.input.clear();
        self.input.resize(images.len() * 3 * plane, 0.0);
        // each channel's 256 possible inputs, normalised once
        let tables: [[f32; 256]; 3] =
            std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - self.card.mean[c]) / self.card.std[c]));
        for (pixels, input) in images.iter().zip(self.input.chunks_exact_mut(3 * plane)) {
            let rgb = center_crop(pixels, self.card.resize, crop);
            // interleaved RGB to planes, in one pass
            let (r, gb) = input.split_at_mut(plane);
            let (g, b) = gb.split_at_mut(plane);
            for (((p, r), g), b) in rgb.chunks_exact(3).zip(r).zip(g).zip(b) {
                [*r, *g, *b] = std::array::from_fn(|c| tables[c][usize::from(p[c])]);
            }
        }
        let shape = [images.len(), 3, crop, crop];
        let tensor = TensorRef::from_array_view((shape, &self.input[..])).map_err(|e| format!("bad input: {e}"))?;
        let outputs = self.session.run(ort::inputs![INPUT => tensor]).map_err(|e| format!("inference failed: {e}"))?;
        let output = outputs.get(OUTPUT).ok_or(format!("model gave no output `{OUTPUT}`"))?;
        let (shape, logits) = output.try_extract_tensor::<f32>().map_err(|e| format!("output `{OUTPUT}`: {e}"))?;
        let classes = self.labels.len();
        if shape[..] != [images.len() as i64, classes as i64] {
            return Err(format!("output has shape {shape:?}, expected [{}, {classes}]", images.len()));
        }
        Ok(logits.chunks_exact(classes).map(|row| top(row, self.config.top_k, self.config.min_confidence)).collect())
    }
}

/// torchvision's `Resize(resize)` then `CenterCrop(crop)` on a PIL image.
fn center_crop(pixels: &Pixels, resize: usize, crop: usize) -> Vec<u8> {
    let (w, h) = (pixels.width as usize, pixels.height as usize);
    // the shorter side to `resize`, the longer truncated as torchvision does
    let long = |long: usize, short: usize| (resize as f64 * long as f64 / short as f64) as usize;
    let (ow, oh) = if w <= h { (resize, long(h, w)) } else { (long(w, h), resize) };
    // Python's round(), halves to even, of the centred offset
    let offset = |size: usize| ((size - crop) as f64 / 2.0).round_ties_even() as usize;
    pillow::resize_crop(&pixels.rgb, 3, (w, h), (ow, oh), [offset(ow), offset(oh), crop, crop], Filter::Bilinear)
}

/// Softmax, then the `k` most probable classes at or above `min`, best
/// first (ties by index, as a stable sort gives).
fn top(logits: &[f32], k: usize, min: f32) -> Vec<Class> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    let mut classes: Vec<Class> =
        exp.iter().enumerate().map(|(index, e)| Class { index, probability: e / total }).collect();
    classes.sort_by(|a, b| b.probability.total_cmp(&a.probability).then(a.index.cmp(&b.index)));
    classes.truncate(k);
    classes.retain(|c| c.probability >= min);
    classes
}

impl VisionOperator for Classifier {
    fn process(&mut self, decoded: &DecodedFrame) -> FrameResult {
        let mut rows = self.process_batch(&[decoded])?;
        rows.pop().unwrap_or_else(|| Ok(Vec::new()))
    }

    fn process_batch(&mut self, frames: &[&DecodedFrame]) -> Result<Vec<FrameResult>, String> {
        let images: Vec<&Pixels> = frames.iter().map(|d| &d.pixels).collect();
        let found = self.classify(&images)?;
        Ok(frames
            .iter()
            .zip(found)
            .map(|(decoded, classes)| {
                let (w, h) = (decoded.pixels.width as f32, decoded.pixels.height as f32);
                let rows = classes
                    .into_iter()
                    .enumerate()
                    .map(|(rank, class)| {
                        let names = &self.labels[class.index];
                        let label = names.split(',').next().unwrap_or(names).trim();
                        let mut row = detection(&decoded.frame, "classify", label, class.probability, [0.0, 0.0, w, h]);
                        row.attributes.insert("class".into(), class.index.into());
                        row.attributes.insert("rank".into(), (rank + 1).into());
                        row.attributes.insert("names".into(), names.as_ref().into());
                        row
                    })
                    .collect();
                Ok(rows)
            })
            .collect())
    }
}
