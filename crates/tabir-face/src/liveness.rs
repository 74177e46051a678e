//! Active liveness from YuNet's five landmarks, as pure functions (see docs/face.md, "Active
//! liveness", and shared/design/liveness.md).
//!
//! The recipient is asked to turn their head left or right (at random). A flat picture (a
//! print, a screen) moves as a plane: between two frames its image points are related by one
//! homography. A head is not flat: the nose tip stands in front of the plane of the eyes and
//! mouth corners, so when the head turns it leaves the homography that the four planar
//! landmarks define (parallax). The residual is measured in the turned frame's eye distances.
//!
//! Landmark order (as `Detection::landmarks`): right eye, left eye, nose tip, right mouth
//! corner, left mouth corner of the subject, in image pixels. Frames must be as the camera
//! delivers them, not mirrored (mirror only the preview): the subject's right eye is then on
//! the image's left, and a turn to the subject's own left moves the nose toward the image's
//! right.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Five landmarks of one face, `[x, y]` in image pixels, in `Detection::landmarks` order.
pub type Landmarks = [[f32; 2]; 5];

const RIGHT_EYE: usize = 0;
const LEFT_EYE: usize = 1;
const NOSE: usize = 2;
/// The four landmarks taken as coplanar: both eyes, both mouth corners.
const PLANAR: [usize; 4] = [RIGHT_EYE, LEFT_EYE, 3, 4];

/// A frame counts as "moved like a flat picture" only when its residual is below this fraction
/// of `min_residual`. For a real head the residual follows the change of yaw since the frontal
/// frame (equal to it for a pure yaw rotation under orthographic projection; 0.75-1.08 times it
/// in the tests' perspective model with pitch and roll), so a head whose yaw changed by
/// `min_turn` (0.13) shows about 0.1 or more, above 0.6 x 0.12 = 0.072, and the planar points
/// of a head change shape by `min_motion` only past 25 degrees (residual 0.2): frames of a real
/// turn do not count as flat, while a picture (residual 0.00-0.05 with 1 px of landmark noise)
/// does.
pub const FLAT_RESIDUAL_FRACTION: f32 = 0.6;

/// Twice the area of the smallest triangle of three of the four planar points, after Hartley
/// normalisation (mean distance sqrt 2 from the centroid; a face's triangles there are about
/// 1-2): below this the four points are taken as collinear.
const MIN_NORMALISED_AREA: f64 = 1e-3;
/// Smallest pivot accepted in the normalised 8x8 DLT system.
const MIN_PIVOT: f64 = 1e-10;
/// The homographic weights `w` of the five frontal points must share a sign and differ by at
/// most this factor: a face-sized plane at arm's length has depths within a few per cent of
/// each other, so anything beyond is a fit through noise, not a view of a plane.
const MAX_WEIGHT_RATIO: f64 = 2.0;

/// The direction the recipient is asked to turn: their own left or right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Turn {
    Left,
    Right,
}

impl Turn {
    /// `true` is `Left`, `false` is `Right`; draw the bit from a CSPRNG so that a replay
    /// prepared for one direction fails half the time.
    pub fn from_random_bit(bit: bool) -> Self {
        if bit {
            Turn::Left
        } else {
            Turn::Right
        }
    }

    /// "left" or "right" (as serde writes it).
    pub fn code(self) -> &'static str {
        match self {
            Turn::Left => "left",
            Turn::Right => "right",
        }
    }

    /// The sign of `signed_yaw` for a turn this way.
    fn sign(self) -> f32 {
        match self {
            Turn::Left => 1.0,
            Turn::Right => -1.0,
        }
    }
}

/// Signed horizontal offset of the nose tip from the eyes' midpoint along the eye axis, in eye
/// distances: > 0 when the recipient turns to their own left (the nose moves toward the image's
/// right in a non-mirrored image, i.e. toward the left-eye landmark), < 0 for their right,
/// about 0 frontal. For a nose 0.35 eye distances in front of the eyes it is about
/// 0.35 x tan(yaw) under orthographic projection (0.13 at 20 degrees, 0.20 at 30); perspective
/// at arm's length, with the head turning about the neck, adds about a quarter (0.16-0.22 at
/// 20 degrees in the tests' model, with some pitch and roll). NaN when the eyes coincide or an
/// input is not finite.
pub fn signed_yaw(landmarks: &Landmarks) -> f32 {
    let [right, left, nose] = [
        point(landmarks[RIGHT_EYE]),
        point(landmarks[LEFT_EYE]),
        point(landmarks[NOSE]),
    ];
    let axis = [left[0] - right[0], left[1] - right[1]];
    let length2 = axis[0] * axis[0] + axis[1] * axis[1];
    if !(length2 > 0.0 && length2.is_finite()) {
        return f32::NAN;
    }
    let mid = [(left[0] + right[0]) / 2.0, (left[1] + right[1]) / 2.0];
    let offset = [nose[0] - mid[0], nose[1] - mid[1]];
    let yaw = (offset[0] * axis[0] + offset[1] * axis[1]) / length2;
    if yaw.is_finite() {
        yaw as f32
    } else {
        f32::NAN
    }
}

/// The homography (3x3, row-major) that maps the four planar landmarks (eyes, mouth corners)
/// of `from` onto those of `to`: a 4-point DLT on Hartley-normalised points, solved as an 8x8
/// linear system by Gaussian elimination with partial pivoting. Scaled so that `h[8] == 1`
/// (to unit norm in the rare case where the image origin maps to infinity). `None` when
/// degenerate: a coordinate not finite, three of the four points (nearly) collinear in either
/// frame, or a singular system (among others when the map would send the centroid of `from`'s
/// four points to infinity, which no two views of one plane do).
pub fn planar_homography(from: &Landmarks, to: &Landmarks) -> Option<[f64; 9]> {
    let src = planar_points(from)?;
    let dst = planar_points(to)?;
    homography4(&src, &dst)
}

/// The parallax residual: fit the homography from the frontal frame's four planar landmarks to
/// the turned frame's, map the frontal nose tip through it, and return its distance from the
/// turned frame's nose tip, in the turned frame's eye distances. About 0 for a flat picture
/// (whatever its pose), about the change of `signed_yaw` for a head turning. `None` when the
/// homography is degenerate, the five frontal points do not map in front of the camera with
/// comparable weights, or the turned frame's eyes coincide.
pub fn nose_residual(frontal: &Landmarks, turned: &Landmarks) -> Option<f32> {
    let h = planar_homography(frontal, turned)?;
    let weights = frontal.map(|p| {
        let [x, y] = point(p);
        h[6] * x + h[7] * y + h[8]
    });
    let sign = weights[0].signum();
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for w in &weights {
        if !(w.is_finite() && w.signum() == sign && *w != 0.0) {
            return None;
        }
        lo = lo.min(w.abs());
        hi = hi.max(w.abs());
    }
    if hi > MAX_WEIGHT_RATIO * lo {
        return None;
    }
    let predicted = apply(&h, point(frontal[NOSE]))?;
    let nose = point(turned[NOSE]);
    let eye_distance = distance(point(turned[RIGHT_EYE]), point(turned[LEFT_EYE]));
    if !(eye_distance > 0.0 && eye_distance.is_finite()) {
        return None;
    }
    let residual = distance(predicted, nose) / eye_distance;
    residual.is_finite().then_some(residual as f32)
}

/// How much the four planar landmarks changed shape from `frontal` to `frame`: the RMS
/// distance left after the least-squares similarity (translation, rotation, scale) from the
/// frontal points to the frame's, in the frame's eye distances. 0 for a face that only moved
/// in the image plane or towards the camera; it grows when the plane of eyes and mouth turns
/// out of the image plane (in the tests' model at 60 cm: 0.03 at 20 degrees, 0.05 at 25, 0.07
/// at 30, 0.15 at 40; 1 px of landmark noise gives up to 0.025). `None` when degenerate.
pub fn planar_motion(frontal: &Landmarks, frame: &Landmarks) -> Option<f32> {
    let p = centred(&planar_points(frontal)?);
    let q = centred(&planar_points(frame)?);
    let norm: f64 = p.iter().map(|a| a[0] * a[0] + a[1] * a[1]).sum();
    if !(norm > 0.0 && norm.is_finite()) {
        return None;
    }
    // In complex numbers: q ~ a p with a = sum(conj(p) q) / sum(|p|^2).
    let (mut re, mut im) = (0.0, 0.0);
    for (a, b) in p.iter().zip(&q) {
        re += a[0] * b[0] + a[1] * b[1];
        im += a[0] * b[1] - a[1] * b[0];
    }
    let (re, im) = (re / norm, im / norm);
    let sum2: f64 = p
        .iter()
        .zip(&q)
        .map(|(a, b)| {
            let fitted = [re * a[0] - im * a[1], re * a[1] + im * a[0]];
            (b[0] - fitted[0]).powi(2) + (b[1] - fitted[1]).powi(2)
        })
        .sum();
    let eye_distance = distance(point(frame[RIGHT_EYE]), point(frame[LEFT_EYE]));
    if !(eye_distance > 0.0 && eye_distance.is_finite()) {
        return None;
    }
    let motion = (sum2 / 4.0).sqrt() / eye_distance;
    motion.is_finite().then_some(motion as f32)
}

/// Thresholds of the liveness test. Set on synthetic geometry (a 3D face model and planar
/// warps, see the tests and docs/face.md); calibrate on captures from the counter cameras.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LivenessPolicy {
    /// A turned frame shows parallax when its nose residual is at least this (eye distances).
    pub min_residual: f32,
    /// `signed_yaw` in the prompted direction for a frame to count as turned.
    pub min_turn: f32,
    /// `|signed_yaw|` at most this for the frontal frame (`frontal_ok`).
    pub max_frontal_yaw: f32,
    /// Consecutive turned frames with parallax needed to pass (and consecutive `moved_flat`
    /// frames needed to call it flat).
    pub frames_needed: usize,
    /// `planar_motion` from which a frame counts as moved out of the image plane.
    pub min_motion: f32,
}

impl Default for LivenessPolicy {
    fn default() -> Self {
        LivenessPolicy {
            // Between a picture (0.00-0.05 here with 1 px of landmark noise; 0.03-0.08 measured
            // with YuNet on a warped photo) and a real turn of 25-30 degrees (0.16-0.20 far
            // from the camera, 0.18-0.29 at 60 cm with 1 px of noise).
            min_residual: 0.12,
            // A nose 0.35 eye distances in front of the eyes gives 0.35 x tan(yaw): 0.13 is a
            // turn of about 20 degrees from frontal (15-18 with perspective), short of the
            // 25-30 the prompt asks for, and clear of landmark noise (a yaw change of up to 0.05
            // with 1 px of noise). Just above min_residual, because a head's residual follows
            // its change of yaw: a frame that counts as turned can show min_residual.
            min_turn: 0.13,
            // About 13 degrees by 0.35 x tan(yaw), 11 with perspective.
            max_frontal_yaw: 0.08,
            frames_needed: 3,
            // Twice what 1 px of landmark noise gives (up to 0.025 at 40 px between the eyes);
            // a plane turned 25 degrees out of the image plane gives 0.05, 40 degrees 0.09-0.16.
            min_motion: 0.05,
        }
    }
}

impl LivenessPolicy {
    /// Whether `frontal` is frontal enough to start the challenge with (and to be matched).
    pub fn frontal_ok(&self, frontal: &Landmarks) -> bool {
        signed_yaw(frontal).abs() <= self.max_frontal_yaw
    }
}

/// One frame of a capture, judged against the frontal frame and the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FrameJudgement {
    /// `signed_yaw` of the frame.
    pub yaw: f32,
    /// `nose_residual` from the frontal frame; `None` when degenerate.
    pub residual: Option<f32>,
    /// `yaw` past `min_turn` in the prompted direction.
    pub turned: bool,
    /// `yaw` past `min_turn` the other way.
    pub wrong_way: bool,
    /// `turned` and `residual >= min_residual`: a head, turning as asked.
    pub parallax: bool,
    /// Moved clearly (`planar_motion >= min_motion`, or `yaw` changed by `min_turn` or more
    /// from the frontal frame's, either way) while keeping to a homography of the frontal frame
    /// (`residual < FLAT_RESIDUAL_FRACTION * min_residual`): evidence of a flat picture.
    pub moved_flat: bool,
}

/// Judge one frame of the capture against the frontal frame and the prompt.
pub fn judge_frame(
    policy: &LivenessPolicy,
    prompt: Turn,
    frontal: &Landmarks,
    frame: &Landmarks,
) -> FrameJudgement {
    let yaw = signed_yaw(frame);
    let residual = nose_residual(frontal, frame);
    let toward = prompt.sign() * yaw;
    let turned = toward >= policy.min_turn;
    let wrong_way = -toward >= policy.min_turn;
    let parallax = turned && residual.is_some_and(|r| r >= policy.min_residual);
    let yaw_change = (yaw - signed_yaw(frontal)).abs();
    let moved = yaw_change >= policy.min_turn
        || planar_motion(frontal, frame).is_some_and(|m| m >= policy.min_motion);
    let moved_flat =
        moved && residual.is_some_and(|r| r < FLAT_RESIDUAL_FRACTION * policy.min_residual);
    FrameJudgement {
        yaw,
        residual,
        turned,
        wrong_way,
        parallax,
        moved_flat,
    }
}

/// Where a challenge stands.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum LivenessState {
    /// Still waiting for the turn: how many consecutive turned frames, up to the last one,
    /// showed parallax, and whether the last frame turned the wrong way.
    Waiting {
        parallax_frames: usize,
        wrong_way: bool,
    },
    /// `frames_needed` consecutive turned frames showed parallax: a head, not a flat picture.
    /// `residual` is the median residual of those frames.
    Passed { residual: f32 },
    /// `frames_needed` consecutive frames moved clearly but kept to a homography of the frontal
    /// frame, and no frame showed parallax: a flat picture (print or screen). `residual` is
    /// their median.
    Flat { residual: f32 },
}

impl LivenessState {
    /// `Passed` and `Flat` are final.
    pub fn is_final(&self) -> bool {
        !matches!(self, LivenessState::Waiting { .. })
    }
}

/// Accumulates the frames after the frontal one. `Passed` once `frames_needed` consecutive
/// frames are `parallax`; `Flat` once `frames_needed` consecutive frames are `moved_flat` and no
/// frame so far has shown parallax. Both are final: later frames change nothing. Runs must be
/// consecutive so that scattered landmark noise over a long wait (a few hundred frames) adds up
/// to neither: a held turn, or a picture held tilted, gives unbroken runs. A still face, or one
/// that turns the wrong way, stays `Waiting`: the caller times out ("did not turn"), and
/// restarts the whole challenge, with a new frontal frame, when the face is lost.
pub struct LivenessTracker {
    policy: LivenessPolicy,
    prompt: Turn,
    frontal: Landmarks,
    /// Residuals of the current run of parallax frames.
    parallax: Vec<f32>,
    /// Residuals of the current run of moved_flat frames.
    flat: Vec<f32>,
    saw_parallax: bool,
    last_wrong_way: bool,
    frames: usize,
    done: Option<LivenessState>,
}

impl LivenessTracker {
    /// Starts a challenge. Check `policy.frontal_ok(&frontal)` first: the frontal frame is the
    /// one matched, and the turn is measured from it.
    pub fn new(policy: LivenessPolicy, prompt: Turn, frontal: Landmarks) -> Self {
        LivenessTracker {
            policy,
            prompt,
            frontal,
            parallax: Vec::new(),
            flat: Vec::new(),
            saw_parallax: false,
            last_wrong_way: false,
            frames: 0,
            done: None,
        }
    }

    pub fn prompt(&self) -> Turn {
        self.prompt
    }

    /// Judges one more frame and returns the new state.
    pub fn observe(&mut self, frame: &Landmarks) -> LivenessState {
        if let Some(done) = self.done {
            return done;
        }
        self.frames += 1;
        let judged = judge_frame(&self.policy, self.prompt, &self.frontal, frame);
        self.last_wrong_way = judged.wrong_way;
        match judged.residual {
            Some(residual) if judged.parallax => {
                self.saw_parallax = true;
                self.parallax.push(residual);
                self.flat.clear();
            }
            Some(residual) if judged.moved_flat => {
                self.parallax.clear();
                self.flat.push(residual);
            }
            _ => {
                self.parallax.clear();
                self.flat.clear();
            }
        }
        let needed = self.policy.frames_needed.max(1);
        if self.parallax.len() >= needed {
            self.done = Some(LivenessState::Passed {
                residual: median(&mut self.parallax),
            });
        } else if !self.saw_parallax && self.flat.len() >= needed {
            self.done = Some(LivenessState::Flat {
                residual: median(&mut self.flat),
            });
        }
        self.state()
    }

    pub fn state(&self) -> LivenessState {
        self.done.unwrap_or(LivenessState::Waiting {
            parallax_frames: self.parallax.len(),
            wrong_way: self.last_wrong_way,
        })
    }
}

/// No coordinates, residuals or yaws: the landmarks are biometric.
impl fmt::Debug for LivenessTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state() {
            LivenessState::Waiting { .. } => "waiting",
            LivenessState::Passed { .. } => "passed",
            LivenessState::Flat { .. } => "flat",
        };
        f.debug_struct("LivenessTracker")
            .field("prompt", &self.prompt)
            .field("frames", &self.frames)
            .field("parallax_run", &self.parallax.len())
            .field("flat_run", &self.flat.len())
            .field("saw_parallax", &self.saw_parallax)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

fn median(values: &mut [f32]) -> f32 {
    values.sort_by(f32::total_cmp);
    let n = values.len();
    match n {
        0 => f32::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn point(p: [f32; 2]) -> [f64; 2] {
    [f64::from(p[0]), f64::from(p[1])]
}

fn distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

/// The four planar landmarks in f64; `None` if any coordinate is not finite.
fn planar_points(landmarks: &Landmarks) -> Option<[[f64; 2]; 4]> {
    let mut out = [[0.0; 2]; 4];
    for (slot, &i) in out.iter_mut().zip(&PLANAR) {
        let p = point(landmarks[i]);
        if !(p[0].is_finite() && p[1].is_finite()) {
            return None;
        }
        *slot = p;
    }
    Some(out)
}

fn centred(points: &[[f64; 2]; 4]) -> [[f64; 2]; 4] {
    let cx = points.iter().map(|p| p[0]).sum::<f64>() / 4.0;
    let cy = points.iter().map(|p| p[1]).sum::<f64>() / 4.0;
    points.map(|p| [p[0] - cx, p[1] - cy])
}

/// Hartley normalisation: centroid to the origin, mean distance sqrt 2. Returns the points and
/// (centroid x, centroid y, scale).
fn normalise(points: &[[f64; 2]; 4]) -> Option<([[f64; 2]; 4], [f64; 3])> {
    let cx = points.iter().map(|p| p[0]).sum::<f64>() / 4.0;
    let cy = points.iter().map(|p| p[1]).sum::<f64>() / 4.0;
    let mean = points
        .iter()
        .map(|p| (p[0] - cx).hypot(p[1] - cy))
        .sum::<f64>()
        / 4.0;
    let scale = std::f64::consts::SQRT_2 / mean;
    if !(mean > 0.0 && scale.is_finite() && cx.is_finite() && cy.is_finite()) {
        return None;
    }
    let normalised = points.map(|p| [(p[0] - cx) * scale, (p[1] - cy) * scale]);
    Some((normalised, [cx, cy, scale]))
}

/// No three of the four points (nearly) collinear.
fn general_position(p: &[[f64; 2]; 4]) -> bool {
    const TRIPLES: [[usize; 3]; 4] = [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]];
    TRIPLES.iter().all(|&[a, b, c]| {
        let u = [p[b][0] - p[a][0], p[b][1] - p[a][1]];
        let v = [p[c][0] - p[a][0], p[c][1] - p[a][1]];
        (u[0] * v[1] - u[1] * v[0]).abs() >= MIN_NORMALISED_AREA
    })
}

fn homography4(src: &[[f64; 2]; 4], dst: &[[f64; 2]; 4]) -> Option<[f64; 9]> {
    let (ns, [sx, sy, ss]) = normalise(src)?;
    let (nd, [dx, dy, ds]) = normalise(dst)?;
    if !(general_position(&ns) && general_position(&nd)) {
        return None;
    }
    // h = (h0..h7, 1): u (h6 x + h7 y + 1) = h0 x + h1 y + h2, and likewise v with h3..h5.
    let mut system = [[0.0; 9]; 8];
    for (i, (&[x, y], &[u, v])) in ns.iter().zip(&nd).enumerate() {
        system[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        system[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    let h = solve8(system)?;
    let normalised = [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1.0];
    // H = D^-1 Hn S, with S and D the two normalisations.
    let s = [ss, 0.0, -ss * sx, 0.0, ss, -ss * sy, 0.0, 0.0, 1.0];
    let d_inv = [1.0 / ds, 0.0, dx, 0.0, 1.0 / ds, dy, 0.0, 0.0, 1.0];
    let m = matmul3(&d_inv, &matmul3(&normalised, &s));
    let norm = m.iter().map(|v| v * v).sum::<f64>().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return None;
    }
    let divisor = if m[8].abs() > 1e-12 * norm {
        m[8]
    } else {
        norm
    };
    let out = m.map(|v| v / divisor);
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// Gaussian elimination with partial pivoting of an 8x8 system given as [A | b].
fn solve8(mut a: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let pivot_row = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        let pivot = a[pivot_row][col];
        if !(pivot.abs() >= MIN_PIVOT && pivot.is_finite()) {
            return None;
        }
        a.swap(col, pivot_row);
        let pivot_values = a[col];
        for row in a.iter_mut().skip(col + 1) {
            let factor = row[col] / pivot;
            if factor != 0.0 {
                for (value, p) in row.iter_mut().zip(&pivot_values).skip(col) {
                    *value -= factor * p;
                }
            }
        }
    }
    let mut x = [0.0; 8];
    for row in (0..8).rev() {
        let tail: f64 = (row + 1..8).map(|k| a[row][k] * x[k]).sum();
        x[row] = (a[row][8] - tail) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

fn matmul3(a: &[f64; 9], b: &[f64; 9]) -> [f64; 9] {
    let mut out = [0.0; 9];
    for r in 0..3 {
        for c in 0..3 {
            out[3 * r + c] = (0..3).map(|k| a[3 * r + k] * b[3 * k + c]).sum();
        }
    }
    out
}

/// Maps a point through a homography; `None` at (or near) infinity.
fn apply(h: &[f64; 9], [x, y]: [f64; 2]) -> Option<[f64; 2]> {
    let w = h[6] * x + h[7] * y + h[8];
    let u = (h[0] * x + h[1] * y + h[2]) / w;
    let v = (h[3] * x + h[4] * y + h[5]) / w;
    (w != 0.0 && u.is_finite() && v.is_finite()).then_some([u, v])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---- A synthetic camera, head and print ----

    const FOCAL: f64 = 1000.0;
    const CENTRE: [f64; 2] = [640.0, 360.0];
    const DISTANCE: f64 = 600.0;
    const EYE_DISTANCE: f64 = 62.0;
    const NOSE_DEPTH: f64 = 0.35 * EYE_DISTANCE;
    /// YuNet's landmarks on the frontal tests/images/obama.jpg (right eye (200, 180), left eye
    /// (262, 180), nose (231, 215), mouth corners (208, 250) and (255, 250)), centred on the
    /// nose, 1 px taken as 1 mm: x toward the image's right, y down, z away from the camera.
    /// The eyes and mouth corners at depth 0, the nose tip 0.35 eye distances toward the camera.
    const FACE: [[f64; 3]; 5] = [
        [-31.0, -35.0, 0.0],
        [31.0, -35.0, 0.0],
        [0.0, 0.0, -NOSE_DEPTH],
        [-23.0, 35.0, 0.0],
        [24.0, 35.0, 0.0],
    ];
    /// The head turns about an axis this far behind the eyes (the neck), not about the face.
    const PIVOT_DEPTH: f64 = 90.0;

    /// Deterministic uniform noise in [-1, 1] (xorshift64*).
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
            bits as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
    }

    #[derive(Clone, Copy, Default)]
    struct Pose {
        /// Degrees toward the subject's own left (negative: right).
        left: f64,
        /// Degrees, chin down positive.
        pitch: f64,
        /// Degrees, in the image plane.
        roll: f64,
    }

    fn pose(left: f64, pitch: f64, roll: f64) -> Pose {
        Pose { left, pitch, roll }
    }

    fn rotate(p: [f64; 3], pose: Pose) -> [f64; 3] {
        // Turning to one's own left swings the nose (toward the camera, -z) toward +x.
        let a = (-pose.left).to_radians();
        let [x, y, z] = p;
        let (x, z) = (x * a.cos() + z * a.sin(), -x * a.sin() + z * a.cos());
        let b = pose.pitch.to_radians();
        let (y, z) = (y * b.cos() - z * b.sin(), y * b.sin() + z * b.cos());
        let c = pose.roll.to_radians();
        let (x, y) = (x * c.cos() - y * c.sin(), x * c.sin() + y * c.cos());
        [x, y, z]
    }

    fn project(p: [f64; 3], noise: &mut Noise, jitter: f64) -> [f32; 2] {
        [
            (FOCAL * p[0] / p[2] + CENTRE[0] + jitter * noise.next()) as f32,
            (FOCAL * p[1] / p[2] + CENTRE[1] + jitter * noise.next()) as f32,
        ]
    }

    /// The head's landmarks in a camera image: turned by `pose` about the neck, shifted by
    /// `shift` (mm), with uniform landmark noise of +-`jitter` px.
    fn head(pose: Pose, shift: [f64; 2], noise: &mut Noise, jitter: f64) -> Landmarks {
        head_at(DISTANCE, pose, shift, noise, jitter)
    }

    /// `head`, with the face `distance` mm from the camera.
    fn head_at(
        distance: f64,
        pose: Pose,
        shift: [f64; 2],
        noise: &mut Noise,
        jitter: f64,
    ) -> Landmarks {
        FACE.map(|p| {
            let r = rotate([p[0], p[1], p[2] - PIVOT_DEPTH], pose);
            let q = [
                r[0] + shift[0],
                r[1] + shift[1],
                r[2] + PIVOT_DEPTH + distance,
            ];
            project(q, noise, jitter)
        })
    }

    fn frontal_image() -> Landmarks {
        head(Pose::default(), [0.0; 2], &mut Noise(1), 0.0)
    }

    /// A print of `picture` (landmarks in px), `mm_per_px` mm per pixel of it, held at
    /// `distance` mm and turned by `pose` about its centre, shifted by `shift` mm.
    fn print(
        picture: &Landmarks,
        mm_per_px: f64,
        distance: f64,
        pose: Pose,
        shift: [f64; 2],
        noise: &mut Noise,
        jitter: f64,
    ) -> Landmarks {
        let cx = picture.iter().map(|p| f64::from(p[0])).sum::<f64>() / 5.0;
        let cy = picture.iter().map(|p| f64::from(p[1])).sum::<f64>() / 5.0;
        picture.map(|p| {
            let flat = [
                (f64::from(p[0]) - cx) * mm_per_px,
                (f64::from(p[1]) - cy) * mm_per_px,
                0.0,
            ];
            let r = rotate(flat, pose);
            project(
                [r[0] + shift[0], r[1] + shift[1], r[2] + distance],
                noise,
                jitter,
            )
        })
    }

    fn eye_distance(l: &Landmarks) -> f32 {
        (l[0][0] - l[1][0]).hypot(l[0][1] - l[1][1])
    }

    /// The extreme values of a sample, for the figures in docs/face.md.
    fn range(values: &[f32]) -> (f32, f32) {
        values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    // ---- Homography ----

    fn map(h: &[f64; 9], p: [f32; 2]) -> [f64; 2] {
        apply(h, point(p)).expect("finite")
    }

    #[test]
    fn homography_round_trip_recovers_a_known_map() {
        let known = [1.1, 0.2, 30.0, -0.15, 0.9, -12.0, 0.0004, -0.0002, 1.0];
        let from: Landmarks = [
            [200.0, 180.0],
            [262.0, 180.0],
            [231.0, 215.0],
            [208.0, 250.0],
            [255.0, 250.0],
        ];
        let to = from.map(|p| {
            let [u, v] = map(&known, p);
            [u as f32, v as f32]
        });
        let h = planar_homography(&from, &to).expect("a homography");
        assert!((h[8] - 1.0).abs() < 1e-12);
        for (a, b) in h.iter().zip(&known) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{h:?} vs {known:?}"
            );
        }
        // The 5th point (the nose, not used in the fit) maps where the known map sends it.
        let [u, v] = map(&h, from[NOSE]);
        assert!((u - f64::from(to[NOSE][0])).abs() < 1e-3);
        assert!((v - f64::from(to[NOSE][1])).abs() < 1e-3);
        assert!(nose_residual(&from, &to).expect("residual") < 1e-4);
        // Identity, and a pure similarity: no shape change, no residual.
        let id = planar_homography(&from, &from).expect("identity");
        for (a, b) in id
            .iter()
            .zip(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
        {
            assert!((a - b).abs() < 1e-9, "{id:?}");
        }
        let similar = from.map(|[x, y]| [0.8 * x - 0.3 * y + 40.0, 0.3 * x + 0.8 * y - 7.0]);
        assert!(planar_motion(&from, &similar).expect("motion") < 1e-5);
        assert!(nose_residual(&from, &similar).expect("residual") < 1e-4);
        // Moving the nose alone is pure parallax: 6.2 px at 62 px between the eyes.
        let mut pushed = from;
        pushed[NOSE][0] += 6.2;
        let r = nose_residual(&from, &pushed).expect("residual");
        assert!((r - 0.1).abs() < 1e-4, "{r}");
        assert!(planar_motion(&from, &pushed).expect("motion") < 1e-6);
    }

    #[test]
    fn degenerate_or_non_finite_points_give_none() {
        let good = frontal_image();
        // The right mouth corner on the line through the eyes, and all four on one line.
        let mut three = good;
        three[3] = [good[0][0] - 10.0, good[0][1]];
        assert!(planar_homography(&good, &three).is_none());
        assert!(planar_homography(&three, &good).is_none());
        assert!(nose_residual(&good, &three).is_none());
        let line: Landmarks = [[0.0, 0.0], [1.0, 1.0], [5.0, 3.0], [2.0, 2.0], [3.0, 3.0]];
        assert!(planar_homography(&line, &good).is_none());
        // Everything at one point.
        assert!(planar_homography(&[[5.0; 2]; 5], &good).is_none());
        assert!(signed_yaw(&[[5.0; 2]; 5]).is_nan());
        assert!(planar_motion(&good, &[[5.0; 2]; 5]).is_none());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for i in 0..5 {
                for j in 0..2 {
                    let mut l = good;
                    l[i][j] = bad;
                    assert!(signed_yaw(&l).is_nan() || i > NOSE);
                    assert!(nose_residual(&good, &l).is_none(), "{i} {j}");
                    assert!(nose_residual(&l, &good).is_none(), "{i} {j}");
                    if i != NOSE {
                        assert!(planar_homography(&good, &l).is_none());
                        assert!(planar_homography(&l, &good).is_none());
                    }
                    let j = judge_frame(&LivenessPolicy::default(), Turn::Left, &good, &l);
                    assert!(!j.parallax && !j.moved_flat);
                }
            }
        }
        // Mouth corners swapped, or one dragged past the other (a crossed quadrilateral, which
        // no view of a plane gives): the homography sends the points' centroid, or part of the
        // face, across the line at infinity.
        let mut crossed = good;
        crossed.swap(3, 4);
        assert!(planar_homography(&good, &crossed).is_none());
        assert!(nose_residual(&good, &crossed).is_none());
        let mut crossed = good;
        crossed[3][0] = good[4][0] + 20.0;
        assert!(planar_homography(&good, &crossed).is_some());
        assert!(nose_residual(&good, &crossed).is_none());
        // A perspective so strong that the weights of the face's points differ threefold
        // (the top of the face three times as far as the chin): no face-sized plane at arm's
        // length looks like that.
        let (top, bottom) = (f64::from(good[0][1]), f64::from(good[3][1]));
        let k = 2.0 / (bottom - top);
        let steep = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -k, 1.0 + k * bottom];
        let warped = good.map(|p| {
            let [u, v] = map(&steep, p);
            [u as f32, v as f32]
        });
        assert!(planar_homography(&good, &warped).is_some());
        assert!(nose_residual(&good, &warped).is_none());
    }

    fn finite_or_not() -> impl Strategy<Value = f32> {
        prop_oneof![
            4 => -2000f32..2000.0,
            1 => proptest::num::f32::ANY,
        ]
    }

    fn landmarks() -> impl Strategy<Value = Landmarks> {
        proptest::array::uniform5(proptest::array::uniform2(finite_or_not()))
    }

    proptest! {
        #[test]
        fn nothing_panics_on_arbitrary_landmarks(
            a in landmarks(),
            b in landmarks(),
            frames in proptest::collection::vec(landmarks(), 0..8),
            left in any::<bool>(),
        ) {
            let _ = signed_yaw(&a);
            if let Some(h) = planar_homography(&a, &b) {
                prop_assert!(h.iter().all(|v| v.is_finite()));
            }
            if let Some(r) = nose_residual(&a, &b) {
                prop_assert!(r.is_finite() && r >= 0.0);
            }
            if let Some(m) = planar_motion(&a, &b) {
                prop_assert!(m.is_finite() && m >= 0.0);
            }
            let policy = LivenessPolicy::default();
            let _ = judge_frame(&policy, Turn::from_random_bit(left), &a, &b);
            let mut tracker = LivenessTracker::new(policy, Turn::from_random_bit(left), a);
            for f in &frames {
                let _ = tracker.observe(f);
            }
            let _ = format!("{tracker:?}");
            let _ = serde_json::to_string(&tracker.state());
        }
    }

    // ---- Yaw ----

    #[test]
    fn signed_yaw_is_positive_for_the_subjects_own_left() {
        let frontal = frontal_image();
        assert!(signed_yaw(&frontal).abs() < 0.02);
        assert!(LivenessPolicy::default().frontal_ok(&frontal));
        // The model: a turn to one's own left takes the left eye away from the camera and the
        // nose toward the image's right (the left eye's side, in a non-mirrored image).
        let left_eye_depth = |p: Pose| rotate([31.0, -35.0, -PIVOT_DEPTH], p)[2];
        assert!(left_eye_depth(pose(25.0, 0.0, 0.0)) > left_eye_depth(Pose::default()));
        let left = head(pose(25.0, 0.0, 0.0), [0.0; 2], &mut Noise(1), 0.0);
        assert!(left[NOSE][0] > frontal[NOSE][0]);
        assert!(signed_yaw(&left) > 0.13);
        let right = head(pose(-25.0, 0.0, 0.0), [0.0; 2], &mut Noise(1), 0.0);
        assert!(signed_yaw(&right) < -0.13);
        assert!(!LivenessPolicy::default().frontal_ok(&right));
        // Roll does not change it (it is measured along the eye axis).
        let rolled = head(pose(25.0, 0.0, 30.0), [0.0; 2], &mut Noise(1), 0.0);
        assert!((signed_yaw(&rolled) - signed_yaw(&left)).abs() < 0.01);
    }

    // ---- A real head turning ----

    #[test]
    fn a_turned_head_shows_parallax() {
        let frontal = frontal_image();
        let frontal_yaw = signed_yaw(&frontal);
        let mut noise = Noise(0x5eed);
        for degrees in [20.0, 25.0, 30.0] {
            let (mut exact, mut jittered, mut yaws) = (Vec::new(), Vec::new(), Vec::new());
            let mut ratios = Vec::new();
            for side in [1.0, -1.0] {
                for pitch in [-6.0, 0.0, 6.0] {
                    for roll in [-5.0, 0.0, 5.0] {
                        let p = pose(side * degrees, pitch, roll);
                        let shift = [15.0 * side, -10.0];
                        let turned = head(p, shift, &mut noise, 0.0);
                        let yaw = signed_yaw(&turned);
                        assert_eq!(yaw.signum(), side as f32, "{degrees} {side}");
                        let r = nose_residual(&frontal, &turned).expect("residual");
                        assert!(r >= 0.12, "{degrees} deg, pitch {pitch}, roll {roll}: {r}");
                        // The residual follows the change of yaw (what keeps a real turn from
                        // counting as flat).
                        let change = (yaw - frontal_yaw).abs();
                        assert!(r > 0.7 * change && r < 1.3 * change, "{r} vs {change}");
                        exact.push(r);
                        yaws.push(yaw.abs());
                        ratios.push(r / change);
                        for _ in 0..20 {
                            let before = head(Pose::default(), [0.0; 2], &mut noise, 1.0);
                            let turned = head(p, shift, &mut noise, 1.0);
                            assert_eq!(signed_yaw(&turned).signum(), side as f32);
                            let r = nose_residual(&before, &turned).expect("residual");
                            assert!(r >= 0.12, "{degrees} deg with jitter: {r}");
                            jittered.push(r);
                        }
                    }
                }
            }
            eprintln!(
                "turned head, {degrees} deg: |yaw| {:?}, residual {:?} (/ yaw change {:?}), \
                 with +-1 px jitter {:?}",
                range(&yaws),
                range(&exact),
                range(&ratios),
                range(&jittered)
            );
        }
        // Far from the camera (nearly orthographic) parallax is weaker: 0.35 x tan(yaw), which
        // is 0.127 at 20 degrees, just over the threshold, and 0.16 / 0.20 at 25 / 30.
        let far = |left: f64| head_at(1e5, pose(left, 0.0, 0.0), [0.0; 2], &mut Noise(1), 0.0);
        for degrees in [20.0f64, 25.0, 30.0] {
            for side in [1.0, -1.0] {
                let r = nose_residual(&far(0.0), &far(side * degrees)).expect("residual");
                let expected = 0.35 * degrees.to_radians().tan();
                assert!((f64::from(r) - expected).abs() < 1e-3, "{r} vs {expected}");
                assert!(r >= 0.12);
            }
        }
    }

    /// Frames of a head turning from frontal to `degrees` (to `side`) in 2-degree steps, then
    /// holding, with a little pitch and roll on the way and +-1 px of landmark noise.
    fn turning_head(side: f64, degrees: f64, noise: &mut Noise) -> Vec<Landmarks> {
        let steps = (degrees / 2.0) as usize;
        (1..=steps + 6)
            .map(|i| {
                let t = (i.min(steps) as f64) / steps as f64;
                head(
                    pose(side * degrees * t, 4.0 * t, -3.0 * t),
                    [8.0 * t, 3.0 * t],
                    noise,
                    1.0,
                )
            })
            .collect()
    }

    #[test]
    fn a_real_turn_passes_only_in_the_prompted_direction() {
        let policy = LivenessPolicy::default();
        let mut passed = Vec::new();
        for seed in 1..=20u64 {
            let mut noise = Noise(seed);
            let frontal = head(Pose::default(), [0.0; 2], &mut noise, 1.0);
            assert!(policy.frontal_ok(&frontal));
            for (prompt, side) in [(Turn::Left, 1.0), (Turn::Right, -1.0)] {
                for degrees in [25.0, 30.0] {
                    let frames = turning_head(side, degrees, &mut noise);
                    let mut tracker = LivenessTracker::new(policy, prompt, frontal);
                    let mut last = tracker.state();
                    for f in &frames {
                        let j = judge_frame(&policy, prompt, &frontal, f);
                        assert!(!j.moved_flat && !j.wrong_way, "{seed} {degrees}: {j:?}");
                        last = tracker.observe(f);
                        assert!(!matches!(last, LivenessState::Flat { .. }));
                    }
                    match last {
                        LivenessState::Passed { residual } => passed.push(residual),
                        other => panic!("{seed} {prompt:?} {degrees}: {other:?}"),
                    }
                    // Final: more frames, even a still frontal one, change nothing.
                    assert_eq!(tracker.observe(&frontal), last);
                    assert_eq!(tracker.state(), last);
                    // The same turn against the other prompt never passes.
                    let other = if side > 0.0 { Turn::Right } else { Turn::Left };
                    let mut wrong = LivenessTracker::new(policy, other, frontal);
                    for f in &frames {
                        let state = wrong.observe(f);
                        assert!(!state.is_final(), "{seed} {degrees}: {state:?}");
                    }
                    assert_eq!(
                        wrong.state(),
                        LivenessState::Waiting {
                            parallax_frames: 0,
                            wrong_way: true
                        }
                    );
                }
            }
        }
        eprintln!(
            "real turns of 25-30 deg passed with median residuals {:?}",
            range(&passed)
        );
    }

    #[test]
    fn intermediate_frames_of_a_slow_turn_are_never_flat() {
        let policy = LivenessPolicy::default();
        for seed in 1..=20u64 {
            let mut noise = Noise(seed);
            let frontal = head(Pose::default(), [0.0; 2], &mut noise, 1.0);
            // 1-degree steps up to 40 degrees, with up to 10 degrees of pitch.
            for i in 1..=40 {
                let d = f64::from(i);
                let p = pose(-d, d / 4.0, 0.0);
                let frame = head(p, [0.0; 2], &mut noise, 1.0);
                let j = judge_frame(&policy, Turn::Right, &frontal, &frame);
                assert!(!j.moved_flat, "{seed}: {d} deg: {j:?}");
                assert!(!j.wrong_way);
            }
        }
    }

    // ---- Flat pictures ----

    #[test]
    fn a_picture_keeps_to_a_homography() {
        let picture = frontal_image();
        let mut residuals = Vec::new();
        let mut motions = Vec::new();
        let mut noise = Noise(0xf1a7);
        for mm_per_px in [0.5, 0.7, 1.0] {
            for distance in [400.0, 600.0] {
                let frontal = print(
                    &picture,
                    mm_per_px,
                    distance,
                    Pose::default(),
                    [0.0; 2],
                    &mut noise,
                    1.0,
                );
                for yaw in [-40.0, -30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0, 40.0] {
                    for pitch in [-15.0, 0.0, 15.0] {
                        for roll in [-30.0, 0.0, 30.0] {
                            let p = pose(yaw, pitch, roll);
                            let frame = print(
                                &picture,
                                mm_per_px,
                                distance,
                                p,
                                [20.0, -15.0],
                                &mut noise,
                                1.0,
                            );
                            let r = nose_residual(&frontal, &frame).expect("residual");
                            assert!(
                                r < 0.12,
                                "{mm_per_px} mm/px at {distance} mm, {yaw}/{pitch}/{roll}: {r} \
                                 ({} px between the eyes)",
                                eye_distance(&frame)
                            );
                            residuals.push(r);
                            if yaw.abs() >= 40.0 {
                                motions.push(planar_motion(&frontal, &frame).expect("motion"));
                            }
                        }
                    }
                }
            }
        }
        eprintln!(
            "picture (yaw 0-40, pitch 0-15, roll 0-30, 1 px jitter): residual {:?}, motion at 40 deg {:?}",
            range(&residuals),
            range(&motions)
        );
    }

    #[test]
    fn a_moving_picture_is_called_flat_and_never_passes() {
        let policy = LivenessPolicy::default();
        let picture = frontal_image();
        let mut flat = Vec::new();
        for seed in 1..=20u64 {
            let mut noise = Noise(seed);
            for (prompt, side) in [(Turn::Left, 1.0), (Turn::Right, -1.0)] {
                // Tilted about its vertical axis like a turning head; tilted and rolled so that
                // the shear makes its nose seem to turn the prompted way (yaw past min_turn, no
                // parallax); tilted and rolled the other way.
                let sequences: [Box<dyn Fn(f64) -> Pose>; 3] = [
                    Box::new(|t| pose(side * 45.0 * t, 5.0 * t, 0.0)),
                    Box::new(|t| pose(side * 40.0 * t, -10.0 * t, -side * 30.0 * t)),
                    Box::new(|t| pose(side * 35.0 * t, 15.0 * t, side * 30.0 * t)),
                ];
                for (k, sequence) in sequences.iter().enumerate() {
                    let frontal = print(
                        &picture,
                        0.6,
                        500.0,
                        Pose::default(),
                        [0.0; 2],
                        &mut noise,
                        1.0,
                    );
                    assert!(policy.frontal_ok(&frontal));
                    let mut tracker = LivenessTracker::new(policy, prompt, frontal);
                    let mut last = tracker.state();
                    for i in 1..=30 {
                        let t = f64::from(i.min(20)) / 20.0;
                        let shift = [30.0 * t, -10.0 * t];
                        let frame = print(
                            &picture,
                            0.6,
                            500.0 - 100.0 * t,
                            sequence(t),
                            shift,
                            &mut noise,
                            1.0,
                        );
                        let j = judge_frame(&policy, prompt, &frontal, &frame);
                        assert!(!j.parallax, "{seed} {k} {i}: {j:?}");
                        if k == 1 && i >= 20 {
                            assert!(j.turned && j.moved_flat, "{seed} {i}: {j:?}");
                        }
                        last = tracker.observe(&frame);
                        assert!(!matches!(last, LivenessState::Passed { .. }));
                    }
                    match last {
                        LivenessState::Flat { residual } => flat.push(residual),
                        other => panic!("{seed} {prompt:?} sequence {k}: {other:?}"),
                    }
                }
            }
        }
        eprintln!(
            "moving pictures called flat with median residuals {:?}",
            range(&flat)
        );
    }

    #[test]
    fn a_still_face_or_picture_stays_waiting() {
        let policy = LivenessPolicy::default();
        // Landmark noise alone, down to 40 px between the eyes (the quality gate is 30).
        let (mut residuals, mut motions, mut yaws) = (Vec::new(), Vec::new(), Vec::new());
        let mut noise = Noise(7);
        for mm_per_px in [0.4, 0.6, 1.0] {
            let first = print(
                &frontal_image(),
                mm_per_px,
                600.0,
                Pose::default(),
                [0.0; 2],
                &mut noise,
                1.0,
            );
            assert!(eye_distance(&first) > 40.0);
            for _ in 0..500 {
                let frame = print(
                    &frontal_image(),
                    mm_per_px,
                    600.0,
                    Pose::default(),
                    [0.0; 2],
                    &mut noise,
                    1.0,
                );
                residuals.push(nose_residual(&first, &frame).expect("residual"));
                motions.push(planar_motion(&first, &frame).expect("motion"));
                yaws.push((signed_yaw(&frame) - signed_yaw(&first)).abs());
            }
        }
        let (_, max_motion) = range(&motions);
        let (_, max_yaw) = range(&yaws);
        assert!(max_motion < 0.6 * policy.min_motion && max_yaw < 0.6 * policy.min_turn);
        eprintln!(
            "still, +-1 px jitter: residual {:?}, motion {:?}, yaw change {:?}",
            range(&residuals),
            range(&motions),
            range(&yaws)
        );
        for seed in 1..=20u64 {
            let mut noise = Noise(seed);
            let frontal = head(Pose::default(), [0.0; 2], &mut noise, 1.0);
            for prompt in [Turn::Left, Turn::Right] {
                let mut tracker = LivenessTracker::new(policy, prompt, frontal);
                for _ in 0..100 {
                    let frame = head(Pose::default(), [0.0; 2], &mut noise, 1.0);
                    let j = judge_frame(&policy, prompt, &frontal, &frame);
                    assert!(!j.turned && !j.wrong_way && !j.parallax && !j.moved_flat);
                    tracker.observe(&frame);
                }
                assert_eq!(
                    tracker.state(),
                    LivenessState::Waiting {
                        parallax_frames: 0,
                        wrong_way: false
                    }
                );
                // A picture moved only in the image plane (shifted, rotated, nearer): no
                // evidence either way.
                let mut tracker = LivenessTracker::new(policy, prompt, frontal);
                for i in 0..60 {
                    let t = f64::from(i) / 60.0;
                    let frame = head(
                        pose(0.0, 0.0, 20.0 * t),
                        [40.0 * t, 10.0 * t],
                        &mut noise,
                        1.0,
                    );
                    tracker.observe(&frame);
                }
                assert!(!tracker.state().is_final(), "{:?}", tracker.state());
            }
        }
    }

    // ---- The tracker's bookkeeping ----

    #[test]
    fn parallax_from_a_nodding_or_wrong_way_head_does_not_count() {
        let policy = LivenessPolicy::default();
        let frontal = frontal_image();
        // Nodding shows parallax (vertically) but is no turn.
        let nod = head(pose(0.0, 30.0, 0.0), [0.0; 2], &mut Noise(1), 0.0);
        let j = judge_frame(&policy, Turn::Left, &frontal, &nod);
        assert!(j.residual.expect("residual") >= 0.12 && !j.turned && !j.parallax && !j.moved_flat);
        // A wrong-way turn: parallax, but not in the prompted direction.
        let right = head(pose(-30.0, 0.0, 0.0), [0.0; 2], &mut Noise(1), 0.0);
        let j = judge_frame(&policy, Turn::Left, &frontal, &right);
        assert!(j.wrong_way && !j.turned && !j.parallax && !j.moved_flat);
        let mut tracker = LivenessTracker::new(policy, Turn::Left, frontal);
        for _ in 0..10 {
            tracker.observe(&nod);
            tracker.observe(&right);
        }
        assert_eq!(
            tracker.state(),
            LivenessState::Waiting {
                parallax_frames: 0,
                wrong_way: true
            }
        );
        // Once it has shown parallax it is never called flat.
        let left = head(pose(30.0, 0.0, 0.0), [0.0; 2], &mut Noise(1), 0.0);
        let flat = print(
            &frontal,
            1.0,
            600.0,
            pose(45.0, 0.0, 0.0),
            [0.0; 2],
            &mut Noise(1),
            0.0,
        );
        assert!(judge_frame(&policy, Turn::Left, &frontal, &flat).moved_flat);
        let mut tracker = LivenessTracker::new(policy, Turn::Left, frontal);
        tracker.observe(&left);
        for _ in 0..10 {
            tracker.observe(&flat);
        }
        assert_eq!(
            tracker.state(),
            LivenessState::Waiting {
                parallax_frames: 0,
                wrong_way: false
            }
        );
        // Parallax frames must be consecutive; the median of the run is reported.
        let more = head(pose(25.0, 0.0, 0.0), [0.0; 2], &mut Noise(1), 0.0);
        let most = head(pose(35.0, 0.0, 0.0), [0.0; 2], &mut Noise(1), 0.0);
        assert!(!tracker.observe(&more).is_final());
        assert_eq!(
            tracker.observe(&frontal),
            LivenessState::Waiting {
                parallax_frames: 0,
                wrong_way: false
            }
        );
        tracker.observe(&most);
        tracker.observe(&left);
        let state = tracker.observe(&more);
        let middle = nose_residual(&frontal, &left).expect("residual");
        assert_eq!(state, LivenessState::Passed { residual: middle });
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [0.3, 0.1, 0.2]), 0.2);
        assert_eq!(median(&mut [0.4, 0.1, 0.2, 0.3]), 0.25);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn codes_serde_and_debug() {
        assert_eq!(Turn::from_random_bit(true), Turn::Left);
        assert_eq!(Turn::from_random_bit(false), Turn::Right);
        for t in [Turn::Left, Turn::Right] {
            let json = serde_json::to_string(&t).expect("json");
            assert_eq!(json, format!("\"{}\"", t.code()));
            assert_eq!(serde_json::from_str::<Turn>(&json).expect("parse"), t);
        }
        let waiting = LivenessState::Waiting {
            parallax_frames: 2,
            wrong_way: true,
        };
        assert_eq!(
            serde_json::to_string(&waiting).expect("json"),
            r#"{"state":"waiting","parallax_frames":2,"wrong_way":true}"#
        );
        assert_eq!(
            serde_json::to_string(&LivenessState::Passed { residual: 0.25 }).expect("json"),
            r#"{"state":"passed","residual":0.25}"#
        );
        assert_eq!(
            serde_json::to_string(&LivenessState::Flat { residual: 0.5 }).expect("json"),
            r#"{"state":"flat","residual":0.5}"#
        );
        let frontal: Landmarks = [
            [200.125, 180.5],
            [262.25, 180.75],
            [231.375, 215.5],
            [208.625, 250.25],
            [255.875, 250.125],
        ];
        let mut tracker = LivenessTracker::new(LivenessPolicy::default(), Turn::Left, frontal);
        tracker.observe(&frontal);
        let debug = format!("{tracker:?}");
        assert!(
            debug.contains("Left") && debug.contains("waiting"),
            "{debug}"
        );
        for digits in ["200", "180", "262", "231", "215", "208", "250", "255"] {
            assert!(!debug.contains(digits), "{debug}");
        }
    }
}
