//! ONNX Runtime, loaded at run time from the library the set-up fetched.
//!
//! ONNX Runtime allows one environment per process, so it is made once, on
//! first use, from the library path the first caller gives.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Where the shared library, the models and the font are.
#[derive(Clone, Debug)]
pub struct ModelStore {
    /// Folder of model cards (`NAME.json`) and their ONNX files.
    pub models_dir: PathBuf,
    /// `libonnxruntime.so`, from the PyPI `onnxruntime` wheel.
    pub onnxruntime: PathBuf,
    /// The TrueType font ANNOTATE writes labels in.
    pub font: PathBuf,
}

impl ModelStore {
    /// The layout the set-up script writes: `ASSETS/models`, `ASSETS/lib`.
    pub fn in_assets(assets: &Path) -> ModelStore {
        ModelStore {
            models_dir: assets.join("models"),
            onnxruntime: assets.join("lib").join("libonnxruntime.so"),
            font: assets.join("fonts").join("DejaVuSans.ttf"),
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

    /// A session on `model`, running on `threads` threads.
    pub fn session(&self, model: &Path, threads: usize) -> Result<Session, String> {
        let env = self.environment()?;
        let fail = |e: &dyn std::fmt::Display| format!("cannot load model `{}`: {e}", model.display());
        Session::builder(env)
            .map_err(|e| fail(&e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail(&e))?
            .with_intra_threads(threads)
            .map_err(|e| fail(&e))?
            .with_inter_threads(1)
            .map_err(|e| fail(&e))?
            .commit_from_file(model)
            .map_err(|e| fail(&e))
    }
}
