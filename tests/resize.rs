//! frameflow's port of Pillow's resize (`operators::pillow`, used by FACES
//! with BlazeFace, CLASSIFY and HASH) against Pillow itself
//! (tests/reference/resize.py), on a PNG photo, so both start from the
//! same pixels.
//!
//! Tolerance: none. Every byte is equal, for 1 and 3 channels, both
//! filters, down- and upscaling, one axis unchanged, extreme ratios,
//! windows of the resized image, and sources smaller than the filter.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use operators::pillow::{Filter, resize_crop};

/// The part of the photo resized (all of it if none), channels, output
/// width and height, filter, and the window kept.
type Case = (Option<[usize; 4]>, usize, usize, usize, Filter, Option<[usize; 4]>);

#[test]
fn resize_matches_pillow_byte_for_byte() {
    let photo = common::assets().join("opencv-doc/basketball1.png");
    let pixels = common::decoded_frame(&photo).pixels;
    let (w, h) = (pixels.width as usize, pixels.height as usize);
    let rgb = &pixels.rgb;
    let red: Vec<u8> = rgb.chunks_exact(3).map(|p| p[0]).collect();
    let mut cases: Vec<Case> = Vec::new();
    for filter in [Filter::Bilinear, Filter::Lanczos] {
        for channels in [1, 3] {
            for (ow, oh) in [(256, 192), (9, 8), (1, 1), (w, 100), (300, h), (w + 117, h * 2 + 1), (3, 700)] {
                cases.push((None, channels, ow, oh, filter, None));
            }
            // sources narrower than the filter: windows cut at both ends
            for (part, (ow, oh)) in [([200, 150, 1, 5], (7, 5)), ([300, 200, 3, 2], (1, 1)), ([10, 20, 2, 3], (5, 9))] {
                cases.push((Some(part), channels, ow, oh, filter, None));
            }
        }
        // torchvision's Resize(256) then CenterCrop(224), as CLASSIFY does
        cases.push((None, 3, 341, 256, filter, Some([58, 16, 224, 224])));
        // the film's 640 across to 455 (2 pairs of taps in the AVX2 pass)
        // and to 200 (4 pairs)
        cases.push((None, 3, 455, 341, filter, Some([116, 58, 224, 224])));
        cases.push((None, 3, 200, 150, filter, None));
        cases.push((None, 3, w * 3, h / 2, filter, Some([w * 3 - 5, 0, 5, h / 2])));
        cases.push((None, 1, 641, 3, filter, Some([0, 1, 641, 1])));
    }
    let out = tempfile::tempdir().unwrap();
    let specs: Vec<String> = cases
        .iter()
        .map(|(part, c, ow, oh, f, window)| {
            let part = part.map(|[x, y, pw, ph]| format!("{x}:{y}:{pw}:{ph}@")).unwrap_or_default();
            let name = if *f == Filter::Bilinear { "bilinear" } else { "lanczos" };
            let window = window.map(|[x, y, cw, ch]| format!(":{x}:{y}:{cw}:{ch}")).unwrap_or_default();
            format!("{part}{c}:{ow}:{oh}:{name}{window}")
        })
        .collect();
    let mut args = vec![photo.to_str().unwrap(), out.path().to_str().unwrap()];
    args.extend(specs.iter().map(String::as_str));
    common::run_python("tests/reference/resize.py", &args);
    for (i, (part, channels, ow, oh, filter, window)) in cases.into_iter().enumerate() {
        let input: &[u8] = if channels == 1 { &red } else { rgb };
        let [px, py, pw, ph] = part.unwrap_or([0, 0, w, h]);
        let source: Vec<u8> = (py..py + ph)
            .flat_map(|y| &input[(y * w + px) * channels..(y * w + px + pw) * channels])
            .copied()
            .collect();
        let window = window.unwrap_or([0, 0, ow, oh]);
        let ours = resize_crop(&source, channels, (pw, ph), (ow, oh), window, filter);
        let theirs = std::fs::read(out.path().join(format!("{i}.raw"))).unwrap();
        assert_eq!(ours.len(), theirs.len(), "case {}: sizes differ", specs[i]);
        let differ = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "case {}: {differ} of {} bytes differ from Pillow's", specs[i], ours.len());
    }
}
