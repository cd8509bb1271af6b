//! frameflow's sources and sinks, each found by name through
//! [`register`].
//!
//! - [`directory`]: `DIRECTORY`, frames from a folder of camera folders.
//! - [`detections`]: `DETECTIONS`, detection rows made elsewhere (JSONL).
//! - [`generator`]: `GENERATOR`, synthetic detections or frames at a set
//!   rate.
//! - `http` (feature `http`, on by default): `HTTP`, frames pushed by
//!   devices with signed tokens; `frameflow token` and `frameflow ingest`.
//! - `kafka` (feature `kafka`): `KAFKA` source and sink.
//! - [`file`]: `FILE` (JSONL) and `STDOUT` sinks.
//! - [`parquet_sink`]: `PARQUET`, rows as rolled Parquet files.
//! - `webhook` (feature `http`): `WEBHOOK`, rows POSTed in batches with
//!   limits, retries and backoff.
//! - [`options`]: parsing of `WITH (...)` values shared by connectors.
//!
//! Adding a connector means one module here and one line in [`register`].

pub mod detections;
pub mod directory;
pub mod file;
pub mod generator;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod options;
pub mod parquet_sink;
#[cfg(feature = "http")]
pub mod webhook;

use std::sync::Arc;

use engine::registry::Registry;

/// Adds every connector this build has to `registry`.
pub fn register(registry: &mut Registry) {
    registry.sources.insert("directory", Arc::new(directory::DirectorySourceFactory));
    registry.sources.insert("detections", Arc::new(detections::DetectionsSourceFactory));
    registry.sources.insert("generator", Arc::new(generator::GeneratorSourceFactory));
    #[cfg(feature = "http")]
    registry.sources.insert("http", Arc::new(http::HttpSourceFactory));
    #[cfg(feature = "kafka")]
    registry.sources.insert("kafka", Arc::new(kafka::KafkaSourceFactory));
    #[cfg(feature = "kafka")]
    registry.sinks.insert("kafka", Arc::new(kafka::KafkaSinkFactory));
    registry.sinks.insert("file", Arc::new(file::FileSinkFactory));
    registry.sinks.insert("stdout", Arc::new(file::StdoutSinkFactory));
    registry.sinks.insert("parquet", Arc::new(parquet_sink::ParquetSinkFactory));
    #[cfg(feature = "http")]
    registry.sinks.insert("webhook", Arc::new(webhook::WebhookSinkFactory));
}
