//! `tabir audit serve`: the auditor page. A web page served on loopback by this binary (every
//! asset compiled in: no CDN, works offline) shows what `tabir audit export`, `audit verify` and
//! `audit decisions` establish, with the same functions: the key domains and their
//! fingerprints, the keys with their issue and revocation times, the log's verification, the
//! decision escrow check, and charts of verifications, refusals and quota hits per day per
//! device, drawn from the verified log.
//!
//! The passphrase is asked on the terminal once, at start, and never reaches the page. The page
//! gets no secret, subject tag or biometric data: key ids, labels, fingerprints, times, counts
//! and audit sequence numbers only. Every API call carries a token the service put into the
//! page it served (another site open in the same browser cannot read it, nor make this process
//! ask the server for anything), and the Host header must name this machine (no DNS
//! rebinding).
//!
//! One refresh reads everything at once (a snapshot): the server's information, a signed
//! checkpoint and the whole log, the domains, the registry's keys, then the escrow check. Each
//! panel's endpoint answers from the latest snapshot (the first request takes one).

use super::summary::{self, device_table};
use super::{
    admin_client, auditor_share, check_decisions, download, load_config, parse_key, verify_entries,
    AuditorShare, CheckError, VerifyError,
};
use crate::local_web::{self, Guard};
use axum::extract::{Path, State as AxumState};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use ed25519_dalek::VerifyingKey;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tabir_client::sealed::SealError;
use tabir_client::{AdminClient, ClientError, Passphrase};
use tabir_proto::audit::{AuditEntry, ChainError, ExtendError, LogEntry};

/// The header carrying the page's token.
pub const TOKEN_HEADER: &str = "x-tabir-auditor";

/// Prompts for the passphrase before giving up (on a terminal; once from the environment).
const PASSPHRASE_TRIES: u32 = 3;

const PAGE: &str = include_str!("../assets/auditor.html");
const SCRIPT: &str = include_str!("../assets/auditor.js");
const STYLE: &str = include_str!("../assets/auditor.css");

#[derive(Args)]
pub struct ServeArgs {
    /// An auditor's configuration (tabir.toml from `tabir custody device add --role auditor`).
    #[arg(long, value_name = "FILE", env = "TABIR_CONFIG")]
    config: Option<PathBuf>,
    /// The server's audit key (64 hex characters) the log must verify under [default: the
    /// key the server names, shown with a warning to compare it with your records].
    #[arg(long, value_name = "HEX")]
    server_key: Option<String>,
    /// Where the page is served. Loopback only, unless --allow-remote. Port 0 takes a free
    /// port (the address printed is the one bound).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Serve on a non-loopback address (the page then acts with this auditor's key for anyone
    /// who reaches it: only behind your own access control). Give the address itself, not
    /// 0.0.0.0: the page answers only requests addressed to it (or to loopback).
    #[arg(long)]
    allow_remote: bool,
}

pub fn serve(args: ServeArgs) -> Result<(), String> {
    crate::local_web::check_listen(args.listen, args.allow_remote, "auditor page")?;
    let pinned = args
        .server_key
        .as_deref()
        .map(|hex| parse_key(hex).map(|key| (hex.trim().to_ascii_lowercase(), key)))
        .transpose()?;
    let config = load_config(args.config)?;
    // Asked once, here, on the terminal: it opens the auditor's key and share, and is never
    // sent to the page.
    let (admin, share) = open_bundle(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let state = State(Arc::new(Inner {
            admin,
            bundle_fingerprint: share.fingerprint.to_hex(),
            share,
            domain: config.domain.clone(),
            server: config.server.clone(),
            pinned,
            guard: Guard::new(TOKEN_HEADER, address, "auditor page"),
            snapshot: tokio::sync::Mutex::new(None),
            kept_checkpoint: std::sync::Mutex::new(None),
        }));
        println!("auditor page on http://{address}/");
        println!("(Ctrl-C stops it; every refresh reads the log and re-opens the escrowed results, and the server records both)");
        axum::serve(listener, router(state))
            .with_graceful_shutdown(stopped())
            .await
            .map_err(|e| e.to_string())
    })
}

/// Ctrl-C, or SIGTERM where there is one.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Open the bundle's signing key and share with the passphrase: from `TABIR_PASSPHRASE` once,
/// or asked on the terminal up to three times.
fn open_bundle(config: &tabir_client::ClientConfig) -> Result<(AdminClient, AuditorShare), String> {
    let from_env = Passphrase::from_env(crate::secrets::PASSPHRASE_ENV).is_some();
    let mut tries = 0;
    loop {
        tries += 1;
        let passphrase = crate::secrets::passphrase(
            crate::secrets::PASSPHRASE_ENV,
            "the auditor's key files",
            false,
        )?;
        match admin_client(config, &passphrase) {
            Ok(admin) => {
                let share = auditor_share(config, &passphrase)?;
                return Ok((admin, share));
            }
            Err(ClientError::Sealed(SealError::WrongPassphrase { path }))
                if !from_env && tries < PASSPHRASE_TRIES =>
            {
                eprintln!("{path}: wrong passphrase, try again");
            }
            Err(ClientError::Sealed(SealError::WrongPassphrase { path })) => {
                return Err(format!(
                    "{path}: wrong passphrase; the auditor page was not started (start it \
                     again with the auditor's passphrase{})",
                    if from_env {
                        format!(", or correct {}", crate::secrets::PASSPHRASE_ENV)
                    } else {
                        String::new()
                    }
                ));
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}

#[derive(Clone)]
struct State(Arc<Inner>);

struct Inner {
    admin: AdminClient,
    share: AuditorShare,
    /// The bundle's domain and server, and its public key's fingerprint.
    domain: String,
    server: String,
    bundle_fingerprint: String,
    /// `--server-key`, as given (lower case) and parsed.
    pinned: Option<(String, VerifyingKey)>,
    guard: Arc<Guard>,
    snapshot: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
    /// The newest checkpoint a refresh verified: every later log must extend it (a server that
    /// truncates or rewrites its log between two refreshes is caught).
    kept_checkpoint: std::sync::Mutex<Option<tabir_proto::audit::Checkpoint>>,
}

/// Why a panel has no data: a code the page words, a message, a status.
#[derive(Clone, Debug)]
struct PanelError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl PanelError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn client(error: &ClientError) -> Self {
        match error {
            ClientError::Network { server, detail } => Self::new(
                StatusCode::BAD_GATEWAY,
                "server_unreachable",
                format!(
                    "The Tabir server at {server} does not answer ({detail}). Check that it runs \
                     and that this machine reaches it, then refresh."
                ),
            ),
            ClientError::Overloaded { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_busy",
                "The Tabir server is busy. Refresh in a minute.",
            ),
            ClientError::Refused {
                status: 401, code, ..
            } => Self::new(
                StatusCode::BAD_GATEWAY,
                "refused",
                format!(
                    "The server refuses this auditor's key ({code}): it may have been revoked, \
                     or this machine's clock is more than 5 minutes off."
                ),
            ),
            ClientError::Refused { .. } => {
                Self::new(StatusCode::BAD_GATEWAY, "refused", error.to_string())
            }
            ClientError::BadAnswer(message)
                if message.starts_with("the audit log does not verify") =>
            {
                Self::new(StatusCode::CONFLICT, "log_invalid", error.to_string())
            }
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                error.to_string(),
            ),
        }
    }
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

type Panel = Result<Value, PanelError>;

/// Everything the page shows, read at one moment.
struct Snapshot {
    taken_at: String,
    summary: Panel,
    devices: Panel,
    log: Panel,
    escrow: Panel,
    activity: Panel,
}

impl Snapshot {
    fn failed(taken_at: String, error: &PanelError) -> Self {
        Self {
            taken_at,
            summary: Err(error.clone()),
            devices: Err(error.clone()),
            log: Err(error.clone()),
            escrow: Err(error.clone()),
            activity: Err(error.clone()),
        }
    }
}

fn now_utc() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    summary::format_utc(i64::try_from(seconds).unwrap_or(i64::MAX))
}

/// The sequence number of the entry that breaks the chain.
fn bad_entry(error: &VerifyError) -> Option<u64> {
    match error {
        VerifyError::Chain(
            ChainError::Sequence { seq, .. }
            | ChainError::BrokenLink { seq }
            | ChainError::Tampered { seq }
            | ChainError::BadSignature { seq },
        )
        | VerifyError::Extends(ExtendError::Forked { seq }) => Some(*seq),
        _ => None,
    }
}

/// Read everything once. A server that cannot be reached fails every panel alike.
async fn take_snapshot(state: &Inner) -> Snapshot {
    let taken_at = now_utc();
    let (info, entries, checkpoint) = match download(&state.admin, |_| {}).await {
        Ok(downloaded) => downloaded,
        Err(error) => return Snapshot::failed(taken_at, &PanelError::client(&error)),
    };
    let named = info.audit_public_key.to_ascii_lowercase();
    let key = match &state.pinned {
        Some((_, key)) => *key,
        None => match parse_key(&named) {
            Ok(key) => key,
            Err(_) => {
                return Snapshot::failed(
                    taken_at,
                    &PanelError::new(
                        StatusCode::BAD_GATEWAY,
                        "bad_server_key",
                        "The server names no valid audit key: its log cannot be checked.",
                    ),
                )
            }
        },
    };
    let server_key = match &state.pinned {
        Some((given, _)) => json!({
            "used": given,
            "named_by_server": named,
            "pinned": true,
            "matches_pinned": *given == named,
        }),
        None => json!({
            "used": named,
            "named_by_server": named,
            "pinned": false,
            "matches_pinned": null,
        }),
    };

    // The log, as `audit export` then `audit verify --checkpoint` check it: against the
    // checkpoint signed now, and against the one kept from the last refresh that verified.
    let kept = state
        .kept_checkpoint
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let verification = verify_entries(&entries, None, Some(&checkpoint), &key).and_then(|()| {
        kept.as_ref().map_or(Ok(()), |kept| {
            verify_entries(&entries, None, Some(kept), &key)
        })
    });
    if verification.is_ok() {
        *state
            .kept_checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(checkpoint.clone());
    }
    // Entries before the first bad one still verified; any other failure (truncated, not
    // signed) leaves nothing to count on.
    let broken_at = verification
        .as_ref()
        .err()
        .map(|e| bad_entry(e).unwrap_or(0));
    // Only entries whose chain verified feed the tables and charts.
    let verified: Vec<&LogEntry> = entries
        .iter()
        .take_while(|e| broken_at.is_none_or(|bad| e.seq() < bad))
        .collect();
    let verified_through = verified.last().map_or(0, |e| e.seq());
    let partial = verified.len() < entries.len();
    let whole: Vec<&AuditEntry> = verified.iter().filter_map(|e| e.full()).collect();
    let own = whole
        .iter()
        .filter(|e| e.event.domain.as_deref() == Some(state.domain.as_str()))
        .count();
    let log = Ok(json!({
        "taken_at": taken_at,
        "valid": verification.is_ok(),
        "error": verification.as_ref().err().map(ToString::to_string),
        "bad_entry": verification.as_ref().err().and_then(bad_entry),
        "entries": entries.len(),
        "last_seq": entries.last().map_or(0, LogEntry::seq),
        "redacted": entries.iter().filter(|e| e.full().is_none()).count(),
        "own_domain_entries": own,
        "verified_through": verified_through,
        "checkpoint": {"seq": checkpoint.seq, "time": checkpoint.time},
        "server_key": server_key,
    }));

    let summary = match state.admin.domains().await {
        Ok(domains) => Ok(json!({
            "taken_at": taken_at,
            "server": state.server,
            "server_version": info.version,
            "protocol": info.protocol,
            "domain": state.domain,
            "bundle_fingerprint": state.bundle_fingerprint,
            "server_key": server_key,
            "domains": domains
                .iter()
                .map(|d| {
                    let mut value = json!(d);
                    value["matches_bundle"] = json!(d.name != state.domain
                        || d.fingerprint.eq_ignore_ascii_case(&state.bundle_fingerprint));
                    value
                })
                .collect::<Vec<_>>(),
        })),
        Err(error) => Err(PanelError::client(&error)),
    };

    let devices = match state.admin.keys(&state.domain).await {
        Ok(keys) => {
            let table = device_table(&keys, whole.iter().copied(), &state.domain);
            Ok(json!({
                "taken_at": taken_at,
                "source": "registry",
                "devices": table.devices,
                "check": table.check,
                "verified_through": verified_through,
                "partial": partial,
            }))
        }
        Err(error) => Err(PanelError::client(&error)),
    };

    let mut activity = json!(summary::activity(whole.iter().copied(), &state.domain));
    activity["taken_at"] = json!(taken_at);
    activity["domain"] = json!(state.domain);
    activity["verified_through"] = json!(verified_through);
    activity["partial"] = json!(partial);
    let activity = Ok(activity);

    // The escrow check of `audit decisions`, over the whole log.
    let escrow = match check_decisions(
        &state.admin,
        &state.domain,
        &state.share,
        &key,
        (1, None),
        |_| {},
    )
    .await
    {
        Ok(check) => {
            let mut value = json!(check);
            value["clean"] = json!(check.is_clean());
            value["taken_at"] = json!(taken_at);
            Ok(value)
        }
        Err(CheckError::Client(error)) => Err(PanelError::client(&error)),
        Err(CheckError::Domain(message)) => Err(PanelError::new(
            StatusCode::CONFLICT,
            "domain_mismatch",
            message,
        )),
    };

    Snapshot {
        taken_at,
        summary,
        devices,
        log,
        escrow,
        activity,
    }
}

impl State {
    /// The latest snapshot, taken now if there is none.
    async fn snapshot(&self) -> Arc<Snapshot> {
        let mut latest = self.0.snapshot.lock().await;
        if let Some(snapshot) = latest.as_ref() {
            return Arc::clone(snapshot);
        }
        let snapshot = Arc::new(take_snapshot(&self.0).await);
        *latest = Some(Arc::clone(&snapshot));
        snapshot
    }

    async fn refresh(&self) -> Arc<Snapshot> {
        let mut latest = self.0.snapshot.lock().await;
        let snapshot = Arc::new(take_snapshot(&self.0).await);
        *latest = Some(Arc::clone(&snapshot));
        snapshot
    }
}

fn router(state: State) -> Router {
    let api = Router::new()
        .route("/api/summary", get(summary_panel))
        .route("/api/devices", get(devices_panel))
        .route("/api/log", get(log_panel))
        .route("/api/escrow", get(escrow_panel))
        .route("/api/activity", get(activity_panel))
        .route("/api/refresh", post(refresh))
        .layer(middleware::from_fn_with_state(
            state.0.guard.clone(),
            local_web::require_token,
        ));
    Router::new()
        .route("/", get(page))
        .route("/assets/{name}", get(asset))
        .merge(api)
        .layer(middleware::from_fn_with_state(
            state.0.guard.clone(),
            local_web::require_local_host,
        ))
        .with_state(state)
}

async fn page(AxumState(state): AxumState<State>) -> Response {
    let html = PAGE
        .replace("{{TOKEN}}", state.0.guard.token())
        .replace("{{DOMAIN}}", &escape_html(&state.0.domain));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; connect-src 'self'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

/// The domain name is checked by the client configuration, but the page escapes it anyway.
fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "auditor.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "auditor.css" => ("text/css; charset=utf-8", STYLE),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn answer(panel: &Panel) -> Response {
    match panel {
        Ok(value) => ([(header::CACHE_CONTROL, "no-store")], Json(value.clone())).into_response(),
        Err(error) => error.clone().into_response(),
    }
}

async fn summary_panel(AxumState(state): AxumState<State>) -> Response {
    answer(&state.snapshot().await.summary)
}

async fn devices_panel(AxumState(state): AxumState<State>) -> Response {
    answer(&state.snapshot().await.devices)
}

async fn log_panel(AxumState(state): AxumState<State>) -> Response {
    answer(&state.snapshot().await.log)
}

async fn escrow_panel(AxumState(state): AxumState<State>) -> Response {
    answer(&state.snapshot().await.escrow)
}

async fn activity_panel(AxumState(state): AxumState<State>) -> Response {
    answer(&state.snapshot().await.activity)
}

/// Read everything again; the page then fetches each panel.
async fn refresh(AxumState(state): AxumState<State>) -> Response {
    let snapshot = state.refresh().await;
    let reached = snapshot.log.is_ok();
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"refreshed": true, "reached_server": reached, "taken_at": snapshot.taken_at})),
    )
        .into_response()
}
