//! `CREATE SOURCE cams FROM DIRECTORY 'data/frames' WITH (...)`: frames from
//! a folder with one sub-folder per camera.
//!
//! - **Cameras.** Each sub-folder is a camera; its name is the `source_id`.
//!   Files ending in `.jpg`, `.jpeg` or `.png` are frames; hidden files and
//!   other files are ignored.
//! - **Order.** A camera's frames are read in file-name order, which is
//!   capture order for the usual names (a sequence number or a timestamp).
//!   Across cameras, the camera whose next frame is earliest goes first.
//! - **Event time** (`event_time = 'auto' | 'name' | 'mtime'`, default
//!   `auto`): with `name`, the file stem must be an integer, the capture
//!   time in ms since the Unix epoch (`1767225600000.jpg`); with `mtime`,
//!   the file's modification time; `auto` uses the name where the stem is an
//!   integer and the modification time otherwise.
//! - **End.** The source finishes once every file present at start is read,
//!   unless `watch = true`: then it rescans every `poll_interval` (default
//!   `500ms`) for new files. Writers should create files atomically (write
//!   to a hidden name, then rename).
//! - **Idle cameras** (`idle_timeout`, off by default): in a watched folder,
//!   a camera with no new frame for this long (wall-clock) stops holding
//!   back the others' windows: its promise moves to now minus the lateness,
//!   so a frame it sends later with an older time counts as late.
//! - **Workers.** Cameras are spread over workers by a hash of their name;
//!   a watched folder is read by worker 0 alone (see `owns`).
//! - **Checkpoints.** A camera's position is the name of its last frame
//!   behind the checkpoint; a resumed job reads the files after it.
//! - **Limits.** A file over `max_bytes` (default 32 MiB) or one that cannot
//!   be read is not loaded; its frame is rejected with the reason.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use engine::checkpoint::{Positions, SourceContext};
use engine::model::{Frame, MediaType, stable_hash};
use engine::plan::{Options, SourceSpec};
use engine::registry::{Partition, Source, SourceFactory, SourcePoll};
use engine::time::{Millis, now_ms};
use engine::watermark::CameraWatermarks;

use crate::options::{parse_bool, parse_bytes, parse_duration, reject_unknown};

const OPTIONS: &[&str] =
    &["watch", "event_time", "poll_interval", "max_bytes", "idle_timeout", "tenant", "lateness", "late"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventTimeFrom {
    Auto,
    Name,
    Mtime,
}

#[derive(Clone, Debug)]
struct DirectoryConfig {
    root: PathBuf,
    watch: bool,
    event_time: EventTimeFrom,
    poll_interval: Duration,
    max_bytes: u64,
    idle_timeout: Option<Duration>,
}

impl DirectoryConfig {
    fn from_spec(spec: &SourceSpec) -> Result<DirectoryConfig, String> {
        reject_unknown(&spec.options, OPTIONS)?;
        let root = PathBuf::from(spec.location.as_deref().ok_or("DIRECTORY needs a folder: FROM DIRECTORY 'path'")?);
        let options: &Options = &spec.options;
        let event_time = match options.get("event_time").map(String::as_str) {
            None | Some("auto") => EventTimeFrom::Auto,
            Some("name") => EventTimeFrom::Name,
            Some("mtime") => EventTimeFrom::Mtime,
            Some(other) => return Err(format!("event_time = '{other}' is not one of 'auto', 'name', 'mtime'")),
        };
        Ok(DirectoryConfig {
            root,
            watch: options.get("watch").map(|v| parse_bool("watch", v)).transpose()?.unwrap_or(false),
            event_time,
            poll_interval: options
                .get("poll_interval")
                .map(|v| parse_duration("poll_interval", v))
                .transpose()?
                .unwrap_or(Duration::from_millis(500)),
            max_bytes: options.get("max_bytes").map(|v| parse_bytes("max_bytes", v)).transpose()?.unwrap_or(32 << 20),
            idle_timeout: options.get("idle_timeout").map(|v| parse_duration("idle_timeout", v)).transpose()?,
        })
    }
}

/// The registry entry for `DIRECTORY`.
#[derive(Debug, Default)]
pub struct DirectorySourceFactory;

impl SourceFactory for DirectorySourceFactory {
    fn validate(&self, spec: &SourceSpec) -> Result<(), String> {
        let config = DirectoryConfig::from_spec(spec)?;
        if !config.root.is_dir() {
            return Err(format!("folder `{}` does not exist or is not a folder", config.root.display()));
        }
        Ok(())
    }

    fn open(&self, spec: &SourceSpec, partition: Partition) -> Result<Box<dyn Source>, String> {
        self.open_at(spec, partition, &SourceContext::default())
    }

    fn open_at(
        &self,
        spec: &SourceSpec,
        partition: Partition,
        context: &SourceContext,
    ) -> Result<Box<dyn Source>, String> {
        let config = DirectoryConfig::from_spec(spec)?;
        let mut source = DirectorySource {
            done: context.positions.clone(),
            polls: VecDeque::new(),
            forgotten: 0,
            tenant: spec.tenant.as_str().into(),
            source_name: spec.name.clone(),
            config,
            partition,
            cameras: BTreeMap::new(),
            watermarks: CameraWatermarks::new(spec.lateness_ms),
            last_scan: None,
            last_promise: None,
        };
        source.scan()?;
        Ok(Box::new(source))
    }
}

/// A file waiting to be read.
#[derive(Debug)]
struct PendingFile {
    path: PathBuf,
    name: String,
    media_type: MediaType,
    /// `Err` holds why no event time could be found.
    event_time: Result<Millis, String>,
}

#[derive(Debug)]
struct Camera {
    pending: VecDeque<PendingFile>,
    seen: HashSet<String>,
    next_seq: u64,
    /// When the camera last sent a frame (or was found).
    last_active: Instant,
}

impl Default for Camera {
    fn default() -> Self {
        Camera { pending: VecDeque::new(), seen: HashSet::new(), next_seq: 0, last_active: Instant::now() }
    }
}

impl Camera {
    fn next_event_time(&self) -> Option<Millis> {
        self.pending.front().and_then(|f| f.event_time.as_ref().ok().copied())
    }
}

/// The cameras of one folder that one worker owns.
pub struct DirectorySource {
    tenant: Arc<str>,
    source_name: String,
    config: DirectoryConfig,
    partition: Partition,
    cameras: BTreeMap<Arc<str>, Camera>,
    watermarks: CameraWatermarks,
    last_scan: Option<Instant>,
    last_promise: Option<Millis>,
    /// Per camera, the last file behind the latest checkpoint.
    done: Positions,
    /// Per poll not yet behind a checkpoint, each camera's last file.
    polls: VecDeque<Vec<(Arc<str>, String)>>,
    /// Polls already moved into `done`.
    forgotten: u64,
}

impl DirectorySource {
    /// Whether this worker reads camera `name`. A watched folder is read by
    /// worker 0 alone: a camera that appears later must find a reader that
    /// still holds a capability, and a worker without cameras must not hold
    /// the others' windows open forever. Reading is cheap; decoding and
    /// detection are spread over all workers downstream either way.
    fn owns(&self, name: &str) -> bool {
        if self.config.watch { self.partition.worker == 0 } else { self.partition.owns(name) }
    }

    /// Finds new cameras and new files of the cameras this worker owns.
    fn scan(&mut self) -> Result<(), String> {
        // Files behind the checkpoint a job resumed from were read before
        // it: skipped at the first scan only. A file that turns up later
        // with an earlier name is new, and read (late, if it is).
        let first = self.last_scan.is_none();
        self.last_scan = Some(Instant::now());
        let root = &self.config.root;
        let entries = fs::read_dir(root).map_err(|e| format!("cannot list `{}`: {e}", root.display()))?;
        let mut folders: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .filter(|(name, _)| !name.starts_with('.') && self.owns(name))
            .collect();
        folders.sort();
        for (name, path) in folders {
            let camera = self.cameras.entry(name.as_str().into()).or_default();
            let mut new_files = list_frames(&path, &camera.seen, self.config.event_time);
            if let Some(done) = self.done.get(&name).filter(|_| first) {
                let (read, rest): (Vec<_>, Vec<_>) = new_files.into_iter().partition(|f| f.name <= *done);
                camera.seen.extend(read.into_iter().map(|f| f.name));
                new_files = rest;
            }
            new_files.sort_by(|a, b| a.name.cmp(&b.name));
            for file in new_files {
                camera.seen.insert(file.name.clone());
                camera.pending.push_back(file);
            }
        }
        Ok(())
    }

    /// The camera whose next frame is earliest; files without an event time
    /// go first, since they are rejected at once.
    fn next_camera(&self) -> Option<Arc<str>> {
        self.cameras
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .min_by_key(|(_, c)| c.next_event_time().unwrap_or(Millis::MIN))
            .map(|(name, _)| name.clone())
    }

    /// The camera's next frame, and its file's name.
    fn read(&mut self, source_id: Arc<str>) -> Option<(Frame, String)> {
        let camera = self.cameras.get_mut(&source_id)?;
        let file = camera.pending.pop_front()?;
        let seq = camera.next_seq;
        camera.next_seq += 1;
        camera.last_active = Instant::now();
        let frame_id = format!(
            "{:016x}",
            stable_hash(&[
                self.tenant.as_bytes(),
                self.source_name.as_bytes(),
                source_id.as_bytes(),
                file.name.as_bytes()
            ])
        );
        let (bytes, refused) = match read_limited(&file.path, self.config.max_bytes) {
            Ok(bytes) => (bytes, None),
            Err(reason) => (Vec::new(), Some(reason)),
        };
        let (event_time, refused) = match file.event_time {
            Ok(t) => (t, refused),
            Err(reason) => (now_ms(), refused.or(Some(reason))),
        };
        let late = if refused.is_none() { self.watermarks.observe(&source_id, event_time) } else { None };
        let frame = Frame {
            frame_id: frame_id.into(),
            tenant: self.tenant.clone(),
            source_id,
            seq,
            event_time,
            ingest_time: now_ms(),
            media_type: file.media_type,
            bytes: bytes.into(),
            late,
            refused,
        };
        Some((frame, file.name))
    }
}

impl Source for DirectorySource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, String> {
        let mut frames = Vec::new();
        let mut last: Vec<(Arc<str>, String)> = Vec::new();
        while frames.len() < max {
            let Some(camera) = self.next_camera() else { break };
            let Some((frame, name)) = self.read(camera) else { break };
            match last.iter_mut().find(|(c, _)| *c == frame.source_id) {
                Some((_, last)) => *last = name,
                None => last.push((frame.source_id.clone(), name)),
            }
            frames.push(frame);
        }
        if !frames.is_empty() {
            self.polls.push_back(last);
            return Ok(SourcePoll::Frames(frames));
        }
        if !self.config.watch || self.partition.worker != 0 {
            return Ok(SourcePoll::Done);
        }
        if self.last_scan.is_none_or(|t| t.elapsed() >= self.config.poll_interval) {
            self.scan()?;
        }
        Ok(SourcePoll::Idle)
    }

    fn checkpoint(&mut self, polls: u64) -> Positions {
        // `polls` counts from the start of this run; those before are gone.
        let behind = polls.saturating_sub(self.forgotten);
        for poll in self.polls.drain(..(behind as usize).min(self.polls.len())) {
            // The name read last, even if an earlier one: every file up to
            // it was read before it. Files after it that were read too are
            // read again after a restart, and their outputs before the
            // checkpoint dropped: harmless, where skipping would lose.
            self.done.extend(poll.into_iter().map(|(camera, name)| (camera.to_string(), name)));
        }
        self.forgotten = self.forgotten.max(polls);
        // Only the cameras this worker reads: the others' workers say theirs.
        self.done.iter().filter(|(camera, _)| self.owns(camera)).map(|(c, f)| (c.clone(), f.clone())).collect()
    }

    fn watermark(&mut self) -> Option<Millis> {
        let idle =
            |c: &Camera| c.pending.is_empty() && self.config.idle_timeout.is_some_and(|t| c.last_active.elapsed() >= t);
        let live = self.cameras.iter().filter(|(_, c)| self.config.watch || !c.pending.is_empty());
        let promise = live
            .filter_map(|(name, c)| match idle(c) {
                true => Some(now_ms() - self.watermarks.lateness_ms()),
                false => self.watermarks.promise(name, c.next_event_time()),
            })
            .min();
        if promise.is_none() && !self.config.watch {
            return None;
        }
        // A watched folder with no camera to constrain it keeps its last
        // promise: promises never move back.
        let promise = promise.max(self.last_promise).or(Some(Millis::MIN));
        self.last_promise = promise;
        promise
    }
}

/// The frame files in `folder` not yet seen.
fn list_frames(folder: &Path, seen: &HashSet<String>, event_time: EventTimeFrom) -> Vec<PendingFile> {
    let Ok(entries) = fs::read_dir(folder) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            if name.starts_with('.') || seen.contains(&name) {
                return None;
            }
            let path = entry.path();
            let media_type = MediaType::from_extension(path.extension()?.to_str()?)?;
            let meta = entry.metadata().ok().filter(|m| m.is_file())?;
            let stem = path.file_stem()?.to_str()?.to_owned();
            let from_name = stem.parse::<Millis>().ok();
            let from_mtime = || -> Result<Millis, String> {
                let modified = meta.modified().map_err(|e| format!("no modification time: {e}"))?;
                let since =
                    modified.duration_since(UNIX_EPOCH).map_err(|_| "modification time is before 1970".to_owned())?;
                Ok(since.as_millis() as Millis)
            };
            let event_time = match (event_time, from_name) {
                (EventTimeFrom::Mtime, _) => from_mtime(),
                (_, Some(ms)) => Ok(ms),
                (EventTimeFrom::Auto, None) => from_mtime(),
                (EventTimeFrom::Name, None) => Err(format!(
                    "file name `{name}` is not a timestamp (ms since the Unix epoch) and event_time = 'name'"
                )),
            };
            Some(PendingFile { path, name, media_type, event_time })
        })
        .collect()
}

fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let size = fs::metadata(path).map_err(|e| format!("cannot read file: {e}"))?.len();
    if size > max_bytes {
        return Err(format!("file is {size} bytes, over max_bytes = {max_bytes}"));
    }
    fs::read(path).map_err(|e| format!("cannot read file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::plan::LatePolicy;

    fn spec(root: &Path, options: &[(&str, &str)]) -> SourceSpec {
        SourceSpec {
            name: "cams".into(),
            rows: Default::default(),
            kind: "directory".into(),
            location: Some(root.display().to_string()),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            tenant: "default".into(),
            lateness_ms: 1_000,
            late: LatePolicy::DeadLetter,
            screen: None,
        }
    }

    fn write(root: &Path, camera: &str, name: &str, bytes: &[u8]) {
        fs::create_dir_all(root.join(camera)).unwrap();
        fs::write(root.join(camera).join(name), bytes).unwrap();
    }

    fn drain(source: &mut dyn Source) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let SourcePoll::Frames(batch) = source.poll(2).unwrap() {
            frames.extend(batch);
        }
        frames
    }

    #[test]
    fn a_resumed_watch_skips_what_was_read_and_reads_what_comes_later_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "1000.jpg", b"x");
        write(dir.path(), "a", "2000.jpg", b"x");
        let spec = spec(dir.path(), &[("watch", "true"), ("poll_interval", "1ms")]);
        let context = SourceContext {
            positions: [("a".to_owned(), "2000.jpg".to_owned()), ("z".to_owned(), "9.jpg".to_owned())].into(),
            state_dir: None,
        };
        let mut source = DirectorySourceFactory.open_at(&spec, Partition { worker: 0, workers: 1 }, &context).unwrap();
        assert!(drain(source.as_mut()).is_empty(), "both files were read before the checkpoint");
        // Later: one file after the position, one with an earlier name.
        write(dir.path(), "a", "0500.jpg", b"x");
        write(dir.path(), "a", "3000.jpg", b"x");
        let mut names = Vec::new();
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(2));
            names.extend(drain(source.as_mut()).iter().map(|f| f.event_time));
        }
        names.sort();
        assert_eq!(names, [500, 3000], "each new file once, none of the old ones");
        let positions = source.checkpoint(u64::MAX);
        assert!(positions.get("a").is_some_and(|p| p.as_str() >= "0500.jpg"));
        // Worker 0 reads every camera of a watched folder, even one not
        // there yet: its position is kept.
        assert_eq!(positions.get("z").map(String::as_str), Some("9.jpg"));
    }

    #[test]
    fn reads_cameras_merged_by_event_time_and_finishes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "1000.jpg", b"x");
        write(dir.path(), "a", "3000.jpg", b"x");
        write(dir.path(), "b", "2000.png", b"x");
        write(dir.path(), "b", "notes.txt", b"x");
        write(dir.path(), "b", ".4000.jpg", b"x");
        let spec = spec(dir.path(), &[]);
        let mut source = DirectorySourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap();
        assert_eq!(source.watermark(), Some(0));
        let frames = drain(source.as_mut());
        let order: Vec<_> = frames.iter().map(|f| (f.source_id.to_string(), f.event_time)).collect();
        assert_eq!(order, [("a".into(), 1000), ("b".into(), 2000), ("a".into(), 3000)]);
        assert!(matches!(source.poll(1).unwrap(), SourcePoll::Done));
        assert_eq!(source.watermark(), None);
    }

    #[test]
    fn out_of_order_frames_beyond_lateness_are_marked_late() {
        let dir = tempfile::tempdir().unwrap();
        // File-name order is capture order; event times come from mtime.
        for (name, secs) in [("001.jpg", 10), ("002.jpg", 9), ("003.jpg", 5)] {
            write(dir.path(), "a", name, b"x");
            let file = fs::File::options().write(true).open(dir.path().join("a").join(name)).unwrap();
            file.set_modified(UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
        }
        let spec = spec(dir.path(), &[("event_time", "mtime")]);
        let mut source = DirectorySourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap();
        let late: Vec<_> = drain(source.as_mut()).iter().map(|f| f.late).collect();
        assert_eq!(late, [None, None, Some(9_000)], "late behind the watermark, newest (10 s) minus lateness");
    }

    #[test]
    fn unnamed_timestamps_and_oversized_files_are_refused_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "frame.jpg", b"x");
        write(dir.path(), "a", "1000.jpg", &[0; 64]);
        let spec = spec(dir.path(), &[("event_time", "name"), ("max_bytes", "16")]);
        let mut source = DirectorySourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap();
        let frames = drain(source.as_mut());
        let reasons: Vec<_> = frames.iter().map(|f| f.refused.clone().unwrap_or_default()).collect();
        assert!(reasons.iter().any(|r| r.contains("not a timestamp")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("over max_bytes")), "{reasons:?}");
    }

    #[test]
    fn a_watched_folder_picks_up_new_files_and_cameras() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "1000.jpg", b"x");
        let spec = spec(dir.path(), &[("watch", "true"), ("poll_interval", "1ms")]);
        let mut source = DirectorySourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap();
        assert_eq!(drain(source.as_mut()).len(), 1);
        assert!(matches!(source.poll(1).unwrap(), SourcePoll::Idle), "a watched folder is never done");
        write(dir.path(), "a", "2000.jpg", b"x");
        write(dir.path(), "b", "1500.jpg", b"x");
        write(dir.path(), "b", ".3000.jpg.part", b"x");
        let mut found = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while found.len() < 2 && Instant::now() < deadline {
            if let SourcePoll::Frames(frames) = source.poll(10).unwrap() {
                found.extend(frames.into_iter().map(|f| (f.source_id.to_string(), f.event_time)));
            }
        }
        found.sort();
        assert_eq!(found, [("a".to_owned(), 2000), ("b".to_owned(), 1500)]);
        assert_eq!(source.watermark(), Some(500), "the least camera promise: b's newest (1500) minus lateness");
    }

    #[test]
    fn an_idle_camera_stops_holding_back_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "quiet", "1000.jpg", b"x");
        let spec = spec(dir.path(), &[("watch", "true"), ("idle_timeout", "1ms")]);
        let mut source = DirectorySourceFactory.open(&spec, Partition { worker: 0, workers: 1 }).unwrap();
        assert_eq!(drain(source.as_mut()).len(), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut promise = source.watermark();
        while promise == Some(0) && Instant::now() < deadline {
            promise = source.watermark();
        }
        assert!(promise.unwrap() > 1_700_000_000_000, "promise moved to wall-clock time: {promise:?}");
    }

    #[test]
    fn each_camera_belongs_to_exactly_one_worker() {
        let dir = tempfile::tempdir().unwrap();
        for camera in ["a", "b", "c", "d", "e"] {
            write(dir.path(), camera, "1.jpg", b"x");
        }
        let spec = spec(dir.path(), &[]);
        let mut seen: Vec<String> = (0..3)
            .flat_map(|worker| {
                let mut source = DirectorySourceFactory.open(&spec, Partition { worker, workers: 3 }).unwrap();
                drain(source.as_mut()).into_iter().map(|f| f.source_id.to_string())
            })
            .collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    }
}
