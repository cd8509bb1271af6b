//! A stream's SELECT list (`SELECT label, w * h AS area, upper(text) AS
//! word`): each item compiled by DataFusion into a physical expression over
//! the stream's input rows, and evaluated on Arrow batches of them. The
//! stream's rows are then rows of these columns, in this order.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::ExprSchemable;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use sqlparser::ast::{Expr, Ident, SelectItem, Spanned};

use engine::columnar::{canonical, value_at};
use engine::model::ViewRow;
use engine::plan::RowProjection;

use crate::error::QueryError;
use crate::filter::explain;

/// A compiled SELECT list.
pub struct SqlProjection {
    text: String,
    schema: SchemaRef,
    columns: Arc<[Arc<str>]>,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
}

impl SqlProjection {
    /// Compiles `items` over rows of `input`; `*` stands for every input
    /// column. An aggregate is refused: it needs a window, so a view.
    pub fn compile(items: &[SelectItem], input: SchemaRef) -> Result<SqlProjection, QueryError> {
        let df_schema = DFSchema::try_from(input.as_ref().clone()).map_err(|e| QueryError {
            line: 0,
            column: 0,
            message: e.to_string(),
            hint: None,
        })?;
        let context = SessionContext::new();
        let mut named: Vec<(String, Expr)> = Vec::new();
        for item in items {
            match item {
                SelectItem::Wildcard(_) => {
                    for field in input.fields() {
                        named.push((field.name().clone(), Expr::Identifier(Ident::new(field.name()))));
                    }
                }
                SelectItem::UnnamedExpr(expr) => {
                    let name = match expr {
                        Expr::Identifier(ident) => ident.value.to_lowercase(),
                        other => other.to_string(),
                    };
                    named.push((name, expr.clone()));
                }
                SelectItem::ExprWithAlias { expr, alias } => named.push((alias.value.to_lowercase(), expr.clone())),
                other => return Err(QueryError::at(other.span(), format!("`{other}` is not supported in a stream"))),
            }
        }
        let mut fields = Vec::new();
        let mut exprs = Vec::new();
        for (name, expr) in &named {
            if fields.iter().any(|f: &Field| f.name() == name) {
                return Err(
                    QueryError::at(expr.span(), format!("column `{name}` appears twice")).with_hint("name one with AS")
                );
            }
            if let Expr::Function(function) = expr
                && crate::plan::is_aggregate(function)
            {
                return Err(QueryError::at(expr.span(), format!("`{expr}` aggregates: a stream has one row per row"))
                    .with_hint("aggregate in a CREATE VIEW over a window"));
            }
            let fail = |message: String| explain(expr, &message, &input);
            let logical = context.parse_sql_expr(&expr.to_string(), &df_schema).map_err(|e| fail(e.to_string()))?;
            let kind = logical.get_type(&df_schema).map_err(|e| fail(e.to_string()))?;
            exprs.push(context.create_physical_expr(logical, &df_schema).map_err(|e| fail(e.to_string()))?);
            fields.push(Field::new(name, canonical(&kind), true));
        }
        let text = items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let columns = fields.iter().map(|f| Arc::from(f.name().as_str())).collect();
        Ok(SqlProjection { text, schema: Arc::new(Schema::new(fields)), columns, exprs })
    }
}

impl RowProjection for SqlProjection {
    fn project(&self, rows: &RecordBatch) -> Result<Vec<ViewRow>, String> {
        let n = rows.num_rows();
        let columns = self
            .exprs
            .iter()
            .zip(self.columns.iter())
            .map(|(expr, name)| {
                expr.evaluate(rows).and_then(|v| v.into_array(n)).map_err(|e| format!("column `{name}` failed: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((0..n)
            .map(|i| ViewRow {
                columns: self.columns.clone(),
                values: columns.iter().map(|c| value_at(c, i)).collect(),
            })
            .collect())
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn text(&self) -> String {
        self.text.clone()
    }
}

#[cfg(test)]
mod tests {
    use engine::columnar::{detection_schema, detections_batch};
    use engine::model::{Detection, Value};
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    use super::*;

    fn items(sql: &str) -> Vec<SelectItem> {
        let mut parser = Parser::new(&GenericDialect {}).try_with_sql(sql).unwrap();
        parser.parse_projection().unwrap()
    }

    #[test]
    fn projects_columns_and_expressions_with_their_types() {
        let d = Detection {
            frame_id: "f".into(),
            tenant: "t".into(),
            source_id: "cam".into(),
            event_time: 1_000,
            operator: "detect".into(),
            label: "person".into(),
            confidence: 0.5,
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 20.0,
            track_id: None,
            text: None,
            attributes: Default::default(),
        };
        let projection = SqlProjection::compile(
            &items("label, w * h AS area, event_time, upper(label) AS shout"),
            detection_schema(),
        )
        .unwrap();
        let rows = projection.project(&detections_batch(&[d]).unwrap()).unwrap();
        assert_eq!(
            rows[0].values,
            [
                Value::Str("person".into()),
                Value::Float(engine::model::F64(200.0)),
                Value::Time(1_000),
                Value::Str("PERSON".into())
            ]
        );
        let names: Vec<String> = projection.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["label", "area", "event_time", "shout"]);
    }

    #[test]
    fn unknown_columns_and_aggregates_are_refused() {
        let error = SqlProjection::compile(&items("lable"), detection_schema()).err().unwrap();
        assert_eq!(error.message, "unknown column `lable`");
        let error = SqlProjection::compile(&items("count(*)"), detection_schema()).err().unwrap();
        assert!(error.message.contains("aggregates"), "{error}");
    }
}
