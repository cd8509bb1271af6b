//! Resizing by pixel area, as OpenCV's `INTER_AREA` does it, to the last
//! rounding step: models trained behind OpenCV's resize (MTCNN) see the same
//! inputs here as in their reference pipeline.
//!
//! OpenCV picks one of three methods (`imgproc/src/resize.cpp`), with
//! `scale = 1 / (dst / src)` per axis:
//! 1. both scales ≥ 1 and whole numbers: the mean of each block;
//! 2. both scales ≥ 1: each destination pixel a weighted sum of the source
//!    pixels it covers, rows first, then columns;
//! 3. otherwise (an axis is enlarged): bilinear, with weights computed the
//!    area way.
//!
//! Images are interleaved, `channels` values per pixel, rows top down.

use std::ops::{Add, Mul};

/// The number type sums are made in: `f32` for 8-bit images, `f64` for
/// `f64` images, as in OpenCV.
trait Acc: Copy + Default + Add<Output = Self> + Mul<Output = Self> + From<f32> {}
impl Acc for f32 {}
impl Acc for f64 {}

/// An 8-bit image resized; it may only shrink (an enlarged axis goes
/// through the `f64` path and is rounded).
pub fn resize_u8(src: &[u8], from: (usize, usize), to: (usize, usize), channels: usize) -> Vec<u8> {
    crate::vectorized(
        #[inline(always)]
        || resize_u8_plain(src, from, to, channels),
    )
}

/// An `f64` image resized.
pub fn resize_f64(src: &[f64], from: (usize, usize), to: (usize, usize), channels: usize) -> Vec<f64> {
    crate::vectorized(
        #[inline(always)]
        || resize_f64_plain(src, from, to, channels),
    )
}

/// Halves to even, as OpenCV's cvRound; sums of pixels by positive
/// weights are never negative, so truncation is the floor.
#[inline(always)]
fn round(v: f32) -> u8 {
    let floor = v as u32;
    let rest = v - floor as f32;
    let up = rest > 0.5 || (rest == 0.5 && floor % 2 == 1);
    (floor + u32::from(up)).min(255) as u8
}

/// Each value [`round`]ed.
#[inline(always)]
fn rounded(values: &[f32]) -> Vec<u8> {
    let mut out = vec![0; values.len()];
    for (o, v) in out.iter_mut().zip(values) {
        *o = round(*v);
    }
    out
}

#[inline(always)]
fn resize_u8_plain(src: &[u8], (sw, sh): (usize, usize), (dw, dh): (usize, usize), channels: usize) -> Vec<u8> {
    match method(sw, sh, dw, dh) {
        Method::Blocks(2, 2) => {
            // OpenCV's 2×2 path rounds halves up: (sum + 2) >> 2.
            (0..dw * dh * channels).map(|i| ((block_sum(src, (sw, dw), (2, 2), channels, i) + 2) >> 2) as u8).collect()
        }
        Method::Blocks(bx, by) => rounded(&blocks(|i| f32::from(src[i]), (sw, dw, dh), (bx, by), channels)),
        Method::Area => rounded(&area(src, f32::from, (sw, sh), (dw, dh), channels)),
        Method::Bilinear => {
            let wide: Vec<f64> = src.iter().map(|v| f64::from(*v)).collect();
            bilinear(&wide, (sw, sh), (dw, dh), channels).into_iter().map(|v| round(v as f32)).collect()
        }
    }
}

#[inline(always)]
fn resize_f64_plain(src: &[f64], (sw, sh): (usize, usize), (dw, dh): (usize, usize), channels: usize) -> Vec<f64> {
    match method(sw, sh, dw, dh) {
        Method::Blocks(bx, by) => blocks(|i| src[i], (sw, dw, dh), (bx, by), channels),
        Method::Area => area(src, |v| v, (sw, sh), (dw, dh), channels),
        Method::Bilinear => bilinear(src, (sw, sh), (dw, dh), channels),
    }
}

enum Method {
    Blocks(usize, usize),
    Area,
    Bilinear,
}

fn scales(sw: usize, sh: usize, dw: usize, dh: usize) -> (f64, f64) {
    (1.0 / (dw as f64 / sw as f64), 1.0 / (dh as f64 / sh as f64))
}

fn method(sw: usize, sh: usize, dw: usize, dh: usize) -> Method {
    let (sx, sy) = scales(sw, sh, dw, dh);
    if sx < 1.0 || sy < 1.0 {
        return Method::Bilinear;
    }
    let whole = |s: f64| (s - s.round()).abs() < f64::EPSILON;
    if whole(sx) && whole(sy) { Method::Blocks(sx.round() as usize, sy.round() as usize) } else { Method::Area }
}

/// Sum of the 8-bit block behind destination value `i`.
#[inline(always)]
fn block_sum(src: &[u8], (sw, dw): (usize, usize), (bx, by): (usize, usize), channels: usize, i: usize) -> u32 {
    let (c, pixel) = (i % channels, i / channels);
    let (dx, dy) = (pixel % dw, pixel / dw);
    let mut sum = 0;
    for y in dy * by..(dy + 1) * by {
        for x in dx * bx..(dx + 1) * bx {
            sum += u32::from(src[(y * sw + x) * channels + c]);
        }
    }
    sum
}

/// Method 1: block means, the sum times `1 / area` as an `f32`.
#[inline(always)]
fn blocks<A: Acc>(
    src: impl Fn(usize) -> A,
    (sw, dw, dh): (usize, usize, usize),
    (bx, by): (usize, usize),
    channels: usize,
) -> Vec<A> {
    let scale = A::from(1.0 / (bx * by) as f32);
    let mut out = Vec::with_capacity(dw * dh * channels);
    for dy in 0..dh {
        for dx in 0..dw {
            for c in 0..channels {
                let mut sum = A::default();
                for y in dy * by..(dy + 1) * by {
                    for x in dx * bx..(dx + 1) * bx {
                        sum = sum + src((y * sw + x) * channels + c);
                    }
                }
                out.push(sum * scale);
            }
        }
    }
    out
}

/// `computeResizeAreaTab`: per destination index, the source indices and
/// their weights, in OpenCV's order.
fn area_table(source: usize, dest: usize, scale: f64) -> Vec<(usize, usize, f32)> {
    let mut table = Vec::new();
    for d in 0..dest {
        let f1 = d as f64 * scale;
        let f2 = f1 + scale;
        let cell = scale.min(source as f64 - f1);
        let s2 = (f2.floor() as usize).min(source - 1);
        let s1 = (f1.ceil() as usize).min(s2);
        if s1 as f64 - f1 > 1e-3 {
            table.push((d, s1 - 1, ((s1 as f64 - f1) / cell) as f32));
        }
        for s in s1..s2 {
            table.push((d, s, (1.0 / cell) as f32));
        }
        if f2 - s2 as f64 > 1e-3 {
            table.push((d, s2, ((f2 - s2 as f64).min(1.0).min(cell) / cell) as f32));
        }
    }
    table
}

/// Method 2: each source row summed across by the column weights, then
/// rows summed down by the row weights. A source row that two destination
/// rows share is summed across once.
#[inline(always)]
fn area<T: Copy, A: Acc>(
    src: &[T],
    to: impl Fn(T) -> A,
    (sw, sh): (usize, usize),
    (dw, dh): (usize, usize),
    channels: usize,
) -> Vec<A> {
    let (sx, sy) = scales(sw, sh, dw, dh);
    // Per destination column, in order, its source columns and weights.
    let mut columns: Vec<Vec<(usize, A)>> = vec![Vec::new(); dw];
    for (d, s, w) in area_table(sw, dw, sx) {
        columns[d].push((s * channels, A::from(w)));
    }
    let rows = area_table(sh, dh, sy);
    let row_len = dw * channels;
    let mut out = vec![A::default(); dh * row_len];
    let mut across = vec![A::default(); row_len];
    let mut summed = usize::MAX;
    for &(dy, y, beta) in &rows {
        if y != summed {
            let row = &src[y * sw * channels..(y + 1) * sw * channels];
            // Summed in registers, in the table's order, from zero.
            if channels == 3 {
                for (taps, pixel) in columns.iter().zip(across.chunks_exact_mut(3)) {
                    let mut sum = [A::default(); 3];
                    for &(s, alpha) in taps {
                        let p = &row[s..s + 3];
                        sum = [sum[0] + to(p[0]) * alpha, sum[1] + to(p[1]) * alpha, sum[2] + to(p[2]) * alpha];
                    }
                    pixel.copy_from_slice(&sum);
                }
            } else {
                for (taps, pixel) in columns.iter().zip(across.chunks_exact_mut(channels)) {
                    for (c, value) in pixel.iter_mut().enumerate() {
                        *value = taps.iter().fold(A::default(), |sum, &(s, alpha)| sum + to(row[s + c]) * alpha);
                    }
                }
            }
            summed = y;
        }
        let beta = A::from(beta);
        let line = &mut out[dy * row_len..(dy + 1) * row_len];
        for (o, a) in line.iter_mut().zip(&across) {
            *o = *o + beta * *a;
        }
    }
    out
}

/// Per destination index: the source index and the weights of it and the
/// next, the area way.
fn bilinear_table(source: usize, dest: usize, scale: f64, inverse: f64) -> Vec<(usize, [f32; 2])> {
    (0..dest)
        .map(|d| {
            let s = (d as f64 * scale).floor().max(0.0) as usize;
            let f = ((d + 1) as f64 - (s + 1) as f64 * inverse) as f32;
            let f = if f <= 0.0 { 0.0 } else { f - f.floor() };
            if s + 1 >= source { (source - 1, [1.0, 0.0]) } else { (s, [1.0 - f, f]) }
        })
        .collect()
}

/// Method 3, in `f64` with `f32` weights.
#[inline(always)]
fn bilinear(src: &[f64], (sw, sh): (usize, usize), (dw, dh): (usize, usize), channels: usize) -> Vec<f64> {
    let (sx, sy) = scales(sw, sh, dw, dh);
    let columns = bilinear_table(sw, dw, sx, dw as f64 / sw as f64);
    let rows = bilinear_table(sh, dh, sy, dh as f64 / sh as f64);
    // Each source row needed, resized across.
    let across = |y: usize| -> Vec<f64> {
        let row = &src[y * sw * channels..(y + 1) * sw * channels];
        let mut out = Vec::with_capacity(dw * channels);
        for &(x, [a0, a1]) in &columns {
            let next = (x + 1).min(sw - 1);
            for c in 0..channels {
                out.push(row[x * channels + c] * f64::from(a0) + row[next * channels + c] * f64::from(a1));
            }
        }
        out
    };
    // Each source row is resized across once, when first needed.
    let mut done: Vec<Option<Vec<f64>>> = vec![None; sh];
    let mut out = Vec::with_capacity(dw * dh * channels);
    for &(y, [b0, b1]) in &rows {
        let next = (y + 1).min(sh - 1);
        for row in [y, next] {
            if done[row].is_none() {
                done[row] = Some(across(row));
            }
        }
        let (top, bottom) = (done[y].as_deref().unwrap_or_default(), done[next].as_deref().unwrap_or_default());
        out.extend(top.iter().zip(bottom).map(|(t, b)| t * f64::from(b0) + b * f64::from(b1)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_to_even_when_shrinking() {
        // 3 to 2 pixels: weights 2/3 and 1/3 give 0.5 and 2.5 exactly
        // only where the sums land on halves; check the rule directly on
        // values OpenCV rounds: 1.5 -> 2, 2.5 -> 2, 0.5 -> 0.
        let src = [0u8, 3, 0, 3, 6, 9];
        let out = resize_u8(&src, (3, 2), (2, 1), 1);
        let wide: Vec<f64> = src.iter().map(|v| f64::from(*v)).collect();
        let exact = resize_f64(&wide, (3, 2), (2, 1), 1);
        for (o, e) in out.iter().zip(&exact) {
            assert_eq!(f64::from(*o), (*e as f32).round_ties_even() as f64, "{out:?} from {exact:?}");
        }
    }

    #[test]
    fn whole_blocks_are_averaged_and_halves_round_up_for_two_by_two() {
        // One channel, 4×2 to 2×1: blocks [1, 2, 5, 6] and [3, 4, 7, 8].
        let src = [1u8, 2, 3, 4, 5, 6, 7, 9];
        assert_eq!(resize_u8(&src, (4, 2), (2, 1), 1), [4, 6]); // 14/4 = 3.5 -> 4; 23/4 = 5.75 -> 6
        let wide: Vec<f64> = src.iter().map(|v| f64::from(*v)).collect();
        assert_eq!(resize_f64(&wide, (4, 2), (2, 1), 1), [3.5, 5.75]);
    }

    #[test]
    fn a_fractional_shrink_weighs_the_pixels_it_covers() {
        // 3 pixels to 2: each destination covers 1.5 source pixels, with
        // f32 weights; OpenCV gives 30.00000089 and 50.00000149.
        let out = resize_f64(&[0.0, 90.0, 30.0], (3, 1), (2, 1), 1);
        let w1 = f64::from((1.0f64 / 1.5) as f32);
        let w2 = f64::from((0.5f64 / 1.5) as f32);
        assert_eq!(out, [90.0 * w2, 90.0 * w2 + 30.0 * w1]);
        assert!((out[0] - 30.00000089).abs() < 1e-7 && (out[1] - 50.00000149).abs() < 1e-7, "{out:?}");
    }

    #[test]
    fn an_enlargement_is_bilinear_with_area_weights() {
        // What OpenCV 5's cv2.resize(..., INTER_AREA) gives for these rows.
        assert_eq!(resize_f64(&[10.0, 30.0], (2, 1), (4, 1), 1), [10.0, 10.0, 30.0, 30.0]);
        let out = resize_f64(&[10.0, 30.0, 50.0], (3, 1), (5, 1), 1);
        let expected = [10.0, 16.66666657, 30.0, 43.33333373, 50.0];
        assert!(out.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-7), "{out:?}");
    }
}
