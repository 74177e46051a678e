//! The one error type of the face pipeline. Each variant has a stable code and a message an
//! operator at the counter can act on. No message carries pixels, landmarks or embeddings.

/// Everything that can go wrong between a photo and an embedding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaceError {
    #[error("the photo cannot be read ({detail}); take it again")]
    UnreadableImage { detail: String },

    #[error("unsupported image format; use a JPEG or PNG photo")]
    UnsupportedFormat,

    #[error("the photo is {width}x{height} pixels, over the limit of {limit} pixels; use a smaller photo")]
    ImageTooLarge { width: u32, height: u32, limit: u64 },

    #[error("no face found; the recipient's face must be in the frame, facing the camera")]
    NoFace,

    #[error("{count} faces found; only the recipient may be in the frame")]
    MultipleFaces { count: usize },

    #[error("the face is too small ({eye_distance_px:.0} px between the eyes, at least {minimum_px:.0} needed); move closer")]
    FaceTooSmall {
        eye_distance_px: f32,
        minimum_px: f32,
    },

    #[error("the face is not clear enough (detection score {score:.2}, at least {minimum:.2} needed); check focus and lighting")]
    LowDetectionScore { score: f32, minimum: f32 },

    #[error("the head is turned away; ask the recipient to look straight at the camera")]
    HeadTurned,

    #[error("the face is too dark; add light or face the light source")]
    TooDark,

    #[error("the face is overexposed; reduce direct light or flash")]
    Overexposed,

    #[error("the photo is too blurry; hold the camera still and refocus")]
    TooBlurry,

    #[error(
        "ONNX Runtime is not available: {detail}. Copy libonnxruntime.so.1.31.1 next to tabir, or set ORT_DYLIB_PATH (see `tabir doctor`)"
    )]
    RuntimeUnavailable { detail: String },

    #[error("model {model} is not the pinned file: {detail}")]
    ModelInvalid { model: &'static str, detail: String },

    #[error("inference failed in {model}: {detail}")]
    Inference { model: &'static str, detail: String },
}

impl FaceError {
    /// Stable machine-readable code, for JSON output and the wire.
    pub fn code(&self) -> &'static str {
        match self {
            FaceError::UnreadableImage { .. } => "unreadable_image",
            FaceError::UnsupportedFormat => "unsupported_format",
            FaceError::ImageTooLarge { .. } => "image_too_large",
            FaceError::NoFace => "no_face",
            FaceError::MultipleFaces { .. } => "multiple_faces",
            FaceError::FaceTooSmall { .. } => "face_too_small",
            FaceError::LowDetectionScore { .. } => "low_detection_score",
            FaceError::HeadTurned => "head_turned",
            FaceError::TooDark => "too_dark",
            FaceError::Overexposed => "overexposed",
            FaceError::TooBlurry => "too_blurry",
            FaceError::RuntimeUnavailable { .. } => "runtime_unavailable",
            FaceError::ModelInvalid { .. } => "model_invalid",
            FaceError::Inference { .. } => "inference_failed",
        }
    }

    /// True when the photo is at fault (retake it), false when the device is (fix the setup).
    pub fn is_photo_problem(&self) -> bool {
        !matches!(
            self,
            FaceError::RuntimeUnavailable { .. }
                | FaceError::ModelInvalid { .. }
                | FaceError::Inference { .. }
        )
    }
}

pub type Result<T> = std::result::Result<T, FaceError>;
