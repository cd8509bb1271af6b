//! Darknet's letterbox: scale the frame to fit the network input keeping its
//! aspect ratio, centre it, and fill the rest with grey.
//!
//! In *rectangular* mode the input is only as large as the scaled frame
//! rounded up to the network's stride multiple: a 640×360 frame becomes
//! 416×256 instead of 416×416, and inference does 38% less work on grey.
//!
//! Sizes follow Darknet's integer arithmetic and the resize is bilinear with
//! OpenCV's `INTER_LINEAR` pixel-centre convention, so frameflow feeds the
//! model the same tensor as the usual Python pipeline.

use engine::model::Pixels;

/// Where a frame lands inside the network input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    pub src_w: u32,
    pub src_h: u32,
    pub net_w: u32,
    pub net_h: u32,
    pub new_w: u32,
    pub new_h: u32,
    pub dx: u32,
    pub dy: u32,
}

/// A bilinear sample position: the lower source index and the weight of
/// the next one.
#[derive(Clone, Copy)]
struct Tap {
    index: usize,
    next: usize,
    weight: f32,
}

fn taps(src: u32, dst: u32) -> Vec<Tap> {
    let scale = src as f32 / dst as f32;
    let last = src as usize - 1;
    (0..dst)
        .map(|d| {
            let position = (d as f32 + 0.5) * scale - 0.5;
            let floor = position.floor();
            let (index, weight) = if floor < 0.0 {
                (0, 0.0)
            } else if floor as usize >= last {
                (last, 0.0)
            } else {
                (floor as usize, position - floor)
            };
            Tap { index, next: (index + 1).min(last), weight }
        })
        .collect()
}

impl Letterbox {
    /// A square letterbox into `net_w` × `net_h`, as Darknet does it.
    pub fn new(src_w: u32, src_h: u32, net_w: u32, net_h: u32) -> Letterbox {
        Self::fit(src_w, src_h, net_w, net_h, None)
    }

    /// Fits the frame into `net_w` × `net_h`; with `multiple`, the input
    /// shrinks to the scaled frame rounded up to that multiple.
    pub fn fit(src_w: u32, src_h: u32, net_w: u32, net_h: u32, multiple: Option<u32>) -> Letterbox {
        // Darknet compares net/src ratios and keeps integer sizes.
        let (new_w, new_h) = if (net_w as f32 / src_w as f32) < (net_h as f32 / src_h as f32) {
            (net_w, (src_h * net_w / src_w).max(1))
        } else {
            ((src_w * net_h / src_h).max(1), net_h)
        };
        let (net_w, net_h) = match multiple {
            Some(m) if m > 0 => {
                (new_w.div_ceil(m).saturating_mul(m).min(net_w), new_h.div_ceil(m).saturating_mul(m).min(net_h))
            }
            _ => (net_w, net_h),
        };
        Letterbox { src_w, src_h, net_w, net_h, new_w, new_h, dx: (net_w - new_w) / 2, dy: (net_h - new_h) / 2 }
    }

    /// Writes the letterboxed frame into `out` as planar RGB (CHW) in 0..1,
    /// `fill` outside the image.
    pub fn fill_chw(&self, pixels: &Pixels, fill: f32, out: &mut [f32]) {
        let plane = (self.net_w * self.net_h) as usize;
        debug_assert_eq!(out.len(), 3 * plane);
        out.fill(fill);
        let xs = taps(self.src_w, self.new_w);
        let ys = taps(self.src_h, self.new_h);
        let stride = self.src_w as usize * 3;
        let rgb = &pixels.rgb[..];
        for (y, ty) in ys.iter().enumerate() {
            let row0 = &rgb[ty.index * stride..][..stride];
            let row1 = &rgb[ty.next * stride..][..stride];
            let base = (self.dy as usize + y) * self.net_w as usize + self.dx as usize;
            for (x, tx) in xs.iter().enumerate() {
                let (i0, i1) = (tx.index * 3, tx.next * 3);
                for c in 0..3 {
                    let top = f32::from(row0[i0 + c]) + tx.weight * (f32::from(row0[i1 + c]) - f32::from(row0[i0 + c]));
                    let bottom =
                        f32::from(row1[i0 + c]) + tx.weight * (f32::from(row1[i1 + c]) - f32::from(row1[i0 + c]));
                    out[c * plane + base + x] = (top + ty.weight * (bottom - top)) * (1.0 / 255.0);
                }
            }
        }
    }

    /// Maps a centre-size box in network pixels back to a top-left box in
    /// pixels of the original frame, clipped to it.
    pub fn to_original(&self, cx: f32, cy: f32, w: f32, h: f32) -> [f32; 4] {
        let sx = self.new_w as f32 / self.src_w as f32;
        let sy = self.new_h as f32 / self.src_h as f32;
        let (cx, cy) = ((cx - self.dx as f32) / sx, (cy - self.dy as f32) / sy);
        let (w, h) = (w / sx, h / sy);
        let x0 = (cx - w / 2.0).clamp(0.0, self.src_w as f32);
        let y0 = (cy - h / 2.0).clamp(0.0, self.src_h as f32);
        let x1 = (cx + w / 2.0).clamp(0.0, self.src_w as f32);
        let y1 = (cy + h / 2.0).clamp(0.0, self.src_h as f32);
        [x0, y0, x1 - x0, y1 - y0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wide_frames_fill_the_width_and_centre_vertically() {
        let lb = Letterbox::new(640, 360, 416, 416);
        assert_eq!((lb.new_w, lb.new_h, lb.dx, lb.dy), (416, 234, 0, 91));
    }

    #[test]
    fn rectangular_mode_pads_only_to_the_stride_multiple() {
        let lb = Letterbox::fit(640, 360, 416, 416, Some(32));
        assert_eq!((lb.net_w, lb.net_h, lb.new_h, lb.dy), (416, 256, 234, 11));
        let tall = Letterbox::fit(360, 640, 416, 416, Some(32));
        assert_eq!((tall.net_w, tall.net_h, tall.dx), (256, 416, 11));
    }

    #[test]
    fn resize_preserves_flat_colour_and_fills_the_border() {
        let pixels = Pixels { width: 8, height: 4, rgb: Arc::from(vec![51u8; 8 * 4 * 3]) };
        let lb = Letterbox::new(8, 4, 16, 16);
        let mut out = vec![0.0; 3 * 16 * 16];
        lb.fill_chw(&pixels, 0.5, &mut out);
        assert!((out[8 * 16 + 3] - 0.2).abs() < 1e-6, "inside the image");
        assert_eq!(out[0], 0.5, "border");
    }

    #[test]
    fn boxes_map_back_to_original_pixels() {
        let lb = Letterbox::new(640, 360, 416, 416);
        let [x, y, w, h] = lb.to_original(208.0, 208.0, 104.0, 52.0);
        assert!((x - 240.0).abs() < 0.01 && (w - 160.0).abs() < 0.01, "{x} {w}");
        assert!((y - 140.0).abs() < 0.5 && (h - 80.0).abs() < 0.5, "{y} {h}");
    }
}
