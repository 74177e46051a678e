//! `tabir face embed` and `tabir face compare`: the device's face pipeline, in the clear, for
//! calibration and integrators. Nothing here is encrypted or sent anywhere.

use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use tabir_face::{FaceError, FacePipeline, PipelineConfig, DEFAULT_COSINE_THRESHOLD};

#[derive(Subcommand)]
pub enum FaceCommand {
    /// Detect, align and embed the face in each photo.
    ///
    /// With --json, one JSON object per line per photo: {"image", "embedding", "box",
    /// "landmarks", "score"} or {"image", "error": {"code", "message"}}. A refused photo is
    /// reported, not fatal: the exit status is non-zero only when the command itself fails
    /// (runtime or models missing).
    Embed {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Print JSON lines (including the embedding) instead of a summary.
        #[arg(long)]
        json: bool,
        /// Photos (JPEG or PNG).
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Cosine similarity of the faces in two photos, and the decision.
    ///
    /// The decision uses the default policy threshold (cosine 0.363). Exit status 0 for both
    /// decisions, 2 when a photo is refused.
    Compare {
        #[command(flatten)]
        pipeline: PipelineArgs,
        #[arg(long)]
        json: bool,
        a: PathBuf,
        b: PathBuf,
    },
}

#[derive(Args)]
pub struct PipelineArgs {
    /// Folder holding the pinned models (default: TABIR_MODELS_DIR, else models/ next to the
    /// binary, in the data folder, or in the source checkout: see `tabir doctor`).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// ONNX Runtime library (default: ORT_DYLIB_PATH, else next to the binary, in the data
    /// folder, or (debug builds) .ort/lib from scripts/setup-ort.sh: see `tabir doctor`).
    #[arg(long)]
    pub runtime: Option<PathBuf>,
    /// Inference threads per model.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl PipelineArgs {
    pub fn load(&self) -> Result<FacePipeline, String> {
        let mut config = PipelineConfig::default();
        if let Some(models) = &self.models {
            config.models_dir = models.clone();
        }
        if let Some(runtime) = &self.runtime {
            config.runtime_library = runtime.clone();
        }
        config.threads = self.threads;
        FacePipeline::load(&config).map_err(|e| e.to_string())
    }
}

pub fn run(command: FaceCommand) -> Result<(), String> {
    match command {
        FaceCommand::Embed {
            pipeline,
            json,
            images,
        } => embed(&pipeline.load()?, json, &images),
        FaceCommand::Compare {
            pipeline,
            json,
            a,
            b,
        } => compare(&pipeline.load()?, json, &a, &b),
    }
}

fn embed_file(
    pipeline: &FacePipeline,
    path: &std::path::Path,
) -> Result<tabir_face::FaceEmbedding, FaceError> {
    pipeline.embed_photo(&tabir_face::image_io::read_photo(path)?)
}

fn error_json(error: &FaceError) -> serde_json::Value {
    json!({"code": error.code(), "message": error.to_string()})
}

fn embed(pipeline: &FacePipeline, as_json: bool, images: &[PathBuf]) -> Result<(), String> {
    for path in images {
        let image = path.display().to_string();
        match embed_file(pipeline, path) {
            Ok(found) => {
                let f = &found.face;
                if as_json {
                    println!(
                        "{}",
                        json!({
                            "image": image,
                            "embedding": found.embedding.as_slice(),
                            "box": f.bbox,
                            "landmarks": f.landmarks,
                            "score": f.score,
                        })
                    );
                } else {
                    println!(
                        "{image}: face at ({:.0}, {:.0}) size {:.0}x{:.0}, score {:.2}, {}-d embedding",
                        f.bbox[0],
                        f.bbox[1],
                        f.bbox[2],
                        f.bbox[3],
                        f.score,
                        found.embedding.as_slice().len()
                    );
                }
            }
            Err(error) if error.is_photo_problem() => {
                if as_json {
                    println!("{}", json!({"image": image, "error": error_json(&error)}));
                } else {
                    println!("{image}: refused: {error}");
                }
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(())
}

fn compare(pipeline: &FacePipeline, as_json: bool, a: &PathBuf, b: &PathBuf) -> Result<(), String> {
    let embed = |path: &PathBuf| {
        embed_file(pipeline, path).map_err(|error| {
            if as_json {
                println!(
                    "{}",
                    json!({"image": path.display().to_string(), "error": error_json(&error)})
                );
            }
            format!("{}: {error}", path.display())
        })
    };
    let (ea, eb) = (embed(a)?, embed(b)?);
    let cosine = ea.embedding.cosine(&eb.embedding);
    let decision = if cosine >= DEFAULT_COSINE_THRESHOLD {
        "match"
    } else {
        "no_match"
    };
    if as_json {
        println!(
            "{}",
            json!({
                "a": a.display().to_string(),
                "b": b.display().to_string(),
                "cosine": cosine,
                "threshold": DEFAULT_COSINE_THRESHOLD,
                "decision": decision,
            })
        );
    } else {
        println!(
            "cosine {cosine:.4} (threshold {DEFAULT_COSINE_THRESHOLD}): {}",
            decision.replace('_', " ")
        );
    }
    Ok(())
}
