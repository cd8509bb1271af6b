//! ONNX Runtime, loaded at run time from the library the set-up fetched.
//!
//! ONNX Runtime allows one environment per process, so it is made once, on
//! first use, from the library path the first caller gives.
//!
//! Models are loaded once per process and shared by the workers' sessions
//! (a session runs one call at a time, so each worker has its own). On
//! first use a model is optimised for this machine: frameflow's own
//! rewrites first ([`rewrite`]), then all of ONNX Runtime's graph
//! optimisations, its NCHWc layouts among them. It is kept in memory in
//! ONNX Runtime's own format; every session on it then reads its weights
//! from those bytes, not from a copy of its own. With 8 workers on
//! YOLOv3-tiny that is about 30 MB a session instead of 140.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

mod graph;
mod proto;
pub mod rewrite;

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Per model file (and its size and modification time, so that a replaced
/// file is optimised again), its optimised form in ONNX Runtime's format.
/// The bytes live as long as the process: sessions point into them.
static OPTIMISED: OnceLock<Mutex<HashMap<ModelFile, &'static [u8]>>> = OnceLock::new();

/// A model file as it is now (its path, size and modification time), and
/// whether it was rewritten.
type ModelFile = (PathBuf, u64, Option<SystemTime>, bool);

/// Sessions made while a job's model was checked at its start, kept for
/// the first worker rather than thrown away.
pub(crate) struct Spare<T>(Mutex<Option<T>>);

impl<T> Spare<T> {
    pub(crate) fn new(value: T) -> Spare<T> {
        Spare(Mutex::new(Some(value)))
    }

    /// The spare, the first time; after that, what `make` makes.
    pub(crate) fn take_or(&self, make: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        match self.0.lock().ok().and_then(|mut spare| spare.take()) {
            Some(value) => Ok(value),
            None => make(),
        }
    }
}

/// Where the shared library, the models and the font are.
#[derive(Clone, Debug)]
pub struct ModelStore {
    /// Folder of model cards (`NAME.json`) and their ONNX files.
    pub models_dir: PathBuf,
    /// `libonnxruntime.so`, from the PyPI `onnxruntime` wheel.
    pub onnxruntime: PathBuf,
    /// The TrueType font ANNOTATE writes labels in.
    pub font: PathBuf,
    /// Whether models get frameflow's rewrites ([`rewrite`]) before ONNX
    /// Runtime optimises them; on unless turned off.
    pub rewrite_models: bool,
}

impl ModelStore {
    /// The layout the set-up script writes: `ASSETS/models`, `ASSETS/lib`.
    pub fn in_assets(assets: &Path) -> ModelStore {
        ModelStore {
            models_dir: assets.join("models"),
            onnxruntime: assets.join("lib").join("libonnxruntime.so"),
            font: assets.join("fonts").join("DejaVuSans.ttf"),
            rewrite_models: true,
        }
    }

    fn environment(&self) -> Result<&'static Environment, String> {
        let env = ENVIRONMENT.get_or_init(|| {
            if !self.onnxruntime.is_file() {
                return Err(format!(
                    "ONNX Runtime library `{}` not found; run scripts/fetch_assets.sh or set FRAMEFLOW_ORT_LIB",
                    self.onnxruntime.display()
                ));
            }
            ort::init_from(&self.onnxruntime)
                .map_err(|e| format!("cannot load ONNX Runtime from `{}`: {e}", self.onnxruntime.display()))?
                .with_name("frameflow")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        });
        env.as_ref().map_err(Clone::clone)
    }

    /// The card `MODEL.json` of a model that `operator` runs, which must be
    /// of `architecture`.
    ///
    /// # Errors
    /// A missing card (naming the models there are), a malformed one, or
    /// one of another architecture.
    pub fn card<T: serde::de::DeserializeOwned>(
        &self,
        model: &str,
        architecture: &str,
        operator: &str,
    ) -> Result<T, String> {
        let path = self.models_dir.join(format!("{model}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let known = self.known(architecture);
            format!("model `{model}` not found ({}: {e}); known models: {known}", path.display())
        })?;
        let malformed = |e: serde_json::Error| format!("model card `{}` is malformed: {e}", path.display());
        let card: serde_json::Value = serde_json::from_str(&text).map_err(malformed)?;
        match card["architecture"].as_str() {
            Some(found) if found == architecture => serde_json::from_value(card).map_err(malformed),
            found => Err(format!(
                "model `{model}` is a `{}` model; {operator} runs `{architecture}` models",
                found.unwrap_or("unnamed")
            )),
        }
    }

    /// The architecture the card `MODEL.json` names, if there is such a
    /// card and it names one.
    pub fn architecture(&self, model: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.models_dir.join(format!("{model}.json"))).ok()?;
        let card: serde_json::Value = serde_json::from_str(&text).ok()?;
        card["architecture"].as_str().map(str::to_owned)
    }

    /// The names of the model cards in the models folder for
    /// `architecture`, for error messages.
    pub fn known(&self, architecture: &str) -> String {
        let mut names: Vec<String> = std::fs::read_dir(&self.models_dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".json")?.to_owned();
                let card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
                (card["architecture"] == architecture).then_some(name)
            })
            .collect();
        names.sort();
        if names.is_empty() { "none (run scripts/fetch_assets.sh)".to_owned() } else { names.join(", ") }
    }

    /// A session on `model`, running on `threads` threads, sharing the
    /// model's weights with every other session on it in this process.
    pub fn session(&self, model: &Path, threads: usize) -> Result<Session, String> {
        let env = self.environment()?;
        let fail = |e: &dyn std::fmt::Display| format!("cannot load model `{}`: {e}", model.display());
        let bytes = optimised(env, model, self.rewrite_models)?;
        Session::builder(env)
            .map_err(|e| fail(&e))?
            .with_optimization_level(GraphOptimizationLevel::Disable)
            .map_err(|e| fail(&e))?
            .with_intra_threads(threads)
            .map_err(|e| fail(&e))?
            .with_inter_threads(1)
            .map_err(|e| fail(&e))?
            .with_config_entry("session.use_ort_model_bytes_directly", "1")
            .map_err(|e| fail(&e))?
            .with_config_entry("session.use_ort_model_bytes_for_initializers", "1")
            .map_err(|e| fail(&e))?
            .commit_from_memory(bytes)
            .map_err(|e| fail(&e))
    }

    /// A session on the ONNX model `onnx`, with all of ONNX Runtime's
    /// optimisations and none of frameflow's, not shared: for checking
    /// [`rewrite`] against the model it rewrote.
    pub fn session_from_onnx(&self, onnx: &[u8], threads: usize) -> Result<Session, String> {
        let fail = |e: &dyn std::fmt::Display| format!("cannot load an in-memory model: {e}");
        Session::builder(self.environment()?)
            .map_err(|e| fail(&e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail(&e))?
            .with_intra_threads(threads)
            .map_err(|e| fail(&e))?
            .commit_from_memory(onnx)
            .map_err(|e| fail(&e))
    }
}

/// `model` optimised for this machine, in ONNX Runtime's format, made on
/// first use (under the lock, so workers starting together make it once).
fn optimised(env: &Environment, model: &Path, rewrite_model: bool) -> Result<&'static [u8], String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot load model `{}`: {e}", model.display());
    let meta = std::fs::metadata(model).map_err(|e| fail(&e))?;
    let key = (model.to_path_buf(), meta.len(), meta.modified().ok(), rewrite_model);
    // a panic elsewhere while the lock was held leaves the map as it was
    let mut optimised = OPTIMISED.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bytes) = optimised.get(&key) {
        return Ok(bytes);
    }
    // A file frameflow cannot read as ONNX goes to ONNX Runtime as it is,
    // whose error says more. The file's bytes go before ONNX Runtime
    // loads the model: a job's peak memory is the sum of the two.
    let rewritten = if rewrite_model {
        let onnx = std::fs::read(model).map_err(|e| fail(&e))?;
        rewrite::rewrite(&onnx, rewrite::nchwc_block()).ok().flatten()
    } else {
        None
    };
    let dir = std::env::temp_dir();
    let out = dir.join(format!("frameflow-{}-{}-{}.ort", std::process::id(), optimised.len(), nanos()));
    let mut builder = Session::builder(env)
        .map_err(|e| fail(&e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| fail(&e))?
        .with_intra_threads(1)
        .map_err(|e| fail(&e))?
        .with_config_entry("session.save_model_format", "ORT")
        .map_err(|e| fail(&e))?
        .with_optimized_model_path(&out)
        .map_err(|e| fail(&e))?;
    let made = match &rewritten {
        // A rewrite ONNX Runtime refuses is frameflow's bug, not the
        // model's: the model runs as it came, and says so.
        Some((bytes, _)) => builder.commit_from_memory(bytes).or_else(|e| {
            eprintln!("frameflow: model `{}` runs without frameflow's rewrites: {e}", model.display());
            builder.commit_from_file(model)
        }),
        None => builder.commit_from_file(model),
    }
    .map_err(|e| fail(&e));
    let bytes = made.and_then(|session| {
        drop(session);
        std::fs::read(&out).map_err(|e| fail(&format!("its optimised form `{}`: {e}", out.display())))
    });
    let _ = std::fs::remove_file(&out);
    let bytes: &'static [u8] = Box::leak(bytes?.into_boxed_slice());
    optimised.insert(key, bytes);
    Ok(bytes)
}

/// Nanoseconds of the clock, to tell temporary files apart.
fn nanos() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
