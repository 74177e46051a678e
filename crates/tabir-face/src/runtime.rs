//! ONNX Runtime and the two models: the runtime library is loaded once per process, and each
//! model file is checked against the manifest compiled into this crate (sha256, input and
//! output names and shapes) before a session is built from it.

use crate::error::{FaceError, Result};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The manifest of models/, compiled in: a model file must match it to be used.
const MANIFEST: &str = include_str!("../../../models/manifest.json");

#[derive(Deserialize)]
struct Manifest {
    models: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    name: String,
    file: String,
    sha256: String,
    size: u64,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
}

#[derive(Deserialize)]
struct Port {
    name: String,
    shape: Vec<i64>,
}

/// Where the models directory of a source checkout is (the default for tests and the CLI).
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("TABIR_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH` if set (cargo sets it from .cargo/config.toml),
/// else the copy scripts/setup-ort.sh puts in the checkout.
pub fn default_runtime_library() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ort/lib/libonnxruntime.so.1.31.1")
        })
}

static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

/// Load ONNX Runtime from `library` once per process. Later calls reuse the first outcome
/// (ONNX Runtime allows one environment per process).
pub fn init_runtime(library: &Path) -> Result<()> {
    let outcome = ENVIRONMENT.get_or_init(|| {
        if !library.is_file() {
            return Err(format!("{} does not exist", library.display()));
        }
        ort::init_from(library)
            .map_err(|e| e.to_string())?
            .with_name("tabir")
            .build()
            .map_err(|e| e.to_string())
    });
    match outcome {
        Ok(_) => Ok(()),
        Err(detail) => Err(FaceError::RuntimeUnavailable {
            detail: detail.clone(),
        }),
    }
}

fn environment() -> Result<&'static ort::environment::Environment> {
    match ENVIRONMENT.get() {
        Some(Ok(environment)) => Ok(environment),
        Some(Err(detail)) => Err(FaceError::RuntimeUnavailable {
            detail: detail.clone(),
        }),
        None => Err(FaceError::RuntimeUnavailable {
            detail: "the runtime was not initialised".into(),
        }),
    }
}

/// Which of the pinned models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Detector,
    Embedder,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::Detector => "yunet",
            Model::Embedder => "sface",
        }
    }
}

/// Check a model file against the manifest and open a session on it with `threads` intra-op
/// threads.
pub fn load_model(models_dir: &Path, model: Model, threads: usize) -> Result<Session> {
    let invalid = |detail: String| FaceError::ModelInvalid {
        model: model.name(),
        detail,
    };
    let manifest: Manifest =
        serde_json::from_str(MANIFEST).map_err(|e| invalid(format!("manifest: {e}")))?;
    let entry = manifest
        .models
        .iter()
        .find(|m| m.name == model.name())
        .ok_or_else(|| invalid("not in the manifest".into()))?;
    let path = models_dir.join(&entry.file);
    // Check the size first: a wrong or huge file is refused without reading it.
    let size = std::fs::metadata(&path)
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?
        .len();
    if size != entry.size {
        return Err(invalid(format!(
            "{} is {size} bytes, the manifest pins {}",
            path.display(),
            entry.size
        )));
    }
    let bytes = std::fs::read(&path).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != entry.sha256 {
        return Err(invalid(format!(
            "{} has sha256 {digest}, the manifest pins {}",
            path.display(),
            entry.sha256
        )));
    }
    let inference = |e: ort::Error| FaceError::Inference {
        model: model.name(),
        detail: e.to_string(),
    };
    let session = Session::builder(environment()?)
        .map_err(inference)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| inference(e.into()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| inference(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| inference(e.into()))?
        // The models carry int8 weights behind DequantizeLinear nodes. By default ONNX Runtime
        // keeps those nodes (for quantised kernels) and dequantises every weight on every
        // run; folding them once at load into fp32 makes SFace about 3x faster on a CPU.
        .with_config_entry("session.disable_quant_qdq", "1")
        .map_err(|e| inference(e.into()))?
        .commit_from_memory(&bytes)
        .map_err(inference)?;
    check_ports("input", session.inputs(), &entry.inputs).map_err(invalid)?;
    check_ports("output", session.outputs(), &entry.outputs).map_err(invalid)?;
    Ok(session)
}

fn check_ports(
    kind: &str,
    actual: &[ort::value::Outlet],
    expected: &[Port],
) -> std::result::Result<(), String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "{} {kind}s, the manifest lists {}",
            actual.len(),
            expected.len()
        ));
    }
    for port in expected {
        let found = actual
            .iter()
            .find(|o| o.name() == port.name)
            .ok_or_else(|| format!("no {kind} named {}", port.name))?;
        let shape: Option<Vec<i64>> = found.dtype().tensor_shape().map(|s| s.to_vec());
        if shape.as_deref() != Some(port.shape.as_slice()) {
            return Err(format!(
                "{kind} {} has shape {shape:?}, the manifest says {:?}",
                port.name, port.shape
            ));
        }
    }
    Ok(())
}
