//! The counter app's HTTP API, for its own page only (see the module above for the token and
//! Host checks). JSON in and out, camera frames as JPEG bodies; errors as
//! `{"error": {"code", "message"}}` with codes the page words in the operator's language.

use super::assets;
use super::capture::{self, Action, Capture, Feedback, Phase, Refusal};
use super::link::Link;
use crate::local_web::{self, Guard};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State as AxumState};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tabir_client::office::Timings;
use tabir_client::outbox::{is_unreachable, EntryState, Outbox};
use tabir_client::{ClientError, OfficeClient};
use tabir_face::liveness::Turn;
use tabir_face::FacePipeline;
use tabir_proto::SubjectId;

/// A camera frame is a JPEG of at most 1280x720 or so; anything larger is not one.
const MAX_FRAME_BYTES: usize = 2 * 1024 * 1024;
/// Captures open at once (one counter, one camera: a few at most, from page reloads).
const MAX_CAPTURES: usize = 8;
/// The header carrying the page's token.
pub const TOKEN_HEADER: &str = "x-tabir-counter";

#[derive(Clone)]
pub struct State(Arc<Inner>);

struct Inner {
    client: OfficeClient,
    face: Arc<FacePipeline>,
    outbox: Outbox,
    server: String,
    language: String,
    guard: Arc<Guard>,
    captures: Mutex<HashMap<String, Capture>>,
    link: Link,
    /// Every capture asks for this side (tests, training); None: random, as in production.
    fixed_prompt: Option<Turn>,
}

impl State {
    pub fn new(
        client: OfficeClient,
        face: Arc<FacePipeline>,
        outbox: Outbox,
        server: String,
        language: String,
        address: SocketAddr,
        fixed_prompt: Option<Turn>,
    ) -> Self {
        Self(Arc::new(Inner {
            client,
            face,
            outbox,
            server,
            language,
            guard: Guard::new(TOKEN_HEADER, address, "counter app"),
            captures: Mutex::new(HashMap::new()),
            link: Link::default(),
            fixed_prompt,
        }))
    }

    pub fn client(&self) -> &OfficeClient {
        &self.0.client
    }

    pub fn outbox(&self) -> &Outbox {
        &self.0.outbox
    }

    pub fn link(&self) -> &Link {
        &self.0.link
    }

    /// Drop captures past their lifetime (their frames are wiped on drop).
    pub fn sweep_captures(&self) {
        let now = Instant::now();
        self.captures().retain(|_, c| !c.expired(now));
    }

    fn captures(&self) -> std::sync::MutexGuard<'_, HashMap<String, Capture>> {
        // A panic while holding the lock leaves captures in a state still safe to read.
        self.0
            .captures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    tabir_proto::hex::encode(&bytes)
}

/// An error for the page: a code it words, a message for support, a status.
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl ApiError {
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        let status = match &error {
            ClientError::Photo(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ClientError::Refused { .. } => StatusCode::CONFLICT,
            ClientError::Network { .. } | ClientError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, &error.code(), error.to_string())
    }
}

pub fn router(state: State) -> Router {
    let api = Router::new()
        .route("/api/status", get(status))
        .route("/api/frames", post(preview_frame))
        .route("/api/captures", post(start_capture))
        .route("/api/captures/{id}", delete(cancel_capture))
        .route("/api/captures/{id}/frames", post(capture_frame))
        .route("/api/captures/{id}/decide", post(decide))
        .route("/api/queue/send", post(send_queue))
        .route("/api/queue/{id}", delete(remove_queued))
        .route("/api/queue/{id}/retry", post(retry_queued))
        .layer(middleware::from_fn_with_state(
            state.0.guard.clone(),
            local_web::require_token,
        ));
    Router::new()
        .route("/", get(page))
        .route("/assets/{name}", get(asset))
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_FRAME_BYTES))
        .layer(middleware::from_fn_with_state(
            state.0.guard.clone(),
            local_web::require_local_host,
        ))
        .with_state(state)
}

async fn page(AxumState(state): AxumState<State>) -> Response {
    let html = assets::page(state.0.guard.token(), &state.0.language);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
                 connect-src 'self'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        html,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match assets::file(&name) {
        Some((content_type, body)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Serialize)]
struct Status {
    server: String,
    domain: String,
    /// null until the first check.
    online: Option<bool>,
    /// The server answers but refuses this device (revoked, unknown domain, clock skew).
    refused: bool,
    /// Why the server is considered down (or refuses this device), for support.
    problem: Option<String>,
    /// Set when every capture asks for the same side (`--fixed-prompt`): not for production.
    fixed_prompt: Option<Turn>,
    queue: Vec<tabir_client::outbox::QueuedEntry>,
    last_sent: Vec<tabir_client::outbox::SentEntry>,
}

async fn status(AxumState(state): AxumState<State>) -> Result<Json<Status>, ApiError> {
    let outbox = state.clone();
    let queue = tokio::task::spawn_blocking(move || outbox.outbox().list())
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    let link = state.link().snapshot();
    Ok(Json(Status {
        server: state.0.server.clone(),
        domain: state.client().domain().to_owned(),
        online: link.online,
        refused: link.refused,
        problem: link.problem,
        fixed_prompt: state.0.fixed_prompt,
        queue,
        last_sent: link.last_sent,
    }))
}

fn blocking_failed(error: tokio::task::JoinError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("face pipeline task: {error}"),
    )
}

fn check_frame(body: &Bytes) -> Result<(), ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_frame",
            "the frame is empty",
        ));
    }
    Ok(())
}

/// Live feedback with no capture running: the face box and the first failing gate.
async fn preview_frame(
    AxumState(state): AxumState<State>,
    body: Bytes,
) -> Result<Json<Feedback>, ApiError> {
    check_frame(&body)?;
    let started = Instant::now();
    let face = state.0.face.clone();
    let analysis = tokio::task::spawn_blocking(move || capture::analyse(&face, &body))
        .await
        .map_err(blocking_failed)?
        .map_err(ClientError::from)?;
    let mut preview = Capture::new(Action::Verify, None, Turn::Left);
    // A preview never advances past the frontal check: it only reports.
    let mut feedback = preview.observe(analysis, ms(started), Instant::now());
    feedback.phase = Phase::Frontal;
    feedback.process_ms = ms(started);
    Ok(Json(feedback))
}

#[derive(Deserialize)]
struct StartCapture {
    action: Action,
    /// The NIK (16 digits) for enrol and verify.
    #[serde(default)]
    nik: Option<String>,
}

#[derive(Serialize)]
struct Started {
    id: String,
    prompt: Turn,
}

async fn start_capture(
    AxumState(state): AxumState<State>,
    Json(request): Json<StartCapture>,
) -> Result<Json<Started>, ApiError> {
    let subject = match (request.action, request.nik.as_deref()) {
        (Action::Identify, _) => None,
        (_, Some(nik)) => Some(SubjectId::parse(nik).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_nik",
                "a NIK is 16 digits with a valid region, birth date and serial",
            )
        })?),
        (_, None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_nik",
                "enter the recipient's NIK first",
            ))
        }
    };
    let prompt = state.0.fixed_prompt.unwrap_or_else(|| {
        let mut bit = [0u8; 1];
        rand::rngs::OsRng.fill_bytes(&mut bit);
        Turn::from_random_bit(bit[0] & 1 == 1)
    });
    let id = random_hex();
    state.sweep_captures();
    let mut captures = state.captures();
    if captures.len() >= MAX_CAPTURES {
        // The oldest goes: a page reloaded many times must not lock the counter out.
        if let Some(oldest) = captures
            .iter()
            .min_by_key(|(_, c)| c.created)
            .map(|(k, _)| k.clone())
        {
            captures.remove(&oldest);
        }
    }
    captures.insert(id.clone(), Capture::new(request.action, subject, prompt));
    Ok(Json(Started { id, prompt }))
}

fn unknown_capture() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_capture",
        "this capture has ended; start again",
    )
}

async fn cancel_capture(AxumState(state): AxumState<State>, Path(id): Path<String>) -> StatusCode {
    state.captures().remove(&id);
    StatusCode::NO_CONTENT
}

async fn capture_frame(
    AxumState(state): AxumState<State>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Feedback>, ApiError> {
    check_frame(&body)?;
    state.sweep_captures();
    if !state.captures().contains_key(&id) {
        return Err(unknown_capture());
    }
    let started = Instant::now();
    let face = state.0.face.clone();
    let analysis = tokio::task::spawn_blocking(move || capture::analyse(&face, &body))
        .await
        .map_err(blocking_failed)?
        .map_err(ClientError::from)?;
    let mut captures = state.captures();
    let capture = captures.get_mut(&id).ok_or_else(unknown_capture)?;
    Ok(Json(capture.observe(analysis, ms(started), Instant::now())))
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e4).round() / 10.0
}

/// The answer the page shows in large: what happened and what to do next.
#[derive(Serialize, Default)]
pub struct Outcome {
    /// match, no_match, enrolled, replaced, queued, retake
    outcome: &'static str,
    /// For retake: why (a liveness refusal, a photo gate, the same-face check).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_id: Option<String>,
    /// The NIK masked, for the operator to confirm.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    /// Whether the decision reached the audit log as reported (verify and identify).
    #[serde(skip_serializing_if = "Option::is_none")]
    reported: Option<bool>,
    timings: Option<Timings>,
}

fn retake(reason: &str) -> Outcome {
    Outcome {
        outcome: "retake",
        reason: Some(reason.to_owned()),
        ..Outcome::default()
    }
}

async fn decide(
    AxumState(state): AxumState<State>,
    Path(id): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    let started = Instant::now();
    state.sweep_captures();
    let (action, subject, frames) = {
        let mut captures = state.captures();
        let capture = captures.get_mut(&id).ok_or_else(unknown_capture)?;
        capture.tick(Instant::now());
        match capture.phase() {
            Phase::Failed { reason } => {
                let reason = refusal_code(reason);
                captures.remove(&id);
                return Ok(Json(retake(reason)));
            }
            Phase::Passed { .. } => {}
            Phase::Frontal | Phase::Turn { .. } => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "liveness_pending",
                    "the liveness check has not passed yet",
                ))
            }
        }
        let frames = capture.take_frames().ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "already_decided",
                "this capture was used already; start again",
            )
        })?;
        (capture.action, capture.subject.clone(), frames)
    };
    // The capture is spent: one capture, one decision.
    state.captures().remove(&id);

    let face = state.0.face.clone();
    let embedded = tokio::task::spawn_blocking(move || {
        let embed = |(frame, found): &(capture::Frame, tabir_face::Detection)| {
            face.embed_aligned(&tabir_face::align::align(frame.image(), &found.landmarks))
        };
        let matched = embed(&frames.frontal)?;
        // The least similar frame of the passing turn decides (NaN counts as different).
        let mut same_face = f32::INFINITY;
        for turned in &frames.turned {
            let cosine = matched.cosine(&embed(turned)?);
            same_face = if cosine.is_nan() {
                f32::NEG_INFINITY
            } else {
                same_face.min(cosine)
            };
        }
        Ok::<_, tabir_face::FaceError>((matched, same_face))
    })
    .await
    .map_err(blocking_failed)?
    .map_err(ClientError::from)?;
    let (embedding, same_face) = embedded;
    let face_ms = ms(started);
    // NaN was mapped to -inf above, so this refuses it too.
    if same_face < capture::MIN_SAME_FACE_COSINE {
        return Ok(Json(retake(refusal_code(Refusal::DifferentFace))));
    }
    let masked = subject.as_ref().map(ToString::to_string);
    let mut outcome = match (action, subject) {
        (Action::Enrol, Some(subject)) => enrol(&state, &subject, embedding.as_slice()).await?,
        (Action::Verify, Some(subject)) => {
            let verified = state
                .client()
                .verify_embedding(&subject, embedding.as_slice())
                .await;
            decision_outcome(&state, verified)?
        }
        (Action::Identify, _) => {
            let identified = state
                .client()
                .identify_embedding(embedding.as_slice())
                .await;
            decision_outcome(&state, identified)?
        }
        (_, None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_nik",
                "enter the recipient's NIK first",
            ))
        }
    };
    outcome.subject = masked;
    let timings = outcome.timings.get_or_insert_with(Timings::default);
    timings.face_ms = face_ms;
    timings.total_ms = ms(started);
    Ok(Json(outcome))
}

fn decision_outcome(
    state: &State,
    result: Result<tabir_client::office::VerifyOutcome, ClientError>,
) -> Result<Outcome, ApiError> {
    match result {
        Ok(read) => {
            state.link().mark_online();
            Ok(Outcome {
                outcome: if read.decision.is_match() {
                    "match"
                } else {
                    "no_match"
                },
                audit_seq: Some(read.audit_seq),
                request_id: read.request_id.clone(),
                reported: Some(matches!(
                    read.report,
                    tabir_client::office::ReportStatus::Reported { .. }
                )),
                timings: Some(read.timings),
                ..Outcome::default()
            })
        }
        Err(error) => {
            if is_unreachable(&error) {
                state.link().mark_offline(&error.to_string());
            }
            Err(error.into())
        }
    }
}

/// Enrol now, or queue it (sealed) when the server cannot be reached.
async fn enrol(state: &State, subject: &SubjectId, embedding: &[f32]) -> Result<Outcome, ApiError> {
    let encrypting = Instant::now();
    let template = state.client().encrypt_template(embedding)?;
    let encrypt_ms = ms(encrypting);
    let queue = |state: &State, template: &[u8]| -> Result<Outcome, ApiError> {
        let id = state.outbox().push(subject, template)?;
        Ok(Outcome {
            outcome: "queued",
            queue_id: Some(id),
            timings: Some(Timings {
                encrypt_ms,
                ..Timings::default()
            }),
            ..Outcome::default()
        })
    };
    // Known to be down: queue at once rather than wait through the retries. And while older
    // enrolments wait, this one waits behind them: sent directly, it could be overwritten by
    // an older template of the same NIK sent later.
    let link = state.link().snapshot();
    let waiting = state.outbox().queued()?;
    if (link.online == Some(false) && !link.refused) || waiting > 0 {
        let outcome = queue(state, &template)?;
        if waiting > 0 && link.online == Some(true) {
            let state = state.clone();
            tokio::spawn(async move {
                let _ = super::link::drain(&state).await;
            });
        }
        return Ok(outcome);
    }
    match state
        .client()
        .send_template(subject, template.clone())
        .await
    {
        Ok(enrolled) => {
            state.link().mark_online();
            let mut timings = enrolled.timings;
            timings.encrypt_ms = encrypt_ms;
            Ok(Outcome {
                outcome: if enrolled.replaced {
                    "replaced"
                } else {
                    "enrolled"
                },
                audit_seq: Some(enrolled.audit_seq),
                request_id: enrolled.request_id,
                timings: Some(timings),
                ..Outcome::default()
            })
        }
        Err(error) if is_unreachable(&error) => {
            state.link().mark_offline(&error.to_string());
            queue(state, &template)
        }
        Err(error) => Err(error.into()),
    }
}

fn refusal_code(reason: Refusal) -> &'static str {
    match reason {
        Refusal::NoTurn => "no_turn",
        Refusal::WrongWay => "wrong_way",
        Refusal::NoGradualTurn => "no_gradual_turn",
        Refusal::FlatPicture => "flat_picture",
        Refusal::FaceLost => "face_lost",
        Refusal::DifferentFace => "different_face",
    }
}

async fn send_queue(AxumState(state): AxumState<State>) -> Result<Response, ApiError> {
    let report = super::link::drain(&state).await?;
    Ok(Json(report).into_response())
}

/// Remove an entry the server refused or that cannot be opened (queued ones wait to be sent).
async fn remove_queued(
    AxumState(state): AxumState<State>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let entries = state.outbox().list()?;
    match entries.iter().find(|e| e.id == id) {
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_entry",
            "no such queued enrolment",
        )),
        Some(entry) if entry.state == EntryState::Queued => Err(ApiError::new(
            StatusCode::CONFLICT,
            "entry_waiting",
            "this enrolment is waiting to be sent; it is removed once the server has it",
        )),
        Some(_) => {
            state.outbox().remove(&id)?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// Put a refused entry back in the queue (the operator fixed the cause) and try to send it.
async fn retry_queued(
    AxumState(state): AxumState<State>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.outbox().requeue(&id)?;
    let state = state.clone();
    tokio::spawn(async move {
        let _ = super::link::drain(&state).await;
    });
    Ok(StatusCode::ACCEPTED)
}
