//! What detections contribute to windows, summed per window, group and
//! aggregate inputs before differential sees them.
//!
//! This is the hot loop of every windowed view, so a row whose key was seen
//! before costs a hash of its columns and a comparison, with no allocation:
//! the key's `Value`s are built only for a new key.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::rows::WindowRow;
use super::{Contribution, Inputs, WindowKey};
use crate::model::Value;
use crate::plan::Column;
use crate::time::Millis;

/// Contributions summed per (window key, inputs).
pub(super) struct Contributions {
    group_by: Vec<Column>,
    inputs: Vec<Option<Column>>,
    /// The first row of each key hash; rows whose keys share a hash are
    /// chained through `next`.
    by_hash: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
    rows: Vec<Contribution>,
    next: Vec<Option<usize>>,
}

impl Contributions {
    pub(super) fn new(group_by: &[Column], inputs: &[Option<Column>]) -> Contributions {
        Contributions {
            group_by: group_by.to_vec(),
            inputs: inputs.to_vec(),
            by_hash: HashMap::default(),
            rows: Vec::new(),
            next: Vec::new(),
        }
    }

    /// Adds `count` of row `r` to the window starting at `start`.
    pub(super) fn add<R: WindowRow>(&mut self, r: &R, start: Millis, count: isize) {
        let hash = self.hash(r, start);
        let first = self.by_hash.get(&hash).copied();
        let mut candidate = first;
        while let Some(i) = candidate {
            if matches(&self.rows[i].0, r, start, &self.group_by, &self.inputs) {
                self.rows[i].1 += count;
                return;
            }
            candidate = self.next[i];
        }
        self.by_hash.insert(hash, self.rows.len());
        self.next.push(first);
        let group: Vec<Value> = self.group_by.iter().map(|c| r.value(*c)).collect();
        let inputs: Inputs = self.inputs.iter().map(|c| c.map_or(Value::Null, |c| r.value(c))).collect();
        self.rows.push((((group, start), inputs), count));
    }

    /// The sums, leaving this empty.
    pub(super) fn take(&mut self) -> Vec<Contribution> {
        self.by_hash.clear();
        self.next.clear();
        let mut rows = std::mem::take(&mut self.rows);
        rows.retain(|(_, count)| *count != 0);
        rows
    }

    fn hash<R: WindowRow>(&self, r: &R, start: Millis) -> u64 {
        let mut hash = WordHash::default();
        hash.write_i64(start);
        for column in self.group_by.iter().copied().chain(self.inputs.iter().flatten().copied()) {
            r.hash_column(column, &mut hash);
        }
        hash.finish()
    }
}

/// Whether a contribution's key is that of `r` in the window at `start`.
fn matches<R: WindowRow>(
    ((group, key_start), values): &(WindowKey, Inputs),
    r: &R,
    start: Millis,
    group_by: &[Column],
    inputs: &[Option<Column>],
) -> bool {
    *key_start == start
        && group_by.iter().zip(group).all(|(c, v)| r.equals(*c, v))
        && inputs.iter().zip(values).all(|(c, v)| c.is_none_or(|c| r.equals(c, v)))
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
    use crate::model::Detection;
    use crate::plan::DetectionColumn;

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
        let group = [Column::Detection(DetectionColumn::SourceId), Column::Detection(DetectionColumn::Label)];
        let mut sums = Contributions::new(&group, &[None, Some(Column::Detection(DetectionColumn::Confidence))]);
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
