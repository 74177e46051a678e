//! YuNet pre- and post-processing, as pure functions: the letterbox that feeds the model and
//! the decoding of its twelve outputs into faces (boxes, five landmarks, scores), with NMS.
//! Checked against OpenCV's FaceDetectorYN (see `shared/design/data.md`).

use image::RgbImage;

/// YuNet 2023mar's fixed input side.
pub const INPUT_SIDE: u32 = 640;
/// The three feature-map strides, in output order.
pub const STRIDES: [u32; 3] = [8, 16, 32];
/// Detections below this score are not faces at all.
pub const CANDIDATE_SCORE: f32 = 0.5;
/// Overlap above which the weaker of two boxes is suppressed.
pub const NMS_IOU: f32 = 0.3;

/// One detected face, in the coordinates of the original photo.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// x, y, width, height.
    pub bbox: [f32; 4],
    /// Right eye, left eye, nose tip, right mouth corner, left mouth corner (x, y).
    pub landmarks: [[f32; 2]; 5],
    pub score: f32,
}

impl Detection {
    pub fn eye_distance(&self) -> f32 {
        let [right, left, ..] = self.landmarks;
        ((right[0] - left[0]).powi(2) + (right[1] - left[1]).powi(2)).sqrt()
    }
}

/// The photo scaled so that its longer side is 640, placed at the top-left of a black 640x640
/// canvas, as a [1, 3, 640, 640] BGR tensor of 0..255 values (no normalisation).
pub struct Letterbox {
    pub tensor: Vec<f32>,
    /// Model coordinates = photo coordinates * scale.
    pub scale: f32,
}

pub fn letterbox(photo: &RgbImage) -> Letterbox {
    let side = INPUT_SIDE as usize;
    let (w, h) = photo.dimensions();
    let scale = INPUT_SIDE as f32 / w.max(h) as f32;
    let new_w = ((w as f32 * scale).round() as usize).clamp(1, side);
    let new_h = ((h as f32 * scale).round() as usize).clamp(1, side);
    let resized = resize_bilinear(photo, new_w, new_h);
    let plane = side * side;
    let mut tensor = vec![0f32; 3 * plane];
    for y in 0..new_h {
        for x in 0..new_w {
            let [r, g, b] = resized[y * new_w + x];
            let at = y * side + x;
            tensor[at] = f32::from(b);
            tensor[plane + at] = f32::from(g);
            tensor[2 * plane + at] = f32::from(r);
        }
    }
    Letterbox { tensor, scale }
}

/// Bilinear resize, bit for bit as OpenCV's `resize(INTER_LINEAR)` on 8-bit images: pixel
/// centres at +0.5, 11-bit fixed-point weights, a horizontal pass into 32-bit sums and the
/// vertical pass of its vectorised kernel. The landmarks feed the alignment, and SFace moves
/// measurably with a 0.2 px landmark shift, so matching the reference exactly matters.
fn resize_bilinear(photo: &RgbImage, new_w: usize, new_h: usize) -> Vec<[u8; 3]> {
    const COEF_SCALE: f32 = 2048.0;
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let source = photo.as_raw();
    if (w, h) == (new_w, new_h) {
        // OpenCV copies when the size does not change; so do we (a 640-wide camera frame).
        return source.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    }
    let weights = |dst: usize, ratio: f64, len: usize, clamp_weight: bool| {
        let f = ((dst as f64 + 0.5) * ratio - 0.5) as f32;
        let mut i = f.floor() as i64;
        let mut frac = f - i as f32;
        if clamp_weight && i < 0 {
            (i, frac) = (0, 0.0);
        }
        if clamp_weight && i >= len as i64 - 1 {
            (i, frac) = (len as i64 - 1, 0.0);
        }
        let i0 = i.clamp(0, len as i64 - 1) as usize;
        let i1 = (i + 1).clamp(0, len as i64 - 1) as usize;
        let a1 = (frac * COEF_SCALE).round_ties_even() as i32;
        let a0 = ((1.0 - frac) * COEF_SCALE).round_ties_even() as i32;
        (i0, i1, a0, a1)
    };
    let columns: Vec<_> = (0..new_w)
        .map(|x| weights(x, w as f64 / new_w as f64, w, true))
        .collect();
    let horizontal = |row: usize| -> Vec<i32> {
        let line = &source[row * w * 3..(row + 1) * w * 3];
        let mut out = Vec::with_capacity(new_w * 3);
        for &(x0, x1, a0, a1) in &columns {
            for c in 0..3 {
                out.push(i32::from(line[x0 * 3 + c]) * a0 + i32::from(line[x1 * 3 + c]) * a1);
            }
        }
        out
    };
    let mut out = Vec::with_capacity(new_w * new_h);
    // Source rows are visited in order: keep the horizontal pass of the last two.
    let mut cached: [(usize, Vec<i32>); 2] = [(usize::MAX, Vec::new()), (usize::MAX, Vec::new())];
    for y in 0..new_h {
        let (y0, y1, b0, b1) = weights(y, h as f64 / new_h as f64, h, false);
        for row in [y0, y1] {
            if cached[0].0 != row && cached[1].0 != row {
                cached.swap(0, 1);
                cached[1] = (row, horizontal(row));
            }
        }
        let pick = |row: usize| {
            if cached[0].0 == row {
                &cached[0].1
            } else {
                &cached[1].1
            }
        };
        let (top, bottom) = (pick(y0), pick(y1));
        let mul_hi = |a: i32, b: i32| (a * b) >> 16;
        for x in 0..new_w {
            let mut pixel = [0u8; 3];
            for (c, value) in pixel.iter_mut().enumerate() {
                let at = x * 3 + c;
                let sum = mul_hi(top[at] >> 4, b0) + mul_hi(bottom[at] >> 4, b1);
                *value = ((sum + 2) >> 2).clamp(0, 255) as u8;
            }
            out.push(pixel);
        }
    }
    out
}

/// The outputs of one stride: cls and obj [N], bbox [N x 4], kps [N x 10].
pub struct StrideOutputs<'a> {
    pub stride: u32,
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

/// Decode all strides, keep candidates above `CANDIDATE_SCORE`, suppress overlaps, and map
/// back to photo coordinates (divide by the letterbox scale). Sorted by score, best first.
pub fn decode(outputs: &[StrideOutputs<'_>], scale: f32) -> Vec<Detection> {
    let mut candidates = Vec::new();
    for out in outputs {
        let s = out.stride as f32;
        let cols = (INPUT_SIDE / out.stride) as usize;
        let anchors = out
            .cls
            .len()
            .min(out.obj.len())
            .min(out.bbox.len() / 4)
            .min(out.kps.len() / 10);
        for i in 0..anchors {
            let score = (out.cls[i].clamp(0.0, 1.0) * out.obj[i].clamp(0.0, 1.0)).sqrt();
            // NaN scores (a broken model output) are not faces either.
            if score.is_nan() || score < CANDIDATE_SCORE {
                continue;
            }
            let (row, col) = ((i / cols) as f32, (i % cols) as f32);
            let b = &out.bbox[4 * i..4 * i + 4];
            let (cx, cy) = ((col + b[0]) * s, (row + b[1]) * s);
            let (w, h) = (b[2].exp() * s, b[3].exp() * s);
            let k = &out.kps[10 * i..10 * i + 10];
            let mut landmarks = [[0f32; 2]; 5];
            for (j, point) in landmarks.iter_mut().enumerate() {
                *point = [(k[2 * j] + col) * s, (k[2 * j + 1] + row) * s];
            }
            candidates.push(Detection {
                bbox: [cx - w / 2.0, cy - h / 2.0, w, h],
                landmarks,
                score,
            });
        }
    }
    let mut kept = non_maximum_suppression(candidates, NMS_IOU);
    for detection in &mut kept {
        detection.bbox.iter_mut().for_each(|v| *v /= scale);
        detection
            .landmarks
            .iter_mut()
            .flatten()
            .for_each(|v| *v /= scale);
    }
    kept
}

/// Greedy NMS: best first, drop any box overlapping a kept one by more than `threshold` IoU.
pub fn non_maximum_suppression(mut detections: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for candidate in detections {
        if kept
            .iter()
            .all(|k| iou(&k.bbox, &candidate.bbox) <= threshold)
        {
            kept.push(candidate);
        }
    }
    kept
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let x0 = a[0].max(b[0]);
    let y0 = a[1].max(b[1]);
    let x1 = (a[0] + a[2]).min(b[0] + b[2]);
    let y1 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(x: f32, score: f32) -> Detection {
        Detection {
            bbox: [x, 0.0, 10.0, 10.0],
            landmarks: [[0.0; 2]; 5],
            score,
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_distinct_ones() {
        let kept = non_maximum_suppression(
            vec![
                detection(0.0, 0.7),
                detection(1.0, 0.9),
                detection(50.0, 0.6),
            ],
            0.3,
        );
        let xs: Vec<f32> = kept.iter().map(|d| d.bbox[0]).collect();
        assert_eq!(xs, vec![1.0, 50.0]);
    }

    #[test]
    fn decode_places_an_anchor_like_opencv() {
        // One stride-32 anchor at row 2, col 3 with a centred box of exp(0) * 32 = 32 px.
        let n = (INPUT_SIDE / 32 * INPUT_SIDE / 32) as usize;
        let i = 2 * 20 + 3;
        let (mut cls, mut obj) = (vec![0f32; n], vec![0f32; n]);
        cls[i] = 0.81;
        obj[i] = 1.0;
        let mut bbox = vec![0f32; 4 * n];
        bbox[4 * i] = 0.5;
        bbox[4 * i + 1] = 0.5;
        let mut kps = vec![0f32; 10 * n];
        kps[10 * i] = 0.25; // right eye x offset
        let empty: [f32; 0] = [];
        let outputs = [
            StrideOutputs {
                stride: 8,
                cls: &empty,
                obj: &empty,
                bbox: &empty,
                kps: &empty,
            },
            StrideOutputs {
                stride: 32,
                cls: &cls,
                obj: &obj,
                bbox: &bbox,
                kps: &kps,
            },
        ];
        let found = decode(&outputs, 0.5);
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert!((d.score - 0.9).abs() < 1e-6);
        // cx = (3 + 0.5) * 32 = 112, cy = (2 + 0.5) * 32 = 80, w = h = 32; then / 0.5.
        assert_eq!(d.bbox, [192.0, 128.0, 64.0, 64.0]);
        assert_eq!(d.landmarks[0], [(3.25 * 32.0) / 0.5, (2.0 * 32.0) / 0.5]);
    }

    #[test]
    fn letterbox_keeps_aspect_and_pads_black_in_bgr() {
        let photo = RgbImage::from_pixel(1280, 640, image::Rgb([200, 100, 50]));
        let boxed = letterbox(&photo);
        assert_eq!(boxed.scale, 0.5);
        let plane = 640 * 640;
        assert_eq!(boxed.tensor.len(), 3 * plane);
        // Inside the photo: B, G, R planes.
        assert_eq!(
            [
                boxed.tensor[0],
                boxed.tensor[plane],
                boxed.tensor[2 * plane]
            ],
            [50.0, 100.0, 200.0]
        );
        // Below the photo (row 400): padding.
        assert_eq!(boxed.tensor[400 * 640], 0.0);
    }
}
