//! frameflow's model rewrites (`operators::onnx::rewrite`) against the
//! models they rewrite. On real photos, each shipped model rewritten for
//! each NCHWc block size gives the outputs ONNX Runtime gives for the
//! model as it came, to float rounding: within 1e-4 of the largest output
//! (the rewrites reorder float sums and turn `x·clip(x+3)/6` into
//! `x·clip(x/6+½)`; what was measured is about 5e-6). The rewrites the
//! speed-ups rest on must have applied.

#![allow(clippy::unwrap_used)] // a test that cannot set itself up should panic

mod common;

use operators::onnx::ModelStore;
use operators::onnx::rewrite::{Rewrites, rewrite};
use ort::value::TensorRef;

/// One model and how to fill its input from a photo.
struct Case {
    model: &'static str,
    /// Batch, then height and width, in this layout.
    shape: [usize; 4],
    channels_last: bool,
    /// Input value = pixel * scale + offset.
    scale: f32,
    offset: f32,
    /// Under the assets folder, one per batch entry in turn.
    photos: &'static [&'static str],
}

const PHOTOS: &[&str] = &["images/person.jpg", "images/horses.jpg"];
const SIGNS: &[&str] = &["opencv-doc/scenetext01.jpg", "opencv-doc/scenetext03.jpg"];

const CASES: &[Case] = &[
    Case {
        model: "blazeface/back_256x256.onnx",
        shape: [1, 256, 256, 3],
        channels_last: true,
        scale: 1.0 / 127.5,
        offset: -1.0,
        photos: PHOTOS,
    },
    Case {
        model: "blazeface/front_128x128.onnx",
        shape: [1, 128, 128, 3],
        channels_last: true,
        scale: 1.0 / 127.5,
        offset: -1.0,
        photos: PHOTOS,
    },
    Case {
        model: "mobilenet/mobilenet_v2.onnx",
        shape: [2, 3, 224, 224],
        channels_last: false,
        scale: 1.0 / 58.0,
        offset: -2.0,
        photos: PHOTOS,
    },
    Case {
        model: "mtcnn/pnet.onnx",
        shape: [1, 120, 160, 3],
        channels_last: true,
        scale: 1.0 / 127.5,
        offset: -1.0,
        photos: PHOTOS,
    },
    Case {
        model: "mtcnn/rnet.onnx",
        shape: [2, 24, 24, 3],
        channels_last: true,
        scale: 1.0 / 127.5,
        offset: -1.0,
        photos: PHOTOS,
    },
    Case {
        model: "mtcnn/onet.onnx",
        shape: [2, 48, 48, 3],
        channels_last: true,
        scale: 1.0 / 127.5,
        offset: -1.0,
        photos: PHOTOS,
    },
    Case {
        model: "ppocr/ch_PP-OCRv4_det_infer.onnx",
        shape: [1, 3, 320, 480],
        channels_last: false,
        scale: 1.0 / 58.0,
        offset: -2.0,
        photos: SIGNS,
    },
    Case {
        model: "ppocr/ch_PP-OCRv4_rec_infer.onnx",
        shape: [2, 3, 48, 320],
        channels_last: false,
        scale: 1.0 / 127.5,
        offset: -1.0,
        photos: SIGNS,
    },
    Case {
        model: "ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        shape: [2, 3, 48, 192],
        channels_last: false,
        scale: 1.0 / 127.5,
        offset: -1.0,
        photos: SIGNS,
    },
    Case {
        model: "yolov3-tiny.onnx",
        shape: [1, 3, 320, 416],
        channels_last: false,
        scale: 1.0 / 255.0,
        offset: 0.0,
        photos: PHOTOS,
    },
];

/// The photos, each scaled (nearest pixel) to the case's size, one per
/// batch entry, in the case's layout.
fn input(case: &Case) -> Vec<f32> {
    let [batch, a, b, c] = case.shape;
    let (h, w) = if case.channels_last { (a, b) } else { (b, c) };
    let mut values = Vec::with_capacity(batch * a * b * c);
    for n in 0..batch {
        let frame = common::decoded_frame(&common::assets().join(case.photos[n % case.photos.len()]));
        let (fw, fh) = (frame.pixels.width as usize, frame.pixels.height as usize);
        let pixel = |y: usize, x: usize, ch: usize| {
            let value = frame.pixels.rgb[((y * fh / h) * fw + x * fw / w) * 3 + ch];
            f32::from(value) * case.scale + case.offset
        };
        if case.channels_last {
            values.extend((0..h * w * 3).map(|i| pixel(i / (w * 3), i / 3 % w, i % 3)));
        } else {
            values.extend((0..3 * h * w).map(|i| pixel(i / w % h, i % w, i / (h * w))));
        }
    }
    values
}

/// Every output of `onnx` on `input`, in the model's order.
fn run(store: &ModelStore, onnx: &[u8], case: &Case, input: &[f32]) -> Vec<Vec<f32>> {
    let mut session = store.session_from_onnx(onnx, 1).unwrap();
    let name = session.inputs()[0].name().to_owned();
    let tensor = TensorRef::from_array_view((case.shape, input)).unwrap();
    let outputs = session.run(ort::inputs![name => tensor]).unwrap();
    outputs.values().map(|v| v.try_extract_tensor::<f32>().unwrap().1.to_vec()).collect()
}

fn rewritten(model: &str, block: Option<usize>) -> Option<(Vec<u8>, Rewrites)> {
    let onnx = std::fs::read(common::assets().join("models").join(model)).unwrap();
    rewrite(&onnx, block).unwrap_or_else(|e| panic!("{model}: {e}"))
}

#[test]
fn rewritten_models_compute_what_the_originals_do() {
    let store = ModelStore::in_assets(&common::assets());
    for case in CASES {
        let original = std::fs::read(common::assets().join("models").join(case.model)).unwrap();
        let input = input(case);
        let expected = run(&store, &original, case, &input);
        for block in [Some(16), Some(8), None] {
            let Some((onnx, done)) = rewritten(case.model, block) else { continue };
            let got = run(&store, &onnx, case, &input);
            assert_eq!(got.len(), expected.len(), "{}: outputs", case.model);
            for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(got.len(), want.len(), "{} output {i}: length", case.model);
                let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    worst <= 1e-4 * largest.max(0.1),
                    "{} rewritten for block {block:?} ({done:?}): output {i} differs by {worst} (largest value {largest})",
                    case.model
                );
            }
        }
    }
}

#[test]
fn the_rewrites_that_matter_apply() {
    // PP-OCRv4 scales and shifts after every convolution, and writes
    // hard-swish out in full after most.
    let (_, det) = rewritten("ppocr/ch_PP-OCRv4_det_infer.onnx", None).unwrap();
    assert_eq!(det.hard_swish, 24, "{det:?}");
    assert!(det.folded_into_previous_conv >= 50 && det.folded_into_next_conv >= 10, "{det:?}");
    let (_, rec) = rewritten("ppocr/ch_PP-OCRv4_rec_infer.onnx", None).unwrap();
    assert!(rec.hard_swish >= 28 && rec.folded_into_previous_conv >= 50 && rec.folded_into_next_conv >= 10, "{rec:?}");
    // BlazeFace: its two channel-growing residuals, and its 24-channel
    // stage padded to the AVX-512 block, but left as it is for AVX2's.
    let (_, blazeface) = rewritten("blazeface/back_256x256.onnx", Some(16)).unwrap();
    assert_eq!((blazeface.zero_concats, blazeface.padded_channel_groups), (2, 1), "{blazeface:?}");
    let (_, blazeface) = rewritten("blazeface/back_256x256.onnx", Some(8)).unwrap();
    assert_eq!((blazeface.zero_concats, blazeface.padded_channel_groups), (2, 0), "{blazeface:?}");
    // MTCNN's PReLUs after its convolutions (not those after its dense layers).
    let (_, pnet) = rewritten("mtcnn/pnet.onnx", Some(16)).unwrap();
    assert_eq!(pnet.prelus_as_convs, 3, "{pnet:?}");
    let (_, onet) = rewritten("mtcnn/onet.onnx", Some(16)).unwrap();
    assert_eq!(onet.prelus_as_convs, 4, "{onet:?}");
    // Nothing to do for MobileNetV2: it comes out as it went in.
    assert!(rewritten("mobilenet/mobilenet_v2.onnx", Some(16)).is_none());
}

#[test]
fn a_file_that_is_not_onnx_is_refused_not_mangled() {
    let err = rewrite(b"\x0bnot a model", Some(16)).unwrap_err();
    assert!(err.contains("wire type"), "{err}");
    let photo = std::fs::read(common::assets().join("images/dog.jpg")).unwrap();
    assert!(rewrite(&photo, Some(16)).is_err());
}

/// MTCNN's faces on real photos with the rewrites and without: the same
/// faces, to float rounding (the switch a user turns them off with).
#[test]
fn faces_are_the_same_with_the_rewrites_off() {
    use engine::registry::VisionOperator;
    use operators::faces::{FacesConfig, PreparedFaces};
    let faces = |rewrite_models: bool| {
        let store = ModelStore { rewrite_models, ..ModelStore::in_assets(&common::assets()) };
        let mut detector = PreparedFaces::load(&store, "mtcnn", FacesConfig::default()).unwrap().detector().unwrap();
        ["opencv-doc/messi5.jpg", "images/person.jpg"]
            .iter()
            .flat_map(|photo| detector.process(&common::decoded_frame(&common::assets().join(photo))).unwrap())
            .map(|d| ([d.x, d.y, d.w, d.h], d.confidence))
            .collect::<Vec<_>>()
    };
    let (on, off) = (faces(true), faces(false));
    assert!(!on.is_empty(), "the photos have faces");
    assert_eq!(on.len(), off.len(), "{on:?} vs {off:?}");
    for ((a, p), (b, q)) in on.iter().zip(&off) {
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.5), "{a:?} vs {b:?}");
        assert!((p - q).abs() < 1e-4, "{p} vs {q}");
    }
}
