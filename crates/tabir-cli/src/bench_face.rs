//! `tabir bench face`: the device pipeline's hot path, stage by stage.

use crate::face::PipelineArgs;
use crate::stats::{median, ms, percentile};
use image::{imageops, RgbImage};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tabir_face::{align, image_io, quality, QualityPolicy};

#[derive(Serialize)]
struct FaceReport {
    photo: String,
    width: u32,
    height: u32,
    threads: usize,
    runs: usize,
    decode_ms: f64,
    /// Part of detect: scaling the frame into the detector's 640x640 input.
    letterbox_ms_median: f64,
    detect_ms_median: f64,
    align_and_gates_ms_median: f64,
    embed_ms_median: f64,
    total_ms_median: f64,
    total_ms_p90: f64,
}

fn default_photo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/images/obama.jpg")
}

/// Scale the photo into a 640x480 frame (as a counter camera would deliver), grey borders.
fn frame_640x480(photo: &RgbImage) -> RgbImage {
    let scale = (640.0 / photo.width() as f32).min(480.0 / photo.height() as f32);
    let (w, h) = (
        (photo.width() as f32 * scale).round() as u32,
        (photo.height() as f32 * scale).round() as u32,
    );
    let resized = imageops::resize(photo, w, h, imageops::FilterType::Triangle);
    let mut frame = RgbImage::from_pixel(640, 480, image::Rgb([110, 110, 110]));
    imageops::overlay(
        &mut frame,
        &resized,
        i64::from((640 - w) / 2),
        i64::from((480 - h) / 2),
    );
    frame
}

pub fn run(
    args: &PipelineArgs,
    image: Option<&Path>,
    runs: usize,
    json: bool,
) -> Result<(), String> {
    let pipeline = args.load()?;
    let path = image.map_or_else(default_photo, Path::to_path_buf);
    let bytes = image_io::read_photo(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let start = Instant::now();
    let photo = image_io::decode_photo(&bytes).map_err(|e| e.to_string())?;
    let decode_ms = ms(start.elapsed());
    let frame = frame_640x480(&photo);
    let policy = QualityPolicy::default();

    let (mut detect, mut align_gates, mut embed, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut letterbox = Vec::new();
    for run in 0..=runs {
        let t = Instant::now();
        std::hint::black_box(tabir_face::detect::letterbox(&frame));
        if run > 0 {
            letterbox.push(ms(t.elapsed()));
        }
        let t0 = Instant::now();
        let detections = pipeline.detect(&frame).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let face = quality::select_face(&detections, &policy).map_err(|e| e.to_string())?;
        let crop = align::align(&frame, &face.landmarks);
        quality::check_crop(&crop, &policy).map_err(|e| e.to_string())?;
        let t2 = Instant::now();
        pipeline.embed_aligned(&crop).map_err(|e| e.to_string())?;
        let t3 = Instant::now();
        if run > 0 {
            detect.push((t1 - t0).as_secs_f64() * 1e3);
            align_gates.push((t2 - t1).as_secs_f64() * 1e3);
            embed.push((t3 - t2).as_secs_f64() * 1e3);
            total.push((t3 - t0).as_secs_f64() * 1e3);
        }
    }
    let report = FaceReport {
        photo: path.display().to_string(),
        width: frame.width(),
        height: frame.height(),
        threads: args.threads,
        runs,
        decode_ms,
        letterbox_ms_median: median(&mut letterbox),
        detect_ms_median: median(&mut detect),
        align_and_gates_ms_median: median(&mut align_gates),
        embed_ms_median: median(&mut embed),
        total_ms_median: median(&mut total),
        total_ms_p90: percentile(&mut total, 0.9),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "photo             {} as a {}x{} frame",
            report.photo, report.width, report.height
        );
        println!(
            "threads           {} (ONNX Runtime intra-op)",
            report.threads
        );
        println!(
            "detect            {:>7.2} ms median (letterbox {:.2} ms of it)",
            report.detect_ms_median, report.letterbox_ms_median
        );
        println!(
            "align + gates     {:>7.2} ms median",
            report.align_and_gates_ms_median
        );
        println!(
            "embed             {:>7.2} ms median",
            report.embed_ms_median
        );
        println!(
            "total             {:>7.2} ms median, {:.2} ms p90 over {} runs (decode of the original: {:.1} ms)",
            report.total_ms_median, report.total_ms_p90, report.runs, report.decode_ms
        );
    }
    Ok(())
}
