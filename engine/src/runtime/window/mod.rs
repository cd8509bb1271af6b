//! Windowed views: detections are assigned to event-time windows, their
//! aggregates maintained incrementally by differential dataflow, and the
//! results emitted either once per window, when the frontier passes its end
//! (`emit = 'final'`), or as every change with a `diff` (`emit = 'updates'`).
//!
//! ```text
//!  detections ──AssignWindows──▶ ((group, start), inputs) ──reduce──▶ ((group, start), aggregates) ±1
//!                                                                          │
//!                        final: EmitClosedWindows (frontier ≥ end) ◀───────┤
//!                        updates: EmitUpdates (each change, with diff) ◀───┘
//! ```
//!
//! A window's key holds its group and start, so the reduction for a new
//! detection touches that window's rows only: the cost does not grow with
//! history.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use differential_dataflow::AsCollection;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::{Capability, Operator};

use super::dataflow::Prepared;
use crate::metrics::Metrics;
use crate::model::{F64, FrameOutcome, Outcome, Record, Value, ViewRow};
use crate::plan::{AggregateFunction, AggregateSpec, Column, EmitMode, Finish, ViewColumn, ViewSpec, WindowSpec};
use crate::time::{Millis, Tick, TickClock};

mod contributions;
mod rows;
mod session;

use contributions::Contributions;
pub(crate) use rows::WindowRow;

/// The grouping key of one window row: the group-by values, then the
/// window's start.
type WindowKey = (Vec<Value>, Millis);
/// The values a row contributes, one per aggregate (`Null` for `count(*)`).
type Inputs = Vec<Value>;
type Update = ((WindowKey, Vec<Value>), Tick, isize);
/// A window row's contribution and its multiplicity.
type Contribution = ((WindowKey, Inputs), isize);

/// Builds the dataflow of one view over a detection stream: its rows, and
/// the outcomes of rows it refused.
///
/// A row can only arrive at or after its window's end when its source
/// admits late rows (`late = 'admit'`), at its camera's watermark: it
/// counts in every window of it that ends after that watermark, and is
/// refused, naming the window, by every window that ended before it. The
/// watermark comes from the camera's own stream, so which windows count a
/// late row does not depend on batching or timing.
pub(crate) fn build_view<'scope, R: WindowRow>(
    rows: StreamVec<'scope, Tick, R>,
    spec: &ViewSpec,
    job: &Arc<Prepared>,
) -> (StreamVec<'scope, Tick, Record>, StreamVec<'scope, Tick, FrameOutcome>) {
    let (clock, metrics) = (job.clock, job.metrics.clone());
    let window = spec.window;
    if let WindowSpec::Session { gap_ms } = window {
        let rows = session::build_session_view(rows, spec, RowShape::new(spec, job), gap_ms, clock, metrics);
        return rows.ok_err(|row| row);
    }
    let (keyed, refused) = assign_windows(rows, spec, clock);
    let aggregates = spec.aggregates.clone();
    let results =
        keyed.as_collection().reduce_named(&format!("Aggregate: {}", spec.name), move |_key, rows, output| {
            output.push((evaluate(&aggregates, rows), 1isize));
        });
    let shape = RowShape::new(spec, job);
    let rows = match spec.emit {
        EmitMode::Final => emit_closed_windows(results.inner, spec, shape, clock, metrics),
        EmitMode::Updates => emit_updates(results.inner, spec, shape, clock, metrics),
    };
    (rows, refused)
}

/// The outcome of a late row whose window ended before the watermark it was
/// admitted at.
pub(crate) fn too_late<R: WindowRow>(row: &R, view: &str, start: Millis, end: Millis) -> FrameOutcome {
    let reason = format!(
        "late row: the window {} to {} of view `{view}` ended before the watermark it was admitted at",
        crate::time::format_rfc3339_ms(start),
        crate::time::format_rfc3339_ms(end)
    );
    row.outcome(Outcome::Late, format!("view: {view}").into(), Some(reason))
}

/// Sums each row's contributions per window, group and aggregate inputs,
/// and hands them to differential together with their retraction at the
/// window's end.
///
/// With `emit = 'final'` nobody looks at a window before it closes, so its
/// contributions are held back and summed until the tick before its end:
/// differential then sees each window's distinct rows once, not every
/// detection. The capability for that is held at the tick before the
/// window's end, ahead of the sources' watermark, so it never holds back
/// the frames in flight. With `emit = 'updates'` each batch goes on at once.
fn assign_windows<'scope, R: WindowRow>(
    rows: StreamVec<'scope, Tick, R>,
    spec: &ViewSpec,
    clock: TickClock,
) -> (StreamVec<'scope, Tick, Update>, StreamVec<'scope, Tick, FrameOutcome>) {
    let group_by = spec.group_by.clone();
    let inputs: Vec<Option<Column>> = spec.aggregates.iter().map(|a| a.column).collect();
    let time_column = spec.time;
    let window = spec.window;
    let size_ms = window.size_ms();
    let hold_back = spec.emit == EmitMode::Final && window != WindowSpec::Global;
    let view = spec.name.clone();
    let stage: Arc<str> = format!("view: {}", spec.name).into();
    let assigned: StreamVec<'scope, Tick, Result<Update, FrameOutcome>> =
        rows.unary_frontier(Pipeline, &format!("AssignWindows: {}", spec.name), move |_, _| {
            // By the tick they go on at, earliest first; few at a time (the
            // windows open within the lateness), so a scan beats a tree.
            let mut open: Vec<(Tick, Capability<Tick>, Contributions)> = Vec::new();
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    // A stamp is a non-empty set of times: the least exists.
                    let Some(&time) = cap.least() else { return };
                    let mut refused: Vec<Result<Update, FrameOutcome>> = Vec::new();
                    for batch in data {
                        // Read in place and dropped together: rows are
                        // large, and moving each out costs a copy.
                        for r in batch.iter() {
                            let t = match r.time(time_column) {
                                Some(t) => t,
                                None if window == WindowSpec::Global => 0,
                                None => {
                                    let reason = Some("the row has no time to window it by".to_owned());
                                    refused.push(Err(r.outcome(Outcome::Rejected, stage.clone(), reason)));
                                    continue;
                                }
                            };
                            for start in window.starts(t) {
                                let end = clock.tick_at_or_after(start + size_ms);
                                if window != WindowSpec::Global && end <= time {
                                    refused.push(Err(too_late(r, &view, start, start + size_ms)));
                                    continue;
                                }
                                let at = if hold_back {
                                    clock.tick_at_or_after(start + size_ms).saturating_sub(1).max(time)
                                } else {
                                    time
                                };
                                let index = match open.iter().rposition(|(t, ..)| *t <= at) {
                                    Some(i) if open[i].0 == at => i,
                                    before => {
                                        let i = before.map_or(0, |i| i + 1);
                                        let sums = Contributions::new(&group_by, &inputs);
                                        open.insert(i, (at, cap.delayed(&at, 0), sums));
                                        i
                                    }
                                };
                                open[index].2.add(r, start, r.multiplicity());
                            }
                        }
                        batch.clear();
                    }
                    output.session(&cap).give_iterator(refused.into_iter());
                });
                let due = if hold_back {
                    open.iter().take_while(|(at, ..)| !frontier.less_than(at)).count()
                } else {
                    open.len()
                };
                for (at, capability, mut sums) in open.drain(..due) {
                    // Each addition is retracted again at its window's end, when
                    // the window is emitted: the aggregation then holds open
                    // windows only, and its cost does not grow with history.
                    let mut released: BTreeMap<Tick, Vec<Contribution>> = BTreeMap::new();
                    let rows = sums.take();
                    if window != WindowSpec::Global {
                        for (row, count) in &rows {
                            let end = clock.tick_at_or_after(row.0.1 + size_ms).max(at);
                            released.entry(end).or_default().push((row.clone(), -count));
                        }
                    }
                    output
                        .session(&capability)
                        .give_iterator(rows.into_iter().map(|(row, count)| Ok((row, at, count))));
                    for (end, rows) in released {
                        let at = capability.delayed(&end);
                        output.session(&at).give_iterator(rows.into_iter().map(|(row, diff)| Ok((row, end, diff))));
                    }
                }
            }
        });
    assigned.ok_err(|row| row)
}

/// Every aggregate of one window and group, from its rows and their
/// multiplicities.
pub(crate) fn evaluate(aggregates: &[AggregateSpec], rows: &[(&Inputs, isize)]) -> Vec<Value> {
    aggregates
        .iter()
        .enumerate()
        .map(|(i, aggregate)| {
            let present = rows.iter().filter(|(v, n)| *n > 0 && (aggregate.column.is_none() || v[i] != Value::Null));
            let count: isize = present.clone().map(|(_, n)| n).sum();
            let number = |v: &Value| match v {
                Value::Float(f) => f.0,
                Value::Int(n) => *n as f64,
                _ => 0.0,
            };
            let sum = || present.clone().map(|(v, n)| number(&v[i]) * *n as f64).sum::<f64>();
            match aggregate.function {
                AggregateFunction::Count if aggregate.distinct => {
                    Value::Int(present.map(|(v, _)| &v[i]).collect::<BTreeSet<_>>().len() as i64)
                }
                AggregateFunction::Count => Value::Int(count as i64),
                _ if count == 0 => Value::Null,
                // A sum of integers is an integer, as in SQL.
                AggregateFunction::Sum if present.clone().all(|(v, _)| matches!(v[i], Value::Int(_))) => {
                    Value::Int(present.map(|(v, n)| if let Value::Int(x) = v[i] { x * *n as i64 } else { 0 }).sum())
                }
                AggregateFunction::Sum => Value::Float(F64(sum())),
                AggregateFunction::Avg => Value::Float(F64(sum() / count as f64)),
                AggregateFunction::Min => present.map(|(v, _)| v[i].clone()).min().unwrap_or(Value::Null),
                AggregateFunction::Max => present.map(|(v, _)| v[i].clone()).max().unwrap_or(Value::Null),
            }
        })
        .collect()
}

/// How a view's columns are made from a window key and its aggregates.
#[derive(Clone)]
pub(crate) struct RowShape {
    columns: Arc<[Arc<str>]>,
    layout: Vec<ViewColumn>,
    group_by: Vec<Column>,
    size_ms: Millis,
    finish: Option<Finish>,
    global: bool,
    view: Arc<str>,
    job: Arc<Prepared>,
}

impl RowShape {
    /// Base rows made output rows: through the view's finish (`HAVING`,
    /// expressions) where it has one. A finish that fails fails the job.
    pub(crate) fn output(&self, rows: Vec<ViewRow>) -> Vec<ViewRow> {
        let Some(finish) = &self.finish else { return rows };
        if rows.is_empty() {
            return rows;
        }
        match finish.0.finish(&rows) {
            Ok(finished) => finished.into_iter().flatten().collect(),
            Err(e) => {
                super::fail(&self.job, format!("view `{}`: {e}", self.view));
                Vec::new()
            }
        }
    }

    fn new(spec: &ViewSpec, job: &Arc<Prepared>) -> RowShape {
        let mut columns: Vec<Arc<str>> = spec.columns.iter().map(|c| Arc::from(c.name())).collect();
        if spec.emit == EmitMode::Updates {
            columns.push("diff".into());
        }
        RowShape {
            columns: columns.into(),
            layout: spec.columns.clone(),
            group_by: spec.group_by.clone(),
            size_ms: spec.window.size_ms(),
            finish: spec.finish.clone(),
            global: spec.window == WindowSpec::Global,
            view: spec.name.as_str().into(),
            job: job.clone(),
        }
    }

    /// The tick at which the window starting at `start` is complete; a
    /// global view's only "window" completes when its input ends.
    fn end_tick(&self, clock: &TickClock, start: Millis) -> Tick {
        if self.global { Tick::MAX } else { clock.tick_at_or_after(start + self.size_ms) }
    }

    fn row(&self, (group, start): &WindowKey, aggregates: &[Value], diff: Option<isize>) -> ViewRow {
        self.row_ending(group, *start, start + self.size_ms, aggregates, diff)
    }

    fn row_ending(
        &self,
        group: &[Value],
        start: Millis,
        end: Millis,
        aggregates: &[Value],
        diff: Option<isize>,
    ) -> ViewRow {
        let mut values: Vec<Value> = self
            .layout
            .iter()
            .map(|column| match column {
                ViewColumn::Key { column, .. } => {
                    // The planner only accepts key columns that are grouped by.
                    let index = self.group_by.iter().position(|g| g == column);
                    index.map_or(Value::Null, |i| group[i].clone())
                }
                ViewColumn::WindowStart { .. } => Value::Time(start),
                ViewColumn::WindowEnd { .. } => Value::Time(end),
                ViewColumn::Aggregate { index, .. } => aggregates.get(*index).cloned().unwrap_or(Value::Null),
            })
            .collect();
        values.extend(diff.map(|d| Value::Int(d as i64)));
        ViewRow { columns: self.columns.clone(), values }
    }
}

/// The results of the windows ending at one tick, and the capability to
/// emit them at that tick.
struct PendingWindows {
    capability: Capability<Tick>,
    /// Accumulated differences per (key, aggregates): once a window is
    /// complete, the one entry per key with a positive total is final.
    results: HashMap<(WindowKey, Vec<Value>), isize>,
}

fn emit_closed_windows<'scope>(
    updates: StreamVec<'scope, Tick, Update>,
    spec: &ViewSpec,
    shape: RowShape,
    clock: TickClock,
    metrics: Arc<Metrics>,
) -> StreamVec<'scope, Tick, Record> {
    updates.unary_frontier(Pipeline, &format!("EmitClosedWindows: {}", spec.name), move |_, _| {
        let mut pending: BTreeMap<Tick, PendingWindows> = BTreeMap::new();
        move |(input, frontier), output| {
            input.for_each_stamp(|cap, data| {
                for batch in data {
                    for ((key, aggregates), time, diff) in batch.drain(..) {
                        let end = shape.end_tick(&clock, key.1);
                        // From its end on, a window only releases its state.
                        if time >= end {
                            continue;
                        }
                        // Rows of a window carry times before its end. Its
                        // row goes out at the last tick inside it, as Flink
                        // stamps a window's result with its last instant: a
                        // view reading this one by `window_start` then finds
                        // the window still open.
                        let entry = pending.entry(end).or_insert_with(|| PendingWindows {
                            capability: cap.delayed(&(end - 1).max(time), 0),
                            results: HashMap::new(),
                        });
                        *entry.results.entry((key, aggregates)).or_insert(0) += diff;
                    }
                }
            });
            while let Some(entry) = pending.first_entry() {
                if frontier.less_than(entry.key()) {
                    break;
                }
                let closed = entry.remove();
                let mut rows: Vec<ViewRow> = closed
                    .results
                    .into_iter()
                    .filter(|(_, diff)| *diff > 0)
                    .map(|((key, aggregates), _)| shape.row(&key, &aggregates, None))
                    .collect();
                rows.sort_by(|a, b| a.values.cmp(&b.values));
                let rows = shape.output(rows);
                Metrics::add(&metrics.windows_closed, rows.len() as u64);
                output.session(&closed.capability).give_iterator(rows.into_iter().map(Record::View));
            }
        }
    })
}

/// Every change of every window, as differential computes it: a retraction
/// of the old row (`diff` -1) and the new row (`diff` +1).
fn emit_updates<'scope>(
    updates: StreamVec<'scope, Tick, Update>,
    spec: &ViewSpec,
    shape: RowShape,
    clock: TickClock,
    metrics: Arc<Metrics>,
) -> StreamVec<'scope, Tick, Record> {
    updates.unary(Pipeline, &format!("EmitUpdates: {}", spec.name), move |_, _| {
        move |input, output| {
            input.for_each_stamp(|cap, data| {
                let mut session = output.session(&cap);
                for batch in data {
                    let mut rows = std::mem::take(batch);
                    // From its end on, a window only releases its state:
                    // no change a reader should see.
                    rows.retain(|((key, _), time, _)| *time < shape.end_tick(&clock, key.1));
                    // Retractions first, so a reader applying rows in order
                    // never sees two values for one window at once.
                    rows.sort_by_key(|(_, time, diff)| (*time, *diff));
                    Metrics::add(&metrics.windows_closed, rows.iter().filter(|(_, _, d)| *d > 0).count() as u64);
                    let rows =
                        rows.into_iter().map(|((key, aggregates), _, diff)| shape.row(&key, &aggregates, Some(diff)));
                    session.give_iterator(shape.output(rows.collect()).into_iter().map(Record::View));
                }
            })
        }
    })
}
