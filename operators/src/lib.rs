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

pub mod decode;
pub mod detect;
pub mod letterbox;
pub mod onnx;
pub mod yolo;

use std::sync::Arc;

use engine::registry::Registry;

/// Adds every operator this build has to `registry`.
pub fn register(registry: &mut Registry, store: &onnx::ModelStore) {
    registry.operators.insert("detect", Arc::new(detect::DetectFactory::new(store.clone())));
}
