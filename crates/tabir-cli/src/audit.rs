//! `tabir audit`: export the log (auditor), verify an exported log against the server's public
//! key (anyone: it needs no secret and sees no biometric data), check the decisions devices
//! reported against the escrowed results (auditor, with its own share), and the auditor page
//! that shows all of it (`audit serve`). The commands and the page share the functions below.

// The page's modules live beside this file (src/audit_web.rs, src/audit_summary.rs).
#[path = "audit_summary.rs"]
pub(crate) mod summary;
#[path = "audit_web.rs"]
mod web;

use clap::Subcommand;
use ed25519_dalek::VerifyingKey;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tabir_client::escrow::DecisionCheck;
use tabir_client::{AdminClient, ClientConfig, ClientError, Passphrase};
use tabir_crypto::{DomainConfig, KeyFingerprint};
use tabir_device_crypto::DecryptionShare;
use tabir_proto::audit::{
    check_extends, verify_links_after, ChainError, Checkpoint, ExtendError, LogEntry,
};
use tabir_proto::messages::ServerInfo;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Download the whole audit log (auditor or custodian key) to a JSON file (mode 0600), and
    /// a signed checkpoint of its head beside it (FILE.checkpoint.json): keep the checkpoint,
    /// and check later logs extend it (`audit verify --checkpoint`). Prints the server's public
    /// key: compare it with the one recorded at the server's first start. An auditor gets its
    /// own domain's entries whole and the others redacted (the chain still verifies).
    Export {
        /// An auditor's configuration (tabir.toml from `tabir custody device add --role auditor`).
        #[arg(long, value_name = "FILE", env = "TABIR_CONFIG")]
        config: Option<PathBuf>,
        /// Where to write the log (a JSON array of entries, oldest first).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check what devices reported against the escrowed results: the server re-shares the
    /// results of the range to this auditor's share (and records the request in the log), the
    /// auditor opens them and compares with the reports in the chain-verified log. Lists
    /// mismatched and unreported results.
    ///
    /// Exit status 0 when every result in the range was reported and matches, 1 when one was
    /// not, 2 when the check could not run.
    Decisions {
        /// An auditor's configuration (tabir.toml from `tabir custody device add --role auditor`).
        #[arg(long, value_name = "FILE", env = "TABIR_CONFIG")]
        config: Option<PathBuf>,
        /// First audit entry to check [default: the first].
        #[arg(long, value_name = "SEQ", default_value_t = 1)]
        from: u64,
        /// Last audit entry to check [default: the last].
        #[arg(long, value_name = "SEQ")]
        to: Option<u64>,
        /// The server's audit key (64 hex characters) the log must verify under [default: the
        /// key the server names, printed for comparison with your records].
        #[arg(long, value_name = "HEX")]
        server_key: Option<String>,
        /// Print one JSON object instead of sentences.
        #[arg(long)]
        json: bool,
    },
    /// Verify the hash chain and the server's signature on every entry of an exported log, and
    /// that it extends a checkpoint kept from before (no entry removed from its end, none
    /// rewritten).
    ///
    /// Exit status 0 when the whole log verifies, 1 when an entry does not (the first bad one
    /// is named) or the log does not extend the checkpoint, 2 when a file cannot be read.
    Verify {
        /// The exported log: a JSON array of entries, oldest first, from the first entry (or
        /// from the entry after --from-checkpoint's).
        #[arg(long)]
        log: PathBuf,
        /// The server's Ed25519 public key, 64 hex characters.
        #[arg(long)]
        server_key: String,
        /// A checkpoint kept from earlier: the log must contain its entry, with its hash.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The log starts after this checkpoint's entry (verify only what came since).
        #[arg(long, value_name = "FILE")]
        from_checkpoint: Option<PathBuf>,
        /// Print one JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// The auditor page: a local web page (this machine only) with the key domains and their
    /// fingerprints, the keys with their issue and revocation times, the audit log's
    /// verification, the decision escrow check, and charts of verifications, refusals and
    /// quota hits per day per device. Asks for the passphrase once, here; open the printed
    /// address in a browser on this machine; Ctrl-C stops it. Every refresh reads the log and
    /// re-opens the escrowed results, and the server records both.
    Serve(web::ServeArgs),
}

const MAX_LOG_BYTES: u64 = 1 << 30;

pub(crate) fn parse_key(text: &str) -> Result<VerifyingKey, String> {
    tabir_proto::signing::parse_public_key(text.trim())
        .ok_or_else(|| "the server key must be an Ed25519 public key: 64 hex characters".into())
}

/// The auditor's signed client, and its configuration and passphrase.
fn auditor(config: Option<PathBuf>) -> Result<(ClientConfig, Passphrase, AdminClient), String> {
    let config = load_config(config)?;
    let passphrase = crate::secrets::passphrase(
        crate::secrets::PASSPHRASE_ENV,
        "the auditor's key files",
        false,
    )?;
    let admin = admin_client(&config, &passphrase).map_err(|e| e.to_string())?;
    Ok((config, passphrase, admin))
}

/// An auditor's configuration (`--config`, or `TABIR_CONFIG` and the other variables).
pub(crate) fn load_config(config: Option<PathBuf>) -> Result<ClientConfig, String> {
    ClientConfig::load(config.as_deref()).map_err(|e| e.to_string())
}

/// The client signing with the bundle's key (opened with `passphrase`).
pub(crate) fn admin_client(
    config: &ClientConfig,
    passphrase: &Passphrase,
) -> Result<AdminClient, ClientError> {
    let key = tabir_client::custody::read_signing_key(&config.device_key, passphrase)?;
    Ok(AdminClient::new(config.transport(key)?))
}

/// An auditor's decryption share, with its domain's parameters and fingerprint (from the
/// bundle's public key).
pub(crate) struct AuditorShare {
    pub share: DecryptionShare,
    pub config: DomainConfig,
    pub fingerprint: KeyFingerprint,
}

/// Open the auditor bundle's share (it re-opens escrowed results).
pub(crate) fn auditor_share(
    config: &ClientConfig,
    passphrase: &Passphrase,
) -> Result<AuditorShare, String> {
    let not_auditor = |what: &str| {
        format!("no {what} in the configuration: checking decisions needs an auditor bundle")
    };
    let share_path = config.share.clone().ok_or_else(|| not_auditor("share"))?;
    let public_key = tabir_client::custody::read_public_key(
        config
            .public_key
            .as_ref()
            .ok_or_else(|| not_auditor("public_key"))?,
    )
    .map_err(|e| e.to_string())?;
    let (domain_config, fingerprint) = (*public_key.config(), public_key.fingerprint());
    let share = tabir_client::custody::read_decryption_share(
        &share_path,
        passphrase,
        &domain_config,
        fingerprint,
    )
    .map_err(|e| e.to_string())?;
    Ok(AuditorShare {
        share,
        config: domain_config,
        fingerprint,
    })
}

/// What `audit export` downloads: the server's information, a signed checkpoint of the log's
/// head taken first, and the whole log (which runs past the checkpoint, so contains its
/// entry). `progress` is told the count of entries so far.
pub(crate) async fn download(
    admin: &AdminClient,
    progress: impl FnMut(usize),
) -> Result<(ServerInfo, Vec<LogEntry>, Checkpoint), ClientError> {
    let info = admin.server_info().await?;
    // Signed before the export, so the export contains the checkpoint's entry (the export runs
    // to the log's end, past it).
    let checkpoint = admin.checkpoint().await?;
    let entries = admin.export_audit(progress).await?;
    Ok((info, entries, checkpoint))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn export(config: Option<PathBuf>, out: PathBuf) -> Result<ExitCode, String> {
    let (_, _, admin) = auditor(config)?;
    let runtime = runtime()?;
    let (info, entries, checkpoint) = runtime
        .block_on(async {
            let downloaded =
                download(&admin, |count| eprint!("\rdownloaded {count} entries")).await?;
            eprintln!();
            Ok::<_, ClientError>(downloaded)
        })
        .map_err(|e| e.to_string())?;
    let text = serde_json::to_vec_pretty(&entries).map_err(|e| e.to_string())?;
    tabir_client::sealed::write_private(&out, &text)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let checkpoint_path = checkpoint_file(&out);
    let text = serde_json::to_vec_pretty(&checkpoint).map_err(|e| e.to_string())?;
    tabir_client::sealed::write_private(&checkpoint_path, &text)
        .map_err(|e| format!("{}: {e}", checkpoint_path.display()))?;
    let redacted = entries.iter().filter(|e| e.full().is_none()).count();
    println!(
        "exported {} entries to {} ({redacted} of other domains redacted)",
        entries.len(),
        out.display()
    );
    println!(
        "checkpoint at entry {} written to {} (keep it: later logs must extend it)",
        checkpoint.seq,
        checkpoint_path.display()
    );
    println!("server audit key: {}", info.audit_public_key);
    Ok(ExitCode::SUCCESS)
}

struct DecisionsArgs {
    config: Option<PathBuf>,
    from: u64,
    to: Option<u64>,
    server_key: Option<String>,
    json: bool,
}

/// Why the escrow check could not run.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// The server refused, failed or could not be reached; or the log did not verify.
    Client(ClientError),
    /// The server has no such domain, or another fingerprint for it.
    Domain(String),
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::Client(error) => error.fmt(f),
            CheckError::Domain(message) => f.write_str(message),
        }
    }
}

/// The escrow check of `audit decisions`: the server's domain must carry the bundle's
/// fingerprint; then the log (verified under `server_key`) from `from` to `to` is set against
/// the escrowed results re-shared to the auditor's share (the server records the request).
pub(crate) async fn check_decisions(
    admin: &AdminClient,
    domain: &str,
    share: &AuditorShare,
    server_key: &VerifyingKey,
    (from, to): (u64, Option<u64>),
    progress: impl FnMut(&str),
) -> Result<DecisionCheck, CheckError> {
    let domain_info = admin
        .domains()
        .await
        .map_err(CheckError::Client)?
        .into_iter()
        .find(|d| d.name == domain)
        .ok_or_else(|| CheckError::Domain(format!("the server has no key domain {domain}")))?;
    if domain_info.fingerprint != share.fingerprint.to_hex() {
        return Err(CheckError::Domain(format!(
            "the server's domain {} has fingerprint {}, not the one in this bundle ({})",
            domain_info.name,
            domain_info.fingerprint,
            share.fingerprint.to_hex()
        )));
    }
    let auditor = tabir_client::escrow::Auditor {
        admin,
        domain,
        share: &share.share,
        config: &share.config,
        fingerprint: share.fingerprint,
        server_key,
    };
    auditor
        .check_decisions(from, to, progress)
        .await
        .map_err(CheckError::Client)
}

fn decisions(args: DecisionsArgs) -> Result<ExitCode, String> {
    let (config, passphrase, admin) = auditor(args.config)?;
    let share = auditor_share(&config, &passphrase)?;
    let runtime = runtime()?;
    let checked = runtime.block_on(async {
        let info = admin.server_info().await.map_err(|e| e.to_string())?;
        let server_key = parse_key(args.server_key.as_deref().unwrap_or(&info.audit_public_key))?;
        if args.server_key.is_none() && !args.json {
            eprintln!(
                "checking the log under the server's audit key {} (compare it with your records, or pin it with --server-key)",
                info.audit_public_key
            );
        }
        let quiet = args.json || !std::io::IsTerminal::is_terminal(&std::io::stderr());
        check_decisions(
            &admin,
            &config.domain,
            &share,
            &server_key,
            (args.from, args.to),
            |step| {
                if !quiet {
                    eprint!("\r{step:<70}");
                }
            },
        )
        .await
        .map_err(|e| e.to_string())
    });
    if !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprint!("\r{:<70}\r", "");
    }
    let check = checked?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&check).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "decisions in audit entries {}..{}: {} checked, {} matching, {} mismatched, {} unreported",
            check.from,
            check.to,
            check.checked,
            check.matching,
            check.mismatched.len(),
            check.unreported.len()
        );
        for finding in &check.mismatched {
            println!(
                "  MISMATCH entry {}: device {} reported {}, the escrowed result is {}",
                finding.seq,
                finding.device,
                finding.reported.map_or("nothing", |d| d.name()),
                finding.escrowed.name()
            );
        }
        for finding in &check.unreported {
            println!(
                "  UNREPORTED entry {}: device {} never reported its decision (the escrowed result is {})",
                finding.seq,
                finding.device,
                finding.escrowed.name()
            );
        }
        for seq in &check.missing_escrow {
            println!(
                "  MISSING ESCROW entry {seq}: the log records a result the server did not escrow"
            );
        }
        println!(
            "  (the server recorded this check as audit entr{} {:?})",
            if check.request_entries.len() == 1 {
                "y"
            } else {
                "ies"
            },
            check.request_entries
        );
    }
    Ok(if check.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn run(command: AuditCommand) -> Result<ExitCode, String> {
    match command {
        AuditCommand::Export { config, out } => export(config, out),
        AuditCommand::Decisions {
            config,
            from,
            to,
            server_key,
            json,
        } => decisions(DecisionsArgs {
            config,
            from,
            to,
            server_key,
            json,
        }),
        AuditCommand::Verify {
            log,
            server_key,
            checkpoint,
            from_checkpoint,
            json,
        } => verify(VerifyArgs {
            log,
            server_key,
            checkpoint,
            from_checkpoint,
            json,
        }),
        AuditCommand::Serve(args) => web::serve(args).map(|()| ExitCode::SUCCESS),
    }
}

/// Where `audit export --out FILE` puts the checkpoint.
fn checkpoint_file(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".checkpoint.json");
    PathBuf::from(name)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > MAX_LOG_BYTES {
        return Err(format!(
            "{}: over 1 GiB; verify it in pages",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not {what}: {e}", path.display()))
}

/// Why a log does not verify.
#[derive(Debug)]
pub(crate) enum VerifyError {
    /// The checkpoint the log starts after is not the server's.
    StartNotSigned,
    /// An entry breaks the chain or carries no valid signature (it names the entry).
    Chain(ChainError),
    /// The log does not extend the checkpoint kept from before.
    Extends(ExtendError),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::StartNotSigned => {
                f.write_str("the starting checkpoint is not signed by the server's key")
            }
            VerifyError::Chain(error) => error.fmt(f),
            VerifyError::Extends(error) => error.fmt(f),
        }
    }
}

/// The check of `audit verify`: the entries (from the first, or from after the checkpoint
/// `start`) chain and carry the server's signature under `key`, and contain the entry of the
/// checkpoint `kept` with its hash.
pub(crate) fn verify_entries(
    entries: &[LogEntry],
    start: Option<&Checkpoint>,
    kept: Option<&Checkpoint>,
    key: &VerifyingKey,
) -> Result<(), VerifyError> {
    if let Some(start) = start {
        if !start.is_signed_by(key) {
            return Err(VerifyError::StartNotSigned);
        }
    }
    let after = start.map(|c| (c.seq, c.hash.clone()));
    verify_links_after(entries, after.clone(), key).map_err(VerifyError::Chain)?;
    if let Some(kept) = kept {
        let previous = after.as_ref().map(|(seq, hash)| (*seq, hash.as_str()));
        check_extends(entries, previous, kept, key).map_err(VerifyError::Extends)?;
    }
    Ok(())
}

struct VerifyArgs {
    log: PathBuf,
    server_key: String,
    checkpoint: Option<PathBuf>,
    from_checkpoint: Option<PathBuf>,
    json: bool,
}

fn verify(args: VerifyArgs) -> Result<ExitCode, String> {
    let key = parse_key(&args.server_key)?;
    let entries: Vec<LogEntry> = read_json(&args.log, "an exported audit log")?;
    let start: Option<Checkpoint> = args
        .from_checkpoint
        .as_deref()
        .map(|path| read_json(path, "an audit checkpoint"))
        .transpose()?;
    let kept: Option<Checkpoint> = args
        .checkpoint
        .as_deref()
        .map(|path| read_json(path, "an audit checkpoint"))
        .transpose()?;
    let outcome =
        verify_entries(&entries, start.as_ref(), kept.as_ref(), &key).map_err(|e| e.to_string());
    let last = entries
        .last()
        .map_or_else(|| start.as_ref().map_or(0, |c| c.seq), LogEntry::seq);
    if args.json {
        let mut report = serde_json::json!({
            "entries": entries.len(),
            "last_seq": last,
            "valid": outcome.is_ok(),
        });
        if let Some(kept) = &kept {
            report["extends_checkpoint"] = serde_json::json!(kept.seq);
        }
        if let Err(error) = &outcome {
            report["error"] = serde_json::json!(error);
        }
        println!("{report}");
    } else {
        match &outcome {
            Ok(()) => {
                print!(
                    "audit log verifies: {} entries, up to entry {last}",
                    entries.len()
                );
                match &kept {
                    Some(kept) => println!("; it extends the checkpoint at entry {}", kept.seq),
                    None => println!(),
                }
            }
            Err(error) => println!("audit log does NOT verify: {error}"),
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
