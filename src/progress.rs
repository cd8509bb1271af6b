//! Progress while a job runs: a status line redrawn in place on a terminal,
//! plain log lines otherwise, and a summary at the end.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::metrics::{Metrics, MetricsSnapshot};
use engine::runtime::RunSummary;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Auto,
    Lines,
    None,
}

pub struct Reporter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Frames whose results the sinks have delivered.
fn frames_done(s: &MetricsSnapshot) -> u64 {
    s.frames_admitted.saturating_sub(s.frames_in_flight.max(0) as u64)
}

/// What became of the frames. With one stream, as frames: processed,
/// degraded, rejected (before the stream or by it), late. With several,
/// a frame has an outcome in each: the frames refused before any stream,
/// then each stream's own, or, `compact`, their sums over the streams.
fn outcomes(s: &MetricsSnapshot, compact: bool) -> String {
    // Duplicates are named only in jobs that drop them.
    let duplicates = if s.frames_duplicate > 0 { format!("{} duplicate, ", s.frames_duplicate) } else { String::new() };
    match s.streams.as_slice() {
        [] | [_] => {
            let (processed, degraded, rejected) =
                s.streams.first().map_or((0, 0, 0), |t| (t.processed, t.degraded, t.rejected));
            format!(
                "{processed} processed, {degraded} degraded, {duplicates}{} rejected, {} late",
                s.frames_rejected + rejected,
                s.frames_late
            )
        }
        streams if compact => {
            let (degraded, rejected) = streams.iter().fold((0, 0), |(d, r), t| (d + t.degraded, r + t.rejected));
            format!(
                "{duplicates}{} rejected, {} late; {} streams: {degraded} degraded, {rejected} rejected",
                s.frames_rejected,
                s.frames_late,
                streams.len()
            )
        }
        streams => {
            let mut line = format!("{duplicates}{} rejected, {} late", s.frames_rejected, s.frames_late);
            for t in streams {
                line.push_str(&format!(
                    "; {}: {} processed, {} degraded, {} rejected",
                    t.name, t.processed, t.degraded, t.rejected
                ));
            }
            line
        }
    }
}

/// The status line; `in_place` (redrawn on a terminal, so it must not
/// wrap) sums the streams' outcomes and names only the operator furthest
/// behind.
fn status(s: &MetricsSnapshot, rate: f64, in_place: bool) -> String {
    let mut line = format!(
        "{rate:.1} frames/s | {} done, {} in flight ({:.1} MiB) | {} detections | {} windows closed | {}",
        frames_done(s),
        s.frames_in_flight.max(0),
        s.bytes_in_flight.max(0) as f64 / f64::from(1 << 20),
        s.detections,
        s.windows_closed,
        outcomes(s, in_place)
    );
    // Each vision operator's lag: frames waiting for it, and for how long
    // the oldest has.
    let furthest = s.operators.iter().max_by_key(|lag| lag.waited_ms);
    let shown: Vec<_> = if in_place { furthest.into_iter().collect() } else { s.operators.iter().collect() };
    for lag in shown {
        line.push_str(&format!(" | {}: {} queued, {} ms behind", lag.name, lag.queued, lag.waited_ms));
    }
    line
}

impl Reporter {
    pub fn start(mode: Mode, metrics: Arc<Metrics>) -> Reporter {
        let terminal = std::io::stderr().is_terminal();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match mode {
            Mode::None => None,
            Mode::Auto | Mode::Lines => {
                let in_place = mode == Mode::Auto && terminal;
                let period = if in_place { Duration::from_millis(500) } else { Duration::from_secs(5) };
                let stop = stop.clone();
                Some(std::thread::spawn(move || report(&metrics, &stop, in_place, period)))
            }
        };
        Reporter { stop, thread }
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn report(metrics: &Metrics, stop: &AtomicBool, in_place: bool, period: Duration) {
    let mut last = (Instant::now(), 0u64);
    let mut next = Instant::now() + period;
    while !stop.load(Ordering::Relaxed) {
        // Short sleeps so stopping is prompt; a report only every period.
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() < next {
            continue;
        }
        next += period;
        let snapshot = metrics.snapshot();
        let done = frames_done(&snapshot);
        let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), done);
        let mut err = std::io::stderr().lock();
        if in_place {
            // auto-wrap off while it is drawn: a terminal narrower than the
            // line cuts it rather than scrolling a second line that the
            // next redraw would not clear
            let _ = write!(err, "\r\x1b[2K\x1b[?7l{}\x1b[?7h", status(&snapshot, rate, true));
        } else {
            let _ = writeln!(err, "frameflow: {}", status(&snapshot, rate, false));
        }
        let _ = err.flush();
    }
    if in_place {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}

/// The line a finished job ends with.
pub fn summary_line(summary: &RunSummary) -> String {
    let s = &summary.metrics;
    let seconds = summary.elapsed.as_secs_f64();
    format!(
        "frameflow: done in {seconds:.1} s: {} frames ({}), {} detections, {} windows; {:.1} frames/s",
        s.frames_admitted,
        outcomes(s, false),
        s.detections,
        s.windows_closed,
        frames_done(s) as f64 / seconds.max(1e-9)
    )
}

#[cfg(test)]
mod tests {
    use engine::metrics::StreamSnapshot;

    use super::*;

    fn stream(name: &str, processed: u64, degraded: u64, rejected: u64) -> StreamSnapshot {
        StreamSnapshot { name: name.into(), processed, degraded, rejected }
    }

    #[test]
    fn one_stream_counts_frames() {
        let s = MetricsSnapshot {
            frames_admitted: 10,
            frames_rejected: 1,
            frames_late: 2,
            streams: vec![stream("faces", 6, 1, 1)],
            ..MetricsSnapshot::default()
        };
        let expected = "6 processed, 1 degraded, 2 rejected, 2 late";
        assert_eq!(outcomes(&s, false), expected);
        assert_eq!(outcomes(&s, true), expected);
    }

    #[test]
    fn several_streams_are_summed_when_redrawn_in_place() {
        let s = MetricsSnapshot {
            frames_admitted: 22,
            frames_rejected: 2,
            frames_duplicate: 3,
            streams: vec![stream("detections", 17, 1, 2), stream("hashes", 20, 0, 0), stream("faces", 15, 4, 1)],
            ..MetricsSnapshot::default()
        };
        assert_eq!(
            outcomes(&s, false),
            "3 duplicate, 2 rejected, 0 late; detections: 17 processed, 1 degraded, 2 rejected; \
             hashes: 20 processed, 0 degraded, 0 rejected; faces: 15 processed, 4 degraded, 1 rejected"
        );
        assert_eq!(outcomes(&s, true), "3 duplicate, 2 rejected, 0 late; 3 streams: 5 degraded, 3 rejected");
        // the line redrawn in place does not grow with the streams
        let in_place = status(&s, 12.5, true);
        assert!(in_place.len() < 160, "{in_place}");
    }
}
