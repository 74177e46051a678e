//! Five-point alignment: the least-squares similarity transform (Umeyama) of the detected
//! landmarks onto SFace's 112x112 template, and a bilinear warp of the photo through it.

use image::RgbImage;

/// Side of the aligned crop SFace expects.
pub const ALIGNED_SIDE: usize = 112;

/// Where the five landmarks go in the 112x112 crop (right eye, left eye, nose, mouth corners).
pub const TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A 2x3 affine map [a b tx; c d ty] from photo to crop coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    pub m: [[f32; 3]; 2],
}

impl Similarity {
    /// Least-squares rotation + uniform scale + translation taking `from` onto `to`
    /// (Umeyama's method; in 2D it has this closed form, reflections excluded).
    pub fn estimate(from: &[[f32; 2]; 5], to: &[[f32; 2]; 5]) -> Self {
        let mean = |p: &[[f32; 2]; 5]| {
            let (sx, sy) = p.iter().fold((0.0f64, 0.0f64), |(x, y), q| {
                (x + f64::from(q[0]), y + f64::from(q[1]))
            });
            (sx / 5.0, sy / 5.0)
        };
        let (fx, fy) = mean(from);
        let (tx, ty) = mean(to);
        let (mut dot, mut cross, mut norm) = (0.0f64, 0.0f64, 0.0f64);
        for (a, b) in from.iter().zip(to) {
            let (ax, ay) = (f64::from(a[0]) - fx, f64::from(a[1]) - fy);
            let (bx, by) = (f64::from(b[0]) - tx, f64::from(b[1]) - ty);
            dot += ax * bx + ay * by;
            cross += ax * by - ay * bx;
            norm += ax * ax + ay * ay;
        }
        let scale = if norm > 0.0 {
            (dot * dot + cross * cross).sqrt() / norm
        } else {
            1.0
        };
        let angle = cross.atan2(dot);
        let (a, c) = (scale * angle.cos(), scale * angle.sin());
        let (ox, oy) = (tx - (a * fx - c * fy), ty - (c * fx + a * fy));
        Self {
            m: [
                [a as f32, -c as f32, ox as f32],
                [c as f32, a as f32, oy as f32],
            ],
        }
    }

    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let m = &self.m;
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    fn inverse(&self) -> Option<Self> {
        let m = &self.m;
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (a, b, c, d) = (m[1][1] / det, -m[0][1] / det, -m[1][0] / det, m[0][0] / det);
        Some(Self {
            m: [
                [a, b, -(a * m[0][2] + b * m[1][2])],
                [c, d, -(c * m[0][2] + d * m[1][2])],
            ],
        })
    }
}

/// Warp the photo into the aligned 112x112 crop: each crop pixel samples the photo at the
/// inverse-mapped point, bilinearly, with black outside the photo (as OpenCV's warpAffine).
pub fn warp(photo: &RgbImage, transform: &Similarity) -> RgbImage {
    let mut out = RgbImage::new(ALIGNED_SIDE as u32, ALIGNED_SIDE as u32);
    let Some(inverse) = transform.inverse() else {
        return out;
    };
    let (w, h) = (photo.width() as i64, photo.height() as i64);
    let raw = photo.as_raw();
    let sample = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            f32::from(raw[((y * w + x) * 3) as usize + c])
        }
    };
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let [sx, sy] = inverse.apply([x as f32, y as f32]);
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        for c in 0..3 {
            let top = sample(x0, y0, c) * (1.0 - fx) + sample(x0 + 1, y0, c) * fx;
            let bottom = sample(x0, y0 + 1, c) * (1.0 - fx) + sample(x0 + 1, y0 + 1, c) * fx;
            pixel.0[c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Align one face: estimate the transform from its landmarks and warp.
pub fn align(photo: &RgbImage, landmarks: &[[f32; 2]; 5]) -> RgbImage {
    warp(photo, &Similarity::estimate(landmarks, &TEMPLATE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn recovers_a_known_similarity(angle in -0.6f32..0.6, scale in 0.3f32..4.0,
                                       tx in -300f32..300.0, ty in -300f32..300.0) {
            // Build photo landmarks as the inverse image of the template under a known map.
            let (c, s) = (angle.cos() / scale, angle.sin() / scale);
            let landmarks = TEMPLATE.map(|[x, y]| [c * x - s * y + tx, s * x + c * y + ty]);
            let t = Similarity::estimate(&landmarks, &TEMPLATE);
            for (p, q) in landmarks.iter().zip(&TEMPLATE) {
                let mapped = t.apply(*p);
                prop_assert!((mapped[0] - q[0]).abs() < 1e-2 && (mapped[1] - q[1]).abs() < 1e-2);
            }
        }
    }

    #[test]
    fn warping_with_the_identity_copies_pixels() {
        let mut photo = RgbImage::new(120, 120);
        photo.put_pixel(10, 20, image::Rgb([255, 0, 0]));
        let identity = Similarity {
            m: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        };
        let out = warp(&photo, &identity);
        assert_eq!(out.get_pixel(10, 20).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(11, 20).0, [0, 0, 0]);
    }
}
