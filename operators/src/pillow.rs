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

/// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc`: per output
/// index `wanted`, the first input index and the fixed-point weights.
fn coefficients(filter: Filter, in_size: usize, out_size: usize, wanted: Range<usize>) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let ss = 1.0 / filter_scale;
    wanted
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
        .collect()
}

/// Rounds a fixed-point sum to 8 bits, as Pillow's `clip8`.
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// The horizontal pass over one row of `C` channels. Sums are `i32`, as
/// Pillow's are.
fn horizontal<const C: usize>(row: &[u8], coefficients: &[(usize, Vec<i32>)], out: &mut Vec<u8>) {
    for (min, k) in coefficients {
        let mut sums = [HALF; C];
        for (pixel, weight) in row[min * C..(min + k.len()) * C].chunks_exact(C).zip(k) {
            for (sum, v) in sums.iter_mut().zip(pixel) {
                *sum += i32::from(*v) * weight;
            }
        }
        out.extend(sums.map(clip8));
    }
}

/// Resizes an image of `channels` interleaved 8-bit channels from `(w, h)`
/// to `(ow, oh)`, as Pillow does.
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
    assert!(x0 + cw <= ow && y0 + ch <= oh, "crop window outside the resized image");
    let vertical: Vec<(usize, Vec<i32>)> = if oh == h {
        (y0..y0 + ch).map(|y| (y, vec![1 << PRECISION_BITS])).collect()
    } else {
        coefficients(filter, h, oh, y0..y0 + ch)
    };
    let first = vertical.iter().map(|(min, _)| *min).min().unwrap_or(0);
    let last = vertical.iter().map(|(min, k)| min + k.len()).max().unwrap_or(0);
    let row_len = cw * channels;
    let mut rows = Vec::with_capacity((last - first) * row_len);
    if ow == w {
        for y in first..last {
            rows.extend_from_slice(&pixels[(y * w + x0) * channels..][..row_len]);
        }
    } else {
        let coefficients = coefficients(filter, w, ow, x0..x0 + cw);
        for y in first..last {
            let row = &pixels[y * w * channels..][..w * channels];
            match channels {
                1 => horizontal::<1>(row, &coefficients, &mut rows),
                3 => horizontal::<3>(row, &coefficients, &mut rows),
                4 => horizontal::<4>(row, &coefficients, &mut rows),
                _ => panic!("{channels} channels: Pillow's resize takes 1, 3 or 4"),
            }
        }
    }
    if oh == h {
        return rows;
    }
    // The vertical pass, a whole output row at a time.
    let mut out = Vec::with_capacity(ch * row_len);
    let mut sums = vec![0i32; row_len];
    for (min, k) in vertical {
        sums.fill(HALF);
        for (i, weight) in k.iter().enumerate() {
            let row = &rows[(min - first + i) * row_len..][..row_len];
            for (sum, v) in sums.iter_mut().zip(row) {
                *sum += i32::from(*v) * weight;
            }
        }
        out.extend(sums.iter().map(|s| clip8(*s)));
    }
    out
}
