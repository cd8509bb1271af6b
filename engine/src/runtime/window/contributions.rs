//! What detections contribute to windows, summed per window, group and
//! aggregate inputs before differential sees them.
//!
//! This is the hot loop of every windowed view, so a row whose key was seen
//! before costs a hash of its columns and a comparison, with no allocation:
//! the key's `Value`s are built only for a new key.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{Contribution, Inputs, WindowKey, column_value};
use crate::model::{Detection, Value};
use crate::plan::DetectionColumn;
use crate::time::Millis;

/// Contributions summed per (window key, inputs).
pub(super) struct Contributions {
    group_by: Vec<DetectionColumn>,
    inputs: Vec<Option<DetectionColumn>>,
    /// Row indexes by the hash of their key; a collision holds several.
    by_hash: HashMap<u64, Vec<usize>, BuildHasherDefault<Prehashed>>,
    rows: Vec<Contribution>,
}

impl Contributions {
    pub(super) fn new(group_by: &[DetectionColumn], inputs: &[Option<DetectionColumn>]) -> Contributions {
        Contributions {
            group_by: group_by.to_vec(),
            inputs: inputs.to_vec(),
            by_hash: HashMap::default(),
            rows: Vec::new(),
        }
    }

    /// Adds `count` of detection `d` to the window starting at `start`.
    pub(super) fn add(&mut self, d: &Detection, start: Millis, count: isize) {
        let hash = self.hash(d, start);
        let candidates = self.by_hash.entry(hash).or_default();
        if let Some(&found) =
            candidates.iter().find(|&&i| matches(&self.rows[i].0, d, start, &self.group_by, &self.inputs))
        {
            self.rows[found].1 += count;
            return;
        }
        candidates.push(self.rows.len());
        let group: Vec<Value> = self.group_by.iter().map(|c| column_value(d, *c)).collect();
        let inputs: Inputs = self.inputs.iter().map(|c| c.map_or(Value::Null, |c| column_value(d, c))).collect();
        self.rows.push((((group, start), inputs), count));
    }

    /// The sums, leaving this empty.
    pub(super) fn take(&mut self) -> Vec<Contribution> {
        self.by_hash.clear();
        let mut rows = std::mem::take(&mut self.rows);
        rows.retain(|(_, count)| *count != 0);
        rows
    }

    fn hash(&self, d: &Detection, start: Millis) -> u64 {
        let mut hash = WordHash::default();
        hash.write_i64(start);
        for column in self.group_by.iter().copied().chain(self.inputs.iter().flatten().copied()) {
            hash_column(&mut hash, d, column);
        }
        hash.finish()
    }
}

/// Whether a contribution's key is that of `d` in the window at `start`.
fn matches(
    ((group, key_start), values): &(WindowKey, Inputs),
    d: &Detection,
    start: Millis,
    group_by: &[DetectionColumn],
    inputs: &[Option<DetectionColumn>],
) -> bool {
    *key_start == start
        && group_by.iter().zip(group).all(|(c, v)| column_equals(d, *c, v))
        && inputs.iter().zip(values).all(|(c, v)| c.is_none_or(|c| column_equals(d, c, v)))
}

fn column_equals(d: &Detection, column: DetectionColumn, value: &Value) -> bool {
    let text = |s: &str| matches!(value, Value::Str(v) if **v == *s);
    match column {
        DetectionColumn::FrameId => text(&d.frame_id),
        DetectionColumn::Tenant => text(&d.tenant),
        DetectionColumn::SourceId => text(&d.source_id),
        DetectionColumn::Operator => text(&d.operator),
        DetectionColumn::Label => text(&d.label),
        DetectionColumn::Text => d.text.as_deref().map_or(*value == Value::Null, text),
        numeric => column_value(d, numeric) == *value,
    }
}

fn hash_column(hash: &mut WordHash, d: &Detection, column: DetectionColumn) {
    let bits = |v: f32| v.to_bits().to_le_bytes();
    match column {
        DetectionColumn::FrameId => hash.write(d.frame_id.as_bytes()),
        DetectionColumn::Tenant => hash.write(d.tenant.as_bytes()),
        DetectionColumn::SourceId => hash.write(d.source_id.as_bytes()),
        DetectionColumn::Operator => hash.write(d.operator.as_bytes()),
        DetectionColumn::Label => hash.write(d.label.as_bytes()),
        DetectionColumn::Text => hash.write(d.text.as_deref().unwrap_or("\u{0}null").as_bytes()),
        DetectionColumn::Confidence => hash.write(&bits(d.confidence)),
        DetectionColumn::X => hash.write(&bits(d.x)),
        DetectionColumn::Y => hash.write(&bits(d.y)),
        DetectionColumn::W => hash.write(&bits(d.w)),
        DetectionColumn::H => hash.write(&bits(d.h)),
    }
}

/// A word-at-a-time hash (the multiply-rotate of rustc's FxHash), with the
/// length of each part mixed in: keys are short, and this runs per row.
#[derive(Default)]
struct WordHash(u64);

impl WordHash {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for WordHash {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(last) ^ (bytes.len() as u64) << 56);
    }

    fn write_i64(&mut self, n: i64) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn detection(source: &str, label: &str, confidence: f32) -> Detection {
        Detection {
            frame_id: "f".into(),
            tenant: "t".into(),
            source_id: source.into(),
            event_time: 0,
            operator: "detect".into(),
            label: label.into(),
            confidence,
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
            track_id: None,
            text: None,
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn rows_with_one_key_are_summed_and_different_keys_kept_apart() {
        let group = [DetectionColumn::SourceId, DetectionColumn::Label];
        let mut sums = Contributions::new(&group, &[None, Some(DetectionColumn::Confidence)]);
        sums.add(&detection("a", "person", 0.5), 0, 1);
        sums.add(&detection("a", "person", 0.5), 0, 1);
        sums.add(&detection("a", "person", 0.5), 10, 1);
        sums.add(&detection("a", "person", 0.7), 0, 1);
        // "ab"+"c" and "a"+"bc" must not be one key.
        sums.add(&detection("ab", "c", 0.5), 0, 1);
        sums.add(&detection("a", "bc", 0.5), 0, 1);
        sums.add(&detection("b", "car", 0.5), 0, 1);
        sums.add(&detection("b", "car", 0.5), 0, -1);
        let rows = sums.take();
        let count = |source: &str, label: &str, start: Millis, confidence: f64| {
            rows.iter()
                .find(|(((g, s), v), _)| {
                    g == &[Value::Str(source.into()), Value::Str(label.into())]
                        && *s == start
                        && v[1] == Value::Float(crate::model::F64(confidence))
                })
                .map(|(_, n)| *n)
        };
        assert_eq!(count("a", "person", 0, 0.5), Some(2));
        assert_eq!(count("a", "person", 10, 0.5), Some(1));
        assert_eq!(count("a", "person", 0, 0.7), Some(1));
        assert_eq!(count("ab", "c", 0, 0.5), Some(1));
        assert_eq!(count("a", "bc", 0, 0.5), Some(1));
        assert_eq!(count("b", "car", 0, 0.5), None, "rows that cancel out are dropped");
        assert_eq!(rows.len(), 5);
        assert!(sums.take().is_empty(), "taking empties");
    }
}
