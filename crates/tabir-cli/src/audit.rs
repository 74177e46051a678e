//! `tabir audit verify`: check an exported audit log (a JSON array of entries) against the
//! server's public key. Anyone can run it; it needs no secret and sees no biometric data.

use clap::Subcommand;
use ed25519_dalek::VerifyingKey;
use std::path::PathBuf;
use std::process::ExitCode;
use tabir_proto::audit::{verify_chain, AuditEntry};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Download the whole audit log (auditor or custodian key) to a JSON file, and print the
    /// server's public key. Compare the key with the one the server printed at its first
    /// start (or your records) before trusting a verification with it.
    Export {
        /// An auditor's configuration (tabir.toml from `tabir custody device add --role auditor`).
        #[arg(long, value_name = "FILE", env = "TABIR_CONFIG")]
        config: Option<PathBuf>,
        /// Where to write the log (a JSON array of entries, oldest first).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify the hash chain and the server's signature on every entry of an exported log.
    ///
    /// Exit status 0 when the whole log verifies, 1 when an entry does not (the first bad one
    /// is named), 2 when the log or key cannot be read.
    Verify {
        /// The exported log: a JSON array of entries, oldest first, from the first entry.
        #[arg(long)]
        log: PathBuf,
        /// The server's Ed25519 public key, 64 hex characters.
        #[arg(long)]
        server_key: String,
        /// Print one JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

const MAX_LOG_BYTES: u64 = 1 << 30;

fn parse_key(text: &str) -> Result<VerifyingKey, String> {
    tabir_proto::signing::parse_public_key(text.trim())
        .ok_or_else(|| "the server key must be an Ed25519 public key: 64 hex characters".into())
}

fn export(config: Option<PathBuf>, out: PathBuf) -> Result<ExitCode, String> {
    let config = tabir_client::ClientConfig::load(config.as_deref()).map_err(|e| e.to_string())?;
    let passphrase = crate::secrets::passphrase(
        crate::secrets::PASSPHRASE_ENV,
        "the auditor's key file",
        false,
    )?;
    let key = tabir_client::custody::read_signing_key(&config.device_key, &passphrase)
        .map_err(|e| e.to_string())?;
    let transport = tabir_client::Transport::new(
        &config.server,
        key,
        config.tls_root_pem().map_err(|e| e.to_string())?.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let admin = tabir_client::AdminClient::new(transport);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (info, entries) = runtime
        .block_on(async {
            let info = admin.server_info().await?;
            let entries = admin
                .export_audit(|count| eprint!("\rdownloaded {count} entries"))
                .await?;
            eprintln!();
            Ok::<_, tabir_client::ClientError>((info, entries))
        })
        .map_err(|e| e.to_string())?;
    let text = serde_json::to_vec_pretty(&entries).map_err(|e| e.to_string())?;
    let partial = out.with_extension("partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &out))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    println!("exported {} entries to {}", entries.len(), out.display());
    println!("server audit key: {}", info.audit_public_key);
    Ok(ExitCode::SUCCESS)
}

pub fn run(command: AuditCommand) -> Result<ExitCode, String> {
    match command {
        AuditCommand::Export { config, out } => export(config, out),
        AuditCommand::Verify {
            log,
            server_key,
            json,
        } => {
            let key = parse_key(&server_key)?;
            let size = std::fs::metadata(&log)
                .map_err(|e| format!("{}: {e}", log.display()))?
                .len();
            if size > MAX_LOG_BYTES {
                return Err(format!("{}: over 1 GiB; verify it in pages", log.display()));
            }
            let text =
                std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let entries: Vec<AuditEntry> = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not an exported audit log: {e}", log.display()))?;
            let outcome = verify_chain(&entries, None, &key);
            if json {
                let report = match &outcome {
                    Ok(()) => serde_json::json!({"entries": entries.len(), "valid": true}),
                    Err(error) => serde_json::json!({
                        "entries": entries.len(),
                        "valid": false,
                        "error": error.to_string(),
                    }),
                };
                println!("{report}");
            } else {
                match &outcome {
                    Ok(()) => println!("audit log verifies: {} entries", entries.len()),
                    Err(error) => println!("audit log does NOT verify: {error}"),
                }
            }
            Ok(if outcome.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
