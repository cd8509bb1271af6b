//! P6 journal: what durability costs at ingest. The HTTP source journals
//! every frame and answers 202 only once it is synced; here 16 threads,
//! as 16 request handlers would, each append a frame-sized record
//! (20 KiB, the size of the quickstart's JPEGs) and wait until it is on
//! disk, again and again. One writer thread syncs once for whatever has
//! queued meanwhile (group commit).
//!
//! Two baselines on the same bytes, in the same folder:
//! - a bare sequential write of all of them, synced once at the end: the
//!   most the disk gives, with no durability along the way;
//! - a write and a sync per record: durable, without group commit.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use engine::journal::Journal;
use frameflow_benches::{figure, median};

const THREADS: usize = 16;
const RECORDS: usize = 4_000;
const SIZE: usize = 20 << 10;

fn payload(i: usize) -> Vec<u8> {
    (0..SIZE).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Records/s through the journal, each appender waiting for its record.
fn journal(dir: &std::path::Path) -> f64 {
    let (journal, _) = Journal::open(&dir.join("journal"), 64 << 20).expect("journal opens");
    let journal = Arc::new(journal);
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                for i in (t..RECORDS).step_by(THREADS) {
                    let (done, synced) = mpsc::channel();
                    journal.append(
                        &payload(i),
                        Box::new(move |r| {
                            let _ = done.send(r);
                        }),
                    );
                    synced.recv().expect("the journal answers").expect("the record is synced");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("appender finishes");
    }
    let rate = RECORDS as f64 / started.elapsed().as_secs_f64();
    drop(journal);
    let _ = std::fs::remove_dir_all(dir.join("journal"));
    rate
}

/// Records/s written to one file, synced at the end only, or after each.
fn bare(dir: &std::path::Path, sync_each: bool) -> f64 {
    let path = dir.join("bare.log");
    let mut file = File::create(&path).expect("file opens");
    let records: Vec<Vec<u8>> = (0..RECORDS).map(payload).collect();
    let started = Instant::now();
    for record in &records {
        file.write_all(record).expect("write");
        if sync_each {
            file.sync_data().expect("sync");
        }
    }
    file.sync_data().expect("sync");
    let rate = RECORDS as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}

fn main() {
    // Under the repository, not /tmp: the same disk a job's state is on.
    let dir = tempfile::tempdir_in(frameflow_benches::repo()).expect("a folder");
    let (mut ours, mut plain, mut each) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        ours.push(journal(dir.path()));
        plain.push(bare(dir.path(), false));
        each.push(bare(dir.path(), true));
        println!(
            "round {round}: journal {:.0} records/s, bare write {:.0} records/s, write+sync each {:.0} records/s",
            ours[round], plain[round], each[round]
        );
    }
    let (ours, plain, each) = (median(ours), median(plain), median(each));
    let mib = |records: f64| records * SIZE as f64 / (1 << 20) as f64;
    println!(
        "{}",
        figure("P6 journal append, synced per record (vs bare write, synced once)", mib(ours), mib(plain), "MiB/s")
    );
    println!("{}", figure("P6 journal append, synced per record (vs write+sync per record)", ours, each, "records/s"));
}
