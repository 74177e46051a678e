//! ONNX Runtime and the two models: the runtime library is loaded once per process, and each
//! model file is checked against the manifest compiled into this crate (sha256, input and
//! output names and shapes) before a session is built from it.

use crate::error::{FaceError, Result};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
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

/// The ONNX Runtime library this build is made for (the version `scripts/setup-ort.sh` pins).
#[cfg(not(any(windows, target_os = "macos")))]
pub const RUNTIME_LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";
/// The ONNX Runtime library this build is made for.
#[cfg(target_os = "macos")]
pub const RUNTIME_LIBRARY_FILE: &str = "libonnxruntime.1.31.1.dylib";
/// The ONNX Runtime library this build is made for.
#[cfg(windows)]
pub const RUNTIME_LIBRARY_FILE: &str = "onnxruntime.dll";

/// Environment variable naming the runtime library (then the only place looked at).
pub const RUNTIME_ENV: &str = "ORT_DYLIB_PATH";
/// Environment variable naming the models folder (then the only place looked at).
pub const MODELS_ENV: &str = "TABIR_MODELS_DIR";

/// Where a candidate comes from, in words: the runtime's environment variable.
pub const FROM_RUNTIME_ENV: &str = RUNTIME_ENV;
/// ... the models' environment variable.
pub const FROM_MODELS_ENV: &str = MODELS_ENV;
/// ... the running executable's folder.
pub const FROM_EXECUTABLE: &str = "next to the executable";
/// ... the per-user data folder.
pub const FROM_DATA_FOLDER: &str = "the data folder";
/// ... the source checkout the binary was built in (developers).
pub const FROM_CHECKOUT: &str = "the source checkout";

/// One place searched for the runtime library or the models folder, and whether it is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    /// The rule of the search it comes from: one of the `FROM_*` constants.
    pub origin: &'static str,
    /// The library file exists, or the folder holds the models of the manifest.
    pub found: bool,
}

/// What the search looks at: gathered from this process ([`SearchPaths::from_process`]) or
/// given (tests).
///
/// The runtime library: `ORT_DYLIB_PATH` if set (and then nothing else), else
/// `libonnxruntime.so*` in the executable's folder, then in its `lib/`, then in the data folder
/// (`$XDG_DATA_HOME/tabir`, else `~/.local/share/tabir`; `%LOCALAPPDATA%\tabir` on Windows,
/// `~/Library/Application Support/tabir` on macOS), then in the source checkout's `.ort/lib`
/// (where `scripts/setup-ort.sh` puts it; only while that checkout exists).
///
/// The models: `TABIR_MODELS_DIR` if set, else `models/` beside the executable, then in the
/// data folder, then the checkout's `models/`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPaths {
    /// `ORT_DYLIB_PATH` (a file, or a folder to look in).
    pub runtime_override: Option<PathBuf>,
    /// `TABIR_MODELS_DIR`.
    pub models_override: Option<PathBuf>,
    /// The folder of the running executable.
    pub exe_dir: Option<PathBuf>,
    /// The per-user data folder for tabir.
    pub data_dir: Option<PathBuf>,
    /// The source checkout this binary was built from, while it exists.
    pub checkout: Option<PathBuf>,
}

/// The source checkout this crate was compiled in (compiled-in path), if it still exists.
fn checkout_dir() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .filter(|root| root.is_dir())
        .map(Path::to_path_buf)
}

/// The per-user data folder, from the environment `var` gives.
#[cfg(not(any(windows, target_os = "macos")))]
fn data_dir_from(var: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    // XDG: a relative XDG_DATA_HOME is invalid and ignored.
    var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|home| Path::new(&home).join(".local/share")))
        .map(|base| base.join("tabir"))
}

/// The per-user data folder, from the environment `var` gives.
#[cfg(target_os = "macos")]
fn data_dir_from(var: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    var("HOME").map(|home| Path::new(&home).join("Library/Application Support/tabir"))
}

/// The per-user data folder, from the environment `var` gives.
#[cfg(windows)]
fn data_dir_from(var: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    var("LOCALAPPDATA").map(|base| Path::new(&base).join("tabir"))
}

/// Whether a file name is an ONNX Runtime library this platform loads.
#[cfg(not(any(windows, target_os = "macos")))]
fn is_runtime_file(name: &str) -> bool {
    name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")
}

/// Whether a file name is an ONNX Runtime library this platform loads.
#[cfg(target_os = "macos")]
fn is_runtime_file(name: &str) -> bool {
    name.starts_with("libonnxruntime") && name.ends_with(".dylib")
}

/// Whether a file name is an ONNX Runtime library this platform loads.
#[cfg(windows)]
fn is_runtime_file(name: &str) -> bool {
    name.eq_ignore_ascii_case("onnxruntime.dll")
}

/// The runtime libraries in `dir`, the pinned version first, then the others by name (higher
/// versions first); or the pinned name, marked missing, when there is none.
fn libraries_in(dir: &Path, origin: &'static str) -> Vec<Candidate> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| is_runtime_file(name) && dir.join(name).is_file())
        .collect();
    names.sort_by(|a, b| {
        (b.as_str() == RUNTIME_LIBRARY_FILE)
            .cmp(&(a.as_str() == RUNTIME_LIBRARY_FILE))
            .then_with(|| b.cmp(a))
    });
    if names.is_empty() {
        return vec![Candidate {
            path: dir.join(RUNTIME_LIBRARY_FILE),
            origin,
            found: false,
        }];
    }
    names
        .into_iter()
        .map(|name| Candidate {
            path: dir.join(name),
            origin,
            found: true,
        })
        .collect()
}

/// The model files the manifest names.
pub fn model_files() -> Vec<String> {
    serde_json::from_str::<Manifest>(MANIFEST)
        .map(|m| m.models.into_iter().map(|e| e.file).collect())
        .unwrap_or_default()
}

/// A models folder counts as found when it holds any model file of the manifest (whether they
/// are the right files is checked at load).
fn models_in(dir: PathBuf, origin: &'static str) -> Candidate {
    let found = model_files().iter().any(|file| dir.join(file).is_file());
    Candidate {
        path: dir,
        origin,
        found,
    }
}

impl SearchPaths {
    /// This process's environment, executable and (compiled-in) source checkout.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self::from_env(
            &var,
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf)),
            checkout_dir(),
        )
    }

    /// The search for an environment `var` (empty values count as unset), executable folder
    /// and checkout.
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<OsString>,
        exe_dir: Option<PathBuf>,
        checkout: Option<PathBuf>,
    ) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        Self {
            runtime_override: var(RUNTIME_ENV).map(PathBuf::from),
            models_override: var(MODELS_ENV).map(PathBuf::from),
            exe_dir,
            data_dir: data_dir_from(&var),
            checkout,
        }
    }

    /// Every place looked at for the runtime library, in order.
    pub fn runtime_candidates(&self) -> Vec<Candidate> {
        if let Some(path) = &self.runtime_override {
            // Absolute, so that the file checked is the file loaded (a relative path would be
            // tried beside the executable first by the loader).
            let path = &std::path::absolute(path).unwrap_or_else(|_| path.clone());
            if path.is_dir() {
                return libraries_in(path, FROM_RUNTIME_ENV);
            }
            return vec![Candidate {
                path: path.clone(),
                origin: FROM_RUNTIME_ENV,
                found: path.is_file(),
            }];
        }
        let mut dirs = Vec::new();
        if let Some(exe) = &self.exe_dir {
            dirs.push((exe.clone(), FROM_EXECUTABLE));
            dirs.push((exe.join("lib"), FROM_EXECUTABLE));
        }
        if let Some(data) = &self.data_dir {
            dirs.push((data.clone(), FROM_DATA_FOLDER));
        }
        // The build machine's checkout only in debug builds: a release binary copied to an
        // office PC must not load a library from a path anyone there could create. (Models are
        // safe to look for there: each is checked against the compiled-in manifest.)
        if cfg!(debug_assertions) {
            if let Some(checkout) = &self.checkout {
                dirs.push((checkout.join(".ort").join("lib"), FROM_CHECKOUT));
            }
        }
        dirs.iter()
            .flat_map(|(dir, origin)| libraries_in(dir, origin))
            .collect()
    }

    /// Every place looked at for the models folder, in order.
    pub fn models_candidates(&self) -> Vec<Candidate> {
        if let Some(dir) = &self.models_override {
            return vec![models_in(dir.clone(), FROM_MODELS_ENV)];
        }
        let mut candidates = Vec::new();
        if let Some(exe) = &self.exe_dir {
            candidates.push(models_in(exe.join("models"), FROM_EXECUTABLE));
        }
        if let Some(data) = &self.data_dir {
            candidates.push(models_in(data.join("models"), FROM_DATA_FOLDER));
        }
        if let Some(checkout) = &self.checkout {
            candidates.push(models_in(checkout.join("models"), FROM_CHECKOUT));
        }
        candidates
    }
}

/// The first candidate found, else the first looked at (so that the error names it).
fn first_found(candidates: &[Candidate], fallback: &str) -> PathBuf {
    candidates
        .iter()
        .find(|c| c.found)
        .or_else(|| candidates.first())
        .map(|c| c.path.clone())
        .unwrap_or_else(|| PathBuf::from(fallback))
}

/// Every place this process looks at for ONNX Runtime, in order, and which exist.
pub fn runtime_library_candidates() -> Vec<Candidate> {
    SearchPaths::from_process().runtime_candidates()
}

/// Every place this process looks at for the models folder, in order, and which hold models.
pub fn models_dir_candidates() -> Vec<Candidate> {
    SearchPaths::from_process().models_candidates()
}

/// Where the search looked, for a message: "A (next to the executable), B (the data folder)".
pub fn describe_search(candidates: &[Candidate]) -> String {
    if candidates.is_empty() {
        return "nowhere (no executable folder, data folder or checkout is known)".into();
    }
    candidates
        .iter()
        .map(|c| format!("{} ({})", c.path.display(), c.origin))
        .collect::<Vec<_>>()
        .join(", ")
}

fn runtime_not_found(candidates: &[Candidate]) -> String {
    format!(
        "no {RUNTIME_LIBRARY_FILE} found; looked at {}",
        describe_search(candidates)
    )
}

/// The ONNX Runtime library to load, or an error that lists every place looked at.
pub fn find_runtime_library() -> Result<PathBuf> {
    let candidates = runtime_library_candidates();
    candidates
        .iter()
        .find(|c| c.found)
        .map(|c| c.path.clone())
        .ok_or_else(|| FaceError::RuntimeUnavailable {
            detail: runtime_not_found(&candidates),
        })
}

/// The models folder: the first that holds the models (see [`SearchPaths`]), else the first
/// place looked at (loading then fails naming it).
pub fn default_models_dir() -> PathBuf {
    first_found(&models_dir_candidates(), "models")
}

/// The ONNX Runtime library: the first found (see [`SearchPaths`]), else the first place looked
/// at (loading then fails, listing every place looked at).
pub fn default_runtime_library() -> PathBuf {
    first_found(&runtime_library_candidates(), RUNTIME_LIBRARY_FILE)
}

static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, String>> =
    OnceLock::new();

/// Load ONNX Runtime from `library` once per process. Later calls reuse the first outcome
/// (ONNX Runtime allows one environment per process).
pub fn init_runtime(library: &Path) -> Result<()> {
    let outcome = ENVIRONMENT.get_or_init(|| {
        if !library.is_file() {
            // The default path of a search that found nothing: say where it looked.
            let searched = runtime_library_candidates();
            if searched.iter().all(|c| !c.found) && searched.iter().any(|c| c.path == library) {
                return Err(runtime_not_found(&searched));
            }
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

/// The manifest's entry for `model`.
fn manifest_entry(model: Model) -> Result<ModelEntry> {
    let invalid = |detail: String| FaceError::ModelInvalid {
        model: model.name(),
        detail,
    };
    let manifest: Manifest =
        serde_json::from_str(MANIFEST).map_err(|e| invalid(format!("manifest: {e}")))?;
    manifest
        .models
        .into_iter()
        .find(|m| m.name == model.name())
        .ok_or_else(|| invalid("not in the manifest".into()))
}

/// Check a model file against the manifest (size, then sha256) without loading it: needs no
/// runtime. Returns the file's path.
pub fn check_model_file(models_dir: &Path, model: Model) -> Result<PathBuf> {
    read_checked_model(models_dir, model).map(|(path, _)| path)
}

/// The model file's path and bytes, checked against the manifest.
fn read_checked_model(models_dir: &Path, model: Model) -> Result<(PathBuf, Vec<u8>)> {
    let invalid = |detail: String| FaceError::ModelInvalid {
        model: model.name(),
        detail,
    };
    let entry = manifest_entry(model)?;
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
    Ok((path, bytes))
}

/// Check a model file against the manifest and open a session on it with `threads` intra-op
/// threads.
pub fn load_model(models_dir: &Path, model: Model, threads: usize) -> Result<Session> {
    let invalid = |detail: String| FaceError::ModelInvalid {
        model: model.name(),
        detail,
    };
    let entry = manifest_entry(model)?;
    let (_, bytes) = read_checked_model(models_dir, model)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh folder under the system's temporary folder, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "tabir-face-runtime-{label}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        /// Create `relative` (and its folders) with a few bytes in it; return its path.
        fn file(&self, relative: &str) -> PathBuf {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"not a library").unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The search for the environment `vars`, an executable in `root/bin` and a checkout in
    /// `root/checkout`.
    fn search(root: &Path, vars: &[(&str, &Path)]) -> SearchPaths {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        SearchPaths::from_env(
            &|name: &str| vars.get(name).cloned(),
            Some(root.join("bin")),
            Some(root.join("checkout")),
        )
    }

    fn found(candidates: &[Candidate]) -> Vec<PathBuf> {
        candidates
            .iter()
            .filter(|c| c.found)
            .map(|c| c.path.clone())
            .collect()
    }

    #[test]
    fn ort_dylib_path_is_the_only_place_when_set() {
        let root = TempDir::new("override");
        root.file(&format!("bin/{RUNTIME_LIBRARY_FILE}"));
        let missing = root.0.join("nowhere").join(RUNTIME_LIBRARY_FILE);
        let paths = search(&root.0, &[(RUNTIME_ENV, &missing)]);
        assert_eq!(
            paths.runtime_candidates(),
            vec![Candidate {
                path: missing.clone(),
                origin: FROM_RUNTIME_ENV,
                found: false
            }]
        );
        assert_eq!(first_found(&paths.runtime_candidates(), "x"), missing);
        let named = root.file("elsewhere/libonnxruntime.so.custom");
        let paths = search(&root.0, &[(RUNTIME_ENV, &named)]);
        assert_eq!(found(&paths.runtime_candidates()), vec![named]);
        // Unset: the library beside the executable is found.
        let paths = search(&root.0, &[]);
        assert_eq!(
            found(&paths.runtime_candidates()),
            vec![root.0.join("bin").join(RUNTIME_LIBRARY_FILE)]
        );
    }

    #[cfg(not(any(windows, target_os = "macos")))]
    #[test]
    fn runtime_search_order_exe_dir_lib_data_folder_checkout() {
        let root = TempDir::new("order");
        let data = root.0.join("data");
        let vars = [("XDG_DATA_HOME", data.as_path())];
        let in_checkout = root.file(&format!("checkout/.ort/lib/{RUNTIME_LIBRARY_FILE}"));
        let in_data = root.file(&format!("data/tabir/{RUNTIME_LIBRARY_FILE}"));
        let in_lib = root.file("bin/lib/libonnxruntime.so");
        let beside = root.file(&format!("bin/{RUNTIME_LIBRARY_FILE}"));
        let candidates = search(&root.0, &vars).runtime_candidates();
        assert_eq!(
            found(&candidates),
            vec![
                beside.clone(),
                in_lib.clone(),
                in_data.clone(),
                in_checkout.clone()
            ]
        );
        let origins: Vec<&str> = candidates.iter().map(|c| c.origin).collect();
        assert_eq!(
            origins,
            [
                FROM_EXECUTABLE,
                FROM_EXECUTABLE,
                FROM_DATA_FOLDER,
                FROM_CHECKOUT
            ]
        );
        assert_eq!(first_found(&candidates, "x"), beside);
        std::fs::remove_file(&beside).unwrap();
        assert_eq!(
            first_found(&search(&root.0, &vars).runtime_candidates(), "x"),
            in_lib
        );
        std::fs::remove_file(&in_lib).unwrap();
        assert_eq!(
            first_found(&search(&root.0, &vars).runtime_candidates(), "x"),
            in_data
        );
        std::fs::remove_file(&in_data).unwrap();
        assert_eq!(
            first_found(&search(&root.0, &vars).runtime_candidates(), "x"),
            in_checkout
        );
        std::fs::remove_file(&in_checkout).unwrap();
        // Nothing anywhere: every place is listed, missing, and the first is the default.
        let candidates = search(&root.0, &vars).runtime_candidates();
        assert!(candidates.iter().all(|c| !c.found));
        assert_eq!(
            first_found(&candidates, "x"),
            root.0.join("bin").join(RUNTIME_LIBRARY_FILE)
        );
        let message = runtime_not_found(&candidates);
        for dir in ["bin", "bin/lib", "data/tabir", "checkout/.ort/lib"] {
            let path = root.0.join(dir).join(RUNTIME_LIBRARY_FILE);
            assert!(
                message.contains(&path.display().to_string()),
                "{message} lacks {dir}"
            );
        }
    }

    #[cfg(not(any(windows, target_os = "macos")))]
    #[test]
    fn a_folder_prefers_the_pinned_version_and_skips_other_files() {
        let root = TempDir::new("names");
        root.file("bin/libonnxruntime_providers_shared.so");
        root.file("bin/libonnxruntime.dylib");
        root.file("bin/onnxruntime.dll");
        std::fs::create_dir_all(root.0.join("bin/libonnxruntime.so.9")).unwrap();
        let paths = search(&root.0, &[]);
        assert!(found(&paths.runtime_candidates()).is_empty());
        let plain = root.file("bin/libonnxruntime.so");
        let newer = root.file("bin/libonnxruntime.so.1.40.0");
        let pinned = root.file(&format!("bin/{RUNTIME_LIBRARY_FILE}"));
        assert_eq!(
            found(&paths.runtime_candidates()),
            vec![pinned, newer, plain]
        );
    }

    #[cfg(not(any(windows, target_os = "macos")))]
    #[test]
    fn data_folder_follows_xdg() {
        let var = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            data_dir_from(&var(&[("XDG_DATA_HOME", "/xdg"), ("HOME", "/home/op")])),
            Some(PathBuf::from("/xdg/tabir"))
        );
        // A relative XDG_DATA_HOME is ignored, as the specification says.
        assert_eq!(
            data_dir_from(&var(&[("XDG_DATA_HOME", "xdg"), ("HOME", "/home/op")])),
            Some(PathBuf::from("/home/op/.local/share/tabir"))
        );
        assert_eq!(
            data_dir_from(&var(&[("HOME", "/home/op")])),
            Some(PathBuf::from("/home/op/.local/share/tabir"))
        );
        assert_eq!(data_dir_from(&var(&[])), None);
    }

    #[test]
    fn models_search_order_and_override() {
        let root = TempDir::new("models");
        let data = root.0.join("data");
        let vars = [("XDG_DATA_HOME", data.as_path()), ("HOME", data.as_path())];
        let files = model_files();
        assert_eq!(files.len(), 2, "the manifest names two models");
        let detector = files[0].as_str();
        root.file(&format!("checkout/models/{detector}"));
        // An empty models/ beside the executable does not count.
        std::fs::create_dir_all(root.0.join("bin/models")).unwrap();
        let paths = search(&root.0, &vars);
        let candidates = paths.models_candidates();
        assert_eq!(candidates.len(), 3);
        assert_eq!(
            candidates.iter().map(|c| c.origin).collect::<Vec<_>>(),
            [FROM_EXECUTABLE, FROM_DATA_FOLDER, FROM_CHECKOUT]
        );
        assert_eq!(found(&candidates), vec![root.0.join("checkout/models")]);
        root.file(&format!("{}/tabir/models/{detector}", data.display()));
        assert_eq!(
            first_found(&search(&root.0, &vars).models_candidates(), "x"),
            data.join("tabir/models")
        );
        root.file(&format!("bin/models/{detector}"));
        assert_eq!(
            first_found(&search(&root.0, &vars).models_candidates(), "x"),
            root.0.join("bin/models")
        );
        // TABIR_MODELS_DIR: the only place, even when it holds nothing.
        let chosen = root.0.join("chosen");
        let paths = search(&root.0, &[(MODELS_ENV, chosen.as_path())]);
        assert_eq!(
            paths.models_candidates(),
            vec![Candidate {
                path: chosen,
                origin: FROM_MODELS_ENV,
                found: false
            }]
        );
    }

    #[test]
    fn no_checkout_no_checkout_candidates() {
        let root = TempDir::new("nocheckout");
        let paths = SearchPaths::from_env(&|_: &str| None, Some(root.0.join("bin")), None);
        assert!(paths
            .runtime_candidates()
            .iter()
            .all(|c| c.origin == FROM_EXECUTABLE));
        assert_eq!(paths.models_candidates().len(), 1);
        // Empty values count as unset.
        let paths = SearchPaths::from_env(
            &|name: &str| (name == RUNTIME_ENV).then(OsString::new),
            Some(root.0.join("bin")),
            None,
        );
        assert_eq!(paths.runtime_override, None);
    }

    #[test]
    fn model_files_are_checked_against_the_manifest_without_a_runtime() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        for model in [Model::Detector, Model::Embedder] {
            let path = check_model_file(&checkout, model).unwrap();
            assert!(path.is_file());
        }
        let root = TempDir::new("badmodel");
        let files = model_files();
        root.file(&files[0]);
        let error = check_model_file(&root.0, Model::Detector).unwrap_err();
        assert!(
            matches!(error, FaceError::ModelInvalid { model: "yunet", .. }),
            "{error}"
        );
        let error = check_model_file(&root.0, Model::Embedder).unwrap_err();
        assert!(
            matches!(error, FaceError::ModelInvalid { model: "sface", .. }),
            "{error}"
        );
    }
}
