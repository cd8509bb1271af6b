//! `ANNOTATE(src, operator => 'detect', into => 'FOLDER', ...)`: runs
//! another vision operator and draws its boxes and labels onto each frame,
//! written as a JPEG, so that people can look at what the engine saw.
//!
//! Its rows are the inner operator's, each with the attribute `annotated`,
//! the JPEG's path. Every frame the operator processed is written, found
//! something or not, to `INTO/TENANT/SOURCE/EVENT_TIME-FRAME_ID.jpg`
//! (characters other than letters, digits, `.`, `-` and `_` become `_`),
//! through a temporary file and a rename, so that a reader never sees half
//! a JPEG and a replayed frame overwrites its own file. Frames the inner
//! operator refuses (failed, duplicate) are not drawn. A JPEG that cannot
//! be written (a full disk) keeps its rows, with `annotate_error` in place
//! of `annotated`.
//!
//! Options: `operator` (any other vision operator; default `detect`),
//! `into` (a folder), `quality` (JPEG quality 1 to 100, default 85; below
//! 90 colour is kept at half resolution, 4:2:0, as Pillow and OpenCV write
//! JPEGs by default); every other option goes to the inner operator.
//! Labels are drawn in DejaVu Sans, which the set-up fetches, in a colour
//! per label.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ab_glyph::{Font, FontArc, PxScale, ScaleFont};

use engine::model::{DecodedFrame, Detection, Pixels};
use engine::plan::Options;
use engine::registry::{FrameResult, OperatorFactory, PreparedOperator, VisionOperator};

const OWN_OPTIONS: [&str; 3] = ["operator", "into", "quality"];

/// Colours for labels, picked by a hash of the label: saturated enough to
/// read white text on, distinct from each other.
const PALETTE: [[u8; 3]; 10] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [0, 128, 128],
    [240, 50, 230],
    [128, 0, 0],
    [0, 0, 128],
    [128, 128, 0],
];

/// The colour a label's boxes are drawn in.
pub fn colour(label: &str) -> [u8; 3] {
    // FNV-1a: stable across runs and builds
    let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

pub struct AnnotateFactory {
    /// The operators ANNOTATE can wrap.
    inner: BTreeMap<&'static str, Arc<dyn OperatorFactory>>,
    font: PathBuf,
}

impl std::fmt::Debug for AnnotateFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnotateFactory").field("inner", &self.inner.keys()).field("font", &self.font).finish()
    }
}

impl AnnotateFactory {
    pub fn new(inner: BTreeMap<&'static str, Arc<dyn OperatorFactory>>, font: PathBuf) -> AnnotateFactory {
        AnnotateFactory { inner, font }
    }
}

impl OperatorFactory for AnnotateFactory {
    fn prepare(&self, options: &Options) -> Result<Arc<dyn PreparedOperator>, String> {
        let name = options.get("operator").map_or("detect", String::as_str);
        let factory = self.inner.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.inner.keys().copied().collect();
            format!("ANNOTATE cannot run operator `{name}`; it runs: {}", known.join(", "))
        })?;
        let into =
            PathBuf::from(options.get("into").ok_or("ANNOTATE needs into => 'FOLDER', where the annotated JPEGs go")?);
        let quality = match options.get("quality") {
            None => 85,
            Some(text) => text
                .parse()
                .ok()
                .filter(|q| (1..=100).contains(q))
                .ok_or(format!("quality = {text} is not 1 to 100"))?,
        };
        let bytes = std::fs::read(&self.font).map_err(|e| {
            format!("ANNOTATE's font `{}` cannot be read ({e}); run scripts/fetch_assets.sh", self.font.display())
        })?;
        let font = FontArc::try_from_vec(bytes).map_err(|e| format!("font `{}`: {e}", self.font.display()))?;
        let inner_options: Options = options
            .iter()
            .filter(|(k, _)| !OWN_OPTIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let inner = factory.prepare(&inner_options)?;
        std::fs::create_dir_all(&into).map_err(|e| format!("cannot create `{}`: {e}", into.display()))?;
        Ok(Arc::new(PreparedAnnotate { inner, painter: Arc::new(Painter { font, into, quality }) }))
    }
}

struct PreparedAnnotate {
    inner: Arc<dyn PreparedOperator>,
    painter: Arc<Painter>,
}

impl PreparedOperator for PreparedAnnotate {
    fn instance(&self) -> Result<Box<dyn VisionOperator>, String> {
        Ok(Box::new(Annotate { inner: self.inner.instance()?, painter: self.painter.clone() }))
    }

    fn per_camera(&self) -> bool {
        self.inner.per_camera()
    }
}

struct Annotate {
    inner: Box<dyn VisionOperator>,
    painter: Arc<Painter>,
}

impl Annotate {
    fn annotate(&self, decoded: &DecodedFrame, found: FrameResult) -> FrameResult {
        let mut rows = found?;
        // a JPEG that cannot be written loses the picture, not the rows
        let (key, value) = match self.painter.write(decoded, &rows) {
            Ok(path) => ("annotated", path.to_string_lossy().into_owned()),
            Err(reason) => ("annotate_error", reason),
        };
        for row in &mut rows {
            row.attributes.insert(key.into(), value.clone().into());
        }
        Ok(rows)
    }
}

impl VisionOperator for Annotate {
    fn process(&mut self, decoded: &DecodedFrame) -> FrameResult {
        let found = self.inner.process(decoded);
        self.annotate(decoded, found)
    }

    fn preferred_batch(&self) -> usize {
        self.inner.preferred_batch()
    }

    fn process_batch(&mut self, frames: &[&DecodedFrame]) -> Result<Vec<FrameResult>, String> {
        let found = self.inner.process_batch(frames)?;
        Ok(frames.iter().zip(found).map(|(decoded, found)| self.annotate(decoded, found)).collect())
    }

    // the operator drawn keeps its state (dedup's) across restarts
    fn changed(&mut self) -> Vec<(String, serde_json::Value)> {
        self.inner.changed()
    }

    fn restore(&mut self, state: &BTreeMap<String, serde_json::Value>) -> Result<(), String> {
        self.inner.restore(state)
    }

    fn replay(&mut self, decoded: &DecodedFrame, duplicate: bool) -> FrameResult {
        let found = self.inner.replay(decoded, duplicate);
        self.annotate(decoded, found)
    }
}

/// Draws rows onto frames and writes them.
struct Painter {
    font: FontArc,
    into: PathBuf,
    quality: u8,
}

impl Painter {
    fn write(&self, decoded: &DecodedFrame, rows: &[Detection]) -> Result<PathBuf, String> {
        let frame = &decoded.frame;
        let (Ok(width), Ok(height)) = (u16::try_from(decoded.pixels.width), u16::try_from(decoded.pixels.height))
        else {
            return Err("a JPEG is at most 65535 pixels a side".into());
        };
        let mut canvas = Canvas::new(&decoded.pixels);
        let thickness = (canvas.width.min(canvas.height) / 300).max(2) as i64;
        let size = (canvas.height as f32 / 40.0).clamp(12.0, 32.0);
        let boxes: Vec<[i64; 4]> = rows.iter().map(|r| [r.x, r.y, r.w, r.h].map(|v| v.round() as i64)).collect();
        for (row, &[x, y, w, h]) in rows.iter().zip(&boxes) {
            canvas.rectangle(x, y, w, h, thickness, colour(&row.label));
        }
        // labels last, so that no box is drawn over one
        for (row, &[x, y, ..]) in rows.iter().zip(&boxes) {
            let text = match &row.text {
                Some(text) if !text.is_empty() => format!("{} {:.2} {text}", row.label, row.confidence),
                _ => format!("{} {:.2}", row.label, row.confidence),
            };
            self.label(&mut canvas, &text, x, y, size, colour(&row.label));
        }
        let dir = self.into.join(safe(&frame.tenant)).join(safe(&frame.source_id));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        let path = dir.join(format!("{}-{}.jpg", frame.event_time, safe(&frame.frame_id)));
        // a name of its own for each write: two streams (or jobs) annotating
        // into one folder never write one file at once
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let partial = path.with_extension(format!("{}-{n}.part", std::process::id()));
        let file = std::fs::File::create(&partial).map_err(|e| format!("cannot write `{}`: {e}", partial.display()))?;
        let mut out = std::io::BufWriter::new(file);
        jpeg_encoder::Encoder::new(&mut out, self.quality)
            .encode(&canvas.rgb, width, height, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| format!("cannot encode `{}`: {e}", path.display()))?;
        std::io::Write::flush(&mut out).map_err(|e| format!("cannot write `{}`: {e}", partial.display()))?;
        drop(out);
        std::fs::rename(&partial, &path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        Ok(path)
    }

    /// `text` in white on a band of `colour`, above the box's top left
    /// corner, or inside the box where there is no room above.
    fn label(&self, canvas: &mut Canvas, text: &str, x: i64, y: i64, size: f32, colour: [u8; 3]) {
        let font = self.font.as_scaled(PxScale::from(size));
        let pad = (size / 6.0).ceil() as i64;
        let mut width = 0.0;
        let mut previous = None;
        let glyphs: Vec<_> = text
            .chars()
            .map(|c| {
                let id = font.glyph_id(c);
                if let Some(p) = previous {
                    width += font.kern(p, id);
                }
                let glyph = id.with_scale_and_position(font.scale(), ab_glyph::point(width, font.ascent()));
                width += font.h_advance(id);
                previous = Some(id);
                glyph
            })
            .collect();
        let band = (font.height().ceil() as i64) + 2 * pad;
        let top = if y - band >= 0 { y - band } else { y.max(0) };
        let left = x.clamp(0, (canvas.width as i64 - 1).max(0));
        canvas.fill(left, top, width.ceil() as i64 + 2 * pad, band, colour);
        for glyph in glyphs {
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                let (gx, gy) = (left + pad + bounds.min.x as i64, top + pad + bounds.min.y as i64);
                outline.draw(|dx, dy, coverage| {
                    canvas.blend(gx + i64::from(dx), gy + i64::from(dy), [255, 255, 255], coverage);
                });
            }
        }
    }
}

/// A path component from an identifier.
fn safe(id: &str) -> String {
    let s: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with('.') { format!("_{s}") } else { s }
}

/// An RGB image to draw on; drawing outside it is clipped.
struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(pixels: &Pixels) -> Canvas {
        Canvas { width: pixels.width, height: pixels.height, rgb: pixels.rgb.to_vec() }
    }

    fn blend(&mut self, x: i64, y: i64, colour: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let at = 3 * (y as usize * self.width as usize + x as usize);
        let alpha = alpha.clamp(0.0, 1.0);
        for (pixel, c) in self.rgb[at..at + 3].iter_mut().zip(colour) {
            *pixel = (f32::from(*pixel) * (1.0 - alpha) + f32::from(c) * alpha).round() as u8;
        }
    }

    fn fill(&mut self, x: i64, y: i64, w: i64, h: i64, colour: [u8; 3]) {
        let (x0, y0) = (x.max(0), y.max(0));
        let (x1, y1) = ((x + w).min(i64::from(self.width)), (y + h).min(i64::from(self.height)));
        for yy in y0..y1 {
            for xx in x0..x1 {
                let at = 3 * (yy as usize * self.width as usize + xx as usize);
                self.rgb[at..at + 3].copy_from_slice(&colour);
            }
        }
    }

    /// The outline of `[x, y, w, h]`, `thickness` pixels wide, inside the box.
    fn rectangle(&mut self, x: i64, y: i64, w: i64, h: i64, thickness: i64, colour: [u8; 3]) {
        let t = thickness.min(w.max(1)).min(h.max(1));
        self.fill(x, y, w, t, colour);
        self.fill(x, y + h - t, w, t, colour);
        self.fill(x, y, t, h, colour);
        self.fill(x + w - t, y, t, h, colour);
    }
}
