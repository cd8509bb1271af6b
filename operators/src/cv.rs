//! OpenCV routines that TEXT's reference pipeline (rapidocr on OpenCV 5)
//! calls, ported so that frameflow's crops and network inputs match it:
//! `cv2.resize` (bilinear, its fixed-point roundings), the convex hull and
//! minimum-area rectangle, and `warpPerspective` with bicubic sampling and
//! replicated borders; and 8-connected components, which MOTION uses too.

/// An 8-bit image of `channels` interleaved channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl Image {
    pub fn at(&self, x: usize, y: usize) -> &[u8] {
        let i = (y * self.width + x) * self.channels;
        &self.data[i..i + self.channels]
    }

    /// Turned 90° counter-clockwise (`np.rot90`).
    pub fn rotate90(&self) -> Image {
        let mut data = Vec::with_capacity(self.data.len());
        for i in 0..self.width {
            for j in 0..self.height {
                data.extend_from_slice(self.at(self.width - 1 - i, j));
            }
        }
        Image { width: self.height, height: self.width, channels: self.channels, data }
    }

    /// Turned 180° (`cv2.rotate(img, ROTATE_180)`).
    pub fn rotate180(&self) -> Image {
        let data = self.data.chunks_exact(self.channels).rev().flatten().copied().collect();
        Image { data, ..self.clone() }
    }
}

/// `saturate_cast<short>(v * 2048)`: rounded half to even.
fn fixed(v: f32) -> i32 {
    (v * 2048.0).round_ties_even() as i32
}

/// `cv2.resize(src, (dw, dh))` with `INTER_LINEAR`, as OpenCV 5 computes it
/// for 8-bit images: 11-bit weights, and the vertical pass's own rounding
/// `((b0·(h0>>4))>>16 + (b1·(h1>>4))>>16 + 2) >> 2`.
pub fn resize_linear(src: &Image, dw: usize, dh: usize) -> Image {
    let (sw, sh, c) = (src.width, src.height, src.channels);
    if (dw, dh) == (sw, sh) {
        return src.clone();
    }
    let scale_x = 1.0 / (dw as f64 / sw as f64);
    let scale_y = 1.0 / (dh as f64 / sh as f64);
    let mut data = Vec::with_capacity(dw * dh * c);
    if (scale_x - 2.0).abs() < f64::EPSILON && (scale_y - 2.0).abs() < f64::EPSILON {
        // an exact halving takes OpenCV's area path
        for y in 0..dh {
            for x in 0..dw {
                for k in 0..c {
                    let v = |xx: usize, yy: usize| u32::from(src.data[(yy * sw + xx) * c + k]);
                    let sum = v(2 * x, 2 * y) + v(2 * x + 1, 2 * y) + v(2 * x, 2 * y + 1) + v(2 * x + 1, 2 * y + 1);
                    data.push(((sum + 2) >> 2) as u8);
                }
            }
        }
        return Image { width: dw, height: dh, channels: c, data };
    }
    let position = |d: usize, scale: f64| {
        let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
        let s = f.floor();
        (s as i64, f - s)
    };
    let columns: Vec<(usize, usize, i32, i32)> = (0..dw)
        .map(|dx| {
            let (mut sx, mut fx) = position(dx, scale_x);
            if sx < 0 {
                (sx, fx) = (0, 0.0);
            }
            if sx >= sw as i64 - 1 {
                (sx, fx) = (sw as i64 - 1, 0.0);
            }
            let sx = sx as usize;
            (sx, (sx + 1).min(sw - 1), fixed(1.0 - fx), fixed(fx))
        })
        .collect();
    let horizontal = |y: usize| -> Vec<i32> {
        let row = &src.data[y * sw * c..(y + 1) * sw * c];
        let mut out = Vec::with_capacity(dw * c);
        for &(s0, s1, a0, a1) in &columns {
            for k in 0..c {
                out.push(i32::from(row[s0 * c + k]) * a0 + i32::from(row[s1 * c + k]) * a1);
            }
        }
        out
    };
    let mut cache: Option<(usize, Vec<i32>)> = None;
    for dy in 0..dh {
        let (sy, fy) = position(dy, scale_y);
        let (b0, b1) = (fixed(1.0 - fy), fixed(fy));
        let r0 = sy.clamp(0, sh as i64 - 1) as usize;
        let r1 = (sy + 1).clamp(0, sh as i64 - 1) as usize;
        let h0 = match cache.take() {
            Some((row, values)) if row == r0 => values,
            _ => horizontal(r0),
        };
        let h1 = if r1 == r0 { h0.clone() } else { horizontal(r1) };
        for (v0, v1) in h0.iter().zip(&h1) {
            let v = (((b0 * (v0 >> 4)) >> 16) + ((b1 * (v1 >> 4)) >> 16) + 2) >> 2;
            data.push(v.clamp(0, 255) as u8);
        }
        cache = Some((r1, h1));
    }
    Image { width: dw, height: dh, channels: c, data }
}

/// The 8-connected components of `mask` (`w × h`, row by row), each
/// folded from `start` over the indices of its pixels; components in the
/// raster order of their first pixel.
pub fn components<T: Clone>(mask: &[bool], w: usize, h: usize, start: T, fold: impl Fn(&mut T, usize)) -> Vec<T> {
    let mut seen = vec![false; mask.len()];
    let mut found = Vec::new();
    let mut stack = Vec::new();
    for first in 0..mask.len() {
        if !mask[first] || seen[first] {
            continue;
        }
        seen[first] = true;
        stack.push(first);
        let mut component = start.clone();
        while let Some(i) = stack.pop() {
            fold(&mut component, i);
            let (x, y) = (i % w, i / w);
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let j = ny * w + nx;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        found.push(component);
    }
    found
}

/// The convex hull of `points`, counter-clockwise in image coordinates
/// seen with y up (Andrew's monotone chain); collinear points dropped.
pub fn convex_hull(points: &[[i64; 2]]) -> Vec<[i64; 2]> {
    let mut p = points.to_vec();
    p.sort_unstable();
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: [i64; 2], a: [i64; 2], b: [i64; 2]| (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    let mut hull: Vec<[i64; 2]> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[i64; 2]>> =
            if pass == 0 { Box::new(p.iter()) } else { Box::new(p.iter().rev()) };
        for &q in iter {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0 {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// The minimum-area rectangle around a convex polygon: its four corners
/// and its two side lengths.
pub fn min_area_rect(hull: &[[f64; 2]]) -> ([[f64; 2]; 4], f64, f64) {
    match hull.len() {
        0 => return ([[0.0; 2]; 4], 0.0, 0.0),
        1 => return ([hull[0]; 4], 0.0, 0.0),
        _ => {}
    }
    let mut best: Option<(f64, [[f64; 2]; 4], f64, f64)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = dx.hypot(dy);
        if len == 0.0 {
            continue;
        }
        let (ux, uy) = (dx / len, dy / len);
        let (mut lo_u, mut hi_u, mut lo_v, mut hi_v) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in hull {
            let (u, v) = (p[0] * ux + p[1] * uy, -p[0] * uy + p[1] * ux);
            (lo_u, hi_u, lo_v, hi_v) = (lo_u.min(u), hi_u.max(u), lo_v.min(v), hi_v.max(v));
        }
        let area = (hi_u - lo_u) * (hi_v - lo_v);
        if best.as_ref().is_none_or(|(min, ..)| area < *min) {
            let corner = |u: f64, v: f64| [u * ux - v * uy, u * uy + v * ux];
            let corners = [corner(lo_u, lo_v), corner(hi_u, lo_v), corner(hi_u, hi_v), corner(lo_u, hi_v)];
            best = Some((area, corners, hi_u - lo_u, hi_v - lo_v));
        }
    }
    best.map_or(([hull[0]; 4], 0.0, 0.0), |(_, corners, w, h)| (corners, w, h))
}

/// The homography taking `from[i]` to `to[i]` (`cv2.getPerspectiveTransform`),
/// row-major with `m[8] = 1`.
pub fn perspective_transform(from: &[[f64; 2]; 4], to: &[[f64; 2]; 4]) -> Option<[f64; 9]> {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let ([sx, sy], [dx, dy]) = (from[i], to[i]);
        a[i] = [sx, sy, 1.0, 0.0, 0.0, 0.0, -sx * dx, -sy * dx, dx];
        a[i + 4] = [0.0, 0.0, 0.0, sx, sy, 1.0, -sx * dy, -sy * dy, dy];
    }
    // Gaussian elimination with partial pivoting
    for col in 0..8 {
        let pivot = (col..8).max_by(|x, y| a[*x][col].abs().total_cmp(&a[*y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col];
        for row in a.iter_mut().skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (v, p) in row.iter_mut().zip(pivot_row).skip(col) {
                *v -= f * p;
            }
        }
    }
    let mut m = [0f64; 9];
    for row in (0..8).rev() {
        let sum: f64 = (row + 1..8).map(|k| a[row][k] * m[k]).sum();
        m[row] = (a[row][8] - sum) / a[row][row];
    }
    m[8] = 1.0;
    Some(m)
}

/// `cv2.warpPerspective(src, m, (w, h), flags=INTER_CUBIC,
/// borderMode=BORDER_REPLICATE)`, given the inverse map (output pixel to
/// source point), with OpenCV 5's float bicubic kernel (A = −0.75).
pub fn warp_perspective_cubic(src: &Image, inverse: &[f64; 9], w: usize, h: usize) -> Image {
    let c = src.channels;
    let m: Vec<f32> = inverse.iter().map(|v| *v as f32).collect();
    let limit_x = src.width.max(16) as f32;
    let limit_y = src.height.max(16) as f32;
    let mut data = Vec::with_capacity(w * h * c);
    let weights = |alpha: f32| {
        const A: f32 = -0.75;
        let (a2, b) = (alpha * alpha, 1.0 - alpha);
        let b2 = b * b;
        let w0 = A * (alpha * b2);
        let w3 = A * (a2 * b);
        let w1 = a2.mul_add((A + 2.0).mul_add(alpha, -(A + 3.0)), 1.0);
        [w0, w1, ((1.0 - w0) - w1) - w3, w3]
    };
    let clamp = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
    for y in 0..h {
        let (mx, my, mz) =
            ((y as f32).mul_add(m[1], m[2]), (y as f32).mul_add(m[4], m[5]), (y as f32).mul_add(m[7], m[8]));
        for x in 0..w {
            let invz = 1.0 / (f64::from(mz) + f64::from(m[6]) * x as f64);
            let sx = ((f64::from(mx) + f64::from(m[0]) * x as f64) * invz) as f32;
            let sy = ((f64::from(my) + f64::from(m[3]) * x as f64) * invz) as f32;
            let sx = sx.clamp(-limit_x, 2.0 * limit_x);
            let sy = sy.clamp(-limit_y, 2.0 * limit_y);
            let (ix, iy) = (sx.floor(), sy.floor());
            let (wx, wy) = (weights(sx - ix), weights(sy - iy));
            let (ix, iy) = (ix as i64, iy as i64);
            for k in 0..c {
                let mut acc = 0f32;
                for (r, wr) in wy.iter().enumerate() {
                    let row = clamp(iy - 1 + r as i64, src.height);
                    let v =
                        |t: usize| f32::from(src.data[(row * src.width + clamp(ix - 1 + t as i64, src.width)) * c + k]);
                    let line = v(3).mul_add(wx[3], v(2).mul_add(wx[2], v(1).mul_add(wx[1], v(0) * wx[0])));
                    acc = line.mul_add(*wr, acc);
                }
                data.push(acc.round_ties_even().clamp(0.0, 255.0) as u8);
            }
        }
    }
    Image { width: w, height: h, channels: c, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hull_of_a_square_with_inner_points_is_its_corners() {
        let points = [[0, 0], [4, 0], [4, 4], [0, 4], [2, 2], [1, 3], [4, 2]];
        let mut hull = convex_hull(&points);
        hull.sort_unstable();
        assert_eq!(hull, [[0, 0], [0, 4], [4, 0], [4, 4]]);
    }

    #[test]
    fn the_min_area_rect_of_a_tilted_square_is_the_square() {
        let hull = [[5.0, 0.0], [10.0, 5.0], [5.0, 10.0], [0.0, 5.0]];
        let (_, w, h) = min_area_rect(&hull);
        assert!((w - 50f64.sqrt()).abs() < 1e-9 && (h - 50f64.sqrt()).abs() < 1e-9, "{w} {h}");
    }

    #[test]
    fn a_perspective_transform_maps_its_corners() {
        let from = [[10.0, 20.0], [110.0, 25.0], [105.0, 80.0], [12.0, 70.0]];
        let to = [[0.0, 0.0], [100.0, 0.0], [100.0, 50.0], [0.0, 50.0]];
        let m = perspective_transform(&from, &to).unwrap();
        for (f, t) in from.iter().zip(&to) {
            let z = m[6] * f[0] + m[7] * f[1] + m[8];
            let (x, y) = ((m[0] * f[0] + m[1] * f[1] + m[2]) / z, (m[3] * f[0] + m[4] * f[1] + m[5]) / z);
            assert!((x - t[0]).abs() < 1e-9 && (y - t[1]).abs() < 1e-9);
        }
    }

    #[test]
    fn resizing_to_the_same_size_copies_and_rotations_undo() {
        let img = Image { width: 3, height: 2, channels: 1, data: vec![1, 2, 3, 4, 5, 6] };
        assert_eq!(resize_linear(&img, 3, 2), img);
        assert_eq!(img.rotate90().data, [3, 6, 2, 5, 1, 4]);
        assert_eq!(img.rotate180().rotate180(), img);
    }
}
