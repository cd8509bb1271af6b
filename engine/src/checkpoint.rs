//! Checkpoints: where every source resumes, and where every sink stands,
//! at one event time, so that a restarted job loses nothing and repeats
//! nothing.
//!
//! A checkpoint at `frontier` says: every output stamped before `frontier`
//! is delivered, and replaying each source from its `positions` rebuilds
//! every window still open there. On restart the engine replays the
//! sources from their positions, sinks go back to their own position (a
//! file truncated to its length then, a Kafka transaction aborted), and
//! outputs stamped before `frontier` are not delivered again. Downstream
//! sees each output once.
//!
//! A frame is *behind* the checkpoint once its every output, its windows'
//! rows included, is stamped before `frontier`: a source's position moves
//! past its frames only then. With tumbling or hopping windows that is
//! the window length after the frame's tick (summed along chains of views);
//! a session or global view keeps every frame needed, so such a job's
//! sources resume from their start (and sinks still deliver nothing twice).
//!
//! An operator with state per camera (dedup's last kept frame) cannot be
//! rebuilt by replay: what it keeps depends on what it kept before, back
//! to the start. Its state at `frontier` is in the checkpoint instead,
//! with the frames it refused that a restart may replay (see
//! `runtime::state`).
//!
//! The file is written whole to a temporary name, synced, and renamed over
//! `checkpoint.json` in the job's state folder.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// A source's positions, by a key of its own (a camera, a partition).
pub type Positions = BTreeMap<String, String>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Counts up with every checkpoint of the state folder.
    pub id: u64,
    /// Every output stamped before this event time (ms) is delivered.
    pub frontier: Millis,
    /// Per source (by name), the positions its partitions resume from.
    pub sources: BTreeMap<String, Positions>,
    /// Per sink (by name), where it stood (its own format), if it keeps one.
    pub sinks: BTreeMap<String, String>,
    /// Sinks that had delivered their whole input (ahead of `frontier`): a
    /// resumed job writes nothing more to them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub closed: BTreeSet<String>,
    /// Per operator that keeps state per camera (by stream name, or
    /// `SOURCE dedup` for a source's screen), its state at `frontier`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operators: BTreeMap<String, OperatorState>,
}

/// A stateful operator's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    /// Its state after every frame stamped before the frontier, by a key
    /// of the operator's own ([`crate::registry::VisionOperator::changed`]).
    pub state: BTreeMap<String, serde_json::Value>,
    /// The frames before the frontier that a restart may replay and that
    /// it refused as duplicates: they are refused again, not judged anew.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub duplicates: BTreeSet<String>,
}

const FILE: &str = "checkpoint.json";

impl Checkpoint {
    /// The last checkpoint in `dir`, if any.
    ///
    /// # Errors
    /// A checkpoint that exists but cannot be read: resuming without it
    /// would deliver outputs twice, so the job must not start.
    pub fn load(dir: &Path) -> Result<Option<Checkpoint>, String> {
        let path = dir.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read checkpoint `{}`: {e}", path.display())),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| format!("checkpoint `{}` is damaged: {e}", path.display()))
    }

    /// Writes the checkpoint atomically: a crash leaves the old one or this.
    pub fn store(&self, dir: &Path) -> Result<(), String> {
        let fail = |what: &str, path: &Path, e: std::io::Error| format!("cannot {what} `{}`: {e}", path.display());
        fs::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
        let temporary = dir.join(format!(".{FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).map_err(|e| format!("cannot encode a checkpoint: {e}"))?;
        let mut file = fs::File::create(&temporary).map_err(|e| fail("create", &temporary, e))?;
        file.write_all(&text).and_then(|()| file.sync_all()).map_err(|e| fail("write", &temporary, e))?;
        let path = dir.join(FILE);
        fs::rename(&temporary, &path).map_err(|e| fail("replace", &path, e))?;
        sync_dir(dir)
    }
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), String> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("cannot sync folder `{}`: {e}", dir.display()))
}

/// Where a source partition starts: the positions of the last checkpoint
/// (empty on a first run), and a folder of its own for state such as a
/// journal, when the job has a state folder.
#[derive(Clone, Debug, Default)]
pub struct SourceContext {
    pub positions: Positions,
    pub state_dir: Option<PathBuf>,
}
