//! `TEXT(src, model => 'ppocr', min_confidence => 0.5)`: lines of text
//! with PaddleOCR's PP-OCRv4 (the nets of the PyPI package
//! `rapidocr-onnxruntime`) on ONNX Runtime, through the package's own
//! pipeline, so that its output is the reference:
//!
//! ```text
//!  frame ─(BGR; short side up to ≥ 736, sides multiples of 32)─▶ DB detector ─▶ probability map
//!    ─▶ > 0.3, dilated ─▶ regions ─▶ min-area boxes, mean probability ≥ 0.5 ─▶ grown by area·1.6/perimeter
//!    ─▶ crops (perspective, bicubic) ─▶ angle classifier (180° if > 0.9) ─▶ recogniser (height 48)
//!    ─▶ greedy CTC over 6625 classes ─▶ lines scoring ≥ min_confidence
//! ```
//!
//! One row per line: `label` is `text`, `text` what it says, the
//! confidence the mean of its characters' probabilities, the box the
//! line's axis-aligned bounds, and `attributes.quad` its four corners
//! (top left, top right, bottom right, bottom left).
//!
//! Where frameflow departs from the package: regions are 8-connected
//! components of the map (the package traces their contours, holes too,
//! which only adds boxes of holes, none of which passes the score test on
//! real text); the minimum-area rectangle is computed in `f64`, where
//! OpenCV's float noise can move a truncated corner by a pixel; a box's
//! score is the mean inside its corners, without OpenCV's outline pixels;
//! the detector's input is at most 5888 pixels on a side, where the
//! package's is unbounded for tall strips; a frame too thin to scale has no
//! lines, where the package raises an error.
//! OpenCV's resize and bicubic warp and Clipper's offset are ported
//! exactly ([`crate::cv`]); the homography is solved in `f64` directly for
//! the inverse map, where OpenCV solves the forward map with its own LU in
//! `f32` products and inverts it: a crop pixel may differ by one level.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;

use engine::model::{DecodedFrame, Pixels};
use engine::plan::Options;
use engine::registry::{FrameResult, OperatorFactory, PreparedOperator, VisionOperator};

use crate::cv::{self, Image};
use crate::onnx::{ModelStore, Spare};
use crate::{check_options, count, detection, fraction};

const OPTIONS: [&str; 3] = ["model", "min_confidence", "threads"];
/// The detector's input: the short side at least this, both multiples of 32.
const DET_MIN_SIDE: usize = 736;
/// ... and its longer side at most this: 8 × 736, the most the package's
/// own padding leaves a wide frame, while a tall strip (which the package
/// would grow to 736 × 73 600 from 20 × 2000) is capped.
const DET_MAX_SIDE: usize = 8 * DET_MIN_SIDE;
const DET_THRESHOLD: f32 = 0.3;
const BOX_THRESHOLD: f64 = 0.5;
const UNCLIP_RATIO: f64 = 1.6;
const MAX_CANDIDATES: usize = 1000;
const CLS_WIDTH: usize = 192;
const CLS_THRESHOLD: f32 = 0.9;
const REC_HEIGHT: usize = 48;
const REC_MIN_WIDTH: usize = 320;
const BATCH: usize = 6;

/// The model card: `{"architecture": "ppocr", "det": ..., "cls": ...,
/// "rec": ..., "keys": ...}`, paths relative to the models folder; `keys`
/// is the recogniser's character list, one per line.
#[derive(Debug, Deserialize)]
struct Card {
    det: PathBuf,
    cls: PathBuf,
    rec: PathBuf,
    keys: PathBuf,
}

/// Inputs and outputs each net must have.
const NETS: [(&str, &str); 3] =
    [("x", "sigmoid_0.tmp_0"), ("x", "save_infer_model/scale_0.tmp_1"), ("x", "softmax_11.tmp_0")];

#[derive(Debug)]
pub struct TextFactory {
    store: ModelStore,
}

impl TextFactory {
    pub fn new(store: ModelStore) -> TextFactory {
        TextFactory { store }
    }
}

impl OperatorFactory for TextFactory {
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        check_options("TEXT", options, &OPTIONS)?;
        let min_confidence = f64::from(fraction(options, "min_confidence", 0.5)?);
        let threads = count(options, "threads", 1)?;
        let model = options.get("model").map_or("ppocr", String::as_str);
        Ok(Arc::new(PreparedText::load(&self.store, model, min_confidence, threads)?))
    }
}

/// The three nets and the characters, checked once per job; workers make
/// their own sessions.
pub struct PreparedText {
    store: ModelStore,
    paths: [PathBuf; 3],
    characters: Arc<[String]>,
    min_confidence: f64,
    threads: usize,
    spare: Spare<[Session; 3]>,
}

impl PreparedText {
    pub fn load(store: &ModelStore, model: &str, min_confidence: f64, threads: usize) -> Result<PreparedText, String> {
        let card: Card = store.card(model, "ppocr", "TEXT")?;
        let keys = store.models_dir.join(&card.keys);
        let text = std::fs::read_to_string(&keys)
            .map_err(|e| format!("model `{model}`: cannot read its characters `{}`: {e}", keys.display()))?;
        // class 0 is CTC's blank, the last a space
        let characters: Arc<[String]> =
            std::iter::once(String::new()).chain(text.lines().map(str::to_owned)).chain([" ".to_owned()]).collect();
        let paths = [card.det, card.cls, card.rec].map(|p| store.models_dir.join(p));
        let sessions = sessions(store, &paths, threads)?;
        for (session, (input, output)) in sessions.iter().zip(NETS) {
            let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            if !inputs.contains(&input) || !outputs.contains(&output) {
                return Err(format!("model `{model}`: a net lacks input `{input}` or output `{output}` ({outputs:?})"));
            }
        }
        Ok(PreparedText {
            store: store.clone(),
            paths,
            characters,
            min_confidence,
            threads,
            spare: Spare::new(sessions),
        })
    }

    pub fn reader(&self) -> Result<TextReader, String> {
        let [det, cls, rec] = self.spare.take_or(|| sessions(&self.store, &self.paths, self.threads))?;
        Ok(TextReader { det, cls, rec, characters: self.characters.clone(), min_confidence: self.min_confidence })
    }
}

fn sessions(store: &ModelStore, paths: &[PathBuf; 3], threads: usize) -> Result<[Session; 3], String> {
    Ok([store.session(&paths[0], threads)?, store.session(&paths[1], threads)?, store.session(&paths[2], threads)?])
}

impl PreparedOperator for PreparedText {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(self.reader()?))
    }
}

/// A line of text: its corners in frame pixels (top left, top right,
/// bottom right, bottom left), what it says and its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub quad: [[f32; 2]; 4],
    pub text: String,
    pub score: f64,
}

/// PP-OCR with its own sessions, for one thread.
pub struct TextReader {
    det: Session,
    cls: Session,
    rec: Session,
    characters: Arc<[String]>,
    min_confidence: f64,
}

/// `int(round(v / 32) * 32)` with Python's rounding, halves to even.
fn round32(v: usize) -> usize {
    ((v as f64 / 32.0).round_ties_even() * 32.0) as usize
}

/// The shorter side scaled to `target` (`ratio` is the package's, from the
/// shorter side), both sides rounded to multiples of 32.
fn scaled(img: &Image, ratio: f64) -> (usize, usize) {
    (round32((img.width as f64 * ratio) as usize), round32((img.height as f64 * ratio) as usize))
}

/// The network input: BGR planes, `(v / 255 − 0.5) / 0.5`, the detector's
/// way (a multiplication by 1/255) or the others' (a division).
fn planes(img: &Image, detector: bool, width: usize, out: &mut [f32]) {
    let plane = img.height * width;
    for y in 0..img.height {
        for x in 0..img.width {
            let p = img.at(x, y);
            for (c, v) in [p[2], p[1], p[0]].into_iter().enumerate() {
                out[c * plane + y * width + x] = if detector {
                    ((f64::from(f32::from(v) * (1.0f32 / 255.0)) - 0.5) / 0.5) as f32
                } else {
                    (f32::from(v) / 255.0 - 0.5) / 0.5
                };
            }
        }
    }
}

impl TextReader {
    /// The lines of text in `pixels`, in reading order.
    pub fn read(&mut self, pixels: &Pixels) -> Result<Vec<Line>, String> {
        let (raw_w, raw_h) = (pixels.width as usize, pixels.height as usize);
        let mut img = Image { width: raw_w, height: raw_h, channels: 3, data: pixels.rgb.to_vec() };
        // very large frames are scaled down, very small ones up
        let (mut ratio_w, mut ratio_h) = (1.0f64, 1.0f64);
        let (w, h) = (img.width as f64, img.height as f64);
        let ratio = if img.width.max(img.height) > 2000 {
            Some(if h > w { 2000.0 / h } else { 2000.0 / w })
        } else if img.width.min(img.height) < 30 {
            Some(if h < w { 30.0 / h } else { 30.0 / w })
        } else {
            None
        };
        if let Some(ratio) = ratio {
            let (w, h) = scaled(&img, ratio);
            // a frame too thin to scale (the package raises an error), or
            // one a thread high that would grow huge, holds no text to read
            if w == 0 || h == 0 || w.max(h) > DET_MAX_SIDE {
                return Ok(Vec::new());
            }
            (ratio_w, ratio_h) = (img.width as f64 / w as f64, img.height as f64 / h as f64);
            img = cv::resize_linear(&img, w, h);
        }
        // thin strips get black bars above and below
        let mut pad = 0;
        if img.height <= 30 || img.width as f64 / img.height as f64 > 8.0 {
            let new_h = ((img.width as f64 / 8.0) as usize).max(30) * 2;
            pad = new_h.abs_diff(img.height) / 2;
            let row = img.width * 3;
            let mut data = vec![0u8; (img.height + 2 * pad) * row];
            data[pad * row..(pad + img.height) * row].copy_from_slice(&img.data);
            img = Image { height: img.height + 2 * pad, data, ..img };
        }
        let boxes = self.detect(&img)?;
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let mut crops: Vec<Image> = boxes.iter().map(|b| crop(&img, b)).collect();
        self.orient(&mut crops)?;
        let read = self.recognise(&crops)?;
        Ok(boxes
            .into_iter()
            .zip(read)
            .filter(|(_, (_, score))| *score >= self.min_confidence)
            .map(|(quad, (text, score))| {
                let quad = quad.map(|[x, y]| {
                    let x = (x * ratio_w as f32).max(0.0).min(raw_w as f32);
                    let y = ((y - pad as f32) * ratio_h as f32).max(0.0).min(raw_h as f32);
                    [x, y]
                });
                Line { quad, text, score }
            })
            .collect())
    }

    /// Boxes of text in `img`, sorted as the package sorts them.
    fn detect(&mut self, img: &Image) -> Result<Vec<[[f32; 2]; 4]>, String> {
        let (w, h) = (img.width, img.height);
        let ratio = if w.min(h) < DET_MIN_SIDE {
            if h < w { DET_MIN_SIDE as f64 / h as f64 } else { DET_MIN_SIDE as f64 / w as f64 }
        } else {
            1.0
        };
        let (mut dw, mut dh) = scaled(img, ratio);
        if dw.max(dh) > DET_MAX_SIDE {
            // a thin frame would grow without bound: its longer side is capped
            (dw, dh) = scaled(img, DET_MAX_SIDE as f64 / w.max(h) as f64);
        }
        if dw == 0 || dh == 0 {
            return Ok(Vec::new());
        }
        let resized = cv::resize_linear(img, dw, dh);
        let mut input = vec![0f32; 3 * dw * dh];
        planes(&resized, true, dw, &mut input);
        let tensor = TensorRef::from_array_view(([1, 3, dh, dw], &input[..])).map_err(|e| format!("bad input: {e}"))?;
        let outputs = self.det.run(ort::inputs!["x" => tensor]).map_err(|e| format!("text detection failed: {e}"))?;
        let (_, pred) = outputs[NETS[0].1].try_extract_tensor::<f32>().map_err(|e| format!("detector output: {e}"))?;
        if pred.len() != dw * dh {
            return Err(format!("detector gave {} values for a {dw}x{dh} input", pred.len()));
        }
        // threshold, then a 2×2 dilation towards the right and down
        let seg: Vec<bool> = pred.iter().map(|p| *p > DET_THRESHOLD).collect();
        let mask: Vec<bool> = (0..dw * dh)
            .map(|i| {
                let (x, y) = (i % dw, i / dw);
                seg[i] || (x > 0 && seg[i - 1]) || (y > 0 && seg[i - dw]) || (x > 0 && y > 0 && seg[i - dw - 1])
            })
            .collect();
        let mut found = Vec::new();
        for region in regions(&mask, dw, dh).into_iter().take(MAX_CANDIDATES) {
            let hull: Vec<[f64; 2]> = cv::convex_hull(&region).into_iter().map(|[x, y]| [x as f64, y as f64]).collect();
            let (quad, side) = mini_box(&hull);
            if side < 3.0 || BOX_THRESHOLD > box_score(pred, dw, dh, &quad) {
                continue;
            }
            let (quad, side) = unclip(&quad);
            if side < 5.0 {
                continue;
            }
            // back to the image, rounded half to even, within it
            let back =
                |v: f32, from: usize, to: usize| (v / from as f32 * to as f32).round_ties_even().clamp(0.0, to as f32);
            found.push(quad.map(|[x, y]| [back(x, dw, w) as i32, back(y, dh, h) as i32]));
        }
        let mut boxes: Vec<[[f32; 2]; 4]> = found.into_iter().filter_map(|b| tidy(b, w, h)).collect();
        // by top left y then x; then lines within 10 pixels left to right
        boxes.sort_by(|a, b| a[0][1].total_cmp(&b[0][1]).then(a[0][0].total_cmp(&b[0][0])));
        for i in 0..boxes.len().saturating_sub(1) {
            for j in (0..=i).rev() {
                if (boxes[j + 1][0][1] - boxes[j][0][1]).abs() < 10.0 && boxes[j + 1][0][0] < boxes[j][0][0] {
                    boxes.swap(j, j + 1);
                } else {
                    break;
                }
            }
        }
        Ok(boxes)
    }

    /// Turns crops the classifier finds upside down.
    fn orient(&mut self, crops: &mut [Image]) -> Result<(), String> {
        let order = by_aspect(crops);
        for batch in order.chunks(BATCH) {
            let mut input = vec![0f32; batch.len() * 3 * REC_HEIGHT * CLS_WIDTH];
            for (k, i) in batch.iter().enumerate() {
                let resized = fit(&crops[*i], CLS_WIDTH);
                planes(
                    &resized,
                    false,
                    CLS_WIDTH,
                    &mut input[k * 3 * REC_HEIGHT * CLS_WIDTH..][..3 * REC_HEIGHT * CLS_WIDTH],
                );
            }
            let tensor = TensorRef::from_array_view(([batch.len(), 3, REC_HEIGHT, CLS_WIDTH], &input[..]))
                .map_err(|e| format!("bad input: {e}"))?;
            let outputs =
                self.cls.run(ort::inputs!["x" => tensor]).map_err(|e| format!("angle classifier failed: {e}"))?;
            let (_, probs) =
                outputs[NETS[1].1].try_extract_tensor::<f32>().map_err(|e| format!("classifier output: {e}"))?;
            for (k, i) in batch.iter().enumerate() {
                let (p0, p1) = (probs[2 * k], probs[2 * k + 1]);
                if p1 > p0 && p1 > CLS_THRESHOLD {
                    crops[*i] = crops[*i].rotate180();
                }
            }
        }
        Ok(())
    }

    /// What each crop says, and its score.
    fn recognise(&mut self, crops: &[Image]) -> Result<Vec<(String, f64)>, String> {
        let mut read = vec![(String::new(), 0.0); crops.len()];
        let order = by_aspect(crops);
        for batch in order.chunks(BATCH) {
            let widest = batch
                .iter()
                .map(|i| crops[*i].width as f64 / crops[*i].height as f64)
                .fold(REC_MIN_WIDTH as f64 / REC_HEIGHT as f64, f64::max);
            let width = (REC_HEIGHT as f64 * widest) as usize;
            let size = 3 * REC_HEIGHT * width;
            let mut input = vec![0f32; batch.len() * size];
            for (k, i) in batch.iter().enumerate() {
                planes(&fit(&crops[*i], width), false, width, &mut input[k * size..][..size]);
            }
            let tensor = TensorRef::from_array_view(([batch.len(), 3, REC_HEIGHT, width], &input[..]))
                .map_err(|e| format!("bad input: {e}"))?;
            let outputs = self.rec.run(ort::inputs!["x" => tensor]).map_err(|e| format!("recogniser failed: {e}"))?;
            let (shape, probs) =
                outputs[NETS[2].1].try_extract_tensor::<f32>().map_err(|e| format!("recogniser output: {e}"))?;
            let classes = self.characters.len();
            let [_, steps, found] = shape[..] else { return Err(format!("recogniser output of shape {shape:?}")) };
            if found as usize != classes {
                return Err(format!("the recogniser has {found} classes; its character list makes {classes}"));
            }
            for (k, i) in batch.iter().enumerate() {
                read[*i] = ctc(&probs[k * steps as usize * classes..][..steps as usize * classes], &self.characters);
            }
        }
        Ok(read)
    }
}

/// Crop indices by width over height, ascending (ties in index order).
fn by_aspect(crops: &[Image]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..crops.len()).collect();
    order.sort_by(|a, b| {
        let r = |i: usize| crops[i].width as f64 / crops[i].height as f64;
        r(*a).total_cmp(&r(*b))
    });
    order
}

/// A crop resized to the recogniser's height, its width kept in proportion
/// up to `max_width`; the rest of the input stays 0.
fn fit(crop: &Image, max_width: usize) -> Image {
    let wanted = (REC_HEIGHT as f64 * (crop.width as f64 / crop.height as f64)).ceil();
    let width = if wanted > max_width as f64 { max_width } else { wanted as usize };
    cv::resize_linear(crop, width.max(1), REC_HEIGHT)
}

/// Greedy CTC: the best class per step, repeats merged, blanks dropped; the
/// score is the mean probability of the characters kept.
fn ctc(probs: &[f32], characters: &[String]) -> (String, f64) {
    let (mut text, mut total, mut count, mut last) = (String::new(), 0f64, 0usize, usize::MAX);
    for step in probs.chunks_exact(characters.len()) {
        let (best, p) =
            step.iter().enumerate().fold((0, f32::MIN), |(bi, bp), (i, p)| if *p > bp { (i, *p) } else { (bi, bp) });
        if best != last && best != 0 {
            text.push_str(&characters[best]);
            total += f64::from(p);
            count += 1;
        }
        last = best;
    }
    (text, if count == 0 { 0.0 } else { total / count as f64 })
}

/// 8-connected regions of `mask`: per region, the leftmost and rightmost
/// pixel of each of its rows (enough for its convex hull).
fn regions(mask: &[bool], w: usize, h: usize) -> Vec<Vec<[i64; 2]>> {
    let spans = cv::components(mask, w, h, BTreeMap::new(), |rows: &mut BTreeMap<usize, (usize, usize)>, i| {
        let (x, y) = (i % w, i / w);
        let span = rows.entry(y).or_insert((x, x));
        *span = (span.0.min(x), span.1.max(x));
    });
    spans
        .into_iter()
        .map(|rows| rows.into_iter().flat_map(|(y, (a, b))| [[a as i64, y as i64], [b as i64, y as i64]]).collect())
        .collect()
}

/// The package's `get_mini_boxes`: the minimum-area rectangle's corners as
/// top left, top right, bottom right, bottom left, and its shorter side.
fn mini_box(hull: &[[f64; 2]]) -> ([[f32; 2]; 4], f64) {
    let (corners, w, h) = cv::min_area_rect(hull);
    let mut p: Vec<[f32; 2]> = corners.iter().map(|[x, y]| [*x as f32, *y as f32]).collect();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (i1, i4) = if p[1][1] > p[0][1] { (0, 1) } else { (1, 0) };
    let (i2, i3) = if p[3][1] > p[2][1] { (2, 3) } else { (3, 2) };
    ([p[i1], p[i2], p[i3], p[i4]], w.min(h))
}

/// The mean of the map inside the box (the package's `box_score_fast`).
fn box_score(pred: &[f32], w: usize, h: usize, quad: &[[f32; 2]; 4]) -> f64 {
    let bound = |f: fn(f32, f32) -> f32, k: usize| quad.iter().map(|p| p[k]).fold(quad[0][k], f);
    let xmin = (bound(f32::min, 0).floor() as i64).clamp(0, w as i64 - 1);
    let xmax = (bound(f32::max, 0).ceil() as i64).clamp(0, w as i64 - 1);
    let ymin = (bound(f32::min, 1).floor() as i64).clamp(0, h as i64 - 1);
    let ymax = (bound(f32::max, 1).ceil() as i64).clamp(0, h as i64 - 1);
    let corners = quad.map(|[x, y]| [(x - xmin as f32) as i64, (y - ymin as f32) as i64]);
    let inside = |x: i64, y: i64| {
        let crosses = (0..4).map(|i| {
            let (a, b) = (corners[i], corners[(i + 1) % 4]);
            (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])
        });
        let (mut pos, mut neg) = (false, false);
        for c in crosses {
            pos |= c > 0;
            neg |= c < 0;
        }
        !(pos && neg)
    };
    let (mut sum, mut n) = (0f64, 0usize);
    for y in ymin..=ymax {
        for x in xmin..=xmax {
            if inside(x - xmin, y - ymin) {
                sum += f64::from(pred[y as usize * w + x as usize]);
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The box grown by `area · 1.6 / perimeter`, as the package grows it:
/// its corners truncated to integers and offset with round joins (Clipper's
/// `ClipperOffset`, ported below), then the minimum-area rectangle again.
fn unclip(quad: &[[f32; 2]; 4]) -> ([[f32; 2]; 4], f64) {
    let (area, perimeter) = (0..4).fold((0.0, 0.0), |(a, l), i| {
        let (p, q) = (quad[i].map(f64::from), quad[(i + 1) % 4].map(f64::from));
        (a + p[0] * q[1] - q[0] * p[1], l + (q[0] - p[0]).hypot(q[1] - p[1]))
    });
    let distance = area.abs() / 2.0 * UNCLIP_RATIO / perimeter;
    let corners: Vec<[i64; 2]> = quad.iter().map(|[x, y]| [*x as i64, *y as i64]).collect();
    let grown = offset_round(&corners, distance);
    let hull: Vec<[f64; 2]> = cv::convex_hull(&grown).into_iter().map(|[x, y]| [x as f64, y as f64]).collect();
    mini_box(&hull)
}

/// Clipper 6's offset of a closed polygon by `delta` with round joins
/// (arc tolerance 0.25), before its final union: the points it makes.
fn offset_round(polygon: &[[i64; 2]], delta: f64) -> Vec<[i64; 2]> {
    let mut path: Vec<[i64; 2]> = Vec::with_capacity(polygon.len());
    for p in polygon {
        if path.last() != Some(p) {
            path.push(*p);
        }
    }
    while path.len() > 1 && path.first() == path.last() {
        path.pop();
    }
    if path.len() < 3 || delta <= 0.0 {
        return path;
    }
    // Clipper's orientation: area (as it computes it) not negative
    let area: f64 = (0..path.len())
        .map(|i| {
            let (p, q) = (path[(i + path.len() - 1) % path.len()], path[i]);
            (p[0] as f64 + q[0] as f64) * (p[1] as f64 - q[1] as f64)
        })
        .sum::<f64>()
        * -0.5;
    if area < 0.0 {
        path.reverse();
    }
    let tolerance = if 0.25 > delta * 0.25 { delta * 0.25 } else { 0.25 };
    let steps = (std::f64::consts::PI / (1.0 - tolerance / delta).acos()).min(delta * std::f64::consts::PI);
    let (sin, cos) = (std::f64::consts::TAU / steps).sin_cos();
    let steps_per_rad = steps / std::f64::consts::TAU;
    let n = path.len();
    let normals: Vec<[f64; 2]> = (0..n)
        .map(|j| {
            let (a, b) = (path[j], path[(j + 1) % n]);
            let (dx, dy) = ((b[0] - a[0]) as f64, (b[1] - a[1]) as f64);
            let f = 1.0 / dx.hypot(dy);
            [dy * f, -dx * f]
        })
        .collect();
    let at = |j: usize, x: f64, y: f64| {
        [(path[j][0] as f64 + x * delta).round() as i64, (path[j][1] as f64 + y * delta).round() as i64]
    };
    let mut out = Vec::new();
    let mut k = n - 1;
    for j in 0..n {
        let (nk, nj) = (normals[k], normals[j]);
        let mut sin_a = nk[0] * nj[1] - nj[0] * nk[1];
        let cos_a = nk[0] * nj[0] + nk[1] * nj[1];
        if (sin_a * delta).abs() < 1.0 && cos_a > 0.0 {
            // near collinear: one point, and (as Clipper does) `k` stays
            out.push(at(j, nk[0], nk[1]));
            continue;
        }
        sin_a = sin_a.clamp(-1.0, 1.0);
        if sin_a * delta < 0.0 {
            out.extend([at(j, nk[0], nk[1]), path[j], at(j, nj[0], nj[1])]);
        } else {
            let a = sin_a.atan2(cos_a);
            let steps = ((steps_per_rad * a.abs()).round() as i64).max(1);
            let (mut x, mut y) = (nk[0], nk[1]);
            for _ in 0..steps {
                out.push(at(j, x, y));
                (x, y) = (x * cos - sin * y, x * sin + y * cos);
            }
            out.push(at(j, nj[0], nj[1]));
        }
        k = j;
    }
    out
}

/// The package's `order_points_clockwise` and clipping, dropping boxes 3
/// pixels or less across.
fn tidy(quad: [[i32; 2]; 4], w: usize, h: usize) -> Option<[[f32; 2]; 4]> {
    let mut by_x = quad;
    by_x.sort_by_key(|p| p[0]);
    let (mut left, mut right) = ([by_x[0], by_x[1]], [by_x[2], by_x[3]]);
    left.sort_by_key(|p| p[1]);
    right.sort_by_key(|p| p[1]);
    let rect = [left[0], right[0], right[1], left[1]]
        .map(|[x, y]| [x.clamp(0, w as i32 - 1) as f32, y.clamp(0, h as i32 - 1) as f32]);
    let length = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).hypot(a[1] - b[1]) as i64;
    (length(rect[0], rect[1]) > 3 && length(rect[0], rect[3]) > 3).then_some(rect)
}

/// The box's content, straightened: a `W × H` crop where W and H are the
/// longer of the box's opposite sides; a crop 1.5 times taller than wide
/// is turned to lie flat.
fn crop(img: &Image, quad: &[[f32; 2]; 4]) -> Image {
    let length = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
    let w = length(quad[0], quad[1]).max(length(quad[2], quad[3])) as usize;
    let h = length(quad[0], quad[3]).max(length(quad[1], quad[2])) as usize;
    let (w, h) = (w.max(1), h.max(1));
    let target = [[0.0, 0.0], [w as f64, 0.0], [w as f64, h as f64], [0.0, h as f64]];
    let source = quad.map(|[x, y]| [f64::from(x), f64::from(y)]);
    // the map from the crop back to the image
    let inverse = cv::perspective_transform(&target, &source).unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    let out = cv::warp_perspective_cubic(img, &inverse, w, h);
    if out.height as f64 / out.width as f64 >= 1.5 { out.rotate90() } else { out }
}

impl VisionOperator for TextReader {
    fn process(&mut self, decoded: &DecodedFrame) -> FrameResult {
        Ok(self
            .read(&decoded.pixels)?
            .into_iter()
            .map(|line| {
                let xs = line.quad.map(|p| p[0]);
                let ys = line.quad.map(|p| p[1]);
                let (x0, x1) =
                    (xs.iter().copied().fold(f32::MAX, f32::min), xs.iter().copied().fold(f32::MIN, f32::max));
                let (y0, y1) =
                    (ys.iter().copied().fold(f32::MAX, f32::min), ys.iter().copied().fold(f32::MIN, f32::max));
                let mut row = detection(&decoded.frame, "text", "text", line.score as f32, [x0, y0, x1 - x0, y1 - y0]);
                row.text = Some(line.text);
                row.attributes.insert("quad".into(), serde_json::json!(line.quad));
                row
            })
            .collect())
    }
}
