//! `HAVING` and expressions over aggregates in a view's SELECT: compiled by
//! DataFusion against the view's base row — group keys, window bounds and
//! every aggregate as `__agg0`, `__agg1`, ... — and evaluated on Arrow
//! batches of the rows each closing window emits.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::DFSchema;
use datafusion::logical_expr::ExprSchemable;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use sqlparser::ast::{Expr, Spanned};

use engine::columnar::{canonical, type_name, value_at, view_rows_batch};
use engine::model::{Value, ViewRow};
use engine::plan::ViewFinish;

use crate::error::QueryError;

/// A view's HAVING and output expressions, compiled.
pub struct SqlFinish {
    base: SchemaRef,
    having: Option<Arc<dyn PhysicalExpr>>,
    outputs: Vec<(Arc<str>, DataType, Arc<dyn PhysicalExpr>)>,
    columns: Arc<[Arc<str>]>,
    columns_with_diff: Arc<[Arc<str>]>,
}

/// An expression to compile: its rewritten form (aggregates as `__aggN`)
/// and where the user wrote it.
pub struct Written<'a> {
    pub expr: Expr,
    pub original: &'a Expr,
}

impl SqlFinish {
    /// Compiles `outputs` (name, expression) and `having` over rows of
    /// `base` (column name and type).
    pub fn compile(
        base: Vec<(String, DataType)>,
        outputs: Vec<(String, Written)>,
        having: Option<Written>,
    ) -> Result<SqlFinish, QueryError> {
        let schema: SchemaRef = Arc::new(Schema::new(
            base.iter().map(|(name, kind)| Field::new(name, kind.clone(), true)).collect::<Vec<_>>(),
        ));
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| QueryError {
            line: 0,
            column: 0,
            message: e.to_string(),
            hint: None,
        })?;
        let context = SessionContext::new();
        let compile = |written: &Written| -> Result<(DataType, Arc<dyn PhysicalExpr>), QueryError> {
            let at = |message: String| QueryError::at(written.original.span(), message);
            let text = written.expr.to_string();
            let logical = context
                .parse_sql_expr(&text, &df_schema)
                .map_err(|e| at(format!("cannot use `{}`: {}", written.original, first_line(&e.to_string()))))?;
            let kind = canonical(&logical.get_type(&df_schema).map_err(|e| at(first_line(&e.to_string())))?);
            let physical =
                context.create_physical_expr(logical, &df_schema).map_err(|e| at(first_line(&e.to_string())))?;
            Ok((kind, physical))
        };
        let having = match &having {
            None => None,
            Some(written) => {
                let (kind, expr) = compile(written)?;
                if kind != DataType::Boolean {
                    return Err(QueryError::at(
                        written.original.span(),
                        format!("HAVING needs a condition, but `{}` is {kind}", written.original),
                    )
                    .with_hint("compare it, e.g. HAVING count(*) > 10"));
                }
                Some(expr)
            }
        };
        let mut compiled: Vec<(Arc<str>, DataType, Arc<dyn PhysicalExpr>)> = Vec::new();
        for (name, written) in &outputs {
            let (kind, expr) = compile(written)?;
            compiled.push((Arc::from(name.as_str()), kind, expr));
        }
        let columns: Arc<[Arc<str>]> = compiled.iter().map(|(name, _, _)| name.clone()).collect();
        let columns_with_diff = columns.iter().cloned().chain(std::iter::once(Arc::from("diff"))).collect();
        Ok(SqlFinish { base: schema, having, outputs: compiled, columns, columns_with_diff })
    }

    fn batch(&self, rows: &[ViewRow]) -> Result<RecordBatch, String> {
        view_rows_batch(&self.base, rows)
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_owned()
}

impl ViewFinish for SqlFinish {
    fn finish(&self, rows: &[ViewRow]) -> Result<Vec<Option<ViewRow>>, String> {
        let batch = self.batch(rows)?;
        let n = batch.num_rows();
        let keep: Vec<bool> = match &self.having {
            None => vec![true; n],
            Some(having) => {
                let array =
                    having.evaluate(&batch).and_then(|v| v.into_array(n)).map_err(|e| format!("HAVING failed: {e}"))?;
                let booleans = array.as_any().downcast_ref::<BooleanArray>().ok_or("HAVING is not a condition")?;
                booleans.iter().map(|v| v == Some(true)).collect()
            }
        };
        let columns = self
            .outputs
            .iter()
            .map(|(name, _, expr)| {
                expr.evaluate(&batch).and_then(|v| v.into_array(n)).map_err(|e| format!("column `{name}` failed: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let base_width = self.base.fields().len();
        Ok((0..n)
            .map(|i| {
                keep[i].then(|| {
                    let mut values: Vec<Value> = columns.iter().map(|c| value_at(c, i)).collect();
                    // A diff after the base columns is carried over.
                    match rows[i].values.get(base_width) {
                        Some(diff) => {
                            values.push(diff.clone());
                            ViewRow { columns: self.columns_with_diff.clone(), values }
                        }
                        None => ViewRow { columns: self.columns.clone(), values },
                    }
                })
            })
            .collect())
    }

    fn output_columns(&self) -> Vec<(String, String)> {
        self.outputs.iter().map(|(name, kind, _)| (name.to_string(), type_name(kind))).collect()
    }
}

/// Base column types, as the finish sees them.
pub(crate) fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}
