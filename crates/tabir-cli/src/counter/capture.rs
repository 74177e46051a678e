//! One capture at the counter: camera frames in, live feedback out, and the active liveness
//! check (tabir_face::liveness) over the frames. A capture first waits for a frontal frame that
//! passes every quality gate (that frame is the one matched), then asks for a turn to a random
//! side and watches the landmarks: a head shows parallax, a print or a screen does not.
//!
//! Frames and faces stay in this process's memory, wiped when the capture ends; nothing here
//! is written to disk or logged.

use image::RgbImage;
use serde::Serialize;
use std::time::{Duration, Instant};
use tabir_face::liveness::{LivenessPolicy, LivenessState, LivenessTracker, Turn};
use tabir_face::quality::{check_crop, select_face};
use tabir_face::{Detection, FaceError, FacePipeline, QualityPolicy};
use tabir_proto::SubjectId;
use zeroize::Zeroize;

/// How long the recipient has to turn once asked.
pub const TURN_TIMEOUT: Duration = Duration::from_secs(12);
/// A capture nobody finishes is dropped after this (its frames wiped).
pub const CAPTURE_LIFETIME: Duration = Duration::from_secs(120);
/// The face may leave the frame this long during the turn; longer, and the frames before and
/// after could be two different faces (a photo swapped for a head).
pub const MAX_FACE_GAP: Duration = Duration::from_millis(1500);
/// Between consecutive frames of the turn the face may move this far (in eye distances): a
/// head turns smoothly; a picture swapped in jumps.
pub const MAX_JUMP_EYE_DISTANCES: f32 = 1.5;
/// Every frame of the passing turn must embed at least this close to the frontal frame: the
/// head that turned is the face that is matched. The 1:1 policy's default, so that swapping a
/// face in for the turn is no easier than being matched. On the test cameras' synthetic
/// 28-degree turns one person scored 0.70-0.81 (docs/face.md).
pub const MIN_SAME_FACE_COSINE: f32 = tabir_face::DEFAULT_COSINE_THRESHOLD;
/// A head turns through the angles between frontal and turned; a picture swapped in for the
/// turn jumps. A frame turned toward the prompt, from the frontal frame's yaw, by at least
/// RAMP_MIN_YAW but less than the policy's turn must be seen before the turn counts (at 10
/// frames a second a half-second turn gives one or two; the page asks for a slow turn).
pub const RAMP_MIN_YAW: f32 = 0.03;
pub const RAMP_FRAMES_NEEDED: usize = 1;
/// Consecutive frames turned the wrong way that end the capture: a replay that turns both ways
/// must not pass whichever side is asked.
pub const WRONG_WAY_FRAMES: usize = 3;

/// What the operator is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Enrol,
    Verify,
    Identify,
}

/// Why a capture failed: each is a reason to show, and RETAKE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No turn in the asked direction before the timeout (a still picture ends here).
    NoTurn,
    /// The head turned the other way.
    WrongWay,
    /// The face reached the turned pose without turning through the angles between (a
    /// picture of a turned face swapped in).
    NoGradualTurn,
    /// The face moved like a flat picture (a print or a screen).
    FlatPicture,
    /// The face left the frame, jumped, or a second face appeared during the turn.
    FaceLost,
    /// The face that turned is not the face that was frontal.
    DifferentFace,
}

/// An RGB frame wiped when dropped (it holds a face).
pub struct Frame(RgbImage);

impl Drop for Frame {
    fn drop(&mut self) {
        let image = std::mem::take(&mut self.0);
        let mut pixels = image.into_raw();
        pixels.zeroize();
    }
}

impl Frame {
    pub fn image(&self) -> &RgbImage {
        &self.0
    }
}

/// The live state of a capture, for the page.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Phase {
    /// Waiting for a frontal frame that passes every gate.
    Frontal,
    /// Frontal frame kept; the recipient is asked to turn.
    Turn {
        prompt: Turn,
    },
    /// The head turned: ready to decide.
    Passed {
        prompt: Turn,
        residual: f32,
    },
    Failed {
        reason: Refusal,
    },
}

/// What the page shows for one frame.
#[derive(Clone, Debug, Serialize)]
pub struct Feedback {
    pub width: u32,
    pub height: u32,
    /// The main face's box (x, y, width, height) in frame pixels.
    #[serde(rename = "box")]
    pub face_box: Option<[f32; 4]>,
    /// The first quality gate the frame fails (a code the page words), if any.
    pub gate: Option<&'static str>,
    /// The recipient's own yaw (see tabir_face::liveness::signed_yaw), for the turn meter.
    pub yaw: Option<f32>,
    /// Frames showing the turn so far, and how many are needed.
    pub turn_frames: usize,
    pub turn_frames_needed: usize,
    pub wrong_way: bool,
    pub phase: Phase,
    /// Time spent on this frame in the service (decode, detection, gates), ms.
    pub process_ms: f64,
}

/// One frame looked at: decoded, detected, the main face and its gate.
pub struct Analysis {
    frame: Frame,
    main: Option<Detection>,
    /// The face passed every gate, the frontal yaw limit included.
    gate: Option<&'static str>,
}

/// Decode and detect (blocking: run it off the async threads).
pub fn analyse(pipeline: &FacePipeline, jpeg: &[u8]) -> Result<Analysis, FaceError> {
    let frame = Frame(tabir_face::image_io::decode_photo(jpeg)?);
    let detections = pipeline.detect(frame.image())?;
    let main = detections
        .iter()
        .max_by(|a, b| a.eye_distance().total_cmp(&b.eye_distance()))
        .cloned();
    let policy = QualityPolicy::default();
    let gate = match select_face(&detections, &policy) {
        Err(error) => Some(error.code()),
        Ok(face) => {
            let crop = tabir_face::align::align(frame.image(), &face.landmarks);
            check_crop(&crop, &policy).err().map(|e| e.code())
        }
    };
    Ok(Analysis { frame, main, gate })
}

/// What a passed capture hands to the decision.
pub struct PassedFrames {
    /// The frame matched.
    pub frontal: (Frame, Detection),
    /// The frames of the passing turn: each must be the same face.
    pub turned: Vec<(Frame, Detection)>,
}

/// A capture in progress.
pub struct Capture {
    pub action: Action,
    pub subject: Option<SubjectId>,
    pub created: Instant,
    prompt: Turn,
    policy: LivenessPolicy,
    phase: Phase,
    frontal: Option<(Frame, Detection)>,
    tracker: Option<LivenessTracker>,
    prompted_at: Option<Instant>,
    last_face: Option<(Instant, Detection)>,
    /// Frames seen between frontal and turned, toward the prompt.
    ramp_frames: usize,
    wrong_way_run: usize,
    /// The current run of frames showing parallax (the passing run once passed), for the
    /// same-face check.
    run: Vec<(Frame, Detection)>,
    /// Set once a decision was taken on this capture: one capture, one decision.
    pub decided: bool,
}

impl Capture {
    pub fn new(action: Action, subject: Option<SubjectId>, prompt: Turn) -> Self {
        Self {
            action,
            subject,
            created: Instant::now(),
            prompt,
            policy: LivenessPolicy::default(),
            phase: Phase::Frontal,
            frontal: None,
            tracker: None,
            prompted_at: None,
            last_face: None,
            ramp_frames: 0,
            wrong_way_run: 0,
            run: Vec::new(),
            decided: false,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Past its lifetime: to be dropped, frames and all.
    pub fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.created) > CAPTURE_LIFETIME
    }

    /// Check the timeouts (also when no frame arrives).
    pub fn tick(&mut self, now: Instant) {
        if let Phase::Turn { .. } = self.phase {
            if self
                .prompted_at
                .is_some_and(|at| now.duration_since(at) > TURN_TIMEOUT)
            {
                self.fail(Refusal::NoTurn);
            } else if self
                .last_face
                .as_ref()
                .is_some_and(|(at, _)| now.duration_since(*at) > MAX_FACE_GAP)
            {
                self.fail(Refusal::FaceLost);
            }
        }
    }

    fn fail(&mut self, reason: Refusal) {
        self.phase = Phase::Failed { reason };
        // Nothing of a failed capture is needed any more.
        self.frontal = None;
        self.run.clear();
    }

    /// Take one analysed frame; returns what to show.
    pub fn observe(&mut self, analysis: Analysis, process_ms: f64, now: Instant) -> Feedback {
        self.tick(now);
        let Analysis { frame, main, gate } = analysis;
        let (width, height) = frame.image().dimensions();
        match self.phase {
            Phase::Frontal => self.observe_frontal(frame, main.as_ref(), gate, now),
            // A second face during the turn: the frames could come from two people.
            Phase::Turn { .. } if gate == Some("multiple_faces") => self.fail(Refusal::FaceLost),
            Phase::Turn { .. } => self.observe_turn(frame, main.as_ref(), gate, now),
            Phase::Passed { .. } | Phase::Failed { .. } => {}
        }
        let (turn_frames, wrong_way) = match self.tracker.as_ref().map(LivenessTracker::state) {
            Some(LivenessState::Waiting {
                parallax_frames,
                wrong_way,
            }) => (parallax_frames, wrong_way),
            Some(LivenessState::Passed { .. }) => (self.policy.frames_needed, false),
            _ => (0, false),
        };
        Feedback {
            width,
            height,
            face_box: main.as_ref().map(|d| d.bbox),
            gate: match self.phase {
                // During the turn the frontal gates do not apply (the head is meant to turn).
                Phase::Frontal => gate,
                _ => main.is_none().then_some("no_face"),
            },
            yaw: main
                .as_ref()
                .map(|d| tabir_face::liveness::signed_yaw(&d.landmarks)),
            turn_frames,
            turn_frames_needed: self.policy.frames_needed,
            wrong_way,
            phase: self.phase,
            process_ms,
        }
    }

    fn observe_frontal(
        &mut self,
        frame: Frame,
        main: Option<&Detection>,
        gate: Option<&'static str>,
        now: Instant,
    ) {
        let Some(face) = main else { return };
        // (frontal_ok is false for a NaN yaw.)
        if gate.is_some() || !self.policy.frontal_ok(&face.landmarks) {
            return;
        }
        self.tracker = Some(LivenessTracker::new(
            self.policy,
            self.prompt,
            face.landmarks,
        ));
        self.frontal = Some((frame, face.clone()));
        self.last_face = Some((now, face.clone()));
        self.prompted_at = Some(now);
        self.phase = Phase::Turn {
            prompt: self.prompt,
        };
    }

    fn observe_turn(
        &mut self,
        frame: Frame,
        main: Option<&Detection>,
        gate: Option<&'static str>,
        now: Instant,
    ) {
        let Some(face) = main else { return };
        if let Some((_, last)) = &self.last_face {
            let jump = centre_distance(last, face) / last.eye_distance().max(1.0);
            // A NaN jump fails too.
            if jump.is_nan() || jump > MAX_JUMP_EYE_DISTANCES {
                self.fail(Refusal::FaceLost);
                return;
            }
        }
        self.last_face = Some((now, face.clone()));
        // Until the turn begins, a frame that passes every gate and looks straighter at the
        // camera replaces the frontal frame: a frame kept while the head was still settling
        // would shrink the parallax the turn shows.
        let yaw = tabir_face::liveness::signed_yaw(&face.landmarks).abs();
        let straighter = self.frontal.as_ref().is_some_and(|(_, kept)| {
            yaw + 0.02 < tabir_face::liveness::signed_yaw(&kept.landmarks).abs()
        });
        if gate.is_none() && straighter && self.run.is_empty() && self.ramp_frames == 0 {
            self.tracker = Some(LivenessTracker::new(
                self.policy,
                self.prompt,
                face.landmarks,
            ));
            self.frontal = Some((frame, face.clone()));
            self.wrong_way_run = 0;
            return;
        }
        let Some(tracker) = self.tracker.as_mut() else {
            return;
        };
        let Some((_, frontal)) = &self.frontal else {
            return;
        };
        let judged = tabir_face::liveness::judge_frame(
            &self.policy,
            self.prompt,
            &frontal.landmarks,
            &face.landmarks,
        );
        let sign = match self.prompt {
            Turn::Left => 1.0,
            Turn::Right => -1.0,
        };
        let from_frontal =
            sign * (judged.yaw - tabir_face::liveness::signed_yaw(&frontal.landmarks));
        // Between the frontal frame and the turn (NaN is neither).
        if from_frontal >= RAMP_MIN_YAW && sign * judged.yaw < self.policy.min_turn {
            self.ramp_frames += 1;
        }
        self.wrong_way_run = if judged.wrong_way {
            self.wrong_way_run + 1
        } else {
            0
        };
        if judged.parallax {
            self.run.push((frame, face.clone()));
            let excess = self.run.len().saturating_sub(self.policy.frames_needed);
            self.run.drain(..excess);
        } else {
            self.run.clear();
        }
        let state = tracker.observe(&face.landmarks);
        if self.wrong_way_run >= WRONG_WAY_FRAMES {
            self.fail(Refusal::WrongWay);
            return;
        }
        match state {
            LivenessState::Waiting { .. } => {}
            LivenessState::Passed { .. } if self.ramp_frames < RAMP_FRAMES_NEEDED => {
                self.fail(Refusal::NoGradualTurn);
            }
            LivenessState::Passed { residual } => {
                self.phase = Phase::Passed {
                    prompt: self.prompt,
                    residual,
                };
            }
            LivenessState::Flat { .. } => self.fail(Refusal::FlatPicture),
        }
    }

    /// After a pass: the frontal frame (the one matched) and the frames of the passing turn,
    /// handed over once for the decision.
    pub fn take_frames(&mut self) -> Option<PassedFrames> {
        if !matches!(self.phase, Phase::Passed { .. }) || self.decided || self.run.is_empty() {
            return None;
        }
        let frontal = self.frontal.take()?;
        self.decided = true;
        Some(PassedFrames {
            frontal,
            turned: std::mem::take(&mut self.run),
        })
    }
}

fn centre_distance(a: &Detection, b: &Detection) -> f32 {
    let centre = |d: &Detection| [d.bbox[0] + d.bbox[2] / 2.0, d.bbox[1] + d.bbox[3] / 2.0];
    let (p, q) = (centre(a), centre(b));
    ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Landmarks of a frontal face (YuNet's on a fixture photo, rounded), and the same face as
    /// a 3D object: the planar points at depth 0, the nose tip in front by 0.4 eye distances.
    const FRONTAL: [[f32; 2]; 5] = [
        [280.0, 200.0],
        [350.0, 200.0],
        [315.0, 240.0],
        [287.0, 275.0],
        [343.0, 275.0],
    ];

    /// The head turned by `degrees` about the vertical axis through the eyes' midpoint
    /// (orthographic: enough for a test of the state machine). Positive: the recipient's left,
    /// which moves the nose toward the image's right.
    fn turned(degrees: f32) -> [[f32; 2]; 5] {
        let (sin, cos) = degrees.to_radians().sin_cos();
        let centre = 315.0;
        let eye_distance = 70.0;
        FRONTAL
            .iter()
            .enumerate()
            .map(|(i, [x, y])| {
                let depth = if i == 2 { 0.4 * eye_distance } else { 0.0 };
                [centre + (x - centre) * cos + depth * sin, *y]
            })
            .collect::<Vec<_>>()
            .try_into()
            .unwrap()
    }

    fn analysis(landmarks: Option<[[f32; 2]; 5]>, gate: Option<&'static str>) -> Analysis {
        Analysis {
            frame: Frame(RgbImage::new(8, 8)),
            main: landmarks.map(|landmarks| Detection {
                bbox: [260.0, 160.0, 110.0, 140.0],
                landmarks,
                score: 0.95,
            }),
            gate,
        }
    }

    #[test]
    fn a_head_turning_as_asked_passes_and_keeps_the_frontal_frame() {
        let start = Instant::now();
        let mut capture = Capture::new(Action::Verify, None, Turn::Left);
        // A frame failing a gate is not kept as the frontal frame.
        let shown = capture.observe(analysis(Some(FRONTAL), Some("too_dark")), 1.0, start);
        assert_eq!(shown.phase, Phase::Frontal);
        assert_eq!(shown.gate, Some("too_dark"));
        let shown = capture.observe(analysis(Some(FRONTAL), None), 1.0, start);
        assert_eq!(shown.phase, Phase::Turn { prompt: Turn::Left });
        let mut now = start;
        for degrees in [5.0, 9.0, 12.0, 15.0, 20.0, 26.0, 28.0, 28.0, 27.0, 28.0] {
            now += Duration::from_millis(100);
            capture.observe(analysis(Some(turned(degrees)), None), 1.0, now);
        }
        assert!(
            matches!(capture.phase(), Phase::Passed { .. }),
            "{:?}",
            capture.phase()
        );
        let frames = capture.take_frames().expect("frames");
        assert_eq!(frames.frontal.1.landmarks, FRONTAL);
        assert_eq!(frames.turned.len(), LivenessPolicy::default().frames_needed);
        for (_, face) in &frames.turned {
            assert!(tabir_face::liveness::signed_yaw(&face.landmarks) > 0.13);
        }
        // One capture, one decision.
        assert!(capture.take_frames().is_none());
    }

    #[test]
    fn a_turn_the_wrong_way_ends_the_capture() {
        let start = Instant::now();
        let mut capture = Capture::new(Action::Verify, None, Turn::Right);
        capture.observe(analysis(Some(FRONTAL), None), 1.0, start);
        let mut now = start;
        let mut wrong_way_seen = false;
        for degrees in [5.0, 9.0, 12.0, 15.0, 20.0, 28.0, 28.0, 28.0] {
            now += Duration::from_millis(100);
            let shown = capture.observe(analysis(Some(turned(degrees)), None), 1.0, now);
            wrong_way_seen |= shown.wrong_way;
        }
        assert!(wrong_way_seen);
        assert_eq!(
            capture.phase(),
            Phase::Failed {
                reason: Refusal::WrongWay
            }
        );
        assert!(capture.take_frames().is_none());
    }

    #[test]
    fn a_turned_picture_swapped_in_without_the_turn_between_fails() {
        let start = Instant::now();
        let mut capture = Capture::new(Action::Verify, None, Turn::Left);
        capture.observe(analysis(Some(FRONTAL), None), 1.0, start);
        let mut now = start;
        for _ in 0..4 {
            now += Duration::from_millis(100);
            capture.observe(analysis(Some(turned(28.0)), None), 1.0, now);
        }
        assert_eq!(
            capture.phase(),
            Phase::Failed {
                reason: Refusal::NoGradualTurn
            }
        );
        assert!(capture.take_frames().is_none());
    }

    #[test]
    fn a_second_face_during_the_turn_fails() {
        let start = Instant::now();
        let mut capture = Capture::new(Action::Verify, None, Turn::Left);
        capture.observe(analysis(Some(FRONTAL), None), 1.0, start);
        capture.observe(
            analysis(Some(turned(10.0)), Some("multiple_faces")),
            1.0,
            start + Duration::from_millis(100),
        );
        assert_eq!(
            capture.phase(),
            Phase::Failed {
                reason: Refusal::FaceLost
            }
        );
    }

    #[test]
    fn a_still_picture_times_out_and_a_lost_face_fails() {
        let start = Instant::now();
        let mut still = Capture::new(Action::Enrol, None, Turn::Left);
        still.observe(analysis(Some(FRONTAL), None), 1.0, start);
        let mut now = start;
        for _ in 0..20 {
            now += Duration::from_millis(100);
            still.observe(analysis(Some(FRONTAL), None), 1.0, now);
        }
        assert!(matches!(still.phase(), Phase::Turn { .. }));
        still.tick(start + TURN_TIMEOUT + Duration::from_millis(1));
        assert_eq!(
            still.phase(),
            Phase::Failed {
                reason: Refusal::NoTurn
            }
        );

        let mut lost = Capture::new(Action::Enrol, None, Turn::Left);
        lost.observe(analysis(Some(FRONTAL), None), 1.0, start);
        lost.observe(
            analysis(None, Some("no_face")),
            1.0,
            start + MAX_FACE_GAP * 2,
        );
        assert_eq!(
            lost.phase(),
            Phase::Failed {
                reason: Refusal::FaceLost
            }
        );
    }

    #[test]
    fn a_face_that_jumps_during_the_turn_fails() {
        let start = Instant::now();
        let mut capture = Capture::new(Action::Verify, None, Turn::Left);
        capture.observe(analysis(Some(FRONTAL), None), 1.0, start);
        let mut far = analysis(Some(turned(25.0)), None);
        if let Some(face) = far.main.as_mut() {
            face.bbox[0] += 400.0;
        }
        capture.observe(far, 1.0, start + Duration::from_millis(100));
        assert_eq!(
            capture.phase(),
            Phase::Failed {
                reason: Refusal::FaceLost
            }
        );
    }
}
