//! Session windows: per group, rows less than the gap apart form one
//! session, from its first row to its last plus the gap. A session's row
//! is emitted once the frontier passes its end, when no later row can
//! extend it.
//!
//! Sessions merge as rows arrive out of order, which a keyed reduction over
//! fixed windows cannot express, so this is a timely operator of its own:
//! rows are exchanged by group, each group keeps only the rows of its open
//! sessions, and a closed session's rows are released as it is emitted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::{Capability, Operator};

use super::{Inputs, RowShape, WindowRow, evaluate, too_late};
use crate::metrics::Metrics;
use crate::model::{FrameOutcome, Outcome, Record, Value, stable_hash};
use crate::plan::{Column, ViewSpec};
use crate::time::{Millis, Tick, TickClock};

/// A group's rows in open sessions: by time, their inputs and multiplicity.
type SessionRows = BTreeMap<Millis, Vec<(Inputs, isize)>>;

fn group_of<R: WindowRow>(r: &R, group_by: &[Column]) -> Vec<Value> {
    group_by.iter().map(|c| r.value(*c)).collect()
}

pub(crate) fn build_session_view<'scope, R: WindowRow>(
    rows: StreamVec<'scope, Tick, R>,
    spec: &ViewSpec,
    shape: RowShape,
    gap_ms: Millis,
    clock: TickClock,
    metrics: Arc<Metrics>,
) -> StreamVec<'scope, Tick, Result<Record, FrameOutcome>> {
    let group_by = spec.group_by.clone();
    let route_by = group_by.clone();
    let inputs: Vec<Option<Column>> = spec.aggregates.iter().map(|a| a.column).collect();
    let time_column = spec.time;
    let stage: Arc<str> = format!("view: {}", spec.name).into();
    let aggregates = spec.aggregates.clone();
    let view = spec.name.clone();
    let route = Exchange::new(move |r: &R| {
        let key = group_of(r, &route_by);
        let text = format!("{key:?}");
        stable_hash(&[text.as_bytes()])
    });
    rows.unary_frontier(route, &format!("SessionWindows: {}", spec.name), move |_, _| {
        // Per group, the rows of its open sessions by time, each with its
        // multiplicity.
        let mut open: HashMap<Vec<Value>, SessionRows> = HashMap::new();
        // Held at the earliest tick an open session could close at (its
        // end), to emit it with. Held at its end, not at its rows, so the
        // frontier behind this operator is not pinned to the open rows:
        // they count as processed, and sources are not held back by them.
        let mut held: Option<Capability<Tick>> = None;
        move |(input, frontier), output| {
            input.for_each_stamp(|cap, data| {
                if let Some(time) = cap.least().copied()
                    && held.as_ref().is_none_or(|h| time < *h.time())
                {
                    held = Some(cap.delayed(&time, 0));
                }
                let Some(&time) = cap.least() else { return };
                let mut refused: Vec<Result<Record, FrameOutcome>> = Vec::new();
                for batch in data {
                    for r in batch.drain(..) {
                        let Some(t) = r.time(time_column) else {
                            let reason = Some("the row has no time to window it by".to_owned());
                            refused.push(Err(r.outcome(Outcome::Rejected, stage.clone(), reason)));
                            continue;
                        };
                        // A late row admitted past the end of the session it
                        // would make on its own: whether the session it
                        // belongs to is still open depends on timing, so
                        // it is refused, the same way on every run.
                        if clock.tick_at_or_after(t + gap_ms) <= time {
                            refused.push(Err(too_late(&r, &view, t, t + gap_ms)));
                            continue;
                        }
                        let values: Inputs = inputs.iter().map(|c| c.map_or(Value::Null, |c| r.value(c))).collect();
                        let entry = open.entry(group_of(&r, &group_by)).or_default().entry(t).or_default();
                        entry.push((values, r.multiplicity()));
                    }
                }
                output.session(&cap).give_iterator(refused.into_iter());
            });
            let Some(capability) = held.as_mut() else { return };
            let mut closed = Vec::new();
            let mut next_end: Option<Tick> = None;
            for (group, rows) in open.iter_mut() {
                while let Some((start, end)) = first_session(rows, gap_ms) {
                    if frontier.less_than(&clock.tick_at_or_after(end)) {
                        // Held at the last tick inside the session, to emit
                        // its row there, as fixed windows do.
                        let end = clock.tick_at_or_after(end).saturating_sub(1);
                        next_end = Some(next_end.map_or(end, |n| n.min(end)));
                        break;
                    }
                    let later = rows.split_off(&(end - gap_ms + 1));
                    let session = std::mem::replace(rows, later);
                    // Consolidated: a retraction cancels its addition.
                    let mut counts: BTreeMap<&Inputs, isize> = BTreeMap::new();
                    for (values, n) in session.values().flatten() {
                        *counts.entry(values).or_insert(0) += n;
                    }
                    let inputs: Vec<(&Inputs, isize)> = counts.into_iter().collect();
                    let results = evaluate(&aggregates, &inputs);
                    closed.push((
                        clock.tick_at_or_after(end).saturating_sub(1),
                        shape.row_ending(group, start, end, &results, None),
                    ));
                }
            }
            open.retain(|_, rows| !rows.is_empty());
            closed.sort_by(|a, b| (a.0, &a.1.values).cmp(&(b.0, &b.1.values)));
            let mut by_end: BTreeMap<Tick, Vec<_>> = BTreeMap::new();
            for (end, row) in closed {
                by_end.entry(end).or_default().push(row);
            }
            for (end, rows) in by_end {
                let rows = shape.output(rows);
                Metrics::add(&metrics.windows_closed, rows.len() as u64);
                output
                    .session(&capability.delayed(&end.max(*capability.time())))
                    .give_iterator(rows.into_iter().map(|row| Ok(Record::View(row))));
            }
            match next_end {
                Some(end) => capability.downgrade(&end.max(*capability.time())),
                None => held = None,
            }
        }
    })
}

/// The first session of a group's rows: its first row's time and its end
/// (last row plus the gap).
fn first_session<V>(rows: &BTreeMap<Millis, V>, gap_ms: Millis) -> Option<(Millis, Millis)> {
    let mut times = rows.keys();
    let start = *times.next()?;
    let mut last = start;
    for &t in times {
        if t - last >= gap_ms {
            break;
        }
        last = t;
    }
    Some((start, last + gap_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_split_where_rows_are_a_gap_apart() {
        let rows: BTreeMap<Millis, ()> = [0, 400, 900, 2_000].into_iter().map(|t| (t, ())).collect();
        assert_eq!(first_session(&rows, 1_000), Some((0, 1_900)));
        assert_eq!(first_session(&rows, 500), Some((0, 900)), "900 - 400 is not less than the gap");
        assert_eq!(first_session(&BTreeMap::<Millis, ()>::new(), 500), None);
    }
}
