//! frameflow's SQL dialect: a job is parsed with sqlparser, checked, and
//! lowered to the engine's [`engine::plan::JobPlan`].
//!
//! - [`parse`]: the `CREATE SOURCE | STREAM | VIEW | SINK` statements.
//! - [`plan`]: names resolved, arguments checked, SELECTs lowered.
//! - [`filter`]: `WHERE`, and [`project`]: a stream's SELECT list, both
//!   compiled and evaluated by DataFusion on Arrow batches of the rows.
//! - [`finish`]: `HAVING` and expressions over a view's aggregates.
//! - [`catalog`]: the tables jobs stored, with their schemas;
//!   [`adhoc`]: `frameflow query` over them with DataFusion.
//! - [`explain`]: `EXPLAIN CREATE ...`, the plan and its dataflow.
//! - [`error`]: every mistake with line, column and a hint.
//!
//! ```text
//!  job.sql ──parse_job──▶ [Statement] ──Planner──▶ JobPlan ──▶ engine::runtime::run
//! ```

pub mod adhoc;
pub mod catalog;
pub mod error;
pub mod explain;
pub mod filter;
pub mod finish;
mod logical;
pub mod parse;
pub mod plan;
pub mod project;

pub use error::QueryError;
pub use plan::{KnownConnectors, plan_job, plan_job_in};
