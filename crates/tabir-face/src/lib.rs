//! # tabir-face
//!
//! The office device's face pipeline: decode the photo (JPEG/PNG, pixel limit, EXIF
//! orientation), detect faces with YuNet, refuse bad photos through quality gates, align the
//! face onto SFace's 112x112 template with a similarity transform, and embed it with SFace
//! (128 floats, L2-normalised). ONNX Runtime runs the models (loaded at run time, see
//! `scripts/setup-ort.sh`); pre- and post-processing are pure functions tested without it.
//! No crypto and no network here. See docs/face.md.

#![forbid(unsafe_code)]

pub mod align;
pub mod detect;
pub mod error;
pub mod image_io;
pub mod liveness;
pub mod pipeline;
pub mod quality;
pub mod runtime;

pub use detect::Detection;
pub use error::{FaceError, Result};
pub use pipeline::{
    Embedding, FaceEmbedding, FacePipeline, PipelineConfig, DEFAULT_COSINE_THRESHOLD,
    DEFAULT_IDENTIFY_COSINE_THRESHOLD, EMBEDDING_DIM,
};
pub use quality::QualityPolicy;
