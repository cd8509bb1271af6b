//! `WHERE` clauses: compiled by DataFusion into physical expressions and
//! evaluated on Arrow batches of detections, so every SQL scalar function
//! and operator DataFusion knows works in a job.
//!
//! ```text
//!  sqlparser Expr ──DataFusion──▶ logical Expr ──▶ PhysicalExpr
//!  [Detection] ──detections_batch──▶ RecordBatch ──evaluate──▶ BooleanArray ──▶ keep
//! ```

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{DFSchema, ExprSchema};
use datafusion::logical_expr::ExprSchemable;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use sqlparser::ast::{Expr, Spanned};

use engine::columnar::{detection_schema, detections_batch, view_rows_batch};
use engine::model::{Detection, ViewRow};
use engine::plan::RowFilter;

use crate::error::QueryError;

/// A compiled `WHERE` over detections or the rows of a view.
#[derive(Debug)]
pub struct SqlFilter {
    text: String,
    schema: SchemaRef,
    expr: Arc<dyn PhysicalExpr>,
}

impl SqlFilter {
    /// Compiles `expr` over detections; errors point at it.
    pub fn compile(expr: &Expr) -> Result<SqlFilter, QueryError> {
        SqlFilter::compile_over(expr, detection_schema())
    }

    /// Compiles `expr` over rows of `schema`.
    pub fn compile_over(expr: &Expr, rows: SchemaRef) -> Result<SqlFilter, QueryError> {
        let text = expr.to_string();
        let at = |message: String| QueryError::at(expr.span(), message);
        let schema = DFSchema::try_from(rows.as_ref().clone()).map_err(|e| at(e.to_string()))?;
        let context = SessionContext::new();
        let explain = |message: String| explain(expr, &message, &rows);
        let logical = context.parse_sql_expr(&text, &schema).map_err(|e| explain(e.to_string()))?;
        let kind = logical.get_type(&schema as &dyn ExprSchema).map_err(|e| explain(e.to_string()))?;
        if kind != DataType::Boolean {
            return Err(at(format!("WHERE needs a condition, but `{text}` is {kind}"))
                .with_hint("compare it, e.g. confidence > 0.5 or label = 'person'"));
        }
        let physical = context.create_physical_expr(logical, &schema).map_err(|e| explain(e.to_string()))?;
        Ok(SqlFilter { text, schema: rows, expr: physical })
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<Vec<bool>, String> {
        let fail = |e: &dyn std::fmt::Display| format!("WHERE {} failed: {e}", self.text);
        let value = self.expr.evaluate(batch).map_err(|e| fail(&e))?;
        let array = value.into_array(batch.num_rows()).map_err(|e| fail(&e))?;
        let booleans = array.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| fail(&"not a boolean"))?;
        // NULL, as in SQL, is not true.
        Ok(booleans.iter().map(|v| v == Some(true)).collect())
    }
}

/// DataFusion's message, made ours: an unknown column gets a suggestion.
pub(crate) fn explain(expr: &Expr, message: &str, rows: &SchemaRef) -> QueryError {
    let message = message.lines().next().unwrap_or(message);
    let unknown = message.split("No field named ").nth(1).map(|rest| {
        rest.split(|c: char| c == '.' || c.is_whitespace()).next().unwrap_or(rest).trim_matches('"').to_owned()
    });
    match unknown {
        Some(column) => QueryError::at(expr.span(), format!("unknown column `{column}`"))
            .suggesting(&column, rows.fields().iter().map(|f| f.name().as_str())),
        None => QueryError::at(expr.span(), format!("cannot use `{expr}`: {message}")),
    }
}

impl RowFilter for SqlFilter {
    fn keep(&self, rows: &[Detection]) -> Result<Vec<bool>, String> {
        self.evaluate(&detections_batch(rows)?)
    }

    fn keep_rows(&self, rows: &[ViewRow]) -> Result<Vec<bool>, String> {
        self.evaluate(&view_rows_batch(&self.schema, rows)?)
    }

    fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn expr(text: &str) -> Expr {
        Parser::new(&GenericDialect {}).try_with_sql(text).unwrap().parse_expr().unwrap()
    }

    fn detection(label: &str, confidence: f32, event_time: i64) -> Detection {
        Detection {
            frame_id: "f".into(),
            tenant: "t".into(),
            source_id: "cam".into(),
            event_time,
            operator: "detect".into(),
            label: label.into(),
            confidence,
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 20.0,
            track_id: None,
            text: None,
            attributes: Default::default(),
        }
    }

    #[test]
    fn filters_with_sql_expressions() {
        let rows = [detection("person", 0.8, 1_000), detection("car", 0.3, 2_000), detection("person", 0.2, 3_000)];
        let keep = |sql: &str| SqlFilter::compile(&expr(sql)).unwrap().keep(&rows).unwrap();
        assert_eq!(keep("label = 'person' AND confidence > 0.5"), [true, false, false]);
        assert_eq!(keep("confidence = 0.8"), [true, false, false], "f32 columns compare at their printed value");
        assert_eq!(keep("w * h >= 200 AND upper(label) LIKE 'C%'"), [false, true, false]);
        assert_eq!(keep("event_time >= TIMESTAMP '1970-01-01T00:00:02Z'"), [false, true, true]);
        assert_eq!(keep("text IS NULL OR text = 'x'"), [true, true, true]);
    }

    #[test]
    fn bad_conditions_say_why() {
        let error = SqlFilter::compile(&expr("lable = 'person'")).unwrap_err();
        assert_eq!(error.message, "unknown column `lable`");
        assert_eq!(error.hint.as_deref(), Some("did you mean `label`?"));
        let error = SqlFilter::compile(&expr("confidence + 1")).unwrap_err();
        assert!(error.message.contains("needs a condition"), "{error}");
    }
}
