//! `MOTION(src, history => 500, threshold => 16, min_area => 200, idle =>
//! '60s')`: moving regions per camera, from a background model of its own.
//!
//! Each camera has, per pixel, two Gaussians over RGB (mean, one variance,
//! a weight), learnt at the rate `1 / min(2n, history)` after `n` frames,
//! as OpenCV's MOG2 learns its five. A value that fits neither replaces
//! the weaker; the heavier one is the background, and the other too once
//! the heavier holds less than 90% of the weight, so a scene revealed when
//! something leaves becomes background within a few frames. A pixel is
//! moving when its squared distance to every background Gaussian is at
//! least `threshold` times its variance. The mask is opened (3×3 erosion, then dilation)
//! and its 8-connected regions of at least `min_area` pixels become rows:
//! `label = 'motion'`, the box, `attributes.area` (moving pixels), and as
//! confidence the share of the box that moves.
//!
//! Frames of a camera come to one instance in event-time order (the
//! engine's per-camera routing). A camera whose last frame is `idle` older
//! than the newest frame seen is forgotten; a frame of another size starts
//! its camera's model again.

use std::collections::HashMap;
use std::sync::Arc;

use engine::model::{DecodedFrame, Pixels};
use engine::plan::Options;
use engine::registry::{FrameResult, OperatorFactory, PreparedOperator, VisionOperator};
use engine::time::Millis;

use crate::{check_options, detection};

const OPTIONS: [&str; 4] = ["history", "threshold", "min_area", "idle"];
const VAR_INIT: f32 = 15.0;
const VAR_MIN: f32 = 4.0;
const VAR_MAX: f32 = 75.0;
/// Squared distance, in variances, within which a pixel fits a Gaussian.
const FITS: f32 = 9.0;
/// The weight the strong Gaussian must keep to be the only background.
const BACKGROUND: f32 = 0.9;

#[derive(Clone, Copy, Debug)]
pub struct MotionConfig {
    pub history: u32,
    pub threshold: f32,
    pub min_area: u32,
    pub idle_ms: Millis,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig { history: 500, threshold: 16.0, min_area: 200, idle_ms: 60_000 }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct MotionFactory;

impl OperatorFactory for MotionFactory {
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        check_options("MOTION", options, &OPTIONS)?;
        let mut config = MotionConfig::default();
        let whole = |name: &str, text: &str| {
            text.parse::<u32>().ok().filter(|v| *v > 0).ok_or(format!("{name} = {text} is not a positive integer"))
        };
        if let Some(text) = options.get("history") {
            config.history = whole("history", text)?;
        }
        if let Some(text) = options.get("min_area") {
            config.min_area = whole("min_area", text)?;
        }
        if let Some(text) = options.get("threshold") {
            config.threshold =
                text.parse().ok().filter(|v: &f32| *v > 0.0).ok_or(format!("threshold = {text} is not positive"))?;
        }
        if let Some(text) = options.get("idle") {
            let idle = humantime::parse_duration(text)
                .map_err(|e| format!("idle = '{text}' is not a duration such as '60s': {e}"))?;
            config.idle_ms = idle.as_millis() as Millis;
        }
        Ok(Arc::new(PreparedMotion(config)))
    }
}

struct PreparedMotion(MotionConfig);

impl PreparedOperator for PreparedMotion {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(Motion { config: self.0, cameras: HashMap::new(), newest: Millis::MIN }))
    }

    fn per_camera(&self) -> bool {
        true
    }
}

/// Background models per tenant and camera.
pub struct Motion {
    config: MotionConfig,
    cameras: HashMap<(Arc<str>, Arc<str>), Background>,
    newest: Millis,
}

impl Motion {
    pub fn new(config: MotionConfig) -> Motion {
        Motion { config, cameras: HashMap::new(), newest: Millis::MIN }
    }
}

/// One camera's model: per pixel two Gaussians over RGB, the stronger
/// first (mean, variance, weight).
struct Background {
    width: u32,
    height: u32,
    frames: u32,
    modes: Vec<[Mode; 2]>,
    last_seen: Millis,
}

#[derive(Clone, Copy)]
struct Mode {
    mean: [f32; 3],
    variance: f32,
    weight: f32,
}

impl Background {
    fn new(pixels: &Pixels) -> Background {
        let modes = pixels
            .rgb
            .chunks_exact(3)
            .map(|p| {
                let mean = [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])];
                let first = Mode { mean, variance: VAR_INIT, weight: 1.0 };
                [first, Mode { weight: 0.0, ..first }]
            })
            .collect();
        Background { width: pixels.width, height: pixels.height, frames: 0, modes, last_seen: 0 }
    }

    /// The moving pixels of `pixels`, updating the model.
    fn apply(&mut self, pixels: &Pixels, config: &MotionConfig) -> Vec<bool> {
        self.frames = self.frames.saturating_add(1);
        let rate = 1.0 / (2 * self.frames).min(config.history) as f32;
        let mut moving = vec![false; self.modes.len()];
        for (i, (modes, rgb)) in self.modes.iter_mut().zip(pixels.rgb.chunks_exact(3)).enumerate() {
            let value = [f32::from(rgb[0]), f32::from(rgb[1]), f32::from(rgb[2])];
            let distance = |m: &Mode| (0..3).map(|c| (m.mean[c] - value[c]).powi(2)).sum::<f32>();
            let d = [distance(&modes[0]), distance(&modes[1])];
            // Background: close to the strong mode, or to the other one
            // once the strong one no longer holds BACKGROUND of the weight.
            let background = d[0] < config.threshold * modes[0].variance
                || (modes[0].weight < BACKGROUND && d[1] < config.threshold * modes[1].variance);
            moving[i] = !background;
            for m in modes.iter_mut() {
                m.weight *= 1.0 - rate;
            }
            match (0..2).find(|k| d[*k] < FITS * modes[*k].variance) {
                Some(k) => {
                    let m = &mut modes[k];
                    m.weight += rate;
                    let step = rate / m.weight;
                    for (mean, v) in m.mean.iter_mut().zip(value) {
                        *mean += step * (v - *mean);
                    }
                    m.variance = (m.variance + step * (d[k] - m.variance)).clamp(VAR_MIN, VAR_MAX);
                }
                None => modes[1] = Mode { mean: value, variance: VAR_INIT, weight: rate },
            }
            if modes[1].weight > modes[0].weight {
                modes.swap(0, 1);
            }
            let total = modes[0].weight + modes[1].weight;
            for m in modes.iter_mut() {
                m.weight /= total;
            }
        }
        moving
    }
}

/// 3×3 erosion then dilation: specks go, regions keep their shape.
fn open(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    window3::<false>(&window3::<true>(mask, w, h), w, h)
}

/// Each pixel combined with its in-bounds 3×3 neighbours: all of them
/// (`ALL`, an erosion) or any (a dilation), as a row pass then a column
/// pass.
fn window3<const ALL: bool>(input: &[bool], w: usize, h: usize) -> Vec<bool> {
    let combine = |a: bool, b: bool| if ALL { a & b } else { a | b };
    let mut rows = vec![false; input.len()];
    for (src, dst) in input.chunks_exact(w).zip(rows.chunks_exact_mut(w)) {
        for x in 0..w {
            let left = if x > 0 { src[x - 1] } else { ALL };
            let right = if x + 1 < w { src[x + 1] } else { ALL };
            dst[x] = combine(combine(left, src[x]), right);
        }
    }
    let mut out = vec![false; input.len()];
    for y in 0..h {
        let row = &rows[y * w..(y + 1) * w];
        let up = if y > 0 { &rows[(y - 1) * w..y * w] } else { row };
        let down = if y + 1 < h { &rows[(y + 1) * w..(y + 2) * w] } else { row };
        for (x, o) in out[y * w..(y + 1) * w].iter_mut().enumerate() {
            *o = combine(combine(up[x], row[x]), down[x]);
        }
    }
    out
}

/// A region: its box `(x0, y0, x1, y1)` inclusive, and its pixel count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
    pub area: usize,
}

/// The 8-connected regions of `mask`.
fn regions(mask: &[bool], w: usize, h: usize) -> Vec<Region> {
    let start = Region { x0: usize::MAX, y0: usize::MAX, x1: 0, y1: 0, area: 0 };
    crate::cv::components(mask, w, h, start, |r, i| {
        let (x, y) = (i % w, i / w);
        *r = Region { x0: r.x0.min(x), y0: r.y0.min(y), x1: r.x1.max(x), y1: r.y1.max(y), area: r.area + 1 };
    })
}

impl Motion {
    /// The moving regions of a camera's next frame.
    pub fn regions(&mut self, camera: (Arc<str>, Arc<str>), at: Millis, pixels: &Pixels) -> Vec<Region> {
        self.newest = self.newest.max(at);
        let idle = self.config.idle_ms;
        let newest = self.newest;
        self.cameras.retain(|_, b| newest.saturating_sub(b.last_seen) <= idle);
        let model = self.cameras.entry(camera).or_insert_with(|| Background::new(pixels));
        if (model.width, model.height) != (pixels.width, pixels.height) {
            *model = Background::new(pixels);
        }
        model.last_seen = at;
        let (w, h) = (pixels.width as usize, pixels.height as usize);
        let moving = open(&model.apply(pixels, &self.config), w, h);
        regions(&moving, w, h).into_iter().filter(|r| r.area >= self.config.min_area as usize).collect()
    }
}

impl VisionOperator for Motion {
    fn process(&mut self, decoded: &DecodedFrame) -> FrameResult {
        let frame = &decoded.frame;
        let camera = (frame.tenant.clone(), frame.source_id.clone());
        Ok(self
            .regions(camera, frame.event_time, &decoded.pixels)
            .into_iter()
            .map(|r| {
                let (w, h) = ((r.x1 - r.x0 + 1) as f32, (r.y1 - r.y0 + 1) as f32);
                let mut row =
                    detection(frame, "motion", "motion", r.area as f32 / (w * h), [r.x0 as f32, r.y0 as f32, w, h]);
                row.attributes.insert("area".into(), r.area.into());
                row
            })
            .collect())
    }
}
