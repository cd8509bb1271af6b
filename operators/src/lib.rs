//! frameflow's vision operators and the models behind them.
//!
//! - [`decode`]: JPEG/PNG to RGB pixels, with size limits checked before
//!   any pixel is allocated.
//! - [`letterbox`]: fitting a frame into a network input, Darknet-style.
//! - [`yolo`]: model cards, head decoding and class-wise NMS.
//! - [`onnx`]: ONNX Runtime, loaded at run time from the set-up's library.
//! - [`detect`]: the `DETECT` operator.
//!
//! ```text
//!  Frame ─decode─▶ Pixels ─letterbox─▶ tensor ─ONNX Runtime─▶ heads ─decode+NMS─▶ Detections
//! ```

pub mod annotate;
pub mod area;
pub mod blazeface;
pub mod classify;
pub mod cv;
pub mod decode;
pub mod detect;
pub mod faces;
pub mod haar;
pub mod hash;
pub mod letterbox;
pub mod motion;
pub mod onnx;
pub mod pillow;
pub mod qr;
pub mod text;
pub mod yolo;

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::model::{Detection, Frame};
use engine::plan::Options;
use engine::registry::Registry;

/// Adds every operator this build has to `registry`.
pub fn register(registry: &mut Registry, store: &onnx::ModelStore) {
    registry.operators.insert("classify", Arc::new(classify::ClassifyFactory::new(store.clone())));
    registry.operators.insert("detect", Arc::new(detect::DetectFactory::new(store.clone())));
    registry.operators.insert("faces", Arc::new(faces::FacesFactory::new(store.clone())));
    registry.operators.insert("hash", Arc::new(hash::HashFactory));
    registry.operators.insert("motion", Arc::new(motion::MotionFactory));
    registry.operators.insert("qr", Arc::new(qr::QrFactory));
    registry.operators.insert("text", Arc::new(text::TextFactory::new(store.clone())));
    let inner = registry.operators.clone();
    registry.operators.insert("annotate", Arc::new(annotate::AnnotateFactory::new(inner, store.font.clone())));
}

/// Refuses an option the operator does not take, naming those it does.
pub(crate) fn check_options(operator: &str, options: &Options, known: &[&str]) -> Result<(), String> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) if known.is_empty() => Err(format!("{operator} has no argument `{unknown}`; it takes none")),
        Some(unknown) => Err(format!("{operator} has no argument `{unknown}`; its arguments: {}", known.join(", "))),
    }
}

/// The option `name`, a number from 0 to 1, or `default`.
pub(crate) fn fraction(options: &Options, name: &str, default: f32) -> Result<f32, String> {
    match options.get(name) {
        None => Ok(default),
        Some(text) => match text.parse::<f32>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
            _ => Err(format!("{name} = {text} is not a number between 0 and 1")),
        },
    }
}

/// The option `name`, a positive whole number, or `default`.
pub(crate) fn count(options: &Options, name: &str, default: usize) -> Result<usize, String> {
    match options.get(name) {
        None => Ok(default),
        Some(text) => text.parse().ok().filter(|n| *n > 0).ok_or(format!("{name} = {text} is not a positive integer")),
    }
}

/// A row found in `frame` by `operator`: a box `[x, y, w, h]` in pixels.
pub(crate) fn detection(frame: &Frame, operator: &str, label: &str, confidence: f32, bbox: [f32; 4]) -> Detection {
    Detection {
        frame_id: frame.frame_id.clone(),
        tenant: frame.tenant.clone(),
        source_id: frame.source_id.clone(),
        event_time: frame.event_time,
        operator: operator.into(),
        label: label.into(),
        confidence,
        x: bbox[0],
        y: bbox[1],
        w: bbox[2],
        h: bbox[3],
        track_id: None,
        text: None,
        attributes: BTreeMap::new(),
    }
}

/// Runs `work` compiled for AVX2 where the CPU has it (found at run time),
/// and as it is elsewhere: plain loops that the compiler vectorizes, no
/// `unsafe` here. Only what is inlined into `work` gains, so the closure
/// and what it calls are `#[inline(always)]`. Integer results are the same
/// either way; so are floating-point ones, as Rust never fuses or reorders
/// float operations.
pub fn vectorized<R>(work: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(work)
}
