//! The pipeline on real photos: golden comparison with OpenCV's implementation, genuine and
//! impostor pairs, and every quality gate on a crafted input. Needs ONNX Runtime
//! (scripts/setup-ort.sh, which `make test` runs first).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use image::{imageops, RgbImage};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tabir_face::quality::sharpness;
use tabir_face::{FaceError, FacePipeline, PipelineConfig, DEFAULT_COSINE_THRESHOLD};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pipeline() -> &'static FacePipeline {
    static PIPELINE: OnceLock<FacePipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        FacePipeline::load(&PipelineConfig::default()).expect("run scripts/setup-ort.sh first")
    })
}

fn photo_bytes(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/images").join(name)).expect("fixture photo")
}

fn photo(name: &str) -> RgbImage {
    tabir_face::image_io::decode_photo(&photo_bytes(name)).expect("fixture decodes")
}

#[derive(Deserialize)]
struct Reference {
    images: HashMap<String, ReferenceFace>,
}

#[derive(Deserialize)]
struct ReferenceFace {
    landmarks: Vec<[f32; 2]>,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(repo().join("tests/golden/opencv_reference.json"))
        .expect("golden file");
    serde_json::from_str(&text).expect("golden file parses")
}

const PHOTOS: [&str; 4] = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"];

#[test]
fn embeddings_and_landmarks_match_opencv() {
    let reference = reference();
    for name in PHOTOS {
        let ours = pipeline().embed_photo(&photo_bytes(name)).expect(name);
        let theirs = &reference.images[name];
        let cosine: f32 = ours
            .embedding
            .as_slice()
            .iter()
            .zip(&theirs.embedding)
            .map(|(a, b)| a * b)
            .sum();
        let max_error = ours
            .embedding
            .as_slice()
            .iter()
            .zip(&theirs.embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let offsets: Vec<f32> = ours
            .face
            .landmarks
            .iter()
            .zip(&theirs.landmarks)
            .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
            .collect();
        eprintln!(
            "{name}: cosine {cosine:.6}, max error {max_error:.5}, landmark offsets {offsets:.2?}"
        );
        assert!(
            cosine >= 0.999,
            "{name}: cosine {cosine}, max error {max_error}"
        );
        for (j, (ours, theirs)) in ours
            .face
            .landmarks
            .iter()
            .zip(&theirs.landmarks)
            .enumerate()
        {
            let distance = ((ours[0] - theirs[0]).powi(2) + (ours[1] - theirs[1]).powi(2)).sqrt();
            assert!(distance <= 2.0, "{name}: landmark {j} is {distance} px off");
        }
    }
}

#[test]
fn genuine_pairs_match_and_impostor_pairs_do_not() {
    let e: Vec<_> = PHOTOS
        .iter()
        .map(|n| pipeline().embed_photo(&photo_bytes(n)).expect(n).embedding)
        .collect();
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let c = e[a].cosine(&e[b]);
        assert!(
            c >= DEFAULT_COSINE_THRESHOLD,
            "{} vs {}: {c}",
            PHOTOS[a],
            PHOTOS[b]
        );
    }
    for a in 0..3 {
        let c = e[a].cosine(&e[3]);
        assert!(c < DEFAULT_COSINE_THRESHOLD, "{} vs biden: {c}", PHOTOS[a]);
    }
}

fn embed_error(image: &RgbImage) -> FaceError {
    pipeline()
        .embed_image(image)
        .expect_err("the photo must be refused")
}

#[test]
fn blank_image_has_no_face() {
    let blank = RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
    assert!(matches!(embed_error(&blank), FaceError::NoFace));
}

#[test]
fn a_tiny_face_is_too_small() {
    let face = photo("obama.jpg");
    let tiny = imageops::resize(&face, 91, 114, imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(1200, 1200, image::Rgb([120, 120, 120]));
    imageops::overlay(&mut canvas, &tiny, 500, 500);
    let err = embed_error(&canvas);
    assert!(matches!(err, FaceError::FaceTooSmall { .. }), "{err}");
}

#[test]
fn a_dark_photo_is_too_dark() {
    let mut dark = photo("obama.jpg");
    dark.pixels_mut()
        .for_each(|p| p.0 = p.0.map(|v| (f32::from(v) * 0.12) as u8));
    let err = embed_error(&dark);
    assert!(matches!(err, FaceError::TooDark), "{err}");
}

#[test]
fn an_overexposed_photo_is_overexposed() {
    let mut bright = photo("obama.jpg");
    bright
        .pixels_mut()
        .for_each(|p| p.0 = p.0.map(|v| (f32::from(v) * 2.5).min(255.0) as u8));
    let err = embed_error(&bright);
    assert!(matches!(err, FaceError::Overexposed), "{err}");
}

#[test]
fn a_blurred_photo_is_too_blurry() {
    let blurred = imageops::blur(&photo("obama.jpg"), 8.0);
    let err = embed_error(&blurred);
    assert!(matches!(err, FaceError::TooBlurry), "{err}");
}

#[test]
fn two_faces_side_by_side_are_refused() {
    let a = photo("obama.jpg");
    let b = imageops::resize(
        &photo("biden.jpg"),
        500,
        1137,
        imageops::FilterType::Triangle,
    );
    let mut canvas = RgbImage::new(a.width() + b.width(), a.height());
    imageops::overlay(&mut canvas, &a, 0, 0);
    imageops::overlay(&mut canvas, &b, i64::from(a.width()), 0);
    let err = embed_error(&canvas);
    assert!(
        matches!(err, FaceError::MultipleFaces { count: 2 }),
        "{err}"
    );
}

#[test]
fn a_truncated_jpeg_is_unreadable() {
    let bytes = photo_bytes("obama.jpg");
    let err = pipeline()
        .embed_photo(&bytes[..bytes.len() / 3])
        .expect_err("truncated");
    assert!(matches!(err, FaceError::UnreadableImage { .. }), "{err}");
    assert!(err.is_photo_problem());
}

#[test]
fn fixtures_are_sharp_enough_with_margin() {
    // The blur gate must leave real photos well clear of its threshold.
    let minimum = tabir_face::QualityPolicy::default().min_sharpness;
    for name in PHOTOS {
        let face = pipeline().embed_photo(&photo_bytes(name)).expect(name).face;
        let crop = tabir_face::align::align(&photo(name), &face.landmarks);
        let luma: Vec<f32> = crop
            .pixels()
            .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
            .collect();
        let value = sharpness(&luma, 112);
        assert!(value > 2.0 * minimum, "{name}: sharpness {value}");
    }
}

#[test]
fn a_missing_runtime_is_a_clear_error() {
    // The runtime is initialised once per process, so this checks the message of a fresh
    // failure through the public error type rather than a second initialisation.
    let err = FaceError::RuntimeUnavailable {
        detail: "/nowhere/libonnxruntime.so does not exist".into(),
    };
    assert!(err.to_string().contains("ORT_DYLIB_PATH") && err.to_string().contains("tabir doctor"));
    assert_eq!(err.code(), "runtime_unavailable");
    assert!(!err.is_photo_problem());
}
