//! The frameflow engine: the data model, the plugin traits, and the
//! timely-dataflow runtime that runs a job.
//!
//! - [`model`]: frames, detections, outcomes and view rows (DESIGN.md §2);
//!   [`columnar`]: the same rows as Arrow batches.
//! - [`time`]: event time, ticks, RFC 3339; [`watermark`]: per-camera
//!   watermarks behind a source's promise.
//! - [`plan`]: a job as the engine runs it, produced by the SQL layer.
//! - [`registry`]: the traits sources, operators, sinks and the decoder
//!   implement, and the registry that finds them by name.
//! - [`checkpoint`]: where sources resume and sinks stand after a
//!   restart; [`journal`]: a durable log of what a source accepted.
//! - [`runtime`]: builds the dataflow and drives it, with backpressure from
//!   the probe at the sinks; [`metrics`]: the counters it keeps.
//!
//! ```text
//!   Source ──▶ Decode ──▶ VisionOperator ──▶ detections ──▶ windowed views
//!     ▲                        │                 │               │
//!     │ admit while            └─▶ outcomes      ▼               ▼
//!     │ in-flight < budget        (dead letter)  Sinks ◀─────────┘
//!     └──────────────────────── probe ◀──────────┘
//! ```
//!
//! The engine depends on no other frameflow crate: connectors, operators
//! and the SQL layer plug into it.

pub mod checkpoint;
pub mod columnar;
pub mod error;
pub mod journal;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod registry;
pub mod runtime;
pub mod time;
pub mod watermark;

pub use error::EngineError;
