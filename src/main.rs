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
    /// Ask SQL of what jobs stored: every FILE and PARQUET sink is a table
    /// named after the sink (the default dead-letter file is `dead_letter`).
    Query(QueryArgs),
    /// Mint a device token (HS256 JWT) for an HTTP source.
    Token(TokenArgs),
    /// Push image files to an HTTP source, as a device would.
    Ingest(IngestArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The tenant the device's frames belong to.
    #[arg(long)]
    tenant: String,
    /// Cameras the device may write, comma-separated (`*`: any).
    #[arg(long, value_delimiter = ',', required = true)]
    sources: Vec<String>,
    /// How long the token is valid: `30d`, `12h`, ...
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    ttl: std::time::Duration,
    /// The HS256 secret the HTTP source checks tokens with.
    #[arg(long, env = "FRAMEFLOW_JWT_SECRET_FILE")]
    secret_file: PathBuf,
}

#[derive(Debug, clap::Args)]
struct IngestArgs {
    /// The HTTP source, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    /// A device token (`frameflow token`).
    #[arg(long, env = "FRAMEFLOW_TOKEN")]
    token: String,
    /// The camera; by default each file's folder name.
    #[arg(long)]
    source: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Tries per file while the server answers 503.
    #[arg(long, default_value_t = 10)]
    tries: u32,
    /// Image files (.jpg, .png, .webp); a name that is a number is the
    /// event time in ms since the epoch.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// The query; or give a file with -f.
    sql: Option<String>,
    /// A file holding the query.
    #[arg(long, short, conflicts_with = "sql")]
    file: Option<PathBuf>,
    /// table, json (one object per line) or csv.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Where jobs record their tables.
    #[arg(long, env = "FRAMEFLOW_STATE_DIR", default_value = ".frameflow")]
    state_dir: PathBuf,
    /// Only this tenant's rows: every table is filtered to them, and tables
    /// without a tenant column are left out.
    #[arg(long, env = "FRAMEFLOW_TENANT")]
    tenant: Option<String>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Json,
    Csv,
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
    /// Frames a worker admitted but the sinks have not yet delivered, beyond
    /// which its sources wait.
    #[arg(long, env = "FRAMEFLOW_MAX_IN_FLIGHT", default_value_t = 64)]
    max_in_flight: usize,
    /// The same in bytes of encoded frames and rows: `256MiB`, `64KiB`, ...
    #[arg(long, env = "FRAMEFLOW_MAX_IN_FLIGHT_BYTES", default_value = "256MiB",
          value_parser = |v: &str| connectors::options::parse_bytes("--max-in-flight-bytes", v))]
    max_in_flight_bytes: u64,
    /// Folder the set-up filled: models/ and lib/libonnxruntime.so.
    #[arg(long, env = "FRAMEFLOW_ASSETS", default_value = "assets")]
    assets: PathBuf,
    /// Folder of model cards and ONNX files [default: ASSETS/models].
    #[arg(long, env = "FRAMEFLOW_MODELS")]
    models: Option<PathBuf>,
    /// The ONNX Runtime library [default: ASSETS/lib/libonnxruntime.so].
    #[arg(long, env = "FRAMEFLOW_ORT_LIB")]
    onnxruntime: Option<PathBuf>,
    /// Give models to ONNX Runtime as they are, without frameflow's graph
    /// rewrites (which make them faster on x86 and compute the same).
    #[arg(long, env = "FRAMEFLOW_NO_MODEL_REWRITES")]
    no_model_rewrites: bool,
    /// Where operators run: auto, cpu or cuda.
    #[arg(long, env = "FRAMEFLOW_DEVICE", default_value = "auto")]
    device: DeviceChoice,
    /// Largest frame accepted by the decoder, in megapixels.
    #[arg(long, env = "FRAMEFLOW_MAX_MEGAPIXELS", default_value_t = 40.0)]
    max_megapixels: f64,
    /// Where the job records its tables for `frameflow query`.
    #[arg(long, env = "FRAMEFLOW_STATE_DIR", default_value = ".frameflow")]
    state_dir: PathBuf,
    /// Journal what sources accept and take checkpoints, in
    /// STATE_DIR/jobs/JOB: a job restarted after a crash (or a stop)
    /// resumes where its last checkpoint left it, losing and repeating
    /// nothing. HTTP sources answer 202 only once a frame is on disk.
    #[arg(long, env = "FRAMEFLOW_DURABLE")]
    durable: bool,
    /// How long SIGINT or SIGTERM waits for the job to finish what it
    /// accepted before the process exits anyway.
    #[arg(long, env = "FRAMEFLOW_DRAIN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: std::time::Duration,
    /// How often a durable job takes a checkpoint.
    #[arg(long, env = "FRAMEFLOW_CHECKPOINT_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    checkpoint_interval: std::time::Duration,
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
        Command::Query(args) => run_query(args),
        Command::Token(args) => mint_token(args),
        Command::Ingest(args) => ingest(args),
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
    store.rewrite_models = !args.no_model_rewrites;
    let limits = DecodeLimits { max_pixels: (args.max_megapixels * 1e6) as u64, ..DecodeLimits::default() };
    let mut registry = Registry::new(Arc::new(FrameDecoder::new(limits)));
    connectors::register(&mut registry);
    operators::register(&mut registry, &store);

    let connectors = queries::KnownConnectors {
        source_kinds: registry.sources.keys().map(|k| k.to_string()).collect(),
        sink_kinds: registry.sinks.keys().map(|k| k.to_string()).collect(),
        operators: registry.operators.keys().map(|k| k.to_string()).collect(),
    };
    let plan = queries::plan_job_in(&sql, &connectors).map_err(|e| {
        let hint = e.hint.map(|h| format!(" (hint: {h})")).unwrap_or_default();
        anyhow::anyhow!("{}:{}:{}: {}{hint}", args.job.display(), e.line, e.column, e.message)
    })?;
    if !plan.explain.is_empty() {
        print!("{}", queries::explain::explain(&plan));
        return Ok(());
    }
    if plan.sinks.iter().any(|s| s.kind == "file" || s.kind == "parquet") {
        let mut tables = queries::catalog::Catalog::load(&args.state_dir).map_err(anyhow::Error::msg)?;
        tables.record(&plan, &std::env::current_dir()?);
        tables.save(&args.state_dir).map_err(anyhow::Error::msg)?;
    }
    let device = gpu::resolve(args.device)?;
    if let gpu::Device::Cpu { fallback_reason: Some(reason) } = &device {
        eprintln!("frameflow: running on the CPU ({reason})");
    }

    let config = RunConfig {
        workers: args.workers.max(1),
        tick_ms: args.tick_ms,
        max_in_flight_frames: args.max_in_flight,
        max_in_flight_bytes: args.max_in_flight_bytes as usize,
        state_dir: args.durable.then(|| {
            let job = args.job.file_stem().map_or("job".into(), |s| s.to_string_lossy().into_owned());
            args.state_dir.join("jobs").join(job)
        }),
        checkpoint_interval: args.checkpoint_interval,
        ..RunConfig::default()
    };
    // SIGINT or SIGTERM stops the job gracefully: sources stop taking
    // input, and what was accepted is finished and written out.
    // A second signal, or a drain that outlasts --drain-timeout, ends the
    // process at once (a durable job then resumes from its last
    // checkpoint).
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, config.stop.clone())
            .context("cannot handle signals")?;
        signal_hook::flag::register(signal, config.stop.clone()).context("cannot handle signals")?;
    }
    let (stop, drain_timeout) = (config.stop.clone(), args.drain_timeout);
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::thread::sleep(drain_timeout);
        eprintln!(
            "frameflow: the job did not drain within {} (--drain-timeout); exiting",
            humantime::format_duration(drain_timeout)
        );
        std::process::exit(1);
    });
    let metrics = Arc::new(Metrics::default());
    let reporter = progress::Reporter::start(args.progress, metrics.clone());
    let result = run(plan, &registry, &config, metrics);
    reporter.stop();
    let summary = result?;
    eprintln!("{}", progress::summary_line(&summary));
    Ok(())
}

fn run_query(args: QueryArgs) -> Result<()> {
    let sql = match (args.sql, args.file) {
        (Some(sql), _) => sql,
        (None, Some(file)) => {
            std::fs::read_to_string(&file).with_context(|| format!("cannot read query file `{}`", file.display()))?
        }
        (None, None) => anyhow::bail!("give a query: frameflow query \"SELECT ...\" or frameflow query -f query.sql"),
    };
    let tables = queries::catalog::Catalog::load(&args.state_dir).map_err(anyhow::Error::msg)?;
    let format = match args.format {
        OutputFormat::Table => queries::adhoc::Format::Table,
        OutputFormat::Json => queries::adhoc::Format::Json,
        OutputFormat::Csv => queries::adhoc::Format::Csv,
    };
    let printed = queries::adhoc::query(&sql, &tables, format, args.tenant.as_deref()).map_err(anyhow::Error::msg)?;
    print!("{printed}");
    Ok(())
}

fn mint_token(args: TokenArgs) -> Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let claims = connectors::http::auth::Claims {
        tenant: args.tenant,
        sources: args.sources,
        scope: "ingest".to_owned(),
        exp: now + args.ttl.as_secs(),
        nbf: Some(now),
    };
    println!("{}", connectors::http::auth::mint(&claims, &args.secret_file).map_err(anyhow::Error::msg)?);
    Ok(())
}

fn ingest(args: IngestArgs) -> Result<()> {
    let pushed = connectors::http::client::push(
        &args.url,
        &args.token,
        args.source.as_deref(),
        &args.files,
        args.parallel,
        args.tries,
    );
    let mut failed = 0;
    for p in &pushed {
        match &p.result {
            Ok(answer) if answer.status == 202 => println!("{} {}", p.file.display(), answer.body.trim()),
            Ok(answer) => {
                failed += 1;
                eprintln!("{}: {} {} (after {} tries)", p.file.display(), answer.status, answer.body.trim(), p.tries);
            }
            Err(why) => {
                failed += 1;
                eprintln!("{}: {why}", p.file.display());
            }
        }
    }
    eprintln!("frameflow ingest: {} accepted, {failed} not", pushed.len() - failed);
    if failed > 0 {
        anyhow::bail!("{failed} of {} files were not accepted", pushed.len());
    }
    Ok(())
}
