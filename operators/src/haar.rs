//! `FACES(src, model => 'haar')`: Viola–Jones with OpenCV's Haar cascade
//! (`haarcascade_frontalface_default.xml`, converted by
//! `scripts/haar2json.py`), as OpenCV 4's `CascadeClassifier::
//! detectMultiScale(gray)` runs it with its defaults (scale factor 1.1,
//! 3 neighbours):
//!
//! ```text
//!  RGB ─grey (OpenCV's fixed point)─▶ per scale 1.1^k: resize (INTER_LINEAR_EXACT) ─▶ integral images
//!      ─▶ every window (step 2, or 1 from scale 2): variance-normalised stump stages ─▶ candidates
//!      ─▶ groupRectangles (eps 0.2): clusters of more than 3, averaged, small ones inside big ones dropped
//! ```
//!
//! One row per face: `label` is `face`, the box, confidence 1 (a cascade
//! has none), and `attributes.neighbours`, how many windows agreed.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use engine::model::{DecodedFrame, Pixels};
use engine::registry::{FrameResult, PreparedOperator, VisionOperator};

use crate::detection;
use crate::onnx::ModelStore;

const SCALE_FACTOR: f64 = 1.1;
const MIN_NEIGHBOURS: usize = 3;
const GROUP_EPS: f64 = 0.2;
/// OpenCV lowers every stage threshold by this much.
const THRESHOLD_EPS: f32 = 1e-5;

#[derive(Debug, Deserialize)]
struct Card {
    cascade: PathBuf,
}

/// A cascade as `scripts/haar2json.py` writes it.
#[derive(Debug, Deserialize)]
pub struct Cascade {
    window: [usize; 2],
    stages: Vec<Stage>,
    /// Per feature, its rectangles `[x, y, w, h, weight]`.
    features: Vec<Vec<[f32; 5]>>,
}

#[derive(Debug, Deserialize)]
struct Stage {
    threshold: f32,
    /// `[feature, threshold, left, right]`.
    stumps: Vec<(usize, f32, f32, f32)>,
}

/// A face: its box and how many windows agreed on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HaarFace {
    pub rect: [i32; 4],
    pub neighbours: usize,
}

/// The cascade, read and checked once per job; workers share it.
pub struct PreparedHaar {
    cascade: Arc<Cascade>,
}

impl PreparedHaar {
    pub fn load(store: &ModelStore, model: &str) -> Result<PreparedHaar, String> {
        let card: Card = store.card(model, "haar", "FACES")?;
        let path = store.models_dir.join(&card.cascade);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("model `{model}`: cannot read its cascade `{}`: {e}", path.display()))?;
        let cascade: Cascade =
            serde_json::from_str(&text).map_err(|e| format!("model `{model}`: cascade `{}`: {e}", path.display()))?;
        let [w, h] = cascade.window;
        let fits = |r: &[f32; 5]| r[0] >= 0.0 && r[1] >= 0.0 && r[0] + r[2] <= w as f32 && r[1] + r[3] <= h as f32;
        let bad_stump = cascade.stages.iter().flat_map(|s| &s.stumps).any(|s| s.0 >= cascade.features.len());
        let bad_rect = cascade.features.iter().flatten().any(|r| !fits(r));
        if w < 3 || h < 3 || bad_stump || bad_rect {
            return Err(format!("model `{model}`: cascade `{}` is inconsistent", path.display()));
        }
        Ok(PreparedHaar { cascade: Arc::new(cascade) })
    }

    pub fn detector(&self) -> Haar {
        Haar { cascade: self.cascade.clone() }
    }
}

impl PreparedOperator for PreparedHaar {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(self.detector()))
    }
}

pub struct Haar {
    cascade: Arc<Cascade>,
}

/// `cvRound` of a float: halves to even.
fn round(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Sums over rectangles of an image (`i32`, as OpenCV keeps them), and of
/// its squares.
struct Integral {
    width: usize,
    sum: Vec<i32>,
    squares: Vec<i64>,
}

impl Integral {
    fn new(grey: &[u8], w: usize, h: usize) -> Integral {
        let stride = w + 1;
        let (mut sum, mut squares) = (vec![0i32; stride * (h + 1)], vec![0i64; stride * (h + 1)]);
        for y in 0..h {
            let (mut row, mut row_sq) = (0i32, 0i64);
            for x in 0..w {
                let v = grey[y * w + x];
                // wrapping, as OpenCV's int32 sums wrap on large frames:
                // a window's sum, a difference of four, is still exact
                row = row.wrapping_add(i32::from(v));
                row_sq += i64::from(v) * i64::from(v);
                sum[(y + 1) * stride + x + 1] = sum[y * stride + x + 1].wrapping_add(row);
                squares[(y + 1) * stride + x + 1] = squares[y * stride + x + 1] + row_sq;
            }
        }
        Integral { width: stride, sum, squares }
    }

    fn sum(&self, [x, y, w, h]: [usize; 4]) -> i32 {
        let (t, s) = (&self.sum, self.width);
        t[(y + h) * s + x + w]
            .wrapping_sub(t[y * s + x + w])
            .wrapping_sub(t[(y + h) * s + x])
            .wrapping_add(t[y * s + x])
    }

    fn squares(&self, [x, y, w, h]: [usize; 4]) -> i64 {
        let (t, s) = (&self.squares, self.width);
        t[(y + h) * s + x + w] - t[y * s + x + w] - t[(y + h) * s + x] + t[y * s + x]
    }
}

/// A stump with its feature's rectangles as offsets into one scale's
/// integral image, from a window's top left corner (as OpenCV's
/// `OptFeature`): each rectangle's four corners and its weight.
struct Stump {
    rects: [([usize; 4], f32); 3],
    count: usize,
    threshold: f32,
    left: f32,
    right: f32,
}

impl Stump {
    fn value(&self, sum: &[i32], at: usize) -> f32 {
        let rect = |([a, b, c, d], _): &([usize; 4], f32)| {
            sum[at + a].wrapping_sub(sum[at + b]).wrapping_sub(sum[at + c]).wrapping_add(sum[at + d]) as f32
        };
        let mut value = self.rects[0].1 * rect(&self.rects[0]) + self.rects[1].1 * rect(&self.rects[1]);
        if self.count > 2 {
            value += self.rects[2].1 * rect(&self.rects[2]);
        }
        value
    }
}

impl Haar {
    pub fn detect(&self, pixels: &Pixels) -> Vec<HaarFace> {
        let (w, h) = (pixels.width as usize, pixels.height as usize);
        // OpenCV's BGR2GRAY in fixed point
        let grey: Vec<u8> = pixels
            .rgb
            .chunks_exact(3)
            .map(|p| ((u32::from(p[2]) * 1868 + u32::from(p[1]) * 9617 + u32::from(p[0]) * 4899 + 8192) >> 14) as u8)
            .collect();
        let [ww, wh] = self.cascade.window;
        let mut scales = Vec::new();
        let mut factor = 1f64;
        loop {
            let window =
                ((ww as f64 * factor).round_ties_even() as usize, (wh as f64 * factor).round_ties_even() as usize);
            if window.0 > w || window.1 > h {
                break;
            }
            scales.push(factor as f32);
            factor *= SCALE_FACTOR;
        }
        let mut candidates = Vec::new();
        for scale in scales {
            let window = [round(ww as f32 * scale), round(wh as f32 * scale)];
            if window[0] as usize > w || window[1] as usize > h {
                break;
            }
            let (sw, sh) = (round(w as f32 / scale).max(0) as usize, round(h as f32 / scale).max(0) as usize);
            let resized = resize_linear_exact(&grey, (w, h), (sw, sh));
            let integral = Integral::new(&resized, sw, sh);
            let stumps = self.stumps(integral.width);
            let step = if scale >= 2.0 { 1 } else { 2 };
            let (across, down) = ((sw + 1).saturating_sub(ww), (sh + 1).saturating_sub(wh));
            for y in (0..down).step_by(step) {
                let mut x = 0;
                while x < across {
                    let result = self.run_at(&integral, &stumps, x, y);
                    if result > 0 {
                        candidates.push([round(x as f32 * scale), round(y as f32 * scale), window[0], window[1]]);
                    }
                    // a window that fails the first stage skips its neighbour
                    x += if result == 0 { 2 * step } else { step };
                }
            }
        }
        group_rectangles(&candidates)
    }

    /// The cascade's stumps, in order, with offsets for an integral image
    /// of rows `stride` long.
    fn stumps(&self, stride: usize) -> Vec<Stump> {
        let stumps = self.cascade.stages.iter().flat_map(|s| &s.stumps);
        stumps
            .map(|&(feature, threshold, left, right)| {
                let mut rects = [([0usize; 4], 0f32); 3];
                let features = &self.cascade.features[feature];
                for (slot, r) in rects.iter_mut().zip(features) {
                    let [x, y, w, h] = [r[0], r[1], r[2], r[3]].map(|v| v as usize);
                    let corners = [(y + h) * stride + x + w, y * stride + x + w, (y + h) * stride + x, y * stride + x];
                    *slot = (corners, r[4]);
                }
                Stump { rects, count: features.len(), threshold, left, right }
            })
            .collect()
    }

    /// 1 when every stage passes, minus the failing stage's index when one
    /// fails, −1 for a window too flat to judge.
    fn run_at(&self, integral: &Integral, stumps: &[Stump], x: usize, y: usize) -> i64 {
        let [ww, wh] = self.cascade.window;
        let stride = integral.width;
        let inner = [x + 1, y + 1, ww - 2, wh - 2];
        let area = ((ww - 2) * (wh - 2)) as f64;
        let sum = f64::from(integral.sum(inner));
        let squares = integral.squares(inner) as f64;
        let spread = area * squares - sum * sum;
        if spread <= 0.0 {
            return -1;
        }
        let norm = (1.0 / spread.sqrt()) as f32;
        if area * f64::from(norm) >= 0.1 {
            return -1;
        }
        let at = y * stride + x;
        let mut next = stumps.iter();
        for (index, stage) in self.cascade.stages.iter().enumerate() {
            let mut total = 0f64;
            for stump in next.by_ref().take(stage.stumps.len()) {
                let value = stump.value(&integral.sum, at) * norm;
                total += f64::from(if value < stump.threshold { stump.left } else { stump.right });
            }
            if total < f64::from(stage.threshold - THRESHOLD_EPS) {
                return -(index as i64);
            }
        }
        1
    }
}

/// `cv2.resize(..., INTER_LINEAR_EXACT)` of a grey image: weights in 8
/// fractional bits, rows summed in 16, rounded once.
fn resize_linear_exact(src: &[u8], (sw, sh): (usize, usize), (dw, dh): (usize, usize)) -> Vec<u8> {
    if (sw, sh) == (dw, dh) {
        return src.to_vec();
    }
    // per output index: the first source index and the two weights
    let taps = |d: usize, s: usize| -> Vec<(usize, u32, u32)> {
        // as OpenCV computes it: 1 / (d / s), which rounds differently from s / d
        let scale = 1.0 / (d as f64 / s as f64);
        (0..d)
            .map(|i| {
                let f = (i as f64 + 0.5) * scale - 0.5;
                let at = f.floor();
                if at < 0.0 {
                    (0, 256, 0)
                } else if at as usize >= s - 1 {
                    (s - 1, 256, 0)
                } else {
                    let w1 = ((f - at) * 256.0).round_ties_even() as u32;
                    (at as usize, 256 - w1, w1)
                }
            })
            .collect()
    };
    let (columns, rows) = (taps(dw, sw), taps(dh, sh));
    let horizontal = |y: usize| -> Vec<u32> {
        let row = &src[y * sw..(y + 1) * sw];
        columns
            .iter()
            .map(|&(x, a0, a1)| u32::from(row[x]) * a0 + if a1 > 0 { u32::from(row[x + 1]) * a1 } else { 0 })
            .collect()
    };
    let mut out = Vec::with_capacity(dw * dh);
    for &(y, b0, b1) in &rows {
        let top = horizontal(y);
        let bottom = if b1 > 0 { horizontal(y + 1) } else { vec![0; dw] };
        out.extend(top.iter().zip(&bottom).map(|(t, b)| ((t * b0 + b * b1 + (1 << 15)) >> 16).min(255) as u8));
    }
    out
}

/// OpenCV's `groupRectangles(rects, 3, 0.2)`: clusters of similar
/// rectangles, each averaged, kept when it has more than 3 members and is
/// not a small one inside a bigger, better supported one.
fn group_rectangles(rects: &[[i32; 4]]) -> Vec<HaarFace> {
    let n = rects.len();
    let similar = |a: &[i32; 4], b: &[i32; 4]| {
        let delta = GROUP_EPS * f64::from(a[2].min(b[2]) + a[3].min(b[3])) * 0.5;
        let close = |u: i32, v: i32| f64::from((u - v).abs()) <= delta;
        close(a[0], b[0]) && close(a[1], b[1]) && close(a[0] + a[2], b[0] + b[2]) && close(a[1] + a[3], b[1] + b[3])
    };
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..n {
        for j in i + 1..n {
            if similar(&rects[i], &rects[j]) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[b] = a;
                }
            }
        }
    }
    // classes in the order of their first member
    let mut class_of_root = std::collections::HashMap::new();
    let mut sums: Vec<([i64; 4], usize)> = Vec::new();
    for (i, rect) in rects.iter().enumerate() {
        let r = root(&mut parent, i);
        let next = class_of_root.len();
        let class = *class_of_root.entry(r).or_insert(next);
        if class == sums.len() {
            sums.push(([0; 4], 0));
        }
        for (total, v) in sums[class].0.iter_mut().zip(rect) {
            *total += i64::from(*v);
        }
        sums[class].1 += 1;
    }
    let averaged: Vec<([i32; 4], usize)> = sums
        .iter()
        .map(|(s, count)| {
            let scale = 1.0 / *count as f32;
            (s.map(|v| round(v as f32 * scale)), *count)
        })
        .collect();
    let mut faces = Vec::new();
    for (i, &(r1, n1)) in averaged.iter().enumerate() {
        if n1 <= MIN_NEIGHBOURS {
            continue;
        }
        let inside_bigger = averaged.iter().enumerate().any(|(j, &(r2, n2))| {
            if j == i || n2 <= MIN_NEIGHBOURS {
                return false;
            }
            let (dx, dy) = (
                (f64::from(r2[2]) * GROUP_EPS).round_ties_even() as i32,
                (f64::from(r2[3]) * GROUP_EPS).round_ties_even() as i32,
            );
            r1[0] >= r2[0] - dx
                && r1[1] >= r2[1] - dy
                && r1[0] + r1[2] <= r2[0] + r2[2] + dx
                && r1[1] + r1[3] <= r2[1] + r2[3] + dy
                && (n2 > n1.max(3) || n1 < 3)
        });
        if !inside_bigger {
            faces.push(HaarFace { rect: r1, neighbours: n1 });
        }
    }
    faces
}

impl VisionOperator for Haar {
    fn process(&mut self, decoded: &DecodedFrame) -> FrameResult {
        Ok(self
            .detect(&decoded.pixels)
            .into_iter()
            .map(|face| {
                let mut row = detection(&decoded.frame, "faces", "face", 1.0, face.rect.map(|v| v as f32));
                row.attributes.insert("neighbours".into(), face.neighbours.into());
                row
            })
            .collect())
    }
}
