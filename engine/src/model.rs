//! The rows that flow through a job: frames, detections, frame outcomes and
//! window results (DESIGN.md §2).
//!
//! Pixels and encoded bytes travel as `Arc<[u8]>`: moving a frame between
//! operators or workers of one process never copies them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::time::{Millis, format_rfc3339_ms};

/// The media types a frame may be encoded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaType {
    Jpeg,
    Png,
    Webp,
}

impl MediaType {
    /// The media type a file name's extension names, if frameflow reads it.
    pub fn from_extension(ext: &str) -> Option<MediaType> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Some(MediaType::Jpeg),
            "png" => Some(MediaType::Png),
            "webp" => Some(MediaType::Webp),
            _ => None,
        }
    }

    pub fn as_mime(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Webp => "image/webp",
        }
    }
}

/// One encoded image from one camera, as a source admitted it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Frame {
    /// Unique and stable across replays of the same input.
    pub frame_id: Arc<str>,
    pub tenant: Arc<str>,
    pub source_id: Arc<str>,
    /// Position of the frame in its camera's sequence, from 0.
    pub seq: u64,
    /// Capture time, ms since the Unix epoch.
    pub event_time: Millis,
    /// When the source admitted the frame, ms since the Unix epoch.
    pub ingest_time: Millis,
    pub media_type: MediaType,
    pub bytes: Arc<[u8]>,
    /// Set by the source when the frame arrived behind its camera's
    /// watermark: that watermark, where a late frame is admitted
    /// (`late = 'admit'`).
    pub late: Option<Millis>,
    /// Set by the source when it refused the input (unreadable, too large):
    /// the frame is rejected with this reason instead of decoded.
    pub refused: Option<String>,
}

/// Decoded pixels: RGB, 8 bits per channel, row-major, no padding.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub rgb: Arc<[u8]>,
}

/// A frame together with its decoded pixels.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecodedFrame {
    pub frame: Frame,
    pub pixels: Pixels,
}

/// One thing a vision operator found in a frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub frame_id: Arc<str>,
    pub tenant: Arc<str>,
    pub source_id: Arc<str>,
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub event_time: Millis,
    pub operator: Arc<str>,
    pub label: Arc<str>,
    pub confidence: f32,
    /// Box in pixels of the original frame; (x, y) is the top-left corner.
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// How a frame's trip through one vision stream ended. Every admitted frame
/// ends in exactly one of these per stream it feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Processed,
    Degraded,
    Rejected,
    Late,
    /// A near duplicate of an earlier frame of its camera, dropped by a
    /// stream that removes them (`HASH(src, dedup => ...)`).
    Duplicate,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Processed => "processed",
            Outcome::Degraded => "degraded",
            Outcome::Rejected => "rejected",
            Outcome::Late => "late",
            Outcome::Duplicate => "duplicate",
        })
    }
}

/// The fate of one frame, with the reason where it did not go through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameOutcome {
    pub frame_id: Arc<str>,
    pub tenant: Arc<str>,
    pub source_id: Arc<str>,
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub event_time: Millis,
    pub outcome: Outcome,
    /// The stage that decided the outcome: `source`, `decode`, or an operator.
    pub stage: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub detections: u32,
}

impl FrameOutcome {
    /// The outcome of the frame a detection row came from.
    pub fn of_row(d: &Detection, outcome: Outcome, stage: Arc<str>, reason: Option<String>) -> FrameOutcome {
        FrameOutcome {
            frame_id: d.frame_id.clone(),
            tenant: d.tenant.clone(),
            source_id: d.source_id.clone(),
            event_time: d.event_time,
            outcome,
            stage,
            reason,
            detections: 0,
        }
    }

    /// Whether this outcome belongs on the dead-letter output.
    pub fn is_dead_letter(&self) -> bool {
        matches!(self.outcome, Outcome::Rejected | Outcome::Late) && self.reason.is_some()
    }
}

/// A scalar in a result row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    Null,
    Str(Arc<str>),
    Int(i64),
    Float(F64),
    Bool(bool),
    /// A point in time, ms since the Unix epoch.
    Time(Millis),
}

/// An `f64` with a total order (`total_cmp`), so rows holding one can be
/// sorted, hashed and used as keys.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}

impl Eq for F64 {}

impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for F64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl std::hash::Hash for F64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl Serialize for RowValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_none(),
            Value::Str(v) => s.serialize_str(v),
            Value::Int(v) => s.serialize_i64(*v),
            Value::Float(v) => s.serialize_f64(v.0),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::Time(ms) => s.serialize_str(&format_rfc3339_ms(*ms)),
        }
    }
}

struct RowValue<'a>(&'a Value);

/// One row of a view: values in the order of the view's columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRow {
    pub columns: Arc<[Arc<str>]>,
    pub values: Vec<Value>,
}

impl ViewRow {
    /// The value of a column by name.
    pub fn get(&self, column: &str) -> Option<&Value> {
        let index = self.columns.iter().position(|c| &**c == column)?;
        self.values.get(index)
    }
}

/// What a sink receives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Record {
    Detection(Detection),
    View(ViewRow),
    Outcome(FrameOutcome),
}

impl Record {
    /// The record as one JSON object, the shape of the JSONL sinks.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Record::Detection(d) => serde_json::to_string(d),
            Record::Outcome(o) => serde_json::to_string(o),
            Record::View(row) => serde_json::to_string(&ViewRowJson(row)),
        }
    }
}

struct ViewRowJson<'a>(&'a ViewRow);

impl Serialize for ViewRowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let row = self.0;
        let mut map = s.serialize_map(Some(row.values.len()))?;
        for (column, value) in row.columns.iter().zip(&row.values) {
            map.serialize_entry(&**column, &RowValue(value))?;
        }
        map.end()
    }
}

fn ser_time<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339_ms(*ms))
}

fn de_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
    let text = String::deserialize(d)?;
    crate::time::parse_rfc3339_ms(&text).map_err(serde::de::Error::custom)
}

/// A stable 64-bit FNV-1a hash, for ids and routing that must not change
/// between runs or Rust versions (std's hasher promises neither).
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_rows_serialise_in_column_order_with_rfc3339_times() {
        let row = ViewRow {
            columns: vec!["source_id".into(), "window_start".into(), "n".into()].into(),
            values: vec![Value::Str("cam1".into()), Value::Time(1_767_225_600_000), Value::Int(3)],
        };
        assert_eq!(
            Record::View(row).to_json().unwrap(),
            r#"{"source_id":"cam1","window_start":"2026-01-01T00:00:00.000Z","n":3}"#
        );
    }

    #[test]
    fn detections_round_trip_through_json() {
        let d = Detection {
            frame_id: "f1".into(),
            tenant: "t".into(),
            source_id: "cam".into(),
            event_time: 1_767_225_600_123,
            operator: "detect".into(),
            label: "person".into(),
            confidence: 0.5,
            x: 1.0,
            y: 2.0,
            w: 3.0,
            h: 4.0,
            track_id: None,
            text: None,
            attributes: BTreeMap::new(),
        };
        let json = Record::Detection(d.clone()).to_json().unwrap();
        assert!(json.contains(r#""event_time":"2026-01-01T00:00:00.123Z""#), "{json}");
        assert_eq!(serde_json::from_str::<Detection>(&json).unwrap(), d);
    }

    #[test]
    fn stable_hash_separates_parts() {
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(stable_hash(&[b"cam"]), stable_hash(&[b"cam"]));
    }
}
