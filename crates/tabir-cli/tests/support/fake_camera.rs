//! A fake camera for the browser tests: Y4M (YUV4MPEG2) files made from the fixture photos, for
//! Chromium's `--use-fake-device-for-media-stream --use-file-for-fake-video-capture=FILE.y4m`
//! (Chromium plays the file in a loop), and a reader that turns such a file back into RGB
//! frames.
//!
//! Every file is 640x480, 4:2:0 (`C420jpeg`: full-range BT.601, chroma averaged over 2x2
//! blocks). The photo is scaled and placed so that the frontal face has an eye distance of
//! about [`EYE_DISTANCE_PX`] and sits in the middle; outside the photo the frame is mid-grey.
//!
//! SYNTHETIC MOTION. The fixtures are still photos: no real video of anyone turning their head
//! exists here. [`Motion::TurningHead`] treats the photo as a surface with depth (a broad
//! cylinder-like bulge over the head plus a nose bump at the detected nose tip, see `Head`)
//! and renders it rotated about a vertical axis. It reproduces what active liveness measures
//! (the nose tip leaving the homography of the eyes and mouth corners: parallax) and the face
//! YuNet sees turning, not what a real turning head looks like in detail.
//!
//! Frontal first. The counter starts a challenge only on a frontal face (`signed_yaw` within
//! `LivenessPolicy::max_frontal_yaw`, 0.08), and the fixtures are not all frontal (obama2 looks
//! to his right, `signed_yaw` -0.18; biden to his left, +0.13). Every motion therefore starts
//! from the photo frontalised by the same synthetic rotation, by the smallest yaw that brings
//! `signed_yaw` within [`FRONTAL_YAW`] (each degree costs the face some likeness to other
//! photos of the same person). That frontal picture is what [`Motion::Still`] shows and what
//! [`Motion::TiltedPrint`] moves as a rigid plane (the print attack liveness must refuse).
//! For such a photo, the turn away from its own pose is the mirror image of the turn toward
//! it (see `Scene::turned_yuv`): the side the photo shows foreshortened cannot be turned
//! toward the camera without smearing it.
//!
//! Both moving motions loop within the file (a whole number of loops of 4 to 8 s, at least
//! one), so that Chromium's looping shows no jump. Making a photo's scene runs the detector
//! about a dozen times; scenes are kept per photo path for the life of the process.

// Test files include this either as `support::fake_camera` or on its own with
// `#[path = "support/fake_camera.rs"] mod fake_camera;`, some both ways.
#![allow(dead_code)]

use image::RgbImage;
use rayon::prelude::*;
use std::collections::HashMap;
use std::f32::consts::PI;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tabir_face::liveness::signed_yaw;
use tabir_face::{FacePipeline, PipelineConfig};

pub const WIDTH: usize = 640;
pub const HEIGHT: usize = 480;
/// The face's eye distance in the photo as scaled into the frame, in pixels.
pub const EYE_DISTANCE_PX: f32 = 80.0;
/// How far the synthetic head turns each way from frontal, in degrees.
pub const TURN_DEGREES: f32 = 34.0;
/// Largest yaw of the tilted print, in degrees.
pub const PRINT_YAW_DEGREES: f32 = 35.0;
/// Largest pitch of the tilted print, in degrees.
pub const PRINT_PITCH_DEGREES: f32 = 10.0;
/// The tilted print's pinhole camera: focal length in pixels.
pub const FOCAL_PX: f32 = 800.0;
/// One loop of a moving motion lasts about this long (stretched so that the file holds a whole
/// number of loops).
pub const LOOP_SECONDS: f32 = 4.0;

const GREY: u8 = 128;
const FRAME_BYTES: usize = WIDTH * HEIGHT * 3 / 2;
/// Frames rendered at once (in parallel) before they are written.
const BATCH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Motion {
    /// The face as a head turning: frontal, then turning to the recipient's left, back, to the
    /// right, back (synthetic depth: see the module's documentation), looping.
    TurningHead,
    /// As [`Motion::TurningHead`], turning to the recipient's own left only (frontal, turn,
    /// hold, back, frontal again), looping: follows a prompt to the left.
    TurningLeft,
    /// The same to the recipient's right only.
    TurningRight,
    /// The photo held still (a print or a screen that does not move).
    Still,
    /// A print held up and moved: the photo plane tilted and rotated (perspective warps, yaw up
    /// to ±35 deg, pitch ±10), looping.
    TiltedPrint,
}

/// Write a Y4M (YUV4MPEG2, 4:2:0, 640x480, `fps` frames a second, `seconds` long) of `photo`
/// moving as `motion`. Returns the number of frames.
pub fn write_y4m(
    photo: &Path,
    motion: Motion,
    out: &Path,
    fps: u32,
    seconds: f32,
) -> io::Result<usize> {
    if fps == 0 || !(seconds > 0.0 && seconds.is_finite()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fps and seconds must be positive",
        ));
    }
    let scene = scene(photo)?;
    let frames = frame_count(fps, seconds);
    let loops = loop_count(seconds);
    let mut file = BufWriter::new(std::fs::File::create(out)?);
    file.write_all(format!("YUV4MPEG2 W{WIDTH} H{HEIGHT} F{fps}:1 Ip A1:1 C420jpeg\n").as_bytes())?;
    let mut start = 0;
    while start < frames {
        let end = (start + BATCH).min(frames);
        let batch: Vec<Vec<u8>> = (start..end)
            .into_par_iter()
            .map(|i| {
                let phase = phase(i, frames, loops);
                match motion {
                    Motion::Still => scene.frontal_yuv.clone(),
                    Motion::TurningHead | Motion::TurningLeft | Motion::TurningRight => {
                        let yaw = motion_yaw_degrees(motion, phase);
                        if yaw == 0.0 {
                            scene.frontal_yuv.clone()
                        } else {
                            scene.turned_yuv(yaw.to_radians())
                        }
                    }
                    Motion::TiltedPrint => to_yuv420(&scene.tilted_print(&print_pose(phase))),
                }
            })
            .collect();
        for frame in &batch {
            file.write_all(b"FRAME\n")?;
            file.write_all(frame)?;
        }
        start = end;
    }
    file.flush()?;
    Ok(frames)
}

/// The yaw (degrees) each frame of `motion` is rendered at, in the order written: the
/// synthetic head's turn from frontal (> 0: to the recipient's own left, the nose moving toward
/// the image's right), the print plane's yaw, or 0 for a still photo.
pub fn frame_yaws(motion: Motion, fps: u32, seconds: f32) -> Vec<f32> {
    let frames = frame_count(fps, seconds);
    let loops = loop_count(seconds);
    (0..frames)
        .map(|i| {
            let phase = phase(i, frames, loops);
            match motion {
                Motion::Still => 0.0,
                Motion::TurningHead | Motion::TurningLeft | Motion::TurningRight => {
                    motion_yaw_degrees(motion, phase)
                }
                Motion::TiltedPrint => print_pose(phase).yaw.to_degrees(),
            }
        })
        .collect()
}

fn frame_count(fps: u32, seconds: f32) -> usize {
    ((fps as f32 * seconds).round() as usize).max(1)
}

fn loop_count(seconds: f32) -> usize {
    ((seconds / LOOP_SECONDS).floor() as usize).max(1)
}

/// Where frame `i` of `frames` falls within its loop, 0..1.
fn phase(i: usize, frames: usize, loops: usize) -> f32 {
    ((i * loops) % frames) as f32 / frames as f32
}

/// The synthetic head's yaw (degrees) for a turning motion at `phase`: the one-way motions
/// keep one side of [`turning_yaw_degrees`] and stay frontal through the other.
fn motion_yaw_degrees(motion: Motion, phase: f32) -> f32 {
    let yaw = turning_yaw_degrees(phase);
    match motion {
        Motion::TurningLeft => yaw.max(0.0),
        Motion::TurningRight => yaw.min(0.0),
        _ => yaw,
    }
}

/// The synthetic head's yaw from frontal (degrees) at `phase` (0..1) of a loop. Over a 4 s
/// loop: frontal for 1 s, ease to +TURN (0.55 s), hold 0.4 s, ease back to 0 (0.55 s), ease to
/// -TURN, hold 0.4 s, ease back.
pub fn turning_yaw_degrees(phase: f32) -> f32 {
    const HOLD_FRONTAL: f32 = 1.0;
    const EASE: f32 = 0.55;
    const HOLD_TURNED: f32 = 0.4;
    // The segments add up to LOOP_SECONDS.
    let mut t = phase.rem_euclid(1.0) * LOOP_SECONDS;
    let ease = |s: f32| (1.0 - (PI * s / EASE).cos()) / 2.0;
    if t < HOLD_FRONTAL {
        return 0.0;
    }
    t -= HOLD_FRONTAL;
    for sign in [1.0, -1.0] {
        if t < EASE {
            return sign * TURN_DEGREES * ease(t);
        }
        t -= EASE;
        if t < HOLD_TURNED {
            return sign * TURN_DEGREES;
        }
        t -= HOLD_TURNED;
        if t < EASE {
            return sign * TURN_DEGREES * (1.0 - ease(t));
        }
        t -= EASE;
    }
    0.0
}

/// The print's pose: rotations in radians, translation in pixels.
#[derive(Clone, Copy, Debug)]
struct PrintPose {
    yaw: f32,
    pitch: f32,
    roll: f32,
    scale: f32,
    tx: f32,
    ty: f32,
}

/// A print waved about: every component is a whole harmonic of the loop, so it loops.
fn print_pose(phase: f32) -> PrintPose {
    let w = 2.0 * PI * phase;
    PrintPose {
        yaw: PRINT_YAW_DEGREES.to_radians() * w.sin(),
        pitch: PRINT_PITCH_DEGREES.to_radians() * (2.0 * w + 0.7).sin(),
        roll: 6f32.to_radians() * (w + 1.3).sin(),
        scale: 1.0 + 0.06 * (2.0 * w).sin(),
        tx: 20.0 * (w + 0.4).sin(),
        ty: 12.0 * (2.0 * w + 1.9).sin(),
    }
}

/// The synthetic head's shape, in eye distances (see [`Head`]).
#[derive(Clone, Copy, Debug)]
struct HeadShape {
    /// Half width and half height of the head's ellipse (ears and hair included), and how far
    /// its centre is below the eyes.
    half_width: f32,
    half_height: f32,
    centre_below_eyes: f32,
    /// Height of the broad bulge over the head.
    bulge: f32,
    /// The nose bump: its height at the tip, and its half widths across, up the ridge toward
    /// the eyes, and down toward the lip.
    nose: f32,
    nose_across: f32,
    nose_up: f32,
    nose_down: f32,
    /// The mask that blends the rotated head into the still background fades to 0 over this
    /// fraction of the ellipse's radius beyond its edge.
    fade: f32,
    /// How far the head's axis is from the features' middle, per unit of the photo's
    /// `signed_yaw` (eye distances).
    axis_offset: f32,
}

const SHAPE: HeadShape = HeadShape {
    half_width: 1.5,
    half_height: 1.9,
    centre_below_eyes: 0.35,
    bulge: 1.2,
    nose: 0.4,
    nose_across: 0.3,
    nose_up: 0.55,
    nose_down: 0.25,
    fade: 0.5,
    axis_offset: 2.0,
};

/// A quarter cosine: 1 at 0, falling to 0 at |t| = 1, 0 beyond.
fn dome(t: f32) -> f32 {
    if t.abs() < 1.0 {
        (0.5 * PI * t).cos()
    } else {
        0.0
    }
}

/// The synthetic head: its depth map and blend mask over the box of the frame it may change,
/// computed once from the photo's landmarks.
///
/// Depth z(x, y) (toward the camera, in pixels) is a broad bulge, a quarter cosine across the
/// head's width and height (cylinder-like, 1.2 eye distances high), plus a nose bump 0.4 eye
/// distances high: flat-topped across (a super-Gaussian, so that the whole nose moves, not
/// just its middle) and Gaussian along the nose, centred on the nose tip landmark. Rotating
/// that surface by `yaw` about the vertical axis x = cx (orthographic) moves each point to
///     x_out = cx + (x - cx)·cos(yaw) + z(x, y)·sin(yaw),   y_out = y,
/// and a mask that is 1 over the head and fades to 0 around it blends that motion into the
/// still background (body and background stay put). The axis is the middle of the eyes and
/// mouth corners for a frontal photo, and off it, behind the face, for a turned one.
struct Head {
    /// The box [x0, x1) x [y0, y1) outside which nothing moves.
    x0: usize,
    x1: usize,
    y0: usize,
    y1: usize,
    cx: f32,
    /// Per pixel of the box, row by row: the mask (0..1), and the bulge's and the nose bump's
    /// depths times the mask.
    mask: Vec<f32>,
    depth: Vec<f32>,
    nose: Vec<f32>,
}

impl Head {
    fn new(landmarks: &[[f32; 2]; 5], eye_distance: f32, shape: &HeadShape) -> Self {
        let e = eye_distance;
        let [right_eye, left_eye, nose, right_mouth, left_mouth] = *landmarks;
        // The vertical axis: through the middle of the eyes and mouth corners when the face is
        // frontal; a face already turned in the photo has its features off the head's axis,
        // toward the side it looks to.
        let features = (right_eye[0] + left_eye[0] + right_mouth[0] + left_mouth[0]) / 4.0;
        let turned = signed_yaw(landmarks);
        let turned = if turned.is_finite() { turned } else { 0.0 };
        let cx = features - shape.axis_offset * turned * e;
        let cy = (right_eye[1] + left_eye[1]) / 2.0 + shape.centre_below_eyes * e;
        let (half_w, half_h) = (shape.half_width * e, shape.half_height * e);
        let reach = 1.0 + shape.fade;
        let x0 = (cx - half_w * reach).floor().clamp(0.0, WIDTH as f32) as usize;
        let x1 = ((cx + half_w * reach).ceil() + 1.0).clamp(0.0, WIDTH as f32) as usize;
        let y0 = (cy - half_h * reach).floor().clamp(0.0, HEIGHT as f32) as usize;
        let y1 = ((cy + half_h * reach).ceil() + 1.0).clamp(0.0, HEIGHT as f32) as usize;
        let (bw, bh) = (x1.saturating_sub(x0), y1.saturating_sub(y0));
        let mut mask = vec![0f32; bw * bh];
        let mut depth = vec![0f32; bw * bh];
        let mut nose_depth = vec![0f32; bw * bh];
        for row in 0..bh {
            let y = (y0 + row) as f32;
            let v = (y - cy) / half_h;
            let bulge_v = dome(v);
            let dy = y - nose[1];
            let along = if dy < 0.0 {
                dy / (shape.nose_up * e)
            } else {
                dy / (shape.nose_down * e)
            };
            let nose_v = shape.nose * e * (-0.5 * along * along).exp();
            for col in 0..bw {
                let x = (x0 + col) as f32;
                let u = (x - cx) / half_w;
                let r = (u * u + v * v).sqrt();
                let m = if r <= 1.0 {
                    1.0
                } else if r >= reach {
                    0.0
                } else {
                    let s = 1.0 - (r - 1.0) / shape.fade;
                    s * s * (3.0 - 2.0 * s)
                };
                let bulge = shape.bulge * e * dome(u) * bulge_v;
                let across = (x - nose[0]) / (shape.nose_across * e);
                let across2 = across * across;
                let bump = nose_v * (-0.5 * across2 * across2).exp();
                mask[row * bw + col] = m;
                depth[row * bw + col] = m * bulge;
                nose_depth[row * bw + col] = m * bump;
            }
        }
        Self {
            x0,
            x1,
            y0,
            y1,
            cx,
            mask,
            depth,
            nose: nose_depth,
        }
    }

    /// `source` (RGB, WIDTH x HEIGHT) with the head turned by `head_yaw` radians (> 0: to
    /// the recipient's own left) and the nose bump by `nose_yaw`.
    ///
    /// The photo's own nose already shows the photo's pose: the bump stands for the nose's
    /// parallax in the turns away from the frontal pose only, so frontalising a photo turns
    /// the head alone (the least change to the face) and a turn from frontal by `t` is
    /// `warp(source, frontal + t, t)`.
    ///
    /// Rows are independent: each row's forward map is rasterised segment by segment into the
    /// output row through a depth buffer (the exact inverse of the forward map, occlusion
    /// included), sampling the source row linearly.
    fn warp(&self, source: &[u8], head_yaw: f32, nose_yaw: f32) -> Vec<u8> {
        // The loops below are written for unoptimised test builds: slices rather than Vecs,
        // `while` rather than ranges, channels unrolled.
        let mut frame = source.to_vec();
        let bw = self.x1 - self.x0;
        if bw < 2 {
            return frame;
        }
        let (sin, cos) = head_yaw.sin_cos();
        let nose_sin = nose_yaw.sin();
        let (mask, depth, nose): (&[f32], &[f32], &[f32]) = (&self.mask, &self.depth, &self.nose);
        let mut mapped_row = vec![0f32; bw];
        let mut near_row = vec![0f32; bw];
        let mut zbuf_row = vec![0f32; bw];
        let mapped: &mut [f32] = &mut mapped_row;
        let near: &mut [f32] = &mut near_row;
        let zbuf: &mut [f32] = &mut zbuf_row;
        let out_frame: &mut [u8] = &mut frame;
        let last_col = (bw - 1) as f32;
        let mut y = self.y0;
        while y < self.y1 {
            let row = (y - self.y0) * bw;
            let mut moving = false;
            let mut col = 0;
            while col < bw {
                let m = mask[row + col];
                let (bulge, bump) = (depth[row + col], nose[row + col]);
                let dx = (self.x0 + col) as f32 - self.cx;
                // Position in the box after the turn, and nearness to the camera.
                mapped[col] = col as f32 + m * dx * (cos - 1.0) + bulge * sin + bump * nose_sin;
                near[col] = (bulge + bump) * cos - m * dx * sin;
                moving |= m > 0.0;
                zbuf[col] = f32::NEG_INFINITY;
                col += 1;
            }
            if moving {
                let line = y * WIDTH * 3 + self.x0 * 3;
                let src = &source[line..line + bw * 3];
                let out = &mut out_frame[line..line + bw * 3];
                let mut col = 0;
                while col + 1 < bw {
                    let (a, b) = (mapped[col], mapped[col + 1]);
                    // b <= a: facing away after the turn, hidden.
                    if b > a {
                        let span = 1.0 / (b - a);
                        let last = b.min(last_col);
                        let mut o = a.ceil().max(0.0);
                        while o <= last {
                            let t = (o - a) * span;
                            let d = near[col] + (near[col + 1] - near[col]) * t;
                            let at = o as usize;
                            if d > zbuf[at] {
                                zbuf[at] = d;
                                let (p, q) = (col * 3, at * 3);
                                let (r0, g0, b0) =
                                    (src[p] as f32, src[p + 1] as f32, src[p + 2] as f32);
                                let (r1, g1, b1) =
                                    (src[p + 3] as f32, src[p + 4] as f32, src[p + 5] as f32);
                                out[q] = (r0 + (r1 - r0) * t + 0.5) as u8;
                                out[q + 1] = (g0 + (g1 - g0) * t + 0.5) as u8;
                                out[q + 2] = (b0 + (b1 - b0) * t + 0.5) as u8;
                            }
                            o += 1.0;
                        }
                    }
                    col += 1;
                }
            }
            y += 1;
        }
        frame
    }
}

/// The photo scaled for the frame and frontalised, and its synthetic head.
struct Scene {
    /// The photo scaled and placed in the frame, grey around it (RGB, WIDTH x HEIGHT).
    at_rest: Vec<u8>,
    /// The photo's synthetic head.
    head: Head,
    /// The head yaw (radians) that makes the photo frontal, the frontal frame it gives, and
    /// that in 4:2:0.
    frontal_yaw: f32,
    frontal: Vec<u8>,
    frontal_yuv: Vec<u8>,
    /// The scaled photo with its face frontalised: the print of TiltedPrint (RGB).
    print: Vec<u8>,
    print_w: usize,
    print_h: usize,
    /// Frame coordinates = print coordinates + offset (whole pixels).
    offset: [i64; 2],
}

fn detector() -> io::Result<&'static FacePipeline> {
    static PIPELINE: OnceLock<Result<FacePipeline, String>> = OnceLock::new();
    PIPELINE
        .get_or_init(|| FacePipeline::load(&PipelineConfig::default()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| io::Error::other(format!("the face detector does not load: {e}")))
}

/// The largest face's landmarks in an RGB frame (WIDTH x HEIGHT).
fn frame_landmarks(frame: &[u8]) -> io::Result<Option<[[f32; 2]; 5]>> {
    let image = RgbImage::from_raw(WIDTH as u32, HEIGHT as u32, frame.to_vec())
        .ok_or_else(|| io::Error::other("frame size"))?;
    let faces = detector()?
        .detect(&image)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(faces
        .into_iter()
        .max_by(|a, b| a.eye_distance().total_cmp(&b.eye_distance()))
        .map(|face| face.landmarks))
}

/// Scenes already made, by photo path: making one runs the detector a dozen times.
fn scene(path: &Path) -> io::Result<Arc<Scene>> {
    static SCENES: OnceLock<Mutex<HashMap<PathBuf, Arc<Scene>>>> = OnceLock::new();
    let key = path.canonicalize()?;
    let scenes = SCENES.get_or_init(Mutex::default);
    if let Some(scene) = scenes.lock().ok().and_then(|s| s.get(&key).cloned()) {
        return Ok(scene);
    }
    let scene = Arc::new(Scene::load(path)?);
    if let Ok(mut scenes) = scenes.lock() {
        scenes.insert(key, Arc::clone(&scene));
    }
    Ok(scene)
}

/// The photo's face as found at rest and frontalised, for placing it again.
struct Framing {
    /// The frontal face's eye distance and the centre of its landmarks (frame pixels).
    eye_distance: f32,
    centre: [f32; 2],
    /// The yaw (radians) that frontalised it.
    yaw: f32,
}

impl Scene {
    fn load(path: &Path) -> io::Result<Self> {
        let invalid = |e: tabir_face::FaceError| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        };
        let bytes = tabir_face::image_io::read_photo(path).map_err(invalid)?;
        let rgb = tabir_face::image_io::decode_photo(&bytes).map_err(invalid)?;
        let face = detector()?
            .detect(&rgb)
            .map_err(invalid)?
            .into_iter()
            .max_by(|a, b| a.eye_distance().total_cmp(&b.eye_distance()))
            .ok_or_else(|| invalid(tabir_face::FaceError::NoFace))?;
        // The centre of the five landmarks, in photo pixels.
        let mut centre = [0f32; 2];
        for p in &face.landmarks {
            centre[0] += p[0] / 5.0;
            centre[1] += p[1] / 5.0;
        }
        let frame_centre = [WIDTH as f32 / 2.0, HEIGHT as f32 / 2.0];
        let scale = EYE_DISTANCE_PX / face.eye_distance();
        let (scene, framing) = Self::build(&rgb, &face.landmarks, scale, centre, None)?;
        let Some(framing) = framing else {
            return Ok(scene);
        };
        // Frontalising moved the face and changed its eye distance: place the photo again so
        // that the frontal face has EYE_DISTANCE_PX between the eyes and sits in the middle.
        let zoom = EYE_DISTANCE_PX / framing.eye_distance;
        let moved = [
            (framing.centre[0] - frame_centre[0]) / scale,
            (framing.centre[1] - frame_centre[1]) / scale,
        ];
        let centre = [centre[0] + moved[0], centre[1] + moved[1]];
        let (scene, _) = Self::build(
            &rgb,
            &face.landmarks,
            scale * zoom,
            centre,
            Some(framing.yaw),
        )?;
        Ok(scene)
    }

    /// The scene with the photo scaled by `scale` and its point `centre` (photo pixels) at the
    /// middle of the frame, frontalised (starting from the yaw `hint` when given), and how the
    /// frontal face came out (`None` when no face was found in the frame).
    fn build(
        rgb: &RgbImage,
        photo_landmarks: &[[f32; 2]; 5],
        scale: f32,
        centre: [f32; 2],
        hint: Option<f32>,
    ) -> io::Result<(Self, Option<Framing>)> {
        let print_w = ((rgb.width() as f32 * scale).round() as u32).max(1);
        let print_h = ((rgb.height() as f32 * scale).round() as u32).max(1);
        let scaled =
            image::imageops::resize(rgb, print_w, print_h, image::imageops::FilterType::Triangle);
        let (print_w, print_h) = (print_w as usize, print_h as usize);
        let offset = [
            (WIDTH as f32 / 2.0 - centre[0] * scale).round() as i64,
            (HEIGHT as f32 / 2.0 - centre[1] * scale).round() as i64,
        ];
        let landmarks = photo_landmarks
            .map(|[x, y]| [x * scale + offset[0] as f32, y * scale + offset[1] as f32]);
        let eye_distance =
            (landmarks[1][0] - landmarks[0][0]).hypot(landmarks[1][1] - landmarks[0][1]);
        let mut print = scaled.into_raw();
        let at_rest = place(&print, print_w, print_h, offset);
        let head = Head::new(&landmarks, eye_distance, &SHAPE);
        let (frontal_yaw, frontal_face) = frontalise(&at_rest, &head, hint)?;
        let frontal = head.warp(&at_rest, frontal_yaw, 0.0);
        // The frontalised face goes into the print too (where the photo is).
        let x0 = offset[0].max(0);
        let x1 = (offset[0] + print_w as i64).min(WIDTH as i64);
        for y in 0..HEIGHT {
            let py = y as i64 - offset[1];
            if x0 >= x1 || py < 0 || py >= print_h as i64 {
                continue;
            }
            let to = (py as usize * print_w + (x0 - offset[0]) as usize) * 3;
            let from = (y * WIDTH + x0 as usize) * 3;
            let len = (x1 - x0) as usize * 3;
            print[to..to + len].copy_from_slice(&frontal[from..from + len]);
        }
        let framing = frontal_face.map(|landmarks| {
            let mut centre = [0f32; 2];
            for p in &landmarks {
                centre[0] += p[0] / 5.0;
                centre[1] += p[1] / 5.0;
            }
            Framing {
                eye_distance: (landmarks[1][0] - landmarks[0][0])
                    .hypot(landmarks[1][1] - landmarks[0][1]),
                centre,
                yaw: frontal_yaw,
            }
        });
        let scene = Self {
            at_rest,
            head,
            frontal_yaw,
            frontal_yuv: to_yuv420(&frontal),
            frontal,
            print,
            print_w,
            print_h,
            offset,
        };
        Ok((scene, framing))
    }

    /// The head turned by `yaw` radians from frontal, in 4:2:0.
    ///
    /// A photo whose head was turned has one side of the face foreshortened: turning it on
    /// past frontal, away from its own pose, would stretch that side into a smear. That side
    /// of the turn is therefore the mirror image of the other (faces are nearly symmetric): a
    /// turn by `yaw` away from the photo's pose is the whole frame of the turn by `-yaw`,
    /// mirrored. Toward its own pose the photo is rendered as it is, in one warp from the
    /// photo (only the head's box is converted again).
    fn turned_yuv(&self, yaw: f32) -> Vec<u8> {
        if self.frontal_yaw != 0.0 && yaw.signum() == self.frontal_yaw.signum() {
            return mirrored_yuv(&self.turned_yuv(-yaw));
        }
        let frame = self.head.warp(&self.at_rest, self.frontal_yaw + yaw, yaw);
        let mut yuv = self.frontal_yuv.clone();
        let h = &self.head;
        yuv420_region(
            &frame,
            &mut yuv,
            [h.x0 / 2, h.x1.div_ceil(2).min(WIDTH / 2)],
            [h.y0 / 2, h.y1.div_ceil(2).min(HEIGHT / 2)],
        );
        yuv
    }

    /// The print as a rigid plane in 3D: scaled, rotated (pitch about x, yaw about y, then
    /// roll about the optical axis) about the frame centre (the face), shifted, and seen by a
    /// pinhole camera of focal length FOCAL_PX placed so that the plane at rest maps onto the
    /// frame unchanged. Each output pixel is mapped back through the inverse homography and
    /// sampled bilinearly; grey outside the print.
    fn tilted_print(&self, pose: &PrintPose) -> Vec<u8> {
        // Written for unoptimised test builds: slices, `while`, channels unrolled.
        let mut frame = vec![GREY; WIDTH * HEIGHT * 3];
        let Some(inv) = invert3(&print_homography(pose)) else {
            return frame;
        };
        // Plane coordinates are relative to the frame centre; print pixels are offset.
        let cx = WIDTH as f32 / 2.0 - self.offset[0] as f32;
        let cy = HEIGHT as f32 / 2.0 - self.offset[1] as f32;
        let (pw, ph) = (self.print_w as f32, self.print_h as f32);
        let stride = self.print_w * 3;
        let print: &[u8] = &self.print;
        let out: &mut [u8] = &mut frame;
        let mut y = 0;
        while y < HEIGHT {
            let yf = y as f32;
            let mut nx = inv[0][1] * yf + inv[0][2];
            let mut ny = inv[1][1] * yf + inv[1][2];
            let mut w = inv[2][1] * yf + inv[2][2];
            let mut q = y * WIDTH * 3;
            let end = q + WIDTH * 3;
            while q < end {
                let sx = nx / w + cx;
                let sy = ny / w + cy;
                if w > 0.0 && sx > -1.0 && sy > -1.0 && sx < pw && sy < ph {
                    let (fx, fy) = (sx.floor(), sy.floor());
                    let (ax, ay) = (sx - fx, sy - fy);
                    if fx >= 0.0 && fy >= 0.0 && fx + 1.0 < pw && fy + 1.0 < ph {
                        let at = fy as usize * stride + fx as usize * 3;
                        let below = at + stride;
                        let (w00, w10) = ((1.0 - ax) * (1.0 - ay), ax * (1.0 - ay));
                        let (w01, w11) = ((1.0 - ax) * ay, ax * ay);
                        out[q] = (print[at] as f32 * w00
                            + print[at + 3] as f32 * w10
                            + print[below] as f32 * w01
                            + print[below + 3] as f32 * w11
                            + 0.5) as u8;
                        out[q + 1] = (print[at + 1] as f32 * w00
                            + print[at + 4] as f32 * w10
                            + print[below + 1] as f32 * w01
                            + print[below + 4] as f32 * w11
                            + 0.5) as u8;
                        out[q + 2] = (print[at + 2] as f32 * w00
                            + print[at + 5] as f32 * w10
                            + print[below + 2] as f32 * w01
                            + print[below + 5] as f32 * w11
                            + 0.5) as u8;
                    } else {
                        // The print's edge: blend with the grey around it.
                        let fetch = |px: f32, py: f32, c: usize| -> f32 {
                            if px < 0.0 || py < 0.0 || px >= pw || py >= ph {
                                GREY as f32
                            } else {
                                print[py as usize * stride + px as usize * 3 + c] as f32
                            }
                        };
                        for c in 0..3 {
                            let top = fetch(fx, fy, c) * (1.0 - ax) + fetch(fx + 1.0, fy, c) * ax;
                            let bottom = fetch(fx, fy + 1.0, c) * (1.0 - ax)
                                + fetch(fx + 1.0, fy + 1.0, c) * ax;
                            out[q + c] = (top * (1.0 - ay) + bottom * ay + 0.5) as u8;
                        }
                    }
                }
                nx += inv[0][0];
                ny += inv[1][0];
                w += inv[2][0];
                q += 3;
            }
            y += 1;
        }
        frame
    }
}

/// The scaled photo at `offset` in a grey frame (RGB, WIDTH x HEIGHT).
fn place(photo: &[u8], photo_w: usize, photo_h: usize, offset: [i64; 2]) -> Vec<u8> {
    let mut frame = vec![GREY; WIDTH * HEIGHT * 3];
    let x0 = offset[0].max(0);
    let x1 = (offset[0] + photo_w as i64).min(WIDTH as i64);
    if x0 >= x1 {
        return frame;
    }
    for y in 0..HEIGHT {
        let py = y as i64 - offset[1];
        if py < 0 || py >= photo_h as i64 {
            continue;
        }
        let from = (py as usize * photo_w + (x0 - offset[0]) as usize) * 3;
        let to = (y * WIDTH + x0 as usize) * 3;
        let len = (x1 - x0) as usize * 3;
        frame[to..to + len].copy_from_slice(&photo[from..from + len]);
    }
    frame
}

/// How far from 0 the frontal frame's `signed_yaw` may be. The counter starts a challenge at
/// up to `LivenessPolicy::max_frontal_yaw` (0.08); every degree of synthetic turn costs the
/// face some likeness, so the photo is turned no further than needed, with a margin.
pub const FRONTAL_YAW: f32 = 0.06;

/// The smallest head yaw (radians) that brings the nose tip within FRONTAL_YAW of the eyes'
/// midline, and the frontal frame's landmarks: YuNet on the rendered frame, a scan in steps of
/// 0.1 rad toward the midline, then bisection. A `hint` (the answer for the same photo at
/// another scale) is tried first and the scan starts just short of it. When no yaw up to
/// 0.8 rad gets there, the one that came nearest.
fn frontalise(
    at_rest: &[u8],
    head: &Head,
    hint: Option<f32>,
) -> io::Result<(f32, Option<[[f32; 2]; 5]>)> {
    const STEP: f32 = 0.1;
    const LIMIT: f32 = 0.8;
    let measure = |yaw: f32| -> io::Result<Option<(f32, [[f32; 2]; 5])>> {
        let frame = if yaw == 0.0 {
            at_rest.to_vec()
        } else {
            head.warp(at_rest, yaw, 0.0)
        };
        Ok(frame_landmarks(&frame)?
            .map(|landmarks| (signed_yaw(&landmarks), landmarks))
            .filter(|(s, _)| s.is_finite()))
    };
    // Which way to turn (+yaw moves the nose toward +signed_yaw), and from where to scan.
    let (toward, mut low, mut nearest) = match hint.filter(|h| *h != 0.0) {
        Some(hint) => {
            let Some((s, landmarks)) = measure(hint)? else {
                return Ok((hint, None));
            };
            if s.abs() <= FRONTAL_YAW {
                return Ok((hint, Some(landmarks)));
            }
            // Past the midline: scan again from a step short of it; short of it: from there.
            let low = if s * hint > 0.0 {
                (hint.abs() - STEP).max(0.0)
            } else {
                hint.abs()
            };
            (hint.signum(), low, (s.abs(), hint, landmarks))
        }
        None => {
            let Some((start, landmarks)) = measure(0.0)? else {
                return Ok((0.0, None));
            };
            if start.abs() <= FRONTAL_YAW {
                return Ok((0.0, Some(landmarks)));
            }
            (-start.signum(), 0.0, (start.abs(), 0.0, landmarks))
        }
    };
    let mut found: Option<(f32, [[f32; 2]; 5])> = None;
    // Is turning by `t` toward the midline short of it (false), or there or past it (true)?
    let mut far_enough = |t: f32| -> io::Result<bool> {
        let Some((s, landmarks)) = measure(toward * t)? else {
            return Ok(true);
        };
        if s.abs() < nearest.0 {
            nearest = (s.abs(), toward * t, landmarks);
        }
        if s.abs() <= FRONTAL_YAW {
            if found.as_ref().is_none_or(|(f, _)| t < *f) {
                found = Some((t, landmarks));
            }
            return Ok(true);
        }
        // Past the midline (YuNet's nose can jump): too far.
        Ok(s * toward > 0.0)
    };
    let mut high = LIMIT;
    let mut t = low + STEP;
    while t <= LIMIT + 1e-3 {
        if far_enough(t)? {
            high = t;
            break;
        }
        low = t;
        t += STEP;
    }
    for _ in 0..3 {
        let mid = (low + high) / 2.0;
        if far_enough(mid)? {
            high = mid;
        } else {
            low = mid;
        }
    }
    Ok(match found {
        Some((t, landmarks)) => (toward * t, Some(landmarks)),
        None => (nearest.1, Some(nearest.2)),
    })
}

/// The homography from plane coordinates (pixels from the frame centre, the print at rest) to
/// frame pixels.
fn print_homography(pose: &PrintPose) -> [[f32; 3]; 3] {
    let (sp, cp) = pose.pitch.sin_cos();
    let (sy, cy) = pose.yaw.sin_cos();
    let (sr, cr) = pose.roll.sin_cos();
    let rx = [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]];
    let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
    let rz = [[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]];
    let r = mul3(&rz, &mul3(&ry, &rx));
    let f = FOCAL_PX;
    let s = pose.scale;
    let (ccx, ccy) = (WIDTH as f32 / 2.0, HEIGHT as f32 / 2.0);
    // A plane point (X, Y) sits in 3D at s·(X·r1 + Y·r2) + (tx, ty, 0), the camera at depth -f:
    // x = ccx + f·X3 / (f + Z3), y = ccy + f·Y3 / (f + Z3).
    let mut h = [[0f32; 3]; 3];
    for col in 0..2 {
        let (rx3, ry3, rz3) = (r[0][col] * s, r[1][col] * s, r[2][col] * s);
        h[0][col] = f * rx3 + ccx * rz3;
        h[1][col] = f * ry3 + ccy * rz3;
        h[2][col] = rz3;
    }
    h[0][2] = f * pose.tx + ccx * f;
    h[1][2] = f * pose.ty + ccy * f;
    h[2][2] = f;
    h
}

fn mul3(a: &[[f32; 3]; 3], b: &[[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let mut m = [[0f32; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, value) in row.iter_mut().enumerate() {
            *value = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

fn invert3(m: &[[f32; 3]; 3]) -> Option<[[f32; 3]; 3]> {
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    let det = m[0][0] * adj[0][0] + m[0][1] * adj[1][0] + m[0][2] * adj[2][0];
    if !det.is_finite() || det.abs() < 1e-12 {
        return None;
    }
    Some(adj.map(|row| row.map(|v| v / det)))
}

/// RGB (WIDTH x HEIGHT) to planar 4:2:0 YCbCr, full-range BT.601 (JPEG): Y per pixel, Cb and
/// Cr from each 2x2 block's mean colour.
fn to_yuv420(rgb: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; FRAME_BYTES];
    yuv420_region(rgb, &mut out, [0, WIDTH / 2], [0, HEIGHT / 2]);
    out
}

/// Convert the 2x2 blocks [bx0, bx1) x [by0, by1) (chroma sample coordinates) of `rgb` into
/// `yuv`, with 8.8 fixed-point BT.601 full-range weights.
fn yuv420_region(rgb: &[u8], yuv: &mut [u8], [bx0, bx1]: [usize; 2], [by0, by1]: [usize; 2]) {
    // Written for unoptimised test builds: `while`, pixels unrolled.
    let (luma, chroma) = yuv.split_at_mut(WIDTH * HEIGHT);
    let (cb, cr) = chroma.split_at_mut(WIDTH * HEIGHT / 4);
    let cw = WIDTH / 2;
    let luma_of = |r: i32, g: i32, b: i32| ((77 * r + 150 * g + 29 * b + 128) >> 8) as u8;
    let mut by = by0;
    while by < by1 {
        let mut bx = bx0;
        while bx < bx1 {
            let top = 2 * by * WIDTH + 2 * bx;
            let bottom = top + WIDTH;
            let (t, u) = (top * 3, bottom * 3);
            let (r0, g0, b0) = (rgb[t] as i32, rgb[t + 1] as i32, rgb[t + 2] as i32);
            let (r1, g1, b1) = (rgb[t + 3] as i32, rgb[t + 4] as i32, rgb[t + 5] as i32);
            let (r2, g2, b2) = (rgb[u] as i32, rgb[u + 1] as i32, rgb[u + 2] as i32);
            let (r3, g3, b3) = (rgb[u + 3] as i32, rgb[u + 4] as i32, rgb[u + 5] as i32);
            luma[top] = luma_of(r0, g0, b0);
            luma[top + 1] = luma_of(r1, g1, b1);
            luma[bottom] = luma_of(r2, g2, b2);
            luma[bottom + 1] = luma_of(r3, g3, b3);
            // Sums of four: 4x the block's mean, so divide by 4 * 256.
            let (r, g, b) = (r0 + r1 + r2 + r3, g0 + g1 + g2 + g3, b0 + b1 + b2 + b3);
            let u = (128 * 1024 + (-43 * r - 85 * g + 128 * b) + 512) >> 10;
            let v = (128 * 1024 + (128 * r - 107 * g - 21 * b) + 512) >> 10;
            cb[by * cw + bx] = u.clamp(0, 255) as u8;
            cr[by * cw + bx] = v.clamp(0, 255) as u8;
            bx += 1;
        }
        by += 1;
    }
}

/// A 4:2:0 frame mirrored left to right (about the frame's middle, where the face is).
fn mirrored_yuv(yuv: &[u8]) -> Vec<u8> {
    let mut out = yuv.to_vec();
    let planes = [
        (0, WIDTH, HEIGHT),
        (WIDTH * HEIGHT, WIDTH / 2, HEIGHT / 2),
        (WIDTH * HEIGHT * 5 / 4, WIDTH / 2, HEIGHT / 2),
    ];
    for (start, width, height) in planes {
        for row in 0..height {
            let line = start + row * width;
            out[line..line + width].reverse();
        }
    }
    out
}

/// A Y4M file read back.
#[derive(Debug)]
pub struct Y4m {
    /// The stream header line, without its newline.
    pub header: String,
    pub width: usize,
    pub height: usize,
    /// Frames a second, as the header's F ratio.
    pub fps: (u32, u32),
    pub frames: Vec<RgbImage>,
}

/// Read a 4:2:0 Y4M file into RGB frames (full-range BT.601, chroma upsampled by repetition).
pub fn read_y4m(path: &Path) -> io::Result<Y4m> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut reader = BufReader::new(std::fs::File::open(path)?);
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let header = header
        .strip_suffix('\n')
        .ok_or_else(|| bad("no Y4M header line".into()))?
        .to_owned();
    let mut tokens = header.split(' ');
    if tokens.next() != Some("YUV4MPEG2") {
        return Err(bad(format!("not a Y4M file: {header:?}")));
    }
    let (mut width, mut height, mut fps) = (0usize, 0usize, (0u32, 1u32));
    for token in tokens {
        let (key, value) = token.split_at(token.len().min(1));
        let number = |v: &str| v.parse::<u32>().map_err(|_| bad(format!("bad {token:?}")));
        match key {
            "W" => width = number(value)? as usize,
            "H" => height = number(value)? as usize,
            "F" => {
                let (n, d) = value
                    .split_once(':')
                    .ok_or_else(|| bad(format!("bad {token:?}")))?;
                fps = (number(n)?, number(d)?);
            }
            "C" if !value.starts_with("420") => {
                return Err(bad(format!("only 4:2:0 is read, not {token:?}")))
            }
            _ => {}
        }
    }
    if width == 0 || height == 0 || width % 2 != 0 || height % 2 != 0 {
        return Err(bad(format!("unsupported size {width}x{height}")));
    }
    let (cw, ch) = (width / 2, height / 2);
    let mut planes = vec![0u8; width * height + 2 * cw * ch];
    let mut frames = Vec::new();
    loop {
        let mut marker = Vec::new();
        if reader.read_until(b'\n', &mut marker)? == 0 {
            break;
        }
        if !marker.starts_with(b"FRAME") || marker.last() != Some(&b'\n') {
            return Err(bad(format!("frame {} has no FRAME line", frames.len())));
        }
        reader.read_exact(&mut planes)?;
        let (luma, chroma) = planes.split_at(width * height);
        let (cb, cr) = chroma.split_at(cw * ch);
        let mut rgb = vec![0u8; width * height * 3];
        for y in 0..height {
            for x in 0..width {
                let l = f32::from(luma[y * width + x]) + 0.5;
                let u = f32::from(cb[(y / 2) * cw + x / 2]) - 128.0;
                let v = f32::from(cr[(y / 2) * cw + x / 2]) - 128.0;
                let at = (y * width + x) * 3;
                // `as u8` saturates.
                rgb[at] = (l + 1.402 * v) as u8;
                rgb[at + 1] = (l - 0.344_136 * u - 0.714_136 * v) as u8;
                rgb[at + 2] = (l + 1.772 * u) as u8;
            }
        }
        let frame = RgbImage::from_raw(width as u32, height as u32, rgb)
            .ok_or_else(|| bad("frame size".into()))?;
        frames.push(frame);
    }
    Ok(Y4m {
        header,
        width,
        height,
        fps,
        frames,
    })
}
