//! `QR(src)`: the QR codes in a frame, read with the pure-Rust `rqrr`
//! decoder. One row per code: `label` is `qr`, `text` its payload, the box
//! the bounds of its four corners, which come as attributes too
//! (`corners`, clockwise from the top left of the code, as `[x, y]`), with
//! the code's `version`. A code found but not readable (damaged, cut off)
//! is left out.

use std::sync::Arc;

use engine::model::{DecodedFrame, Pixels};
use engine::plan::Options;
use engine::registry::{FrameResult, OperatorFactory, PreparedOperator, VisionOperator};

use crate::{check_options, detection};

#[derive(Debug, Default)]
pub struct QrFactory;

impl OperatorFactory for QrFactory {
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        check_options("QR", options, &[])?;
        Ok(Arc::new(QrFactory))
    }
}

impl PreparedOperator for QrFactory {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(QrReader))
    }
}

pub struct QrReader;

/// A code read from a frame.
#[derive(Clone, Debug, PartialEq)]
pub struct QrCode {
    pub text: String,
    pub version: usize,
    /// Corners in pixels, clockwise from the code's top left.
    pub corners: [[f32; 2]; 4],
}

/// Every readable QR code in `pixels`.
///
/// A code found but not read (its modules sampled a little off, as with
/// small codes seen at an angle) is read again from its region enlarged
/// twice, which rqrr samples more accurately; that costs time only for
/// such codes.
pub fn read_codes(pixels: &Pixels) -> Vec<QrCode> {
    let (w, h) = (pixels.width, pixels.height);
    let rgb = &pixels.rgb;
    // Luma as BT.601, as OpenCV and PIL compute grey.
    let luma = image::GrayImage::from_fn(w, h, |x, y| {
        let i = 3 * (y * w + x) as usize;
        let sum = 299 * u32::from(rgb[i]) + 587 * u32::from(rgb[i + 1]) + 114 * u32::from(rgb[i + 2]);
        image::Luma([((sum + 500) / 1000) as u8])
    });
    let mut codes = Vec::new();
    for grid in rqrr::PreparedImage::prepare(luma.clone()).detect_grids() {
        let corners = grid.bounds.map(|p| [p.x as f32, p.y as f32]);
        match grid.decode() {
            Ok((meta, text)) => codes.push(QrCode { text, version: meta.version.0, corners }),
            Err(_) => codes.extend(read_enlarged(&luma, &corners)),
        }
    }
    codes
}

/// The code whose corners are `corners`, read from its region (and a
/// margin of a quarter of its size) enlarged twice.
fn read_enlarged(luma: &image::GrayImage, corners: &[[f32; 2]; 4]) -> Option<QrCode> {
    let (x0, y0, x1, y1) = bounds(corners);
    let margin = 0.25 * (x1 - x0).max(y1 - y0);
    let left = (x0 - margin).max(0.0) as u32;
    let top = (y0 - margin).max(0.0) as u32;
    let right = ((x1 + margin) as u32).min(luma.width());
    let bottom = ((y1 + margin) as u32).min(luma.height());
    let (rw, rh) = (right.checked_sub(left)?, bottom.checked_sub(top)?);
    let region = image::imageops::crop_imm(luma, left, top, rw, rh).to_image();
    let enlarged = image::imageops::resize(&region, 2 * rw, 2 * rh, image::imageops::FilterType::Triangle);
    let mut prepared = rqrr::PreparedImage::prepare(enlarged);
    // The grid that is the code found, not a neighbour in the margin.
    prepared.detect_grids().into_iter().find_map(|grid| {
        let corners = grid.bounds.map(|p| [left as f32 + p.x as f32 / 2.0, top as f32 + p.y as f32 / 2.0]);
        let (cx, cy) =
            (corners.iter().map(|c| c[0]).sum::<f32>() / 4.0, corners.iter().map(|c| c[1]).sum::<f32>() / 4.0);
        if !(x0..=x1).contains(&cx) || !(y0..=y1).contains(&cy) {
            return None;
        }
        let (meta, text) = grid.decode().ok()?;
        Some(QrCode { text, version: meta.version.0, corners })
    })
}

/// `(x0, y0, x1, y1)` around the corners.
fn bounds(corners: &[[f32; 2]; 4]) -> (f32, f32, f32, f32) {
    corners.iter().fold((f32::MAX, f32::MAX, f32::MIN, f32::MIN), |(x0, y0, x1, y1), [x, y]| {
        (x0.min(*x), y0.min(*y), x1.max(*x), y1.max(*y))
    })
}

impl VisionOperator for QrReader {
    fn process(&mut self, decoded: &DecodedFrame) -> FrameResult {
        Ok(read_codes(&decoded.pixels)
            .into_iter()
            .map(|code| {
                let (x0, y0, x1, y1) = bounds(&code.corners);
                let mut row = detection(&decoded.frame, "qr", "qr", 1.0, [x0, y0, x1 - x0, y1 - y0]);
                row.text = Some(code.text);
                row.attributes.insert("version".into(), code.version.into());
                row.attributes.insert("corners".into(), serde_json::json!(code.corners));
                row
            })
            .collect())
    }
}
