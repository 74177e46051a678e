//! The whole device-side pipeline: photo -> detection -> quality gates -> alignment -> SFace
//! embedding (L2-normalised). Models are loaded once and the pipeline is shared by reference.

use crate::align::{align, ALIGNED_SIDE};
use crate::detect::{self, Detection, StrideOutputs, STRIDES};
use crate::error::{FaceError, Result};
use crate::image_io::decode_photo;
use crate::quality::{check_crop, select_face, QualityPolicy};
use crate::runtime::{self, Model};
use image::RgbImage;
use ort::session::Session;
use ort::value::Tensor;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// SFace's embedding dimension.
pub const EMBEDDING_DIM: usize = 128;

/// The default 1:1 policy (same person at or above it): SFace lets about 1 impostor in 9,000
/// through at 0.45 (0.011 % measured on 184,528 impostor pairs; docs/face.md). OpenCV's
/// suggested 0.363 is its balanced-accuracy point and lets about 1 in 250 through.
pub const DEFAULT_COSINE_THRESHOLD: f32 = 0.45;

/// The default 1:N policy: a search makes one comparison per enrolled template, so it must be
/// stricter (0.0005 % per pair at 0.50: about 0.5 false matches per search of 100,000).
pub const DEFAULT_IDENTIFY_COSINE_THRESHOLD: f32 = 0.50;

/// An L2-normalised face embedding: biometric data. Wiped on drop; Debug shows no values.
#[derive(Clone, PartialEq, Zeroize, ZeroizeOnDrop)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Cosine similarity (both sides are unit vectors).
    pub fn cosine(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }

    fn normalised(mut values: Vec<f32>) -> Result<Self> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !norm.is_finite() || norm <= f32::EPSILON {
            return Err(FaceError::Inference {
                model: "sface",
                detail: "the embedding is zero or not finite".into(),
            });
        }
        values.iter_mut().for_each(|v| *v /= norm);
        Ok(Self(values))
    }
}

impl fmt::Debug for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Embedding(d={}, <redacted>)", self.0.len())
    }
}

/// What the pipeline found in a photo.
#[derive(Debug)]
pub struct FaceEmbedding {
    pub embedding: Embedding,
    pub face: Detection,
}

/// Where the runtime and models are, and how to run them.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub runtime_library: PathBuf,
    pub models_dir: PathBuf,
    /// Intra-op threads per model (1 keeps a counter device responsive and timings stable).
    pub threads: usize,
    pub quality: QualityPolicy,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            runtime_library: runtime::default_runtime_library(),
            models_dir: runtime::default_models_dir(),
            threads: 1,
            quality: QualityPolicy::default(),
        }
    }
}

/// Detector and embedder sessions, checked against the manifest at load.
pub struct FacePipeline {
    detector: Mutex<Session>,
    embedder: Mutex<Session>,
    quality: QualityPolicy,
}

impl fmt::Debug for FacePipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FacePipeline")
            .field("quality", &self.quality)
            .finish_non_exhaustive()
    }
}

impl FacePipeline {
    /// Load ONNX Runtime (once per process) and both models.
    pub fn load(config: &PipelineConfig) -> Result<Self> {
        runtime::init_runtime(&config.runtime_library)?;
        Ok(Self {
            detector: Mutex::new(runtime::load_model(
                &config.models_dir,
                Model::Detector,
                config.threads,
            )?),
            embedder: Mutex::new(runtime::load_model(
                &config.models_dir,
                Model::Embedder,
                config.threads,
            )?),
            quality: config.quality,
        })
    }

    /// Photo bytes (JPEG or PNG) to an embedding, or the reason the photo is refused.
    pub fn embed_photo(&self, bytes: &[u8]) -> Result<FaceEmbedding> {
        self.embed_image(&decode_photo(bytes)?)
    }

    /// Decoded photo to an embedding, or the reason the photo is refused.
    pub fn embed_image(&self, photo: &RgbImage) -> Result<FaceEmbedding> {
        let detections = self.detect(photo)?;
        let face = select_face(&detections, &self.quality)?;
        let crop = align(photo, &face.landmarks);
        check_crop(&crop, &self.quality)?;
        let embedding = self.embed_aligned(&crop)?;
        Ok(FaceEmbedding { embedding, face })
    }

    /// All faces in the photo (above the candidate score), best first.
    pub fn detect(&self, photo: &RgbImage) -> Result<Vec<Detection>> {
        let boxed = detect::letterbox(photo);
        let side = detect::INPUT_SIDE as usize;
        let failed = |e: ort::Error| FaceError::Inference {
            model: "yunet",
            detail: e.to_string(),
        };
        let input = Tensor::from_array(([1usize, 3, side, side], boxed.tensor)).map_err(failed)?;
        let mut session = self.detector.lock().map_err(|_| FaceError::Inference {
            model: "yunet",
            detail: "a previous inference panicked".into(),
        })?;
        let outputs = session.run(ort::inputs![input]).map_err(failed)?;
        let extract = |name: String| -> Result<Vec<f32>> {
            let value = outputs.get(&name).ok_or_else(|| FaceError::Inference {
                model: "yunet",
                detail: format!("missing output {name}"),
            })?;
            let (_, data) = value.try_extract_tensor::<f32>().map_err(failed)?;
            Ok(data.to_vec())
        };
        let mut per_stride = Vec::with_capacity(STRIDES.len());
        for stride in STRIDES {
            per_stride.push((
                stride,
                extract(format!("cls_{stride}"))?,
                extract(format!("obj_{stride}"))?,
                extract(format!("bbox_{stride}"))?,
                extract(format!("kps_{stride}"))?,
            ));
        }
        let views: Vec<StrideOutputs<'_>> = per_stride
            .iter()
            .map(|(stride, cls, obj, bbox, kps)| StrideOutputs {
                stride: *stride,
                cls,
                obj,
                bbox,
                kps,
            })
            .collect();
        Ok(detect::decode(&views, boxed.scale))
    }

    /// SFace on an aligned 112x112 crop: RGB planes of raw 0..255 values (the graph
    /// normalises itself), 128 outputs, L2-normalised.
    pub fn embed_aligned(&self, crop: &RgbImage) -> Result<Embedding> {
        let plane = ALIGNED_SIDE * ALIGNED_SIDE;
        let mut data = vec![0f32; 3 * plane];
        for (i, pixel) in crop.pixels().enumerate().take(plane) {
            for c in 0..3 {
                data[c * plane + i] = f32::from(pixel[c]);
            }
        }
        let failed = |e: ort::Error| FaceError::Inference {
            model: "sface",
            detail: e.to_string(),
        };
        let input =
            Tensor::from_array(([1usize, 3, ALIGNED_SIDE, ALIGNED_SIDE], data)).map_err(failed)?;
        let mut session = self.embedder.lock().map_err(|_| FaceError::Inference {
            model: "sface",
            detail: "a previous inference panicked".into(),
        })?;
        let outputs = session.run(ort::inputs![input]).map_err(failed)?;
        let (_, values) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        if values.len() != EMBEDDING_DIM {
            return Err(FaceError::Inference {
                model: "sface",
                detail: format!("{} outputs, expected {EMBEDDING_DIM}", values.len()),
            });
        }
        Embedding::normalised(values.to_vec())
    }
}
