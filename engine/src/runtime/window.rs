//! Windowed views: detections are assigned to event-time windows, counted
//! incrementally by differential dataflow, and each window's row is emitted
//! once, when the frontier passes the window's end.
//!
//! ```text
//!  detections ──AssignWindows──▶ (key, t, +1) ──count_total──▶ ((key, n), t, ±1)
//!                                                                  │
//!                                           EmitClosedWindows ◀────┘  (frontier ≥ end)
//!                                                  │
//!                                                  ▼ one ViewRow per (window, group)
//! ```
//!
//! The count is maintained by differential's `count_total`: each new
//! detection costs work for its own key only, whatever the history.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use differential_dataflow::AsCollection;
use differential_dataflow::operators::CountTotal;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Capability, Operator};

use crate::metrics::Metrics;
use crate::model::{Detection, Record, Value, ViewRow};
use crate::plan::{DetectionColumn, ViewColumn, ViewSpec, WindowSpec};
use crate::time::{Millis, Tick, TickClock};

/// The grouping key of one window row: the group-by values, then the
/// window's start.
type WindowKey = (Vec<Value>, Millis);

/// Builds the dataflow of one view over a detection stream.
pub(crate) fn build_view<'scope>(
    detections: StreamVec<'scope, Tick, Detection>,
    spec: &ViewSpec,
    clock: TickClock,
    metrics: Arc<Metrics>,
) -> StreamVec<'scope, Tick, Record> {
    let WindowSpec::Tumble { size_ms } = spec.window;
    let group_by = spec.group_by.clone();
    let keys = detections.unary(Pipeline, &format!("AssignWindows: {}", spec.name), move |_, _| {
        move |input, output| {
            input.for_each_stamp(|cap, data| {
                // A stamp is a non-empty set of times: the least exists.
                let Some(&time) = cap.least() else { return };
                let mut session = output.session(&cap);
                for batch in data {
                    for d in batch.drain(..) {
                        let group = group_by.iter().map(|c| group_value(&d, *c)).collect();
                        let start = d.event_time.div_euclid(size_ms) * size_ms;
                        session.give(((group, start), time, 1isize));
                    }
                }
            })
        }
    });
    let counts = keys.as_collection().count_total();
    emit_closed_windows(counts.inner, spec, size_ms, clock, metrics)
}

fn group_value(d: &Detection, column: DetectionColumn) -> Value {
    Value::Str(match column {
        DetectionColumn::Tenant => d.tenant.clone(),
        DetectionColumn::SourceId => d.source_id.clone(),
        DetectionColumn::Operator => d.operator.clone(),
        DetectionColumn::Label => d.label.clone(),
    })
}

/// The counts of the windows ending at one tick, and the capability to emit
/// them at that tick.
struct PendingWindows {
    capability: Capability<Tick>,
    /// Accumulated differences per (key, count): once a window is complete,
    /// the one entry per key with a positive total is its final count.
    counts: HashMap<(WindowKey, isize), isize>,
}

fn emit_closed_windows<'scope>(
    updates: StreamVec<'scope, Tick, ((WindowKey, isize), Tick, isize)>,
    spec: &ViewSpec,
    size_ms: Millis,
    clock: TickClock,
    metrics: Arc<Metrics>,
) -> StreamVec<'scope, Tick, Record> {
    let columns: Arc<[Arc<str>]> = spec.columns.iter().map(|c| Arc::from(c.name())).collect();
    let layout = spec.columns.clone();
    let group_by = spec.group_by.clone();
    updates.unary_frontier(Pipeline, &format!("EmitClosedWindows: {}", spec.name), move |_, _| {
        let mut pending: BTreeMap<Tick, PendingWindows> = BTreeMap::new();
        move |(input, frontier), output| {
            input.for_each_stamp(|cap, data| {
                for batch in data {
                    for ((key, count), time, diff) in batch.drain(..) {
                        let end = clock.tick_at_or_after(key.1 + size_ms);
                        // Detections of a window carry times before its end,
                        // so the capability can always be delayed to it.
                        let entry = pending.entry(end).or_insert_with(|| PendingWindows {
                            capability: cap.delayed(&end.max(time), 0),
                            counts: HashMap::new(),
                        });
                        *entry.counts.entry((key, count)).or_insert(0) += diff;
                    }
                }
            });
            while let Some(entry) = pending.first_entry() {
                if frontier.less_than(entry.key()) {
                    break;
                }
                let closed = entry.remove();
                let mut rows: Vec<ViewRow> = closed
                    .counts
                    .into_iter()
                    .filter(|(_, diff)| *diff > 0)
                    .map(|((key, count), _)| view_row(&columns, &layout, &group_by, &key, size_ms, count))
                    .collect();
                rows.sort_by(|a, b| a.values.cmp(&b.values));
                Metrics::add(&metrics.windows_closed, rows.len() as u64);
                output.session(&closed.capability).give_iterator(rows.into_iter().map(Record::View));
            }
        }
    })
}

fn view_row(
    columns: &Arc<[Arc<str>]>,
    layout: &[ViewColumn],
    group_by: &[DetectionColumn],
    (group, start): &WindowKey,
    size_ms: Millis,
    count: isize,
) -> ViewRow {
    let values = layout
        .iter()
        .map(|column| match column {
            ViewColumn::Key { column, .. } => {
                let index = group_by.iter().position(|g| g == column);
                // The planner only accepts key columns that are grouped by.
                index.map_or(Value::Str("".into()), |i| group[i].clone())
            }
            ViewColumn::WindowStart { .. } => Value::Time(*start),
            ViewColumn::WindowEnd { .. } => Value::Time(start + size_ms),
            ViewColumn::Count { .. } => Value::Int(count as i64),
        })
        .collect();
    ViewRow { columns: columns.clone(), values }
}
