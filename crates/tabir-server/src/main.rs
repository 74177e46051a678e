//! `tabir-server`: the verification server, a binary of its own. Its dependency tree has no
//! device code: no key generation, encryption or decryption, no face pipeline, no ONNX Runtime
//! (checked by tests/blind.rs).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tabir_server::{MasterKey, ServerConfig, Startup, TlsFiles, MASTER_KEY_ENV};
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
If no custodian is registered yet it prints a one-time bootstrap token: the custodian presents it
once with `tabir custody bootstrap`. Or name the custodian's public key with --custodian-key.

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
    #[arg(long, value_name = "URL", env = "TABIR_DATABASE_URL")]
    database_url: Option<String>,
    /// PostgreSQL schema to use (created if missing).
    #[arg(long, value_name = "NAME", requires = "database_url")]
    database_schema: Option<String>,
    /// Register this custodian public key (64 hex characters) instead of printing a token.
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
    /// The largest gallery one identification scans.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_gallery: usize,
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
            tabir_store::postgres::PostgresStore::connect(url, args.database_schema.as_deref())
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
    let mut config = ServerConfig::default();
    if let Some(workers) = args.fhe_workers {
        config.fhe_workers = workers.max(1);
    }
    if let Some(queue) = args.fhe_queue {
        config.fhe_queue = queue;
    }
    config.max_gallery = args.max_gallery;
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
        // Stdout carries what an operator (or a script) needs; logs go to stderr.
        println!("listening on {scheme}://{}", server.address);
        println!("audit public key: {public_key}");
        if let Some(token) = &server.bootstrap_token {
            println!("bootstrap token: {token}");
            println!(
                "  (one use: `tabir custody bootstrap` registers the first custodian with it)"
            );
        }
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
