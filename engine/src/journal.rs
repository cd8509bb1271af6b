//! A durable, segmented, append-only log of what a source accepted: a
//! frame is journaled, and synced to disk, before the device hears 202.
//!
//! - **Records.** `len: u32 | crc32: u32 | seq: u64 | payload`, little
//!   endian; the checksum covers the sequence number and the payload.
//!   Sequence numbers count up from 0 across segments.
//! - **Segments.** `{first seq:020}.log`, rolled at `segment_bytes`;
//!   [`Journal::release`] deletes those whose every record is behind a
//!   checkpoint.
//! - **Group commit.** [`Journal::append`] queues a record and returns its
//!   sequence number at once; one writer thread writes whatever has queued
//!   meanwhile, syncs once, and then calls each record's `done`. Under load
//!   one sync covers many records.
//! - **Recovery.** [`Journal::open`] reads every segment. A torn tail (the
//!   last record cut short by a crash) is cut off. A damaged record
//!   anywhere else (a bad checksum, a length that runs past the file) is
//!   skipped up to the next record that checks out, and reported with the
//!   sequence numbers lost: nothing after the damage is dropped unreported.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::checkpoint::sync_dir;

const HEADER: usize = 16;
/// No record is larger: a length beyond it is damage.
const MAX_RECORD: usize = 1 << 30;

/// Called once a record is on disk, or with why it is not.
pub type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Damage found when a journal was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The last segment ended inside a record: `bytes` cut at `offset`.
    TornTail { segment: PathBuf, offset: u64, bytes: u64 },
    /// Records `from..to` (sequence numbers; `to` exclusive) could not be
    /// read: `bytes` skipped at `offset`.
    Lost { segment: PathBuf, offset: u64, bytes: u64, from: u64, to: u64 },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::TornTail { segment, offset, bytes } => write!(
                f,
                "journal: cut a torn tail of {bytes} bytes at offset {offset} of `{}` (a record cut short by a crash; \
                 it was never acknowledged)",
                segment.display()
            ),
            Damage::Lost { segment, offset, bytes, from, to } => write!(
                f,
                "journal: {bytes} damaged bytes at offset {offset} of `{}`: records {from} to {} are lost, \
                 the rest is read",
                segment.display(),
                to - 1
            ),
        }
    }
}

pub struct Journal {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    /// The segments and the sequence numbers there were at open: what
    /// [`Journal::replay`] reads.
    recovered: (Vec<(u64, PathBuf)>, u64),
}

struct Shared {
    dir: PathBuf,
    segment_bytes: u64,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    next_seq: u64,
    queued: Vec<u8>,
    waiting: Vec<Done>,
    closed: bool,
    failed: Option<String>,
    /// First sequence numbers of the segments on disk, oldest first; the
    /// last is the one written.
    segments: VecDeque<u64>,
    /// The next batch starts a new segment (numbering jumped).
    roll: bool,
}

impl Journal {
    /// Opens (creating) the journal in `dir`, repairing what a crash left.
    ///
    /// # Errors
    /// The folder or a segment cannot be read or written.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(Journal, Vec<Damage>), String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create journal folder `{}`: {e}", dir.display()))?;
        let segments = list_segments(dir)?;
        let mut damage = Vec::new();
        let mut next_seq = segments.first().map_or(0, |(first, _)| *first);
        for (index, (first, path)) in segments.iter().enumerate() {
            let bytes = fs::read(path).map_err(|e| format!("cannot read journal segment `{}`: {e}", path.display()))?;
            let scan = scan(&bytes, *first, path);
            let last = index + 1 == segments.len();
            let following = segments.get(index + 1).map(|(f, _)| *f);
            damage.extend(scan.damage);
            match scan.tail {
                Some(offset) if last => {
                    let file = fs::OpenOptions::new().write(true).open(path);
                    file.and_then(|f| f.set_len(offset).and_then(|()| f.sync_all()))
                        .map_err(|e| format!("cannot cut the torn tail of `{}`: {e}", path.display()))?;
                    damage.push(Damage::TornTail { segment: path.clone(), offset, bytes: bytes.len() as u64 - offset });
                }
                Some(offset) => damage.push(Damage::Lost {
                    segment: path.clone(),
                    offset,
                    bytes: bytes.len() as u64 - offset,
                    from: scan.next_seq,
                    to: following.unwrap_or(scan.next_seq + 1),
                }),
                None => {}
            }
            next_seq = following.unwrap_or(scan.next_seq);
        }
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.max(HEADER as u64 + 1),
            state: Mutex::new(State {
                next_seq,
                queued: Vec::new(),
                waiting: Vec::new(),
                closed: false,
                failed: None,
                segments: segments.iter().map(|(first, _)| *first).collect(),
                roll: false,
            }),
            wake: Condvar::new(),
        });
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || write_loop(&writer_shared))
            .map_err(|e| format!("cannot start the journal writer: {e}"))?;
        Ok((Journal { shared, writer: Some(writer), recovered: (segments, next_seq) }, damage))
    }

    /// Queues `payload`; `done` is called once it is synced to disk.
    /// Returns its sequence number.
    pub fn append(&self, payload: &[u8], done: Done) -> u64 {
        let mut state = self.shared.lock();
        if let Some(failed) = state.failed.clone() {
            drop(state);
            done(Err(failed));
            return u64::MAX;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        encode(&mut state.queued, seq, payload);
        state.waiting.push(done);
        drop(state);
        self.shared.wake.notify_one();
        seq
    }

    /// Numbers records from at least `seq` on, in a segment of their own.
    pub fn skip_to(&self, seq: u64) {
        let mut state = self.shared.lock();
        if seq > state.next_seq {
            state.next_seq = seq;
            state.roll = true;
        }
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.shared.lock().next_seq
    }

    /// The records that were on disk at open, from sequence number `from`.
    pub fn replay(&self, from: u64) -> Replay {
        let (segments, until) = &self.recovered;
        // Segments holding only records before `from` are skipped unread.
        let skip = segments.iter().take_while(|(first, _)| *first <= from).count().saturating_sub(1);
        Replay { segments: segments[skip..].iter().cloned().collect(), from, until: *until, records: VecDeque::new() }
    }

    /// Deletes the segments whose every record comes before `seq`.
    pub fn release(&self, seq: u64) -> Result<(), String> {
        let mut state = self.shared.lock();
        while state.segments.len() > 1 && state.segments[1] <= seq {
            let Some(first) = state.segments.pop_front() else { break };
            let path = segment_path(&self.shared.dir, first);
            fs::remove_file(&path).map_err(|e| format!("cannot delete journal segment `{}`: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The segments on disk, by first sequence number.
    pub fn segments(&self) -> Vec<u64> {
        self.shared.lock().segments.iter().copied().collect()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The writer thread: writes what queued, syncs, acknowledges; repeats.
fn write_loop(shared: &Shared) {
    // The segment being written: its first sequence number, file and size.
    let mut current: Option<(u64, fs::File, u64)> = None;
    loop {
        let mut state = shared.lock();
        while state.queued.is_empty() && !state.closed {
            state = shared.wake.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.queued.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut state.queued);
        let waiting = std::mem::take(&mut state.waiting);
        let batch_first = state.next_seq - waiting.len() as u64;
        // Go on with the last segment while it has room; else start one
        // named by this batch's first record.
        let roll = std::mem::take(&mut state.roll);
        let open = match (&current, state.segments.back()) {
            _ if roll => {
                state.segments.push_back(batch_first);
                Some(batch_first)
            }
            (Some((_, _, size)), _) if *size < shared.segment_bytes => None,
            (None, Some(&last)) if segment_len(&shared.dir, last) < shared.segment_bytes => Some(last),
            _ => {
                state.segments.push_back(batch_first);
                Some(batch_first)
            }
        };
        drop(state);
        let result = open
            .map_or(Ok(()), |first| open_segment(&shared.dir, first).map(|(f, size)| current = Some((first, f, size))))
            .and_then(|()| match current.as_mut() {
                Some((first, file, size)) => {
                    let path = segment_path(&shared.dir, *first);
                    file.write_all(&bytes)
                        .and_then(|()| file.sync_data())
                        .map_err(|e| format!("journal: cannot write `{}`: {e}", path.display()))?;
                    *size += bytes.len() as u64;
                    Ok(())
                }
                None => Err("journal: no segment open".to_owned()),
            });
        if let Err(e) = &result {
            shared.lock().failed = Some(e.clone());
            current = None;
        }
        for done in waiting {
            done(result.clone());
        }
    }
}

/// Opens a segment to append to, its name made durable; and its size.
fn open_segment(dir: &Path, first: u64) -> Result<(fs::File, u64), String> {
    let path = segment_path(dir, first);
    let fail = |e: std::io::Error| format!("journal: cannot open `{}`: {e}", path.display());
    let file = fs::OpenOptions::new().create(true).append(true).open(&path).map_err(fail)?;
    let size = file.metadata().map_err(fail)?.len();
    sync_dir(dir)?;
    Ok((file, size))
}

fn encode(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The record at `offset`, if one is there whole and checks out:
/// its sequence number and the range of its payload.
fn record_at(bytes: &[u8], offset: usize) -> Option<(u64, std::ops::Range<usize>)> {
    let header = bytes.get(offset..offset + HEADER)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let payload = offset + HEADER..offset + HEADER + len;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..16]);
    hasher.update(bytes.get(payload.clone())?);
    (hasher.finalize() == crc).then_some((seq, payload))
}

struct Scan {
    records: Vec<(u64, std::ops::Range<usize>)>,
    damage: Vec<Damage>,
    /// Where unreadable bytes run to the end of the segment.
    tail: Option<u64>,
    /// The sequence number after the last record read.
    next_seq: u64,
}

/// Reads a segment's records. Damage followed by a record that checks out
/// (with a later sequence number) is skipped and reported; damage that
/// runs to the end is the `tail`.
fn scan(bytes: &[u8], first_seq: u64, path: &Path) -> Scan {
    let mut scan = Scan { records: Vec::new(), damage: Vec::new(), tail: None, next_seq: first_seq };
    let mut offset = 0;
    while offset < bytes.len() {
        match record_at(bytes, offset) {
            Some((seq, payload)) if seq == scan.next_seq => {
                offset = payload.end;
                scan.records.push((seq, payload));
                scan.next_seq = seq + 1;
            }
            _ => {
                let expected = scan.next_seq;
                let resync = (offset + 1..bytes.len().saturating_sub(HEADER - 1)).find(|&at| {
                    record_at(bytes, at).is_some_and(|(seq, _)| seq > expected && seq < expected + (1 << 32))
                });
                let Some(at) = resync else {
                    scan.tail = Some(offset as u64);
                    break;
                };
                let (seq, _) = record_at(bytes, at).unwrap_or_default();
                scan.damage.push(Damage::Lost {
                    segment: path.to_owned(),
                    offset: offset as u64,
                    bytes: (at - offset) as u64,
                    from: expected,
                    to: seq,
                });
                scan.next_seq = seq;
                offset = at;
            }
        }
    }
    scan
}

/// Records read back from the journal, in order.
pub struct Replay {
    segments: VecDeque<(u64, PathBuf)>,
    from: u64,
    until: u64,
    records: VecDeque<(u64, Vec<u8>)>,
}

impl Iterator for Replay {
    type Item = Result<(u64, Vec<u8>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.records.is_empty() {
            let (first, path) = self.segments.pop_front()?;
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => return Some(Err(format!("cannot read journal segment `{}`: {e}", path.display()))),
            };
            let (from, until) = (self.from, self.until);
            self.records.extend(
                scan(&bytes, first, &path)
                    .records
                    .into_iter()
                    .filter(|(seq, _)| (from..until).contains(seq))
                    .map(|(seq, payload)| (seq, bytes[payload].to_vec())),
            );
        }
        self.records.pop_front().map(Ok)
    }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

fn segment_len(dir: &Path, first: u64) -> u64 {
    fs::metadata(segment_path(dir, first)).map_or(0, |m| m.len())
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list journal folder `{}`: {e}", dir.display()))?;
    let mut segments: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let first = name.strip_suffix(".log")?.parse().ok()?;
            Some((first, e.path()))
        })
        .collect();
    segments.sort();
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn append_all(journal: &Journal, payloads: &[&[u8]]) {
        let (tx, rx) = mpsc::channel();
        for payload in payloads {
            let tx = tx.clone();
            journal.append(payload, Box::new(move |r| tx.send(r).unwrap_or(())));
        }
        for _ in payloads {
            rx.recv().unwrap().unwrap();
        }
    }

    fn replayed(journal: &Journal, from: u64) -> Vec<(u64, Vec<u8>)> {
        journal.replay(from).collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn records_come_back_after_reopening_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (journal, damage) = Journal::open(dir.path(), 64).unwrap();
            assert!(damage.is_empty());
            for i in 0..10u8 {
                append_all(&journal, &[&[i; 30]]);
            }
            assert!(journal.segments().len() > 2, "rolled at 64 bytes: {:?}", journal.segments());
        }
        let (journal, damage) = Journal::open(dir.path(), 64).unwrap();
        assert!(damage.is_empty());
        assert_eq!(journal.next_seq(), 10);
        let back = replayed(&journal, 4);
        assert_eq!(back.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8, 9]);
        assert_eq!(back[0].1, vec![4u8; 30]);
        // New records continue the numbering and are not replayed.
        append_all(&journal, &[b"new"]);
        assert_eq!(journal.next_seq(), 11);
        assert_eq!(replayed(&journal, 0).len(), 10);
    }

    #[test]
    fn release_deletes_segments_wholly_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path(), 64).unwrap();
        for i in 0..6u8 {
            append_all(&journal, &[&[i; 40]]);
        }
        let before = journal.segments();
        journal.release(3).unwrap();
        let after = journal.segments();
        assert!(after.iter().all(|first| before.contains(first)));
        assert!(after[0] <= 3 && after.len() < before.len(), "{before:?} -> {after:?}");
        drop(journal);
        let (journal, _) = Journal::open(dir.path(), 64).unwrap();
        assert_eq!(replayed(&journal, 3).first().map(|r| r.0), Some(3));
    }

    #[test]
    fn numbering_can_jump_ahead_without_looking_like_damage() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (journal, _) = Journal::open(dir.path(), 1 << 20).unwrap();
            append_all(&journal, &[b"a", b"b"]);
            journal.skip_to(10);
            append_all(&journal, &[b"c"]);
        }
        let (journal, damage) = Journal::open(dir.path(), 1 << 20).unwrap();
        assert!(damage.is_empty(), "{damage:?}");
        assert_eq!(journal.next_seq(), 11);
        assert_eq!(replayed(&journal, 0).iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 10]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (journal, _) = Journal::open(dir.path(), 1 << 20).unwrap();
            append_all(&journal, &[b"one", b"two", b"three"]);
        }
        let segment = segment_path(dir.path(), 0);
        let len = fs::metadata(&segment).unwrap().len();
        fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 2).unwrap();
        let (journal, damage) = Journal::open(dir.path(), 1 << 20).unwrap();
        assert!(matches!(&damage[..], [Damage::TornTail { bytes, .. }] if *bytes == HEADER as u64 + 3));
        assert_eq!(
            replayed(&journal, 0).iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            vec![b"one".to_vec(), b"two".to_vec()]
        );
        assert_eq!(journal.next_seq(), 2, "the torn record's number is given again");
    }

    #[test]
    fn a_flipped_byte_loses_one_record_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (journal, _) = Journal::open(dir.path(), 1 << 20).unwrap();
            append_all(&journal, &[b"first", b"second", b"third", b"fourth"]);
        }
        let segment = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&segment).unwrap();
        let second = HEADER + 5 + HEADER + 2;
        bytes[second] ^= 0x40;
        fs::write(&segment, &bytes).unwrap();
        let (journal, damage) = Journal::open(dir.path(), 1 << 20).unwrap();
        assert!(matches!(&damage[..], [Damage::Lost { from: 1, to: 2, .. }]), "record 1 is reported lost: {damage:?}");
        assert!(damage[0].to_string().contains("records 1 to 1 are lost"));
        let back: Vec<u64> = replayed(&journal, 0).iter().map(|r| r.0).collect();
        assert_eq!(back, vec![0, 2, 3], "what follows the damage is read");
        assert_eq!(journal.next_seq(), 4);
    }

    #[test]
    fn damage_in_an_older_segment_reports_the_records_up_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (journal, _) = Journal::open(dir.path(), 40).unwrap();
            for i in 0..4u8 {
                append_all(&journal, &[&[i; 30], &[i; 30]]);
            }
        }
        let segments = list_segments(dir.path()).unwrap();
        let (first, path) = &segments[0];
        let len = fs::metadata(path).unwrap().len();
        fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len - 5).unwrap();
        let (journal, damage) = Journal::open(dir.path(), 40).unwrap();
        let next = segments[1].0;
        assert!(
            matches!(&damage[..], [Damage::Lost { from, to, .. }] if *from == first + 1 && *to == next),
            "{damage:?}"
        );
        assert_eq!(replayed(&journal, 0).len(), 8 - 1);
    }
}
