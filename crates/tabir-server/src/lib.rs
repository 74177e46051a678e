//! # tabir-server
//!
//! The verification server: it stores encrypted templates per (key domain, subject), evaluates
//! encrypted matches and returns encrypted bits, and keeps the hash-chained, signed audit log.
//! It holds evaluation keys and, sealed under its master key, the server's half of each
//! device's decryption share: it applies that half to every result it returns, so only the
//! asking device can open it, and keeps every result in escrow for auditors. It depends on
//! neither `tabir-device-crypto` (key generation, encryption, decryption) nor the face
//! pipeline: the `tabir-server` binary cannot decrypt (checked by tests/blind.rs).
//!
//! Routes, bodies, statuses and error codes: docs/protocol.md. Running it: docs/operations.md.

#![forbid(unsafe_code)]

mod api;
use api::registry;
mod auth;
mod bootstrap;
mod connections;
mod domains;
mod error;
mod metrics;
mod pool;
mod search;
mod shares;
mod state;
mod time;
mod vault;

pub use bootstrap::{
    load_or_create_server_key, write_secret_file, BootstrapToken, ServerKeyFile, SERVER_KEY_FILE,
};
pub use search::{NatsConfig, SearchConfig};
pub use state::{Limits, Quotas, ServerConfig};
pub use vault::{MasterKey, MASTER_KEY_ENV};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tabir_store::Store;

/// TLS certificate chain and private key, both PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("storage: {0}")]
    Store(#[from] tabir_store::StoreError),
    #[error("server key file {path}: {reason}")]
    ServerKey { path: PathBuf, reason: String },
    #[error("master key file {path}: {reason}")]
    MasterKey { path: PathBuf, reason: String },
    #[error("the master key does not open the stored shares: {0}")]
    WrongMasterKey(String),
    #[error("start-up failed: {0}")]
    Startup(String),
    #[error("custodian key: {0}")]
    CustodianKey(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen: {0}")]
    Listen(std::io::Error),
}

/// What `start` needs besides the listener.
pub struct Startup {
    pub store: Arc<dyn Store>,
    pub server_key: ServerKeyFile,
    /// Seals the server's decryption shares at rest; kept outside the database.
    pub master_key: MasterKey,
    pub config: ServerConfig,
    /// A custodian public key (hex) to register at start instead of the bootstrap token.
    pub custodian_key: Option<String>,
    pub tls: Option<TlsFiles>,
}

/// A running server: its address, the one-time bootstrap token (when no custodian is
/// registered yet; hand it to the custodian privately, never in a log), and the handle that
/// stops it.
pub struct RunningServer {
    pub address: SocketAddr,
    pub bootstrap_token: Option<BootstrapToken>,
    shutdown: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stop accepting connections, let in-flight requests finish (up to `grace`), and wait.
    pub async fn shutdown(self, grace: std::time::Duration) -> std::io::Result<()> {
        self.shutdown.graceful_shutdown(Some(grace));
        self.task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// Wait until the server stops (after a call to `shutdown` from elsewhere, or a failure).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// A handle that can stop the server from another task.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shutdown.clone())
    }
}

/// Stops a running server gracefully.
#[derive(Clone)]
pub struct Stopper(axum_server::Handle);

impl Stopper {
    pub fn stop(&self, grace: std::time::Duration) {
        self.0.graceful_shutdown(Some(grace));
    }
}

/// HTTP/1: the time to send headers (also the wait between kept-alive requests) and their
/// size; HTTP/2: concurrent streams per connection, header list size, dead-peer pings.
fn http_limits(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    limits: &state::Limits,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(64);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(limits.max_h2_streams)
        .max_header_list_size(16 * 1024)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .keep_alive_timeout(std::time::Duration::from_secs(20));
}

/// Start serving on `listener`. Registers the custodian key given by flag, or makes a
/// bootstrap token if no custodian exists yet; then answers requests until shut down.
pub async fn start(
    startup: Startup,
    listener: std::net::TcpListener,
) -> Result<RunningServer, StartError> {
    let Startup {
        store,
        server_key,
        master_key,
        config,
        custodian_key,
        tls,
    } = startup;
    let address = listener.local_addr().map_err(StartError::Listen)?;
    listener.set_nonblocking(true).map_err(StartError::Listen)?;

    let limits = config.limits.clone();
    let state = state::AppState::new(store, server_key, master_key, config);
    registry::check_master_key(&state).await?;
    let bootstrap_token = bootstrap::prepare_custodian(&state, custodian_key).await?;
    search::start(&state).await?;
    let app = api::router(Arc::clone(&state));

    let handle = axum_server::Handle::new();
    let service = app.into_make_service();
    let serves_tls = tls.is_some();
    let guarded = connections::Guarded::new(
        axum_server::accept::DefaultAcceptor,
        limits.max_connections,
        limits.idle_timeout,
        limits.header_timeout,
        state.metrics.refused_connections(),
    );
    let task = match tls {
        None => {
            let mut server = axum_server::from_tcp(listener)
                .acceptor(guarded)
                .handle(handle.clone());
            http_limits(server.http_builder(), &limits);
            tokio::spawn(async move { server.serve(service).await })
        }
        Some(files) => {
            // One process-wide crypto provider for rustls; a second install is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls_config = axum_server::tls_rustls::RustlsConfig::from_pem_file(
                &files.certificate,
                &files.private_key,
            )
            .await
            .map_err(|e| StartError::Tls(e.to_string()))?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls_config)
                .handshake_timeout(limits.header_timeout)
                .acceptor(guarded);
            let mut server = axum_server::from_tcp(listener)
                .acceptor(acceptor)
                .handle(handle.clone());
            http_limits(server.http_builder(), &limits);
            tokio::spawn(async move { server.serve(service).await })
        }
    };
    tracing::info!(%address, tls = serves_tls, "tabir server listening");
    Ok(RunningServer {
        address,
        bootstrap_token,
        shutdown: handle,
        task,
    })
}
