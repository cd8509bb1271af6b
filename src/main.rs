//! The `frameflow` command: parse, load configuration, wire the registries,
//! call the engine.

mod progress;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use engine::metrics::Metrics;
use engine::registry::Registry;
use engine::runtime::{RunConfig, run};
use gpu::DeviceChoice;
use operators::decode::{DecodeLimits, FrameDecoder};
use operators::onnx::ModelStore;

/// Stream processing for computer vision: frames in, detections and windowed
/// counts out.
#[derive(Debug, Parser)]
#[command(name = "frameflow", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a job (a .sql file of CREATE statements) in this process.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The job file.
    job: PathBuf,
    /// Timely worker threads.
    #[arg(long, short, env = "FRAMEFLOW_WORKERS", default_value_t = default_workers())]
    workers: usize,
    /// Milliseconds of event time per dataflow tick.
    #[arg(long, env = "FRAMEFLOW_TICK_MS", default_value_t = 50)]
    tick_ms: u64,
    /// Frames admitted but not yet delivered, beyond which sources wait.
    #[arg(long, env = "FRAMEFLOW_MAX_IN_FLIGHT", default_value_t = 64)]
    max_in_flight: usize,
    /// Folder the set-up filled: models/ and lib/libonnxruntime.so.
    #[arg(long, env = "FRAMEFLOW_ASSETS", default_value = "assets")]
    assets: PathBuf,
    /// Folder of model cards and ONNX files [default: ASSETS/models].
    #[arg(long, env = "FRAMEFLOW_MODELS")]
    models: Option<PathBuf>,
    /// The ONNX Runtime library [default: ASSETS/lib/libonnxruntime.so].
    #[arg(long, env = "FRAMEFLOW_ORT_LIB")]
    onnxruntime: Option<PathBuf>,
    /// Where operators run: auto, cpu or cuda.
    #[arg(long, env = "FRAMEFLOW_DEVICE", default_value = "auto")]
    device: DeviceChoice,
    /// Largest frame accepted by the decoder, in megapixels.
    #[arg(long, env = "FRAMEFLOW_MAX_MEGAPIXELS", default_value_t = 40.0)]
    max_megapixels: f64,
    /// Progress display: auto (a status line on a terminal, log lines
    /// otherwise), lines, or none.
    #[arg(long, env = "FRAMEFLOW_PROGRESS", default_value = "auto")]
    progress: progress::Mode,
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_job(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run_job(args: RunArgs) -> Result<()> {
    let sql =
        std::fs::read_to_string(&args.job).with_context(|| format!("cannot read job file `{}`", args.job.display()))?;
    let mut store = ModelStore::in_assets(&args.assets);
    store.models_dir = args.models.unwrap_or(store.models_dir);
    store.onnxruntime = args.onnxruntime.unwrap_or(store.onnxruntime);
    let limits = DecodeLimits { max_pixels: (args.max_megapixels * 1e6) as u64, ..DecodeLimits::default() };
    let mut registry = Registry::new(Arc::new(FrameDecoder::new(limits)));
    connectors::register(&mut registry);
    operators::register(&mut registry, &store);

    let catalog = queries::Catalog {
        source_kinds: registry.sources.keys().map(|k| k.to_string()).collect(),
        sink_kinds: registry.sinks.keys().map(|k| k.to_string()).collect(),
    };
    let plan = queries::plan_job_in(&sql, &catalog).map_err(|e| {
        let hint = e.hint.map(|h| format!(" (hint: {h})")).unwrap_or_default();
        anyhow::anyhow!("{}:{}:{}: {}{hint}", args.job.display(), e.line, e.column, e.message)
    })?;
    let device = gpu::resolve(args.device)?;
    if let gpu::Device::Cpu { fallback_reason: Some(reason) } = &device {
        eprintln!("frameflow: running on the CPU ({reason})");
    }

    let config =
        RunConfig { workers: args.workers.max(1), tick_ms: args.tick_ms, max_in_flight_frames: args.max_in_flight };
    let metrics = Arc::new(Metrics::default());
    let reporter = progress::Reporter::start(args.progress, metrics.clone());
    let result = run(plan, &registry, &config, metrics);
    reporter.stop();
    let summary = result?;
    eprintln!("{}", progress::summary_line(&summary));
    Ok(())
}
