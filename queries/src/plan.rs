//! Lowering parsed statements to the engine's [`JobPlan`], checking names,
//! arguments and the supported subset of SELECT as it goes.
//!
//! What a stream may be: `SELECT * | <expressions> FROM <VISION_FN>(source,
//! ..., name => value, ...) | stream [WHERE ...]`: detections, or rows of
//! the columns it selects. What a view may be: `SELECT <keys,
//! window_start, window_end, aggregates, expressions over them> FROM
//! TUMBLE(...) | HOP(...) | SESSION(...) | stream | view [WHERE ...] GROUP
//! BY <keys, window_start, window_end> [HAVING ...]`, over detections, a
//! stream's projected rows or another view's rows, aggregates being
//! count(*), count([DISTINCT] col), sum, avg, min and max of a column.
//! Anything else is refused with its location, so no statement is silently
//! half-understood.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use sqlparser::ast::{
    DateTimeField, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Query, Select,
    SelectItem, SetExpr, Spanned, TableFactor, TableFunctionArgs,
};
use sqlparser::tokenizer::Span;

use engine::columnar::{SchemaRef, detection_schema, timestamp, view_schema};
use engine::plan::{
    AggregateFunction, AggregateSpec, Column, DEAD_LETTER, DetectionColumn, EmitMode, Filter, Finish, JobPlan,
    LatePolicy, OUTCOMES, Projection, SinkSpec, SourceRows, SourceSpec, StreamInput, StreamSpec, ViewColumn, ViewSpec,
    WindowSpec,
};
use engine::time::Millis;

use crate::error::QueryError;
use crate::filter::SqlFilter;
use crate::finish::{self, SqlFinish, Written};
use crate::logical::logical_plan;
use crate::parse::{OptionValue, Statement, literal_text, parse_job};
use crate::project::SqlProjection;
use datafusion::arrow::datatypes::DataType;

/// Vision operators a job may call when the planner is not told which the
/// registry has: each is called as a table function of its name in
/// capitals, `DETECT(src, ...)`.
const DEFAULT_OPERATORS: &[&str] = &["annotate", "classify", "detect", "faces", "hash", "motion", "qr", "text"];
/// Source kinds whose rows are detections rather than frames.
const DETECTION_SOURCES: &[&str] = &["detections", "generator"];
/// What a stream may read.
const STREAMS: &[Relation] = &[Relation::Stream, Relation::DetectionSource];
/// What a view may read.
const VIEW_INPUTS: &[Relation] = &[Relation::Stream, Relation::DetectionSource, Relation::View];
/// Window table functions.
const WINDOW_FUNCTIONS: &[&str] = &["TUMBLE", "HOP", "SESSION"];
/// Allowed lateness of a source that does not say.
const DEFAULT_LATENESS_MS: Millis = 5_000;

/// Parses and plans a job, without checking connector kinds.
pub fn plan_job(sql: &str) -> Result<JobPlan, QueryError> {
    plan_job_in(sql, &KnownConnectors::default())
}

/// Parses and plans a job whose connectors must be among `connectors`.
pub fn plan_job_in(sql: &str, connectors: &KnownConnectors) -> Result<JobPlan, QueryError> {
    let mut planner = Planner { connectors: connectors.clone(), ..Planner::default() };
    for statement in parse_job(sql)? {
        planner.add(statement)?;
    }
    planner.finish()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Relation {
    /// A source of frames, for vision functions.
    Source,
    /// A source of detection rows: a stream in its own right.
    DetectionSource,
    Stream,
    View,
    Sink,
}

impl Relation {
    fn describe(self) -> &'static str {
        match self {
            Relation::Source => "source of frames",
            Relation::DetectionSource => "source of detections",
            Relation::Stream => "stream",
            Relation::View => "view",
            Relation::Sink => "sink",
        }
    }
}

/// The connector kinds a job may name, from the registry of the binary
/// that will run it. Empty lists are not checked.
#[derive(Clone, Debug, Default)]
pub struct KnownConnectors {
    pub source_kinds: Vec<String>,
    pub sink_kinds: Vec<String>,
    /// Vision operators, by registry name; empty: [`DEFAULT_OPERATORS`].
    pub operators: Vec<String>,
}

impl KnownConnectors {
    fn check(known: &[String], kind: &Ident, what: &str) -> Result<(), QueryError> {
        let name = name_of(kind);
        if known.is_empty() || known.contains(&name) {
            return Ok(());
        }
        let known = known.iter().map(|k| k.to_uppercase()).collect::<Vec<_>>();
        Err(QueryError::at(kind.span, format!("unknown {what} `{}`", kind.value))
            .suggesting(&name.to_uppercase(), known.iter().map(String::as_str)))
    }
}

#[derive(Default)]
struct Planner {
    plan: JobPlan,
    /// Set while an `EXPLAIN`ed statement is added, which leaves its
    /// DataFusion logical plan in `logical_plan`.
    explaining: bool,
    logical_plan: Option<String>,
    names: HashMap<String, (Relation, Span)>,
    connectors: KnownConnectors,
}

fn name_of(ident: &Ident) -> String {
    ident.value.to_lowercase()
}

fn options_map(options: &[OptionValue]) -> Result<BTreeMap<String, String>, QueryError> {
    let mut map = BTreeMap::new();
    for option in options {
        if map.insert(name_of(&option.key), option.value.clone()).is_some() {
            return Err(QueryError::at(option.span, format!("option `{}` is given twice", option.key.value)));
        }
    }
    Ok(map)
}

fn parse_duration_ms(text: &str, span: Span, what: &str) -> Result<Millis, QueryError> {
    humantime::parse_duration(text.trim()).map(|d| d.as_millis() as Millis).map_err(|e| {
        QueryError::at(span, format!("{what} = '{text}' is not a duration: {e}"))
            .with_hint("write e.g. '5s' or '500ms'")
    })
}

impl Planner {
    fn declare(&mut self, ident: &Ident, relation: Relation) -> Result<String, QueryError> {
        let name = name_of(ident);
        if [OUTCOMES, DEAD_LETTER].contains(&name.as_str()) {
            return Err(QueryError::at(ident.span, format!("`{name}` is a built-in stream; choose another name")));
        }
        if let Some((_, first)) = self.names.get(&name) {
            return Err(QueryError::at(
                ident.span,
                format!("`{name}` is already defined at line {}", first.start.line),
            ));
        }
        self.names.insert(name.clone(), (relation, ident.span));
        Ok(name)
    }

    /// Resolves a reference to an earlier relation of one of `kinds`.
    fn resolve(&self, ident: &Ident, kinds: &[Relation], what: &str) -> Result<String, QueryError> {
        let name = name_of(ident);
        match self.names.get(&name) {
            Some((relation, _)) if kinds.contains(relation) => Ok(name),
            Some((relation, _)) => {
                let wanted = kinds.first().map_or(what, |k| k.describe());
                Err(QueryError::at(ident.span, format!("`{name}` is a {}, not a {wanted}", relation.describe())))
            }
            None => {
                let known: Vec<&str> =
                    self.names.iter().filter(|(_, (r, _))| kinds.contains(r)).map(|(n, _)| n.as_str()).collect();
                Err(QueryError::at(ident.span, format!("unknown {what} `{name}`")).suggesting(&name, known))
            }
        }
    }

    fn add(&mut self, statement: Statement) -> Result<(), QueryError> {
        match statement {
            Statement::Explain(inner) => {
                let name = match inner.as_ref() {
                    Statement::CreateSource { name, .. }
                    | Statement::CreateStream { name, .. }
                    | Statement::CreateView { name, .. }
                    | Statement::CreateSink { name, .. } => name_of(name),
                    Statement::Explain(_) => String::new(),
                };
                self.explaining = true;
                let added = self.add(*inner);
                self.explaining = false;
                added?;
                self.plan.explain.push((name, self.logical_plan.take()));
                Ok(())
            }
            Statement::CreateSource { name, kind, location, options } => {
                self.add_source(&name, &kind, location, &options)
            }
            Statement::CreateStream { name, query } => self.add_stream(&name, &query),
            Statement::CreateView { name, options, query } => self.add_view(&name, &options, &query),
            Statement::CreateSink { name, input, kind, location, options } => {
                KnownConnectors::check(&self.connectors.sink_kinds, &kind, "sink kind")?;
                let name = self.declare(&name, Relation::Sink)?;
                let input = match name_of(&input).as_str() {
                    OUTCOMES | DEAD_LETTER => name_of(&input),
                    _ => self.resolve(
                        &input,
                        &[Relation::Stream, Relation::DetectionSource, Relation::View],
                        "stream or view",
                    )?,
                };
                let options = options_map(&options)?;
                self.plan.sinks.push(SinkSpec { name, input, kind: name_of(&kind), location, options });
                Ok(())
            }
        }
    }

    fn add_source(
        &mut self,
        name: &Ident,
        kind: &Ident,
        location: Option<String>,
        options: &[OptionValue],
    ) -> Result<(), QueryError> {
        KnownConnectors::check(&self.connectors.source_kinds, kind, "source kind")?;
        let frames_generator = name_of(kind) == "generator"
            && options.iter().any(|o| name_of(&o.key) == "output" && o.value.eq_ignore_ascii_case("frames"));
        let rows = if DETECTION_SOURCES.contains(&name_of(kind).as_str()) && !frames_generator {
            SourceRows::Detections
        } else {
            SourceRows::Frames
        };
        let relation = if rows == SourceRows::Detections { Relation::DetectionSource } else { Relation::Source };
        let name = self.declare(name, relation)?;
        let mut spec = SourceSpec {
            name,
            rows,
            kind: name_of(kind),
            location,
            options: BTreeMap::new(),
            tenant: "default".to_owned(),
            lateness_ms: DEFAULT_LATENESS_MS,
            late: LatePolicy::DeadLetter,
            screen: None,
        };
        options_map(options)?;
        let mut dedup = BTreeMap::new();
        for option in options {
            let (key, value) = (name_of(&option.key), option.value.clone());
            match key.as_str() {
                "lateness" => spec.lateness_ms = parse_duration_ms(&value, option.span, "lateness")?,
                "late" => {
                    spec.late = match value.as_str() {
                        "dead_letter" => LatePolicy::DeadLetter,
                        "drop" => LatePolicy::Drop,
                        "admit" => LatePolicy::Admit,
                        other => {
                            return Err(QueryError::at(option.span, format!("late = '{other}' is not a late policy"))
                                .with_hint("use 'dead_letter', 'drop' or 'admit'"));
                        }
                    }
                }
                "tenant" => spec.tenant = value,
                // near duplicates dropped before any stream, by HASH's rule
                "dedup" | "max_distance" => {
                    if rows == SourceRows::Detections {
                        return Err(QueryError::at(
                            option.span,
                            format!("{key} drops repeated frames; `{}` reads rows", spec.kind),
                        )
                        .with_hint("use it on a source of frames (DIRECTORY, HTTP, KAFKA)"));
                    }
                    dedup.insert(key, value);
                }
                _ => {
                    spec.options.insert(key, value);
                }
            }
        }
        if !dedup.is_empty() {
            spec.screen = Some(("hash".to_owned(), dedup));
        }
        self.plan.sources.push(spec);
        Ok(())
    }

    fn add_stream(&mut self, ident: &Ident, query: &Query) -> Result<(), QueryError> {
        let select = plain_select(query)?;
        refuse_clauses(select, false)?;
        let (input, rows) = match from_stream(select) {
            Some(stream) => {
                let rows = self.input_rows(stream, STREAMS)?;
                (StreamInput::Stream(rows.name.clone()), rows)
            }
            None => (self.vision_input(select)?, InputRows::detections()),
        };
        let filter = where_filter(select, &rows)?;
        let projection = match select.projection.as_slice() {
            [SelectItem::Wildcard(_)] => None,
            items => Some(Projection(Arc::new(SqlProjection::compile(items, rows.schema())?))),
        };
        if self.explaining {
            self.logical_plan = Some(
                logical_plan(select, &rows.label(), &rows.schema(), false, false)
                    .map_err(|e| QueryError::at(select.span(), format!("DataFusion cannot plan this: {e}")))?,
            );
        }
        let name = self.declare(ident, Relation::Stream)?;
        self.plan.streams.push(StreamSpec { name, input, filter, projection, input_schema: rows.view });
        Ok(())
    }

    /// `DETECT(source, ..., name => value, ...)` and the other vision
    /// functions.
    fn vision_input(&self, select: &Select) -> Result<StreamInput, QueryError> {
        let (function, args) = table_function(select)?;
        let upper = function.value.to_uppercase();
        let mut known: Vec<String> = self.connectors.operators.iter().map(|o| o.to_uppercase()).collect();
        if known.is_empty() {
            known = DEFAULT_OPERATORS.iter().map(|o| o.to_uppercase()).collect();
        }
        if !known.contains(&upper) {
            return Err(QueryError::at(function.span, format!("unknown vision function `{}`", function.value))
                .suggesting(&upper, known.iter().map(String::as_str)));
        }
        let operator = upper.to_lowercase();
        let mut sources = Vec::new();
        let mut options = BTreeMap::new();
        for arg in &args.args {
            match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(source))) => {
                    sources.push(self.resolve(source, &[Relation::Source], "source")?);
                }
                FunctionArg::Named { name, arg: FunctionArgExpr::Expr(value), .. } => {
                    if options.insert(name_of(name), literal_text(value)?).is_some() {
                        return Err(QueryError::at(name.span, format!("argument `{}` is given twice", name.value)));
                    }
                }
                other => {
                    return Err(QueryError::at(other.span(), format!("unexpected argument `{other}` to {upper}"))
                        .with_hint(format!("{upper}(source, ..., name => value, ...)")));
                }
            }
        }
        if sources.is_empty() {
            return Err(QueryError::at(function.span, format!("{upper} needs at least one source")));
        }
        Ok(StreamInput::Vision { operator: operator.to_string(), sources, options })
    }

    fn add_view(&mut self, ident: &Ident, options: &[OptionValue], query: &Query) -> Result<(), QueryError> {
        let mut emit = None;
        for option in options {
            match (name_of(&option.key).as_str(), option.value.as_str()) {
                ("emit", "final") => emit = Some(EmitMode::Final),
                ("emit", "updates") => emit = Some(EmitMode::Updates),
                ("emit", other) => {
                    return Err(QueryError::at(option.span, format!("emit = '{other}' is not a mode"))
                        .with_hint("'final' (one row per window) or 'updates' (every change, with a diff)"));
                }
                (key, _) => {
                    return Err(
                        QueryError::at(option.span, format!("unknown view option `{key}`")).suggesting(key, ["emit"])
                    );
                }
            }
        }
        let select = plain_select(query)?;
        refuse_clauses(select, true)?;
        // A view over a plain stream has no window: a continuously updated
        // view, emitting its changes unless told to wait for the end.
        let (input, window, time, emit) = match from_stream(select) {
            Some(stream) => {
                let input = self.input_rows(stream, VIEW_INPUTS)?;
                (input, WindowSpec::Global, Column::EventTime, emit.unwrap_or(EmitMode::Updates))
            }
            None => {
                let emit = emit.unwrap_or(EmitMode::Final);
                let (stream, time, window) = windowed_input(select, emit)?;
                let input = self.input_rows(stream, VIEW_INPUTS)?;
                let time = input.time_column(time)?;
                (input, window, time, emit)
            }
        };
        let filter = where_filter(select, &input)?;
        let mut group_by = group_by(select, window == WindowSpec::Global, &input)?;
        // Tenants never share a row: every view groups by tenant first.
        let tenant = input.column("tenant").filter(|_| !group_by.iter().any(|k| k.name == "tenant"));
        let by_tenant = tenant.is_some();
        if let Some((column, kind)) = tenant {
            group_by.insert(0, GroupKey { name: "tenant".into(), column: Some(column), kind });
        }
        let plain = select.having.is_none()
            && select.projection.iter().all(|item| {
                let expr = match item {
                    SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
                    _ => return true,
                };
                matches!(expr, Expr::Identifier(_)) || matches!(expr, Expr::Function(f) if is_aggregate(f))
            });
        let (columns, aggregates, finish) = if plain {
            let (columns, aggregates) = view_columns(select, &group_by, &input)?;
            (columns, aggregates, None)
        } else {
            finished_columns(select, &group_by, &input)?
        };
        let group_by = group_by.into_iter().filter_map(|g| g.column).collect();
        if self.explaining {
            let windowed = window != WindowSpec::Global;
            self.logical_plan = Some(
                logical_plan(select, &input.label(), &input.schema(), windowed, by_tenant)
                    .map_err(|e| QueryError::at(select.span(), format!("DataFusion cannot plan this: {e}")))?,
            );
        }
        let name = self.declare(ident, Relation::View)?;
        self.plan.views.push(ViewSpec {
            name,
            input: input.name,
            input_schema: input.view,
            filter,
            window,
            time,
            group_by,
            aggregates,
            columns,
            finish,
            emit,
        });
        Ok(())
    }

    /// What reading `ident`, a relation of one of `kinds`, sees:
    /// detections, or the rows of a view or of a stream's projection.
    fn input_rows(&self, ident: &Ident, kinds: &[Relation]) -> Result<InputRows, QueryError> {
        let name = self.resolve(ident, kinds, "stream or view")?;
        let view = self.plan.views.iter().find(|v| v.name == name).map(view_schema).or_else(|| {
            let stream = self.plan.streams.iter().find(|s| s.name == name)?;
            stream.projection.as_ref().map(|p| p.0.schema()).or_else(|| stream.input_schema.clone())
        });
        Ok(InputRows { name, view })
    }
}

/// The input, time column and window of `FROM TUMBLE(...) | HOP(...) |
/// SESSION(...)`.
fn windowed_input(select: &Select, emit: EmitMode) -> Result<(&Ident, &Ident, WindowSpec), QueryError> {
    let (function, args) = table_function(select)?;
    let upper = function.value.to_uppercase();
    let usage = match upper.as_str() {
        "TUMBLE" => "TUMBLE(stream, event_time, INTERVAL size)",
        "HOP" => "HOP(stream, event_time, INTERVAL slide, INTERVAL size)",
        "SESSION" => "SESSION(stream, event_time, INTERVAL gap)",
        _ => {
            return Err(QueryError::at(function.span, format!("unknown window function `{}`", function.value))
                .suggesting(&upper, WINDOW_FUNCTIONS.iter().copied()));
        }
    };
    let positional: Vec<&Expr> = args
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            other => Err(QueryError::at(other.span(), format!("expected {usage}"))),
        })
        .collect::<Result<_, _>>()?;
    let (stream, time_column, window) = match (upper.as_str(), positional.as_slice()) {
        ("TUMBLE", [Expr::Identifier(stream), Expr::Identifier(time), size]) => {
            (stream, time, WindowSpec::Tumble { size_ms: interval_ms(size)? })
        }
        ("HOP", [Expr::Identifier(stream), Expr::Identifier(time), slide, size]) => {
            let (slide_ms, size_ms) = (interval_ms(slide)?, interval_ms(size)?);
            if slide_ms > size_ms {
                return Err(QueryError::at(slide.span(), "a HOP's slide cannot be longer than its size")
                    .with_hint("HOP(stream, event_time, INTERVAL slide, INTERVAL size)"));
            }
            (stream, time, WindowSpec::Hop { slide_ms, size_ms })
        }
        ("SESSION", [Expr::Identifier(stream), Expr::Identifier(time), gap]) => {
            if emit == EmitMode::Updates {
                return Err(QueryError::at(function.span, "emit = 'updates' is not supported for SESSION windows yet")
                    .with_hint("sessions emit one final row each"));
            }
            (stream, time, WindowSpec::Session { gap_ms: interval_ms(gap)? })
        }
        _ => return Err(QueryError::at(function.span, format!("expected {usage}"))),
    };
    Ok((stream, time_column, window))
}

fn group_by(select: &Select, global: bool, input: &InputRows) -> Result<Vec<GroupKey>, QueryError> {
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return Err(QueryError::at(select.span(), "GROUP BY ALL is not supported; name the columns"));
    };
    let mut keys = Vec::new();
    for expr in exprs {
        let Expr::Identifier(ident) = expr else {
            return Err(QueryError::at(expr.span(), format!("GROUP BY takes column names, found `{expr}`")));
        };
        keys.push(GroupKey::from_ident(ident, input)?);
    }
    if let (true, Some(bound)) = (global, keys.iter().find(|k| k.column.is_none())) {
        return Err(QueryError::at(select.span(), format!("`{}` needs a window", bound.name))
            .with_hint("read FROM TUMBLE(stream, event_time, INTERVAL ...), or group by detection columns only"));
    }
    if !global && !keys.iter().any(|k| k.column.is_none()) {
        return Err(QueryError::at(select.span(), "a windowed view must GROUP BY window_start or window_end")
            .with_hint("add `window_start, window_end` to GROUP BY"));
    }
    Ok(keys)
}

impl Planner {
    /// Adds a default dead-letter file beside the job's first FILE sink,
    /// unless the job names its own.
    fn finish(mut self) -> Result<JobPlan, QueryError> {
        let has_dead_letter = self.plan.sinks.iter().any(|s| s.input == DEAD_LETTER);
        let first_file = self.plan.sinks.iter().find(|s| s.kind == "file").and_then(|s| s.location.clone());
        if let (false, Some(location)) = (has_dead_letter, first_file) {
            let folder = Path::new(&location).parent().unwrap_or(Path::new(""));
            self.plan.sinks.push(SinkSpec {
                name: DEAD_LETTER.to_owned(),
                input: DEAD_LETTER.to_owned(),
                kind: "file".to_owned(),
                location: Some(folder.join("dead_letter.jsonl").display().to_string()),
                options: BTreeMap::new(),
            });
        }
        if self.plan.sources.is_empty() {
            return Err(QueryError { line: 0, column: 0, message: "the job has no CREATE SOURCE".into(), hint: None });
        }
        Ok(self.plan)
    }
}

/// The rows a view reads: detections, or the rows of the view `name`, of
/// schema `view`. In a windowed view, `window_start` and `window_end` are
/// always its own window's bounds; a view it reads has its bounds under
/// those names too, usable as its time column and in aggregates.
struct InputRows {
    name: String,
    view: Option<SchemaRef>,
}

impl InputRows {
    fn detections() -> InputRows {
        InputRows { name: String::new(), view: None }
    }

    /// The input's name in a plan: a vision function's rows are detections.
    fn label(&self) -> String {
        if self.name.is_empty() { "detections".to_owned() } else { self.name.clone() }
    }

    /// A column by name, and its type.
    fn column(&self, name: &str) -> Option<(Column, DataType)> {
        match &self.view {
            None if name == "event_time" => Some((Column::EventTime, timestamp())),
            None => DetectionColumn::from_name(name)
                .map(|c| (Column::Detection(c), if c.is_numeric() { DataType::Float64 } else { DataType::Utf8 })),
            // `diff` is not a value: it says how a row counts.
            Some(schema) => schema
                .fields()
                .iter()
                .position(|f| f.name() == name && name != "diff")
                .map(|i| (Column::Position(i), schema.field(i).data_type().clone())),
        }
    }

    /// The type of one of its columns.
    fn type_of(&self, column: Column) -> DataType {
        let named = self.names().into_iter().find(|n| self.column(n).is_some_and(|(c, _)| c == column));
        named.and_then(|n| self.column(&n)).map_or(DataType::Float64, |(_, kind)| kind)
    }

    /// The columns there are, for suggestions.
    fn names(&self) -> Vec<String> {
        match &self.view {
            None => DetectionColumn::ALL.iter().map(|(n, _)| n.to_string()).chain(["event_time".into()]).collect(),
            Some(schema) => schema.fields().iter().map(|f| f.name().clone()).filter(|n| n != "diff").collect(),
        }
    }

    /// The schema a `WHERE` over these rows is compiled against.
    fn schema(&self) -> SchemaRef {
        self.view.clone().unwrap_or_else(detection_schema)
    }

    /// The column windows are over: `event_time` of detections, or a
    /// timestamp column of a view.
    fn time_column(&self, ident: &Ident) -> Result<Column, QueryError> {
        let name = name_of(ident);
        match self.column(&name) {
            Some((column, DataType::Timestamp(..))) => Ok(column),
            found => {
                let times: Vec<String> = self
                    .names()
                    .into_iter()
                    .filter(|n| matches!(self.column(n), Some((_, DataType::Timestamp(..)))))
                    .collect();
                let what = if found.is_some() { "not a time" } else { "not a column" };
                Err(QueryError::at(ident.span, format!("windows are over a time column; `{name}` is {what}"))
                    .suggesting(&name, times.iter().map(String::as_str)))
            }
        }
    }
}

/// A GROUP BY column: a column of the input, or a window bound.
#[derive(Clone, Debug)]
struct GroupKey {
    name: String,
    column: Option<Column>,
    kind: DataType,
}

const WINDOW_COLUMNS: [&str; 2] = ["window_start", "window_end"];

fn known_columns(input: &InputRows) -> Vec<String> {
    input.names().into_iter().chain(WINDOW_COLUMNS.map(String::from)).collect()
}

impl GroupKey {
    fn from_ident(ident: &Ident, input: &InputRows) -> Result<GroupKey, QueryError> {
        let name = name_of(ident);
        if WINDOW_COLUMNS.contains(&name.as_str()) {
            return Ok(GroupKey { name, column: None, kind: timestamp() });
        }
        match input.column(&name) {
            Some((column, kind)) => Ok(GroupKey { name, column: Some(column), kind }),
            None => Err(QueryError::at(ident.span, format!("cannot group by `{name}`"))
                .suggesting(&name, known_columns(input).iter().map(String::as_str))),
        }
    }
}

fn view_columns(
    select: &Select,
    group_by: &[GroupKey],
    input: &InputRows,
) -> Result<(Vec<ViewColumn>, Vec<AggregateSpec>), QueryError> {
    let mut columns = Vec::new();
    let mut aggregates = Vec::new();
    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(expr) => (expr, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(name_of(alias))),
            other => {
                return Err(QueryError::at(
                    other.span(),
                    format!("a view lists its columns; `{other}` is not supported here"),
                ));
            }
        };
        let column = match expr {
            Expr::Identifier(ident) => {
                let name = name_of(ident);
                let Some(key) = group_by.iter().find(|k| k.name == name) else {
                    let known = known_columns(input);
                    let error = if known.contains(&name) {
                        QueryError::at(ident.span, format!("`{name}` must appear in GROUP BY to be selected"))
                            .with_hint("or aggregate it, e.g. max(confidence)")
                    } else {
                        QueryError::at(ident.span, format!("unknown column `{name}`"))
                            .suggesting(&name, known.iter().map(String::as_str))
                    };
                    return Err(error);
                };
                let name = alias.unwrap_or(name);
                match (key.column, key.name.as_str()) {
                    (Some(column), _) => ViewColumn::Key { name, column },
                    (None, "window_start") => ViewColumn::WindowStart { name },
                    (None, _) => ViewColumn::WindowEnd { name },
                }
            }
            Expr::Function(function) => {
                let aggregate = aggregate_spec(function, input)?;
                let default_name = function.name.to_string().to_lowercase();
                aggregates.push(aggregate);
                ViewColumn::Aggregate { name: alias.unwrap_or(default_name), index: aggregates.len() - 1 }
            }
            other => {
                return Err(QueryError::at(
                    other.span(),
                    format!("expression `{other}` is not supported in a view yet"),
                )
                .with_hint("select GROUP BY columns and aggregates such as count(*) or avg(confidence)"));
            }
        };
        if columns.iter().any(|c: &ViewColumn| c.name() == column.name()) {
            return Err(QueryError::at(item.span(), format!("column `{}` appears twice", column.name()))
                .with_hint("name one with AS"));
        }
        columns.push(column);
    }
    // Every row says whose it is.
    if !columns.iter().any(|c| c.name() == "tenant")
        && let Some(GroupKey { column: Some(column), .. }) = group_by.iter().find(|k| k.name == "tenant")
    {
        columns.insert(0, ViewColumn::Key { name: "tenant".into(), column: *column });
    }
    Ok((columns, aggregates))
}

pub(crate) fn is_aggregate(function: &sqlparser::ast::Function) -> bool {
    let name = function.name.to_string().to_lowercase();
    AGGREGATES.iter().any(|(n, _)| *n == name)
}

/// A view's columns, aggregates, and the finish that computes its output.
type ViewLayout = (Vec<ViewColumn>, Vec<AggregateSpec>, Option<Finish>);

/// A view whose SELECT computes over aggregates, or has a HAVING: its base
/// row (group keys, window bounds, every aggregate as `__aggN`) and the
/// DataFusion expressions that finish it.
fn finished_columns(select: &Select, group_by: &[GroupKey], input: &InputRows) -> Result<ViewLayout, QueryError> {
    let mut aggregates = Vec::new();
    let mut outputs = Vec::new();
    // Every row says whose it is.
    let tenant = Expr::Identifier(Ident::new("tenant"));
    let selects_tenant = select.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(Expr::Identifier(ident)) => name_of(ident) == "tenant",
        SelectItem::ExprWithAlias { alias, .. } => name_of(alias) == "tenant",
        _ => false,
    });
    if !selects_tenant && group_by.iter().any(|k| k.name == "tenant") {
        outputs.push(("tenant".to_owned(), Written { expr: tenant.clone(), original: &tenant }));
    }
    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(expr) => (expr, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(name_of(alias))),
            other => return Err(QueryError::at(other.span(), format!("`{other}` is not supported in a view"))),
        };
        let name = alias.unwrap_or_else(|| match expr {
            Expr::Identifier(ident) => name_of(ident),
            Expr::Function(f) => f.name.to_string().to_lowercase(),
            other => other.to_string(),
        });
        if outputs.iter().any(|(n, _): &(String, Written)| *n == name) {
            return Err(
                QueryError::at(item.span(), format!("column `{name}` appears twice")).with_hint("name one with AS")
            );
        }
        outputs.push((name, Written { expr: rewrite(expr, group_by, input, &mut aggregates)?, original: expr }));
    }
    let having = match &select.having {
        Some(having) => Some(Written { expr: rewrite(having, group_by, input, &mut aggregates)?, original: having }),
        None => None,
    };
    let mut columns = Vec::new();
    let mut base = Vec::new();
    for key in group_by {
        if let Some(column) = key.column {
            columns.push(ViewColumn::Key { name: key.name.clone(), column });
            base.push((key.name.clone(), key.kind.clone()));
        }
    }
    columns.push(ViewColumn::WindowStart { name: "window_start".into() });
    columns.push(ViewColumn::WindowEnd { name: "window_end".into() });
    base.push(("window_start".into(), finish::timestamp()));
    base.push(("window_end".into(), finish::timestamp()));
    for (index, aggregate) in aggregates.iter().enumerate() {
        let name = format!("__agg{index}");
        columns.push(ViewColumn::Aggregate { name: name.clone(), index });
        let kind = match (aggregate.function, aggregate.column) {
            (AggregateFunction::Count, _) => DataType::Int64,
            (AggregateFunction::Min | AggregateFunction::Max, Some(c)) => input.type_of(c),
            (AggregateFunction::Sum, Some(c)) if input.type_of(c) == DataType::Int64 => DataType::Int64,
            _ => DataType::Float64,
        };
        base.push((name, kind));
    }
    let finish = SqlFinish::compile(base, outputs, having)?;
    Ok((columns, aggregates, Some(Finish(Arc::new(finish)))))
}

/// `expr` with each aggregate call replaced by its base column `__aggN`,
/// checking that bare columns are grouped by.
fn rewrite(
    expr: &Expr,
    group_by: &[GroupKey],
    input: &InputRows,
    aggregates: &mut Vec<AggregateSpec>,
) -> Result<Expr, QueryError> {
    let mut expr = expr.clone();
    rewrite_in_place(&mut expr, group_by, input, aggregates)?;
    Ok(expr)
}

fn rewrite_in_place(
    expr: &mut Expr,
    group_by: &[GroupKey],
    input: &InputRows,
    aggregates: &mut Vec<AggregateSpec>,
) -> Result<(), QueryError> {
    let mut go = |e: &mut Expr| rewrite_in_place(e, group_by, input, aggregates);
    match expr {
        Expr::Identifier(ident) => {
            let name = name_of(ident);
            if !group_by.iter().any(|k| k.name == name) {
                let known = known_columns(input);
                return Err(if known.contains(&name) {
                    QueryError::at(ident.span, format!("`{name}` must appear in GROUP BY to be used here"))
                        .with_hint("or aggregate it, e.g. max(confidence)")
                } else {
                    QueryError::at(ident.span, format!("unknown column `{name}`"))
                        .suggesting(&name, known.iter().map(String::as_str))
                });
            }
        }
        Expr::Function(function) if is_aggregate(function) => {
            let spec = aggregate_spec(function, input)?;
            let index = aggregates.iter().position(|a| *a == spec).unwrap_or_else(|| {
                aggregates.push(spec);
                aggregates.len() - 1
            });
            *expr = Expr::Identifier(Ident::new(format!("__agg{index}")));
        }
        Expr::Function(function) => {
            if let FunctionArguments::List(list) = &mut function.args {
                for arg in &mut list.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg {
                        go(e)?;
                    }
                }
            }
        }
        Expr::BinaryOp { left, right, .. } => {
            go(left)?;
            go(right)?;
        }
        Expr::UnaryOp { expr: inner, .. }
        | Expr::Nested(inner)
        | Expr::Cast { expr: inner, .. }
        | Expr::IsNull(inner)
        | Expr::IsNotNull(inner)
        | Expr::IsTrue(inner)
        | Expr::IsFalse(inner) => go(inner)?,
        Expr::Between { expr: inner, low, high, .. } => {
            go(inner)?;
            go(low)?;
            go(high)?;
        }
        Expr::InList { expr: inner, list, .. } => {
            go(inner)?;
            for e in list {
                go(e)?;
            }
        }
        Expr::Case { operand, conditions, else_result, .. } => {
            if let Some(operand) = operand {
                go(operand)?;
            }
            for when in conditions {
                go(&mut when.condition)?;
                go(&mut when.result)?;
            }
            if let Some(other) = else_result {
                go(other)?;
            }
        }
        Expr::Value(_) | Expr::TypedString { .. } | Expr::Interval(_) => {}
        other => {
            return Err(QueryError::at(other.span(), format!("`{other}` is not supported in a view yet")));
        }
    }
    Ok(())
}

const AGGREGATES: [(&str, AggregateFunction); 5] = [
    ("count", AggregateFunction::Count),
    ("sum", AggregateFunction::Sum),
    ("avg", AggregateFunction::Avg),
    ("min", AggregateFunction::Min),
    ("max", AggregateFunction::Max),
];

/// `count(*)`, `count(col)`, `count(DISTINCT col)`, `sum(col)`, `avg(col)`,
/// `min(col)`, `max(col)`.
fn aggregate_spec(function: &sqlparser::ast::Function, input: &InputRows) -> Result<AggregateSpec, QueryError> {
    let name = function.name.to_string().to_lowercase();
    let Some((_, kind)) = AGGREGATES.iter().find(|(n, _)| *n == name) else {
        return Err(QueryError::at(function.name.span(), format!("unknown aggregate `{name}`"))
            .suggesting(&name, AGGREGATES.iter().map(|(n, _)| *n)));
    };
    let FunctionArguments::List(list) = &function.args else {
        return Err(QueryError::at(function.span(), format!("{name} takes one argument")));
    };
    if function.filter.is_some() || function.over.is_some() || !list.clauses.is_empty() {
        return Err(QueryError::at(
            function.span(),
            format!("`{function}`: FILTER, OVER and ORDER BY are not supported"),
        ));
    }
    let distinct = matches!(list.duplicate_treatment, Some(sqlparser::ast::DuplicateTreatment::Distinct));
    let column = match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if *kind == AggregateFunction::Count && !distinct => None,
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(ident)))] => {
            let column_name = name_of(ident);
            let (column, column_kind) = input.column(&column_name).ok_or_else(|| {
                QueryError::at(ident.span, format!("unknown column `{column_name}`"))
                    .suggesting(&column_name, input.names().iter().map(String::as_str))
            })?;
            if matches!(kind, AggregateFunction::Sum | AggregateFunction::Avg) && !column_kind.is_numeric() {
                let numeric: Vec<String> = input
                    .names()
                    .into_iter()
                    .filter(|n| input.column(n).is_some_and(|(_, kind)| kind.is_numeric()))
                    .collect();
                return Err(QueryError::at(
                    ident.span,
                    format!("{name}({column_name}): `{column_name}` is not a number"),
                )
                .with_hint(format!("numeric columns: {}", numeric.join(", "))));
            }
            Some(column)
        }
        _ => {
            let usage =
                if *kind == AggregateFunction::Count { "count(*) or count([DISTINCT] column)" } else { "a column" };
            return Err(QueryError::at(function.span(), format!("`{function}` is not supported"))
                .with_hint(format!("{name} takes {usage}")));
        }
    };
    if distinct && *kind != AggregateFunction::Count {
        return Err(QueryError::at(function.span(), format!("DISTINCT is supported in count only, not {name}")));
    }
    Ok(AggregateSpec { function: *kind, column, distinct })
}

/// The one SELECT of a query, without set operations, ORDER BY or LIMIT.
fn plain_select(query: &Query) -> Result<&Select, QueryError> {
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return Err(QueryError::at(query.span(), "WITH, ORDER BY and LIMIT have no meaning on a stream"));
    }
    match query.body.as_ref() {
        SetExpr::Select(select) => Ok(select),
        other => Err(QueryError::at(other.span(), "expected a single SELECT")),
    }
}

/// Refuses the clauses this part of the dialect does not run yet, rather
/// than ignoring them.
fn refuse_clauses(select: &Select, grouped: bool) -> Result<(), QueryError> {
    if let (false, Some(having)) = (grouped, &select.having) {
        return Err(QueryError::at(having.span(), "a stream has no HAVING").with_hint("filter rows with WHERE"));
    }
    if select.distinct.is_some() {
        return Err(QueryError::at(select.span(), "SELECT DISTINCT is not supported"));
    }
    if let (false, GroupByExpr::Expressions(exprs, _)) = (grouped, &select.group_by)
        && let Some(first) = exprs.first()
    {
        return Err(QueryError::at(first.span(), "a stream cannot GROUP BY")
            .with_hint("aggregate in a CREATE VIEW over a window"));
    }
    Ok(())
}

/// The compiled `WHERE` of a SELECT, if it has one.
fn where_filter(select: &Select, input: &InputRows) -> Result<Option<Filter>, QueryError> {
    let Some(condition) = &select.selection else { return Ok(None) };
    Ok(Some(Filter(Arc::new(SqlFilter::compile_over(condition, input.schema())?))))
}

/// The stream a SELECT reads, when it reads a plain name.
fn from_stream(select: &Select) -> Option<&Ident> {
    match select.from.as_slice() {
        [from] if from.joins.is_empty() => match &from.relation {
            TableFactor::Table { name, args: None, .. } if name.0.len() == 1 => name.0[0].as_ident(),
            _ => None,
        },
        _ => None,
    }
}

/// The table function a SELECT reads from: its name and arguments.
fn table_function(select: &Select) -> Result<(&Ident, &TableFunctionArgs), QueryError> {
    let [from] = select.from.as_slice() else {
        return Err(QueryError::at(select.span(), "expected FROM with exactly one table function"));
    };
    if let Some(join) = from.joins.first() {
        return Err(QueryError::at(join.relation.span(), "joins are not supported"));
    }
    match &from.relation {
        TableFactor::Table { name, args: Some(args), .. } if name.0.len() == 1 => {
            let ident = name.0[0].as_ident().ok_or_else(|| QueryError::at(name.span(), "expected a function name"))?;
            Ok((ident, args))
        }
        other => Err(QueryError::at(
            other.span(),
            format!("expected a table function such as DETECT(...) or TUMBLE(...), found `{other}`"),
        )),
    }
}

/// `INTERVAL '10' SECOND`, `INTERVAL '1' MINUTE`, `INTERVAL '10 seconds'`.
fn interval_ms(expr: &Expr) -> Result<Millis, QueryError> {
    let Expr::Interval(interval) = expr else {
        return Err(QueryError::at(expr.span(), format!("expected an INTERVAL, found `{expr}`"))
            .with_hint("e.g. INTERVAL '10' SECOND"));
    };
    let text = literal_text(&interval.value)?;
    let unit_ms: Option<Millis> = match &interval.leading_field {
        None => None,
        Some(DateTimeField::Millisecond | DateTimeField::Milliseconds) => Some(1),
        Some(DateTimeField::Second | DateTimeField::Seconds) => Some(1_000),
        Some(DateTimeField::Minute | DateTimeField::Minutes) => Some(60_000),
        Some(DateTimeField::Hour | DateTimeField::Hours) => Some(3_600_000),
        Some(DateTimeField::Day | DateTimeField::Days) => Some(86_400_000),
        Some(other) => return Err(QueryError::at(expr.span(), format!("windows cannot be sized in {other}"))),
    };
    let ms = match unit_ms {
        Some(unit) => text.trim().parse::<f64>().ok().map(|n| (n * unit as f64).round() as Millis),
        None => humantime::parse_duration(text.trim()).ok().map(|d| d.as_millis() as Millis),
    };
    match ms {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(QueryError::at(expr.span(), format!("`{expr}` is not a positive interval"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICKSTART: &str = "
        CREATE SOURCE cams FROM DIRECTORY 'data/frames' WITH (lateness = '2s', late = 'drop', watch = false);
        CREATE STREAM detections AS SELECT * FROM DETECT(cams, model => 'objects', min_confidence => 0.3);
        CREATE VIEW counts AS
          SELECT source_id, label, window_start, window_end, count(*) AS n
          FROM TUMBLE(detections, event_time, INTERVAL '10' SECOND)
          GROUP BY source_id, label, window_start, window_end;
        CREATE SINK out FROM counts INTO FILE 'out/counts.jsonl';
        CREATE SINK dets FROM detections INTO FILE 'out/detections.jsonl';";

    #[test]
    fn plans_the_quickstart() {
        let plan = plan_job(QUICKSTART).unwrap();
        let source = &plan.sources[0];
        assert_eq!((source.kind.as_str(), source.lateness_ms, source.late), ("directory", 2_000, LatePolicy::Drop));
        assert_eq!(source.options.get("watch").map(String::as_str), Some("false"));
        let StreamInput::Vision { options, .. } = &plan.streams[0].input else { panic!("a vision stream") };
        assert_eq!(options.get("min_confidence").map(String::as_str), Some("0.3"));
        let view = &plan.views[0];
        assert_eq!(view.window, WindowSpec::Tumble { size_ms: 10_000 });
        assert_eq!(
            view.group_by,
            [
                Column::Detection(DetectionColumn::Tenant),
                Column::Detection(DetectionColumn::SourceId),
                Column::Detection(DetectionColumn::Label)
            ],
            "every view groups by tenant first"
        );
        assert_eq!(view.columns.last(), Some(&ViewColumn::Aggregate { name: "n".into(), index: 0 }));
        assert_eq!(
            view.aggregates,
            [AggregateSpec { function: AggregateFunction::Count, column: None, distinct: false }]
        );
        let dead_letter = plan.sinks.iter().find(|s| s.input == DEAD_LETTER).unwrap();
        assert_eq!(dead_letter.location.as_deref(), Some("out/dead_letter.jsonl"));
    }

    fn error(sql: &str) -> String {
        plan_job(sql).unwrap_err().to_string()
    }

    #[test]
    fn mistakes_get_locations_and_hints() {
        let base = "CREATE SOURCE cams FROM DIRECTORY 'd';\n";
        assert_eq!(
            error(&format!("{base}CREATE STREAM s AS SELECT * FROM DETECT(camz);")),
            "line 2, column 41: unknown source `camz` (hint: did you mean `cams`?)"
        );
        assert_eq!(
            error(&format!("{base}CREATE STREAM s AS SELECT * FROM DETEKT(cams);")),
            "line 2, column 34: unknown vision function `DETEKT` (hint: did you mean `DETECT`?)"
        );
        let view = "CREATE STREAM s AS SELECT * FROM DETECT(cams);\nCREATE VIEW v AS SELECT lable, count(*) FROM TUMBLE(s, event_time, INTERVAL '1' MINUTE) GROUP BY lable, window_start;";
        assert_eq!(
            error(&format!("{base}{view}")),
            "line 3, column 98: cannot group by `lable` (hint: did you mean `label`?)"
        );
        assert!(error(&format!("{base}CREATE SOURCE cams FROM DIRECTORY 'e';")).contains("already defined at line 1"));
        assert!(
            error("CREATE SOURCE c FROM DIRECTORY 'd' WITH (late = 'ignore');")
                .contains("hint: use 'dead_letter', 'drop' or 'admit'")
        );
        assert!(
            error("CREATE SOURCE c FROM DETECTIONS 'd.jsonl' WITH (dedup = '1s');")
                .contains("dedup drops repeated frames; `detections` reads rows")
        );
    }
}
