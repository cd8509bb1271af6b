//! `frameflow query "SELECT ..."`: ad-hoc SQL with DataFusion over what
//! jobs stored — each FILE (JSONL) and PARQUET sink of the catalog is a
//! table named after the sink, the dead-letter log included.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{JsonReadOptions, ParquetReadOptions, SessionContext, col, lit};

use crate::catalog::Catalog;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Runs `sql` over the tables of `catalog`; returns the printed result.
/// With `tenant`, each table holds that tenant's rows only, and a table
/// without a `tenant` column is not there at all.
pub fn query(sql: &str, catalog: &Catalog, format: Format, tenant: Option<&str>) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the query runtime: {e}"))?;
    let batches = runtime.block_on(run(sql, catalog, tenant))?;
    render(&batches, format)
}

async fn run(sql: &str, catalog: &Catalog, tenant: Option<&str>) -> Result<Vec<RecordBatch>, String> {
    let context = SessionContext::new();
    for (name, table) in &catalog.tables {
        let schema = table.schema();
        if tenant.is_some() && schema.field_with_name("tenant").is_err() {
            continue;
        }
        let path = table.path.to_string_lossy();
        let registered = match table.format.as_str() {
            "parquet" if table.path.is_dir() => {
                // Finished parts only: files still being written end in
                // `.inprogress`.
                let options = ParquetReadOptions::default().schema(&schema).file_extension(".parquet");
                context.register_parquet(name.as_str(), path, options).await
            }
            "jsonl" if table.path.is_file() => {
                let extension =
                    table.path.extension().and_then(|e| e.to_str()).map(|e| format!(".{e}")).unwrap_or_default();
                let options = JsonReadOptions::default().schema(&schema).file_extension(&extension);
                context.register_json(name.as_str(), path, options).await
            }
            _ => continue,
        };
        registered.map_err(|e| format!("cannot open table `{name}` ({}): {e}", table.path.display()))?;
        if let Some(tenant) = tenant {
            // The table is replaced by a view of one tenant's rows: the
            // unfiltered table is no longer in the catalog to be named.
            let fail = |e: &dyn std::fmt::Display| format!("cannot open table `{name}` for a tenant: {e}");
            let rows = context.table(name.as_str()).await.map_err(|e| fail(&e))?;
            let own = rows.filter(col("tenant").eq(lit(tenant))).map_err(|e| fail(&e))?.into_view();
            context.deregister_table(name.as_str()).map_err(|e| fail(&e))?;
            context.register_table(name.as_str(), own).map_err(|e| fail(&e))?;
        }
    }
    // Questions only: no CREATE, COPY, INSERT or SET, which could open
    // files around the tenant filter or change them.
    let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let tables = registered(&context);
    let frame = context.sql_with_options(sql, read_only).await.map_err(|e| describe(&e.to_string(), &tables))?;
    frame.collect().await.map_err(|e| describe(&e.to_string(), &tables))
}

/// The tables a query may name.
fn registered(context: &SessionContext) -> Vec<String> {
    let catalog = context.catalog("datafusion");
    let schema = catalog.and_then(|c| c.schema("public"));
    let mut names = schema.map(|s| s.table_names()).unwrap_or_default();
    names.sort();
    names
}

/// DataFusion's message, with the tables there are when one is unknown.
fn describe(message: &str, tables: &[String]) -> String {
    let message = message.lines().next().unwrap_or(message).to_owned();
    if message.contains("not found") && message.contains("table") {
        let known: Vec<&str> = tables.iter().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none yet: run a job with a FILE or PARQUET sink".to_owned()
        } else {
            known.join(", ")
        };
        return format!("{message} (tables: {known})");
    }
    message
}

fn render(batches: &[RecordBatch], format: Format) -> Result<String, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot print the result: {e}");
    match format {
        Format::Table => pretty_format_batches(batches).map(|t| t.to_string() + "\n").map_err(|e| fail(&e)),
        Format::Json => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(Vec::new());
            for batch in batches {
                writer.write(batch).map_err(|e| fail(&e))?;
            }
            writer.finish().map_err(|e| fail(&e))?;
            String::from_utf8(writer.into_inner()).map_err(|e| fail(&e))
        }
        Format::Csv => {
            let mut writer = datafusion::arrow::csv::Writer::new(Vec::new());
            for batch in batches {
                writer.write(batch).map_err(|e| fail(&e))?;
            }
            String::from_utf8(writer.into_inner()).map_err(|e| fail(&e))
        }
    }
}
