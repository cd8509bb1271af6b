//! `DETECT(src, model => 'objects', min_confidence => 0.3)`: object
//! detection with a YOLO model through ONNX Runtime.
//!
//! Per frame: letterbox into the network input, run the model, decode every
//! head, suppress overlaps per class. Boxes come out in pixels of the
//! original frame. Each worker has its own session (ONNX Runtime sessions
//! are not safe to run from two threads at once), on `threads` threads;
//! the sessions share the model's weights ([`crate::onnx`]).

use std::path::PathBuf;
use std::sync::Arc;

use ort::session::Session;
use ort::value::TensorRef;

use engine::model::DecodedFrame;
use engine::plan::Options;
use engine::registry::{OperatorFactory, PreparedOperator, VisionOperator};

use crate::letterbox::Letterbox;
use crate::onnx::{ModelStore, Spare};
use crate::yolo::{ModelCard, decode_head, nms_per_class};

const OPTIONS: [&str; 5] = ["model", "min_confidence", "nms_iou", "threads", "letterbox"];

/// The registry entry for `DETECT`.
#[derive(Debug)]
pub struct DetectFactory {
    store: ModelStore,
}

impl DetectFactory {
    pub fn new(store: ModelStore) -> DetectFactory {
        DetectFactory { store }
    }
}

/// Detection settings of one stream.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    pub min_confidence: f32,
    pub nms_iou: f32,
    pub threads: usize,
    /// Letterbox frames only to the model's size multiple where it allows
    /// that (`letterbox => 'rect'`, the default), or always to its full
    /// square input (`letterbox => 'square'`, as Darknet does).
    pub rectangular: bool,
}

impl OperatorFactory for DetectFactory {
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        crate::check_options("DETECT", options, &OPTIONS)?;
        let model = options.get("model").map_or("objects", String::as_str);
        let config = DetectConfig {
            min_confidence: crate::fraction(options, "min_confidence", 0.25)?,
            nms_iou: crate::fraction(options, "nms_iou", 0.45)?,
            threads: crate::count(options, "threads", 1)?,
            rectangular: match options.get("letterbox").map(String::as_str) {
                None | Some("rect") => true,
                Some("square") => false,
                Some(other) => return Err(format!("letterbox = '{other}' is not 'rect' or 'square'")),
            },
        };
        Ok(Arc::new(PreparedDetect::load(&self.store, model, config)?))
    }
}

/// A model checked and loaded once per job; workers take sessions from it.
pub struct PreparedDetect {
    store: ModelStore,
    card: Arc<ModelCard>,
    onnx: PathBuf,
    config: DetectConfig,
    /// The session made while checking the model, handed to the first
    /// worker rather than thrown away.
    spare: Spare<Session>,
}

impl PreparedDetect {
    /// Loads the model card `NAME.json` and its ONNX file, and checks that
    /// the model has the input and outputs the card names.
    pub fn load(store: &ModelStore, model: &str, config: DetectConfig) -> Result<PreparedDetect, String> {
        let card: ModelCard = store.card(model, "yolov3", "DETECT")?;
        let onnx = store.models_dir.join(&card.onnx);
        let session = store.session(&onnx, config.threads)?;
        let has_input = session.inputs().iter().any(|i| i.name() == card.input.name);
        let missing: Vec<&str> = card
            .heads
            .iter()
            .map(|h| h.output.as_str())
            .filter(|name| !session.outputs().iter().any(|o| o.name() == *name))
            .collect();
        if !has_input || !missing.is_empty() {
            return Err(format!(
                "model `{}` does not match its card: input `{}` {}, outputs missing: {missing:?}",
                onnx.display(),
                card.input.name,
                if has_input { "found" } else { "missing" }
            ));
        }
        Ok(PreparedDetect { store: store.clone(), card: Arc::new(card), onnx, config, spare: Spare::new(session) })
    }

    /// A detector of its own, for one thread.
    pub fn detector(&self) -> Result<Detector, String> {
        let session = self.spare.take_or(|| self.store.session(&self.onnx, self.config.threads))?;
        Ok(Detector {
            session,
            card: self.card.clone(),
            config: self.config.clone(),
            input: Vec::new(),
            operator: "detect".into(),
        })
    }
}

impl PreparedOperator for PreparedDetect {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(self.detector()?))
    }
}

/// A YOLO detector with its own ONNX Runtime session.
pub struct Detector {
    session: Session,
    card: Arc<ModelCard>,
    config: DetectConfig,
    /// The network input, reused from frame to frame.
    input: Vec<f32>,
    operator: Arc<str>,
}

impl Detector {
    /// Boxes found in `frame`, before they are made detection rows.
    pub fn detect(&mut self, pixels: &engine::model::Pixels) -> Result<Vec<crate::yolo::Candidate>, String> {
        let spec = &self.card.input;
        let multiple = spec.size_multiple.filter(|_| self.config.rectangular);
        let letterbox = Letterbox::fit(pixels.width, pixels.height, spec.width, spec.height, multiple);
        self.input.resize(3 * (letterbox.net_w * letterbox.net_h) as usize, 0.0);
        letterbox.fill_chw(pixels, spec.letterbox_fill, &mut self.input);
        let shape = [1usize, 3, letterbox.net_h as usize, letterbox.net_w as usize];
        let tensor =
            TensorRef::from_array_view((shape, &self.input[..])).map_err(|e| format!("bad input tensor: {e}"))?;
        let outputs = self
            .session
            .run(ort::inputs![spec.name.as_str() => tensor])
            .map_err(|e| format!("inference failed: {e}"))?;
        let classes = self.card.labels.len();
        let mut candidates = Vec::new();
        for head in &self.card.heads {
            let value = outputs.get(&head.output).ok_or_else(|| format!("model gave no output `{}`", head.output))?;
            let (shape, raw) =
                value.try_extract_tensor::<f32>().map_err(|e| format!("output `{}`: {e}", head.output))?;
            let expected = (head.anchors.len() * (5 + classes)) as i64;
            let [_, channels, grid_h, grid_w] = shape[..] else {
                return Err(format!("output `{}` has shape {shape:?}, expected [1, C, H, W]", head.output));
            };
            if channels != expected {
                return Err(format!("output `{}` has {channels} channels, expected {expected}", head.output));
            }
            let grid = (grid_w as usize, grid_h as usize);
            decode_head(raw, grid, head, classes, &letterbox, self.config.min_confidence, &mut candidates);
        }
        Ok(nms_per_class(candidates, self.config.nms_iou))
    }
}

impl VisionOperator for Detector {
    fn process(&mut self, decoded: &DecodedFrame) -> engine::registry::FrameResult {
        let frame = &decoded.frame;
        let found = self.detect(&decoded.pixels)?;
        Ok(found
            .into_iter()
            .map(|c| {
                let label = self.card.labels.get(c.class).map_or_else(|| format!("class{}", c.class), Clone::clone);
                crate::detection(frame, &self.operator, &label, c.score, c.bbox)
            })
            .collect())
    }
}
