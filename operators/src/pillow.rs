//! Pillow's resize (`Image.resize` without `reducing_gap`), ported so that
//! operators whose reference pipelines resize with Pillow see the same
//! pixels: a separable convolution, horizontal pass first over the rows the
//! vertical pass needs, each pass in fixed point with 22 fractional bits
//! and rounded to 8 bits.

use std::ops::Range;

/// The filters ported, with Pillow's supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `Image.BILINEAR`: a triangle of support 1.
    Bilinear,
    /// `Image.LANCZOS`: a 3-lobed Lanczos window.
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Bilinear => (1.0 - x.abs()).max(0.0),
            Filter::Lanczos => {
                let sinc = |x: f64| {
                    if x == 0.0 {
                        1.0
                    } else {
                        let x = x * std::f64::consts::PI;
                        x.sin() / x
                    }
                };
                if (-3.0..3.0).contains(&x) { sinc(x) * sinc(x / 3.0) } else { 0.0 }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` for the output
/// indices `wanted`: each one's first input index and its fixed-point
/// weights, `taps` of them, zero-padded. Each window is moved inside the
/// input where it would run off its end, so that every output reads exactly
/// `taps` inputs; zero weights leave the sums as Pillow's.
struct Kernel {
    first: Vec<usize>,
    taps: usize,
    weights: Vec<i32>,
}

impl Kernel {
    fn new(filter: Filter, in_size: usize, out_size: usize, wanted: Range<usize>) -> Kernel {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = filter.support() * filter_scale;
        let ss = 1.0 / filter_scale;
        let windows: Vec<(usize, Vec<i32>)> = wanted
            .map(|xx| {
                let center = (xx as f64 + 0.5) * scale;
                let min = ((center - support + 0.5) as i64).max(0) as usize;
                let max = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                let weights: Vec<f64> = (min..max).map(|x| filter.weight((x as f64 - center + 0.5) * ss)).collect();
                let total: f64 = weights.iter().sum();
                let fixed = weights
                    .iter()
                    .map(|w| {
                        let w = if total == 0.0 { *w } else { w / total };
                        let scaled = w * f64::from(1u32 << PRECISION_BITS);
                        (if w < 0.0 { -0.5 + scaled } else { 0.5 + scaled }) as i32
                    })
                    .collect();
                (min, fixed)
            })
            .collect();
        let taps = windows.iter().map(|(_, k)| k.len()).max().unwrap_or(0);
        let mut kernel = Kernel { first: Vec::with_capacity(windows.len()), taps, weights: Vec::new() };
        kernel.weights.reserve(windows.len() * taps);
        for (min, k) in windows {
            // windows are never wider than the input, so this stays >= 0
            let first = min.min(in_size - taps);
            kernel.first.push(first);
            kernel.weights.extend(std::iter::repeat_n(0, min - first));
            kernel.weights.extend(&k);
            kernel.weights.extend(std::iter::repeat_n(0, taps - (min - first) - k.len()));
        }
        kernel
    }

    /// Per output: its first input and its weights.
    #[inline(always)]
    fn windows(&self) -> impl Iterator<Item = (usize, &[i32])> {
        self.first.iter().copied().zip(self.weights.chunks_exact(self.taps.max(1)))
    }

    /// The input indices some output reads.
    fn span(&self) -> Range<usize> {
        let first = self.first.iter().copied().min().unwrap_or(0);
        let last = self.first.iter().copied().max().map_or(0, |f| f + self.taps);
        first..last
    }
}

/// Rounds a fixed-point sum to 8 bits, as Pillow's `clip8`.
#[inline(always)]
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// The horizontal pass over one row of `C` channels into `out`. Sums are
/// `i32`, as Pillow's are. Kernels of up to 8 taps (a bilinear reduction
/// by up to 3.5, a Lanczos one by up to 1.1) get a loop of their own,
/// unrolled: with the tap count known, this pass takes a fifth less time.
/// RGB rows on x86 with AVX2 take [`avx2`]'s pass instead.
#[inline(always)]
fn horizontal<const C: usize>(row: &[u8], kernel: &Kernel, out: &mut [u8]) {
    // each arm inlines `horizontal_taps` with its tap count a constant
    match kernel.taps {
        1 => horizontal_taps::<C>(row, kernel, 1, out),
        2 => horizontal_taps::<C>(row, kernel, 2, out),
        3 => horizontal_taps::<C>(row, kernel, 3, out),
        4 => horizontal_taps::<C>(row, kernel, 4, out),
        5 => horizontal_taps::<C>(row, kernel, 5, out),
        6 => horizontal_taps::<C>(row, kernel, 6, out),
        7 => horizontal_taps::<C>(row, kernel, 7, out),
        8 => horizontal_taps::<C>(row, kernel, 8, out),
        taps => horizontal_taps::<C>(row, kernel, taps, out),
    }
}

#[inline(always)]
fn horizontal_taps<const C: usize>(row: &[u8], kernel: &Kernel, taps: usize, out: &mut [u8]) {
    for ((first, weights), pixel) in kernel.windows().zip(out.chunks_exact_mut(C)) {
        pixel.copy_from_slice(&weighted::<C>(row, first, &weights[..taps]));
    }
}

/// One output pixel of the horizontal pass: the weighted sum of the pixels
/// from `first` on.
#[inline(always)]
fn weighted<const C: usize>(row: &[u8], first: usize, weights: &[i32]) -> [u8; C] {
    let window = &row[first * C..][..weights.len() * C];
    let mut sums = [HALF; C];
    for (input, weight) in window.chunks_exact(C).zip(weights) {
        for c in 0..C {
            sums[c] += i32::from(input[c]) * weight;
        }
    }
    sums.map(clip8)
}

/// Resizes an image of `channels` interleaved 8-bit channels (1 or 3) from
/// `(w, h)` to `(ow, oh)`, as Pillow does.
pub fn resize(
    pixels: &[u8],
    channels: usize,
    (w, h): (usize, usize),
    (ow, oh): (usize, usize),
    filter: Filter,
) -> Vec<u8> {
    resize_crop(pixels, channels, (w, h), (ow, oh), [0, 0, ow, oh], filter)
}

/// The window `[x, y, width, height]` of the image [`resize`] would give:
/// the same pixels as resizing then cropping, computing only the window.
pub fn resize_crop(
    pixels: &[u8],
    channels: usize,
    (w, h): (usize, usize),
    (ow, oh): (usize, usize),
    [x0, y0, cw, ch]: [usize; 4],
    filter: Filter,
) -> Vec<u8> {
    assert!(matches!(channels, 1 | 3), "{channels} channels: the port takes 1 or 3");
    assert!(x0 + cw <= ow && y0 + ch <= oh, "crop window outside the resized image");
    let row_len = cw * channels;
    if row_len == 0 || ch == 0 {
        return Vec::new();
    }
    let vertical = (oh != h).then(|| Kernel::new(filter, h, oh, y0..y0 + ch));
    let rows_needed = vertical.as_ref().map_or(y0..y0 + ch, Kernel::span);
    let horizontal = (ow != w).then(|| Kernel::new(filter, w, ow, x0..x0 + cw));
    crate::vectorized(
        #[inline(always)]
        || {
            let rows = horizontal_pass(pixels, channels, w, [x0, cw], horizontal.as_ref(), rows_needed.clone());
            match &vertical {
                Some(vertical) => vertical_pass(&rows, row_len, rows_needed.start, vertical),
                None => rows,
            }
        },
    )
}

/// The input rows `rows`, each resized across to `width` pixels from `x0`.
#[inline(always)]
fn horizontal_pass(
    pixels: &[u8],
    channels: usize,
    w: usize,
    [x0, width]: [usize; 2],
    kernel: Option<&Kernel>,
    rows_needed: Range<usize>,
) -> Vec<u8> {
    let row_len = width * channels;
    let mut rows = vec![0u8; rows_needed.len() * row_len];
    let Some(kernel) = kernel else {
        for (y, out) in rows_needed.zip(rows.chunks_exact_mut(row_len)) {
            out.copy_from_slice(&pixels[(y * w + x0) * channels..][..row_len]);
        }
        return rows;
    };
    #[cfg(target_arch = "x86_64")]
    if channels == 3
        && let Some(simd) = pulp::x86::V3::try_new()
    {
        let pairs = avx2::TapPairs::new(kernel);
        simd.vectorize(
            #[inline(always)]
            || {
                for (y, out) in rows_needed.zip(rows.chunks_exact_mut(row_len)) {
                    avx2::horizontal_rgb(simd, &pixels[y * w * 3..][..w * 3], kernel, &pairs, out);
                }
            },
        );
        return rows;
    }
    for (y, out) in rows_needed.zip(rows.chunks_exact_mut(row_len)) {
        let row = &pixels[y * w * channels..][..w * channels];
        if channels == 1 {
            horizontal::<1>(row, kernel, out);
        } else {
            horizontal::<3>(row, kernel, out);
        }
    }
    rows
}

/// The vertical pass over `rows` (of `row_len` bytes, the first being input
/// row `first_row`), a whole output row at a time.
#[inline(always)]
fn vertical_pass(rows: &[u8], row_len: usize, first_row: usize, vertical: &Kernel) -> Vec<u8> {
    let mut out = vec![0u8; vertical.first.len() * row_len];
    let mut sums = vec![0i32; row_len];
    for ((first, weights), out) in vertical.windows().zip(out.chunks_exact_mut(row_len)) {
        sums.fill(HALF);
        let first = first - first_row;
        for (row, weight) in rows[first * row_len..].chunks_exact(row_len).zip(weights) {
            for (sum, v) in sums.iter_mut().zip(row) {
                *sum += i32::from(*v) * weight;
            }
        }
        for (o, sum) in out.iter_mut().zip(&sums) {
            *o = clip8(*sum);
        }
    }
    out
}

/// The horizontal pass on RGB rows with AVX2, the same sums as
/// [`horizontal`] in the same order of operations (integer sums, so the
/// bytes are the same). Each output pixel reads its window two taps at a
/// time: the 8 bytes from a tap on are widened to 8 `i32` lanes (R G B of
/// that tap, R G B of the next, two bytes beyond) and multiplied by the
/// pair's weights laid out to match. The scalar loop, which the compiler
/// vectorizes only 3 channels wide, takes 0.44 ms for CLASSIFY's 640x360
/// to 455x256 across (the rows and columns its crop keeps); this, 0.17 ms.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::__m256i;

    use pulp::x86::V3;

    use super::{HALF, Kernel, PRECISION_BITS};

    /// Each output's weights, a pair of taps per vector: `[w0 w0 w0 w1 w1 w1
    /// 0 0]`, the last pair of an odd count with a zero second weight.
    pub(super) struct TapPairs {
        lanes: Vec<[i32; 8]>,
        pairs: usize,
    }

    impl TapPairs {
        pub(super) fn new(kernel: &Kernel) -> TapPairs {
            let pairs = kernel.taps.div_ceil(2);
            let mut lanes = Vec::with_capacity(kernel.first.len() * pairs);
            for (_, weights) in kernel.windows() {
                for pair in 0..pairs {
                    let weight = |t: usize| weights.get(2 * pair + t).copied().unwrap_or(0);
                    let (a, b) = (weight(0), weight(1));
                    lanes.push([a, a, a, b, b, b, 0, 0]);
                }
            }
            TapPairs { lanes, pairs }
        }
    }

    #[inline(always)]
    pub(super) fn horizontal_rgb(simd: V3, row: &[u8], kernel: &Kernel, pairs: &TapPairs, out: &mut [u8]) {
        // each arm inlines `pixels` with its pair count a constant, which
        // unrolls the pairs and drops their bounds checks
        match pairs.pairs {
            1 => pixels::<1>(simd, row, kernel, pairs, out),
            2 => pixels::<2>(simd, row, kernel, pairs, out),
            3 => pixels::<3>(simd, row, kernel, pairs, out),
            4 => pixels::<4>(simd, row, kernel, pairs, out),
            _ => pixels::<0>(simd, row, kernel, pairs, out),
        }
    }

    /// `PAIRS` pairs of taps per output, or any number if 0.
    #[inline(always)]
    fn pixels<const PAIRS: usize>(simd: V3, row: &[u8], kernel: &Kernel, pairs: &TapPairs, out: &mut [u8]) {
        let (avx, avx2, sse2) = (simd.avx, simd.avx2, simd.sse2);
        let count = if PAIRS == 0 { pairs.pairs } else { PAIRS };
        // the odd taps' sums (lanes 3..5) onto the even ones' (lanes 0..2)
        let odd_down = avx._mm256_setr_epi32(3, 4, 5, 3, 4, 5, 6, 7);
        let half = avx._mm256_setr_epi32(HALF, HALF, HALF, 0, 0, 0, 0, 0);
        // outputs whose last pair's load (two bytes past the window, and a
        // pixel more for an odd tap count) stays inside the row; the rest,
        // at its end, take the scalar sum
        let fits = kernel.first.partition_point(|first| 3 * first + 6 * count + 2 <= row.len());
        let (fast, tail) = out.split_at_mut(fits.min(out.len() / 3) * 3);
        let lanes = pairs.lanes.chunks_exact(count.max(1));
        for ((&first, weights), pixel) in kernel.first.iter().zip(lanes).zip(fast.chunks_exact_mut(3)) {
            let window = &row[3 * first..][..6 * count + 2];
            let mut sum = half;
            for (pair, weights) in weights.iter().enumerate().take(count) {
                let bytes = window[6 * pair..].first_chunk().copied().map_or(0, i64::from_le_bytes);
                let values = avx2._mm256_cvtepu8_epi32(sse2._mm_set_epi64x(0, bytes));
                let weights: __m256i = pulp::cast(*weights);
                sum = avx2._mm256_add_epi32(sum, avx2._mm256_mullo_epi32(values, weights));
            }
            let sum = avx2._mm256_add_epi32(sum, avx2._mm256_permutevar8x32_epi32(sum, odd_down));
            let sum = sse2._mm_srai_epi32::<{ PRECISION_BITS as i32 }>(avx._mm256_castsi256_si128(sum));
            let words = sse2._mm_packs_epi32(sum, sum);
            let bytes = sse2._mm_cvtsi128_si32(sse2._mm_packus_epi16(words, words)).to_le_bytes();
            pixel.copy_from_slice(&bytes[..3]);
        }
        for ((first, weights), pixel) in kernel.windows().skip(fits).zip(tail.chunks_exact_mut(3)) {
            pixel.copy_from_slice(&super::weighted::<3>(row, first, weights));
        }
    }
}
