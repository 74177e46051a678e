//! Quality gates: each refuses a photo for one reason an operator can fix. Pure functions of
//! the detections and the aligned crop; the thresholds are documented in docs/face.md.

use crate::detect::Detection;
use crate::error::{FaceError, Result};
use image::RgbImage;

/// Settings of the gates. `Default` is the policy documented in docs/face.md.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityPolicy {
    /// A face scoring below this is refused as unclear.
    pub min_detection_score: f32,
    /// Minimum distance between the eyes, in photo pixels.
    pub min_eye_distance_px: f32,
    /// A second face counts when it is at least this fraction of the main face's size.
    pub second_face_ratio: f32,
    /// Largest horizontal offset of the nose from the eyes' midpoint, in eye distances.
    pub max_yaw_ratio: f32,
    /// Mean luminance (0..255) of the aligned face: below is too dark, above is overexposed.
    pub min_mean_luma: f32,
    pub max_mean_luma: f32,
    /// Variance of the Laplacian of the aligned face: below is too blurry.
    pub min_sharpness: f32,
}

impl Default for QualityPolicy {
    fn default() -> Self {
        Self {
            min_detection_score: 0.75,
            min_eye_distance_px: 30.0,
            second_face_ratio: 0.5,
            max_yaw_ratio: 0.35,
            min_mean_luma: 45.0,
            max_mean_luma: 220.0,
            min_sharpness: 20.0,
        }
    }
}

/// Pick the one face to embed, or say why there is none.
pub fn select_face(detections: &[Detection], policy: &QualityPolicy) -> Result<Detection> {
    let Some(main) = detections
        .iter()
        .max_by(|a, b| a.eye_distance().total_cmp(&b.eye_distance()))
    else {
        return Err(FaceError::NoFace);
    };
    let comparable = detections
        .iter()
        .filter(|d| d.eye_distance() >= policy.second_face_ratio * main.eye_distance())
        .count();
    if comparable > 1 {
        return Err(FaceError::MultipleFaces { count: comparable });
    }
    if main.score < policy.min_detection_score {
        return Err(FaceError::LowDetectionScore {
            score: main.score,
            minimum: policy.min_detection_score,
        });
    }
    if main.eye_distance() < policy.min_eye_distance_px {
        return Err(FaceError::FaceTooSmall {
            eye_distance_px: main.eye_distance(),
            minimum_px: policy.min_eye_distance_px,
        });
    }
    if yaw_ratio(main) > policy.max_yaw_ratio {
        return Err(FaceError::HeadTurned);
    }
    Ok(main.clone())
}

/// How far the nose tip sits from the eyes' midpoint, across the eye line, in eye distances:
/// about 0 for a frontal face, growing as the head turns.
pub fn yaw_ratio(face: &Detection) -> f32 {
    let [right, left, nose, ..] = face.landmarks;
    let eye_axis = [left[0] - right[0], left[1] - right[1]];
    let distance = (eye_axis[0].powi(2) + eye_axis[1].powi(2)).sqrt();
    if distance <= f32::EPSILON {
        return f32::INFINITY;
    }
    let mid = [(left[0] + right[0]) / 2.0, (left[1] + right[1]) / 2.0];
    let offset = [nose[0] - mid[0], nose[1] - mid[1]];
    // Component of the offset along the eye axis.
    ((offset[0] * eye_axis[0] + offset[1] * eye_axis[1]) / distance).abs() / distance
}

/// Exposure and focus of the aligned crop.
pub fn check_crop(crop: &RgbImage, policy: &QualityPolicy) -> Result<()> {
    let luma = luminance(crop);
    let mean = luma.iter().sum::<f32>() / luma.len().max(1) as f32;
    if mean < policy.min_mean_luma {
        return Err(FaceError::TooDark);
    }
    if mean > policy.max_mean_luma {
        return Err(FaceError::Overexposed);
    }
    if sharpness(&luma, crop.width() as usize) < policy.min_sharpness {
        return Err(FaceError::TooBlurry);
    }
    Ok(())
}

fn luminance(crop: &RgbImage) -> Vec<f32> {
    crop.pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect()
}

/// Variance of the 4-neighbour Laplacian over the central part of the crop (the face itself,
/// away from the black borders an alignment near the photo's edge can leave).
pub fn sharpness(luma: &[f32], width: usize) -> f32 {
    let height = luma.len() / width.max(1);
    let (lo_x, hi_x) = (width / 4, width - width / 4);
    let (lo_y, hi_y) = (height / 4, height - height / 4);
    let mut values = Vec::new();
    for y in lo_y.max(1)..hi_y.min(height - 1) {
        for x in lo_x.max(1)..hi_x.min(width - 1) {
            let at = |xx: usize, yy: usize| luma[yy * width + xx];
            values.push(at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4.0 * at(x, y));
        }
    }
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, eye_distance: f32, nose_offset: f32, score: f32) -> Detection {
        let y = 100.0;
        Detection {
            bbox: [x, y - 50.0, eye_distance * 2.0, eye_distance * 2.5],
            landmarks: [
                [x, y],
                [x + eye_distance, y],
                [
                    x + eye_distance / 2.0 + nose_offset * eye_distance,
                    y + 30.0,
                ],
                [x + 5.0, y + 60.0],
                [x + eye_distance - 5.0, y + 60.0],
            ],
            score,
        }
    }

    #[test]
    fn gates_on_detections() {
        let p = QualityPolicy::default();
        assert!(matches!(select_face(&[], &p), Err(FaceError::NoFace)));
        assert!(select_face(&[face(0.0, 60.0, 0.0, 0.9)], &p).is_ok());
        assert!(matches!(
            select_face(
                &[face(0.0, 60.0, 0.0, 0.9), face(300.0, 55.0, 0.0, 0.9)],
                &p
            ),
            Err(FaceError::MultipleFaces { count: 2 })
        ));
        // A small face in the background does not count as a second person.
        assert!(select_face(
            &[face(0.0, 60.0, 0.0, 0.9), face(300.0, 12.0, 0.0, 0.9)],
            &p
        )
        .is_ok());
        assert!(matches!(
            select_face(&[face(0.0, 60.0, 0.0, 0.6)], &p),
            Err(FaceError::LowDetectionScore { .. })
        ));
        assert!(matches!(
            select_face(&[face(0.0, 20.0, 0.0, 0.9)], &p),
            Err(FaceError::FaceTooSmall { .. })
        ));
        assert!(matches!(
            select_face(&[face(0.0, 60.0, 0.5, 0.9)], &p),
            Err(FaceError::HeadTurned)
        ));
    }

    #[test]
    fn gates_on_the_crop() {
        let p = QualityPolicy::default();
        let dark = RgbImage::from_pixel(112, 112, image::Rgb([10, 10, 10]));
        assert!(matches!(check_crop(&dark, &p), Err(FaceError::TooDark)));
        let bright = RgbImage::from_pixel(112, 112, image::Rgb([250, 250, 250]));
        assert!(matches!(
            check_crop(&bright, &p),
            Err(FaceError::Overexposed)
        ));
        let flat = RgbImage::from_pixel(112, 112, image::Rgb([128, 128, 128]));
        assert!(matches!(check_crop(&flat, &p), Err(FaceError::TooBlurry)));
        let checker = RgbImage::from_fn(112, 112, |x, y| {
            let v = if (x + y) % 2 == 0 { 60 } else { 200 };
            image::Rgb([v, v, v])
        });
        assert!(check_crop(&checker, &p).is_ok());
    }
}
