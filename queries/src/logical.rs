//! DataFusion's logical plan of what a stream or view computes, for
//! `EXPLAIN`: its SELECT planned by DataFusion's SQL planner over a table of
//! its input's schema. For a windowed view the table also has the window's
//! `window_start` and `window_end`, which the window assigns: the plan is
//! what is computed for each window, incrementally.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::datasource::empty::EmptyTable;
use datafusion::prelude::SessionContext;
use sqlparser::ast::{GroupByExpr, Select};

use engine::columnar::timestamp;

/// The plan of `select` over a table `table` of `schema`, indented, one
/// node per line; with `windowed`, the table has the window bounds too;
/// with `by_tenant`, the view's implicit `tenant` key is grouped by and
/// selected first, as the view does.
pub(crate) fn logical_plan(
    select: &Select,
    table: &str,
    schema: &SchemaRef,
    windowed: bool,
    by_tenant: bool,
) -> Result<String, String> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    if windowed {
        fields.push(Field::new("window_start", timestamp(), false));
        fields.push(Field::new("window_end", timestamp(), false));
    }
    let mut items: Vec<String> = select.projection.iter().map(ToString::to_string).collect();
    let mut keys: Vec<String> = match &select.group_by {
        GroupByExpr::Expressions(keys, _) => keys.iter().map(ToString::to_string).collect(),
        GroupByExpr::All(_) => Vec::new(),
    };
    if by_tenant {
        items.insert(0, "tenant".to_owned());
        keys.insert(0, "tenant".to_owned());
    }
    let mut sql = format!("SELECT {} FROM \"{table}\"", items.join(", "));
    if let Some(condition) = &select.selection {
        sql += &format!(" WHERE {condition}");
    }
    if !keys.is_empty() {
        sql += &format!(" GROUP BY {}", keys.join(", "));
    }
    if let Some(having) = &select.having {
        sql += &format!(" HAVING {having}");
    }
    let context = SessionContext::new();
    let table_schema = Arc::new(Schema::new(fields));
    context.register_table(table, Arc::new(EmptyTable::new(table_schema))).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|e| e.to_string())?;
    let frame = runtime.block_on(context.sql(&sql)).map_err(|e| e.to_string())?;
    Ok(frame.logical_plan().display_indent().to_string())
}
