//! `tabir-server`: the verification server, a binary of its own. Its dependency tree has no
//! device code: no key generation, encryption or decryption, no face pipeline, no ONNX Runtime
//! (checked by tests/blind.rs).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tabir_server::{
    Limits, MasterKey, NatsConfig, Quotas, SearchConfig, ServerConfig, Startup, TlsFiles,
    MASTER_KEY_ENV,
};
use tabir_store::Store;

#[derive(Parser)]
#[command(
    name = "tabir-server",
    version,
    about = "Tabir's verification server: stores encrypted templates, evaluates encrypted matches, \
             applies its half of each device's decryption share, escrows every result and keeps \
             the signed audit log. It holds no key that decrypts anything.",
    after_long_help = "\
On first start the server creates its audit-signing key in DIR (server-signing.key, mode 0600).
If no custodian is registered yet it writes a one-time bootstrap token to DIR/bootstrap-token
(mode 0600; valid for --bootstrap-token-minutes, once, at any replica) and prints the file's
path, never the token: the custodian presents it once with `tabir custody bootstrap`. Or name
the custodian's public key with --custodian-key.

The master key seals the server's halves of the decryption shares in the database. Keep it
apart from the database and its backups: give --master-key FILE (created on first start, mode
0600, refused inside DIR) or the key itself in TABIR_MASTER_KEY (64 hex characters). Every
replica needs the same key; a database copy without it opens nothing.

Stop with Ctrl-C or SIGTERM: in-flight requests finish first (up to 30 s)."
)]
pub struct ServerArgs {
    /// Folder for the server's signing key and, without --database-url, its SQLite database.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The master key file (created on first start if missing; never inside DIR). Or give the
    /// key itself in TABIR_MASTER_KEY.
    #[arg(long, value_name = "FILE", env = "TABIR_MASTER_KEY_FILE")]
    master_key: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Keep templates, keys and the audit log in PostgreSQL instead (for several replicas).
    /// Anything but the local host is reached over TLS with the certificate and host name
    /// verified; `sslmode=disable` in the URL turns TLS off.
    #[arg(
        long,
        value_name = "URL",
        env = "TABIR_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// PostgreSQL schema to use (created if missing).
    #[arg(long, value_name = "NAME", requires = "database_url")]
    database_schema: Option<String>,
    /// CA certificate(s) (PEM) that signed the database server's certificate [default: the
    /// system's roots].
    #[arg(
        long,
        value_name = "PEM",
        env = "TABIR_DATABASE_CA",
        requires = "database_url"
    )]
    database_ca: Option<PathBuf>,
    /// Database connections per replica.
    #[arg(long, value_name = "N", default_value_t = 8)]
    database_pool: u32,
    /// Register this custodian public key (64 hex characters) instead of writing a bootstrap
    /// token.
    #[arg(long, value_name = "HEX")]
    custodian_key: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key, serve HTTPS.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Threads evaluating encrypted matches [default: the number of cores].
    #[arg(long, value_name = "N")]
    fhe_workers: Option<usize>,
    /// Matches allowed to wait for a thread before the server answers 429 [default: 4 per core].
    #[arg(long, value_name = "N")]
    fhe_queue: Option<usize>,
    /// The largest gallery one identification job searches.
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    max_gallery: usize,
    /// Threads of this process evaluating identification shards, at the lowest CPU priority
    /// (1:1 verifications come first) [default: the number of cores]. 0: this process runs
    /// none (with --nats-url, other processes do).
    #[arg(long, value_name = "N")]
    search_workers: Option<usize>,
    /// Templates per identification shard (bounds a worker's memory, about 30 KiB each, and
    /// the work redone when a worker dies).
    #[arg(long, value_name = "N", default_value_t = tabir_crypto::DEFAULT_SHARD_TEMPLATES)]
    shard_templates: usize,
    /// Spread identification shards over every process connected to this NATS server (with
    /// JetStream): `nats://host:4222`. Without it, each process runs its own searches.
    #[arg(
        long,
        value_name = "URL",
        env = "TABIR_NATS_URL",
        hide_env_values = true
    )]
    nats_url: Option<String>,
    /// JetStream stream for shard tasks (replicas of one deployment share it).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "TABIR_SEARCH",
        requires = "nats_url"
    )]
    nats_stream: String,
    /// Seconds a shard task may go unacknowledged before it is redelivered to another worker
    /// (a running shard signals progress every third of it).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        requires = "nats_url"
    )]
    nats_ack_wait: u64,
    /// Attempts at one task (deliveries on NATS) before its identification fails with
    /// `shard_failed`.
    #[arg(long, value_name = "N", default_value_t = 3)]
    search_attempts: u32,
    /// Identification jobs one device may have running at once (0: no limit); past it the
    /// submission is refused with 429 `quota_exceeded`.
    #[arg(long, value_name = "N", default_value_t = 2)]
    search_jobs_per_device: usize,
    /// Seconds a client has to send a request's headers: for a connection's first request
    /// counted from its opening (TLS handshake included); also the wait allowed between
    /// requests on a kept-alive connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    header_timeout: u64,
    /// Seconds a body may take, on top of its size at --min-body-rate.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    body_timeout: u64,
    /// The slowest body upload accepted, in KiB/s.
    #[arg(long, value_name = "KIB", default_value_t = 256)]
    min_body_rate: u64,
    /// Seconds from a request's headers to its answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    request_timeout: u64,
    /// Seconds a connection may carry no bytes before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    idle_timeout: u64,
    /// Open connections; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,
    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, value_name = "N", default_value_t = 32)]
    max_h2_streams: u32,
    /// Large bodies (domain registrations) read at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    max_large_bodies: usize,
    /// Verifications of one subject per 24 hours, by all devices together (0: no quota).
    #[arg(long, value_name = "N", default_value_t = 10)]
    quota_subject_per_day: u32,
    /// Verifications and identifications by one device per hour (0: no quota).
    #[arg(long, value_name = "N", default_value_t = 200)]
    quota_device_per_hour: u32,
    /// Verifications and identifications by one device per 24 hours (0: no quota).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    quota_device_per_day: u32,
    /// MiB of prepared evaluation keys kept in memory (about 120 MiB a domain).
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    key_cache_mib: u64,
    /// Minutes a bootstrap token stays valid.
    #[arg(long, value_name = "MINUTES", default_value_t = 60)]
    bootstrap_token_minutes: u64,
    /// Seconds an answer is kept for retries of its request id.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    request_record_secs: u64,
}

/// Where the bootstrap token is written: in the data folder, owner-only.
const BOOTSTRAP_TOKEN_FILE: &str = "bootstrap-token";

impl ServerArgs {
    fn config(&self) -> ServerConfig {
        let defaults = ServerConfig::default();
        ServerConfig {
            fhe_workers: self.fhe_workers.map_or(defaults.fhe_workers, |w| w.max(1)),
            fhe_queue: self.fhe_queue.unwrap_or(defaults.fhe_queue),
            max_gallery: self.max_gallery,
            limits: Limits {
                header_timeout: Duration::from_secs(self.header_timeout.max(1)),
                body_timeout: Duration::from_secs(self.body_timeout.max(1)),
                min_body_bytes_per_sec: self.min_body_rate.max(1) * 1024,
                request_timeout: Duration::from_secs(self.request_timeout.max(1)),
                idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
                max_connections: self.max_connections.max(1),
                max_h2_streams: self.max_h2_streams.max(1),
                max_large_bodies: self.max_large_bodies.max(1),
                request_record_secs: self.request_record_secs.max(1),
            },
            quotas: Quotas {
                subject_per_day: self.quota_subject_per_day,
                device_per_hour: self.quota_device_per_hour,
                device_per_day: self.quota_device_per_day,
            },
            search: SearchConfig {
                workers: self.search_workers.unwrap_or(defaults.search.workers),
                shard_templates: self.shard_templates.max(1),
                max_attempts: self.search_attempts.max(1),
                jobs_per_device: self.search_jobs_per_device,
                nats: self.nats_url.as_ref().map(|url| NatsConfig {
                    url: url.clone(),
                    stream: self.nats_stream.clone(),
                    ack_wait: Duration::from_secs(self.nats_ack_wait.max(1)),
                    max_deliver: i64::from(self.search_attempts.max(1)),
                }),
            },
            key_cache_bytes: self.key_cache_mib.max(1) << 20,
            bootstrap_token_secs: self.bootstrap_token_minutes.max(1) * 60,
            ..defaults
        }
    }
}

fn main() -> ExitCode {
    match run(ServerArgs::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tabir-server: {message}");
            ExitCode::from(2)
        }
    }
}

/// The master key from TABIR_MASTER_KEY, or the file.
fn master_key(args: &ServerArgs) -> Result<MasterKey, String> {
    if let Some(text) = std::env::var_os(MASTER_KEY_ENV) {
        let text = zeroize::Zeroizing::new(text.to_string_lossy().into_owned());
        return MasterKey::from_hex(&text)
            .ok_or_else(|| format!("{MASTER_KEY_ENV} must hold 64 hex characters"));
    }
    let path = args
        .master_key
        .as_ref()
        .ok_or_else(|| format!("no master key: give --master-key FILE or set {MASTER_KEY_ENV}"))?;
    // With PostgreSQL the data folder holds no database, but the rule stays simple: the key
    // never lives where the server keeps its data.
    MasterKey::load_or_create(path, Some(&args.data)).map_err(|e| e.to_string())
}

fn run(args: ServerArgs) -> Result<(), String> {
    init_logging();
    let master_key = master_key(&args)?;
    let store: Arc<dyn Store> = match &args.database_url {
        Some(url) => Arc::new(
            tabir_store::postgres::PostgresStore::connect_with(
                url,
                &tabir_store::postgres::PostgresOptions {
                    schema: args.database_schema.clone(),
                    ca_file: args.database_ca.clone(),
                    pool_size: args.database_pool,
                    ..Default::default()
                },
            )
            .map_err(|e| format!("PostgreSQL: {e}"))?,
        ),
        None => Arc::new(
            tabir_store::sqlite::SqliteStore::open(&args.data)
                .map_err(|e| format!("{}: {e}", args.data.display()))?,
        ),
    };
    let server_key =
        tabir_server::load_or_create_server_key(&args.data.join(tabir_server::SERVER_KEY_FILE))
            .map_err(|e| e.to_string())?;
    let config = args.config();
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(certificate), Some(private_key)) => Some(TlsFiles {
            certificate,
            private_key,
        }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = std::net::TcpListener::bind(&args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let data = args.data.clone();
    runtime.block_on(async move {
        let public_key = server_key.public_key_hex();
        let server = tabir_server::start(
            Startup {
                store,
                server_key,
                master_key,
                config,
                custodian_key: args.custodian_key,
                tls,
            },
            listener,
        )
        .await
        .map_err(|e| e.to_string())?;
        // Stdout carries what an operator (or a script) needs; logs go to stderr. The audit
        // key's line comes last: a script reading the banner stops there.
        if let Some(token) = &server.bootstrap_token {
            let path = data.join(BOOTSTRAP_TOKEN_FILE);
            tabir_server::write_secret_file(&path, token.token.as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let expires = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_secs(token.expires_at),
            );
            println!("bootstrap token file: {}", path.display());
            println!(
                "  (one use, until {expires}: `tabir custody bootstrap --token-file {}` registers the first custodian)",
                path.display()
            );
        }
        println!("listening on {scheme}://{}", server.address);
        println!("audit public key: {public_key}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let stopper = server.stopper();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            stopper.stop(Duration::from_secs(30));
        });
        server.wait().await.map_err(|e| e.to_string())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Structured logs on stderr; `RUST_LOG` filters (default: info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
