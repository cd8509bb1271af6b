//! `EXPLAIN CREATE ...`: what a statement became — its plan, with the
//! DataFusion expressions it compiled — and the dataflow operators that run
//! it, named as they are in the running graph.

use std::fmt::Write;

use engine::columnar::input_name;
use engine::plan::{
    AggregateFunction, AggregateSpec, EmitMode, JobPlan, LatePolicy, SourceRows, StreamInput, ViewColumn, ViewSpec,
    WindowSpec,
};

fn aggregate(view: &ViewSpec, a: &AggregateSpec) -> String {
    let function = match a.function {
        AggregateFunction::Count => "count",
        AggregateFunction::Sum => "sum",
        AggregateFunction::Avg => "avg",
        AggregateFunction::Min => "min",
        AggregateFunction::Max => "max",
    };
    let column = a.column.map_or("*".to_owned(), |c| input_name(view, c));
    format!("{function}({}{column})", if a.distinct { "DISTINCT " } else { "" })
}

fn window(w: &WindowSpec) -> String {
    match w {
        WindowSpec::Tumble { size_ms } => format!("TUMBLE size {size_ms} ms"),
        WindowSpec::Hop { slide_ms, size_ms } => format!("HOP slide {slide_ms} ms, size {size_ms} ms"),
        WindowSpec::Session { gap_ms } => format!("SESSION gap {gap_ms} ms"),
        WindowSpec::Global => "none (one group for all time)".to_owned(),
    }
}

/// DataFusion's logical plan, indented under its heading.
fn logical_lines(logical: &Option<String>, heading: &str, out: &mut String) {
    let Some(logical) = logical else { return };
    let _ = writeln!(out, "  {heading}");
    for line in logical.lines() {
        let _ = writeln!(out, "    {line}");
    }
}

fn explain_view(view: &ViewSpec, logical: &Option<String>, out: &mut String) {
    let _ = writeln!(out, "View {} over {}", view.name, view.input);
    let heading = if view.window == WindowSpec::Global {
        "logical plan (DataFusion):"
    } else {
        "logical plan (DataFusion), of each window, whose bounds the window assigns:"
    };
    logical_lines(logical, heading, out);
    let time =
        if view.window == WindowSpec::Global { String::new() } else { format!(", by {}", input_name(view, view.time)) };
    let _ = writeln!(out, "  window:     {}{time}", window(&view.window));
    if let Some(filter) = &view.filter {
        let _ = writeln!(out, "  where:      {}", filter.0.text());
    }
    let keys: Vec<String> = view.group_by.iter().map(|c| input_name(view, *c)).collect();
    let window_keys = if view.window == WindowSpec::Global { "" } else { " + window" };
    let _ = writeln!(out, "  group by:   {}{window_keys}", keys.join(", "));
    let aggregates: Vec<String> = view.aggregates.iter().map(|a| aggregate(view, a)).collect();
    let _ = writeln!(out, "  aggregates: {}", aggregates.join(", "));
    let columns: Vec<&str> = view.columns.iter().map(ViewColumn::name).collect();
    match &view.finish {
        None => {
            let _ = writeln!(out, "  columns:    {}", columns.join(", "));
        }
        Some(finish) => {
            let _ = writeln!(out, "  base row:   {}", columns.join(", "));
            let output: Vec<String> = finish.0.output_columns().iter().map(|(n, t)| format!("{n} {t}")).collect();
            let _ = writeln!(out, "  finish:     {} (DataFusion, over each emitted base row)", output.join(", "));
        }
    }
    let emit = match view.emit {
        EmitMode::Final => "final (one row per window, when the frontier passes its end)",
        EmitMode::Updates => "updates (every change, with diff)",
    };
    let _ = writeln!(out, "  emit:       {emit}");
    let where_op = if view.filter.is_some() { format!("Where: {} -> ", view.name) } else { String::new() };
    let body = match view.window {
        WindowSpec::Session { .. } => format!("Exchange(group) -> SessionWindows: {}", view.name),
        _ => format!(
            "AssignWindows: {0} (adds at event time, retracts at window end unless global) -> Arrange -> Aggregate: {0} (differential reduce) -> {1}: {0}",
            view.name,
            if view.emit == EmitMode::Final { "EmitClosedWindows" } else { "EmitUpdates" }
        ),
    };
    let _ = writeln!(out, "  dataflow:   {where_op}{body}");
}

/// The explanation of every relation `plan.explain` names.
pub fn explain(plan: &JobPlan) -> String {
    let mut out = String::new();
    for (name, logical) in &plan.explain {
        if let Some(source) = plan.sources.iter().find(|s| &s.name == name) {
            let late = match source.late {
                LatePolicy::DeadLetter => "dead_letter",
                LatePolicy::Drop => "drop",
                LatePolicy::Admit => "admit",
            };
            let location = source.location.as_deref().map(|l| format!(" '{l}'")).unwrap_or_default();
            let _ = writeln!(out, "Source {} from {}{location}", source.name, source.kind.to_uppercase());
            let _ = writeln!(
                out,
                "  tenant {}, lateness {} ms, late rows: {late}, options {:?}",
                source.tenant, source.lateness_ms, source.options
            );
            let dataflow = match source.rows {
                SourceRows::Frames => {
                    "UnorderedInput (held at the watermark) -> Exchange(round-robin per camera) -> Decode (late and bad frames to outcomes)"
                }
                SourceRows::Detections => {
                    "UnorderedInput (held at the watermark) -> OkErr (late and bad rows to outcomes)"
                }
            };
            let _ = writeln!(out, "  dataflow:   {dataflow}");
            if let Some((operator, options)) = &source.screen {
                let _ = writeln!(
                    out,
                    "  screened:   Exchange(by camera) -> {} {options:?} (refused frames to outcomes) -> Exchange(round-robin per camera)",
                    operator.to_uppercase()
                );
            }
        } else if let Some(stream) = plan.streams.iter().find(|s| &s.name == name) {
            let _ = match &stream.input {
                StreamInput::Vision { operator, sources, options } => writeln!(
                    out,
                    "Stream {}: {}({}) {options:?}\n  dataflow:   Concatenate -> Vision: {} (operator {operator}; a failing frame is rejected, not fatal) -> OkErr (detections | outcomes)",
                    stream.name,
                    operator.to_uppercase(),
                    sources.join(", "),
                    stream.name
                ),
                StreamInput::Stream(input) => {
                    writeln!(out, "Stream {} over {input}\n  dataflow:   (rows of {input})", stream.name)
                }
            };
            logical_lines(logical, "logical plan (DataFusion):", &mut out);
            if let Some(filter) = &stream.filter {
                let _ = writeln!(
                    out,
                    "  where:      {} (DataFusion, on Arrow batches)\n  dataflow:   ... -> Where: {}",
                    filter.0.text(),
                    stream.name
                );
            }
            if let Some(projection) = &stream.projection {
                let columns: Vec<String> = projection
                    .0
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), engine::columnar::type_name(f.data_type())))
                    .collect();
                let _ = writeln!(
                    out,
                    "  select:     {} (DataFusion, on Arrow batches)\n  columns:    {}\n  dataflow:   ... -> Select: {}",
                    projection.0.text(),
                    columns.join(", "),
                    stream.name
                );
            }
        } else if let Some(view) = plan.views.iter().find(|v| &v.name == name) {
            explain_view(view, logical, &mut out);
        } else if let Some(sink) = plan.sinks.iter().find(|s| &s.name == name) {
            let location = sink.location.as_deref().map(|l| format!(" '{l}'")).unwrap_or_default();
            let _ = writeln!(
                out,
                "Sink {} into {}{location} from {}\n  dataflow:   Exchange(to worker 0) -> Sink: {} -> probe (backpressure)",
                sink.name,
                sink.kind.to_uppercase(),
                sink.input,
                sink.name
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::plan_job;

    #[test]
    fn explains_views_with_their_expressions_and_operators() {
        let plan = plan_job(
            "CREATE SOURCE d FROM DETECTIONS 'x.jsonl';
             EXPLAIN CREATE VIEW v AS SELECT label, window_start, count(*) AS n FROM TUMBLE(d, event_time, INTERVAL '10' SECOND)
               WHERE confidence > 0.5 GROUP BY label, window_start HAVING count(*) > 3;",
        )
        .unwrap();
        let text = super::explain(&plan);
        assert!(text.contains("View v over d"), "{text}");
        assert!(text.contains("where:      confidence > 0.5"), "{text}");
        assert!(text.contains("aggregates: count(*)"), "{text}");
        assert!(text.contains("finish:     tenant text, label text, window_start timestamp, n int"), "{text}");
        assert!(text.contains("Aggregate: v (differential reduce)"), "{text}");
    }
}
