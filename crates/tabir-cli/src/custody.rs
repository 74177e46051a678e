//! `tabir custody`: key domains and device keys, for custodians and auditors.

use crate::secrets::{passphrase, BUNDLE_PASSPHRASE_ENV, PASSPHRASE_ENV};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Instant;
use tabir_client::ceremony::{init_domain, issue_key, revoke_key, InitStage, Issue};
use tabir_client::custody::Custody;
use tabir_client::{AdminClient, Transport};
use tabir_device_crypto::domain_config;
use tabir_proto::Role;

#[derive(Args, Clone)]
pub struct KeysDir {
    /// The custodian's key folder.
    #[arg(
        long,
        value_name = "DIR",
        env = "TABIR_KEYS_DIR",
        default_value = "keys"
    )]
    keys: PathBuf,
}

#[derive(Args, Clone)]
pub struct ServerUrl {
    /// The server's base URL.
    #[arg(long, value_name = "URL", env = "TABIR_SERVER")]
    server: String,
    /// An extra PEM certificate to trust (private CA or self-signed server).
    #[arg(long, value_name = "PEM", env = "TABIR_TLS_ROOT")]
    tls_root: Option<PathBuf>,
    /// Allow plain http to another machine (a protected network only; http to this machine is
    /// always allowed).
    #[arg(long, env = "TABIR_ALLOW_HTTP")]
    allow_http: bool,
}

impl ServerUrl {
    fn tls_root(&self) -> Result<Option<Vec<u8>>, String> {
        self.tls_root
            .as_ref()
            .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
            .transpose()
    }

    fn transport(&self, key: ed25519_dalek::SigningKey) -> Result<Transport, String> {
        let tls_root = self.tls_root()?;
        if self.allow_http {
            Transport::with_insecure_http(&self.server, key, tls_root.as_deref())
        } else {
            Transport::new(&self.server, key, tls_root.as_deref())
        }
        .map_err(|e| e.to_string())
    }
}

#[derive(Subcommand)]
pub enum CustodyCommand {
    /// Create a key domain and register it with the server. The domain's secret key is split
    /// at once into the custodian's reference share (sealed here, 0600) and the server's (sent
    /// in the registration, never written here), and wiped: no file anywhere holds it. Run
    /// `tabir custody bootstrap` first.
    Init {
        #[arg(long)]
        domain: String,
        /// 1:1 policy: the cosine similarity at or above which two faces match (0.45: about
        /// 1 impostor in 9,000; see docs/face.md for the trade-off).
        #[arg(long, default_value_t = tabir_face::DEFAULT_COSINE_THRESHOLD)]
        threshold: f32,
        /// 1:N policy: the stricter threshold of a search over the whole domain (0.50: about
        /// 0.5 false matches per search of 100,000; a match flags a case for review).
        #[arg(long, default_value_t = tabir_face::DEFAULT_IDENTIFY_COSINE_THRESHOLD)]
        identify_threshold: f32,
        #[command(flatten)]
        keys: KeysDir,
        #[command(flatten)]
        server: ServerUrl,
        #[arg(long)]
        json: bool,
    },
    /// Register the custodian's key with a fresh server, using the one-time token it wrote to
    /// its data folder (bootstrap-token).
    Bootstrap {
        /// The token itself.
        #[arg(
            long,
            value_name = "TOKEN",
            env = "TABIR_BOOTSTRAP_TOKEN",
            hide_env_values = true,
            required_unless_present = "token_file"
        )]
        token: Option<String>,
        /// The file the server wrote the token to.
        #[arg(long, value_name = "FILE", conflicts_with = "token")]
        token_file: Option<PathBuf>,
        #[arg(long, default_value = "custodian")]
        label: String,
        #[command(flatten)]
        keys: KeysDir,
        #[command(flatten)]
        server: ServerUrl,
    },
    /// Issue, revoke and list device and auditor keys.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Domains, fingerprints, devices and auditors with the times their shares were issued and
    /// revoked, and where secret files are and what they hold (never their contents).
    Status {
        #[command(flatten)]
        keys: KeysDir,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Issue a key for an office device (or an auditor) with its own decryption share pair,
    /// write its bundle (sealed signing key and share, the domain's public key, tabir.toml) to
    /// --out, and register it with the server (which derives its half of the share pair).
    Add {
        #[arg(long)]
        domain: String,
        /// Who holds it, e.g. "Kantor Desa Sukamaju, loket 1".
        #[arg(long)]
        label: String,
        #[arg(long, value_enum, default_value = "device")]
        role: BundleRole,
        /// Folder for the bundle to hand over.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        keys: KeysDir,
        #[command(flatten)]
        server: ServerUrl,
    },
    /// Revoke a device's key at once: the server refuses it and deletes its half of the share
    /// pair, so the device's share opens nothing from then on.
    Revoke {
        #[arg(long)]
        domain: String,
        #[arg(long, value_name = "KEY_ID")]
        key_id: String,
        #[command(flatten)]
        keys: KeysDir,
        #[command(flatten)]
        server: ServerUrl,
    },
    /// The domain's keys as the server has them.
    List {
        #[arg(long)]
        domain: String,
        #[command(flatten)]
        keys: KeysDir,
        #[command(flatten)]
        server: ServerUrl,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BundleRole {
    Device,
    Auditor,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn custodian_passphrase(confirm: bool) -> Result<tabir_client::Passphrase, String> {
    passphrase(PASSPHRASE_ENV, "the custodian's key files", confirm)
}

/// The custodian's signed client for `server`.
fn admin(custody: &Custody, server: &ServerUrl) -> Result<AdminClient, String> {
    admin_with(custody, server, &custodian_passphrase(false)?)
}

fn admin_with(
    custody: &Custody,
    server: &ServerUrl,
    passphrase: &tabir_client::Passphrase,
) -> Result<AdminClient, String> {
    let (key, _) = custody
        .custodian_key(passphrase)
        .map_err(|e| e.to_string())?;
    let transport = server.transport(key)?;
    Ok(AdminClient::new(transport))
}

pub fn run(command: CustodyCommand) -> Result<(), String> {
    match command {
        CustodyCommand::Init {
            domain,
            threshold,
            identify_threshold,
            keys,
            server,
            json,
        } => {
            let custody = Custody::new(keys.keys);
            if !custody.custodian_key_path().exists() {
                return Err(format!(
                    "no custodian key in {}: register with the server first \
                     (`tabir custody bootstrap --server URL --token-file FILE`)",
                    custody.root.display()
                ));
            }
            let passphrase = custodian_passphrase(false)?;
            let admin = admin_with(&custody, &server, &passphrase)?;
            let config = domain_config(128, threshold).map_err(|e| e.to_string())?;
            let identify_threshold =
                tabir_device_crypto::identify_threshold(&config, identify_threshold)
                    .map_err(|e| e.to_string())?;
            let spinner = indicatif::ProgressBar::new_spinner();
            if json {
                spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            spinner.enable_steady_tick(std::time::Duration::from_millis(100));
            let started = Instant::now();
            let mut generated = std::time::Duration::ZERO;
            let created = runtime()?.block_on(init_domain(
                &custody,
                &admin,
                &domain,
                config,
                identify_threshold,
                &passphrase,
                |stage| match stage {
                    InitStage::Generating => spinner.set_message(format!(
                        "generating the keys of domain {domain} and splitting its secret"
                    )),
                    InitStage::Registering { bytes } => {
                        generated = started.elapsed();
                        spinner.set_message(format!(
                            "registering domain {domain} with {} ({:.1} MB)",
                            server.server,
                            bytes as f64 / 1e6
                        ))
                    }
                },
            ));
            spinner.finish_and_clear();
            let manifest = created.map_err(|e| e.to_string())?;
            let dir = custody.domain_dir(&domain);
            if json {
                println!("{}", serde_json::to_string(&manifest).unwrap_or_default());
            } else {
                println!(
                    "created key domain {domain} in {:.1} s and registered it with {} in {:.1} s\n  \
                     fingerprint {} (confirmed by the server)\n  policy: cosine >= {} (score >= {})\n  \
                     the domain's secret key was split and wiped: no file holds it\n  \
                     custodian's reference share (sealed, 0600; worthless alone): {}\n  \
                     server's share: sent in the registration, sealed by the server, never written here\n  \
                     public key (for device bundles): {}",
                    generated.as_secs_f64(),
                    server.server,
                    (started.elapsed() - generated).as_secs_f64(),
                    manifest.fingerprint,
                    manifest.threshold_cosine,
                    manifest.threshold_score,
                    dir.join(tabir_client::custody::CUSTODIAN_SHARE_FILE).display(),
                    dir.join(tabir_client::custody::PUBLIC_KEY_FILE).display(),
                );
            }
            Ok(())
        }
        CustodyCommand::Bootstrap {
            token,
            token_file,
            label,
            keys,
            server,
        } => {
            let token = match (token, token_file) {
                (Some(token), _) => zeroize::Zeroizing::new(token),
                (None, Some(file)) => zeroize::Zeroizing::new(
                    std::fs::read_to_string(&file)
                        .map_err(|e| format!("{}: {e}", file.display()))?
                        .trim()
                        .to_owned(),
                ),
                (None, None) => return Err("give --token or --token-file".into()),
            };
            let custody = Custody::new(keys.keys);
            let first_use = !custody.custodian_key_path().exists();
            let (key, _) = custody
                .custodian_key(&custodian_passphrase(first_use)?)
                .map_err(|e| e.to_string())?;
            let tls_root = server.tls_root()?;
            let info = runtime()?
                .block_on(AdminClient::bootstrap(
                    &server.server,
                    &token,
                    &label,
                    &key.verifying_key(),
                    tls_root.as_deref(),
                    server.allow_http,
                ))
                .map_err(|e| e.to_string())?;
            println!(
                "registered as the custodian of {} (key id {})",
                server.server, info.key_id
            );
            Ok(())
        }
        CustodyCommand::Device(command) => run_device(command),
        CustodyCommand::Status { keys, json } => {
            let status = Custody::new(keys.keys)
                .status()
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
                return Ok(());
            }
            println!("key folder {}", status.keys_dir.display());
            match &status.custodian_key {
                Some(file) => println!(
                    "  custodian key: {} ({} bytes, mode {})",
                    file.path.display(),
                    file.bytes,
                    file.mode
                ),
                None => println!("  custodian key: none yet"),
            }
            if status.domains.is_empty() {
                println!(
                    "  no key domains (create one with `tabir custody init --domain NAME --server URL`)"
                );
            }
            for domain in &status.domains {
                let m = &domain.manifest;
                println!(
                    "domain {}\n  fingerprint {}\n  created {}  policy cosine >= {}\n  \
                     the domain's secret key exists nowhere: it was split into share pairs and wiped",
                    m.name, m.fingerprint, m.created_at, m.threshold_cosine
                );
                for r in &m.registrations {
                    println!(
                        "  registered with {} at {} (the server holds its half of every share pair, sealed)",
                        r.server, r.at
                    );
                }
                for d in &m.devices {
                    let role = match d.role {
                        Role::Auditor => "auditor",
                        _ => "device",
                    };
                    match &d.revoked_at {
                        None => println!(
                            "  {role} {} \"{}\": share issued {}",
                            d.key_id, d.label, d.issued_at
                        ),
                        Some(revoked) => println!(
                            "  {role} {} \"{}\": share issued {}, REVOKED {revoked} \
                             (the server deleted its half; this share opens nothing now)",
                            d.key_id, d.label, d.issued_at
                        ),
                    }
                }
                for file in &domain.secret_files {
                    println!(
                        "  secret file {} ({} bytes, mode {}): {}",
                        file.path.display(),
                        file.bytes,
                        file.mode,
                        file.holds
                    );
                }
                for file in &domain.legacy_secret_files {
                    println!(
                        "  WARNING {} holds the whole secret key of a symmetric domain from before \
                         key custody shares: delete it (the domain is refused by this version)",
                        file.display()
                    );
                }
            }
            Ok(())
        }
    }
}

fn run_device(command: DeviceCommand) -> Result<(), String> {
    match command {
        DeviceCommand::Add {
            domain,
            label,
            role,
            out,
            keys,
            server,
        } => {
            let custody = Custody::new(keys.keys);
            let custodian = custodian_passphrase(false)?;
            let bundle = passphrase(
                BUNDLE_PASSPHRASE_ENV,
                &format!("the bundle in {}", out.display()),
                true,
            )?;
            let role = match role {
                BundleRole::Device => Role::Device,
                BundleRole::Auditor => Role::Auditor,
            };
            let admin = admin_with(&custody, &server, &custodian)?;
            let (info, _) = runtime()?
                .block_on(issue_key(
                    &custody,
                    &admin,
                    Issue {
                        domain: &domain,
                        label: &label,
                        role,
                        server: &server.server,
                        out: &out,
                        custodian_passphrase: &custodian,
                        bundle_passphrase: &bundle,
                    },
                ))
                .map_err(|e| format!("issuing the key failed, no bundle was kept: {e}"))?;
            let role = if role == Role::Auditor {
                "auditor"
            } else {
                "device"
            };
            println!(
                "issued {role} key {} for domain {domain} with its own decryption share; bundle in {} \
                 (hand it over with its passphrase, separately). It holds no key that opens a template.",
                info.key_id,
                out.display()
            );
            Ok(())
        }
        DeviceCommand::Revoke {
            domain,
            key_id,
            keys,
            server,
        } => {
            let custody = Custody::new(keys.keys);
            let admin = admin(&custody, &server)?;
            let info = runtime()?
                .block_on(revoke_key(&custody, &admin, &domain, &key_id))
                .map_err(|e| e.to_string())?;
            println!(
                "revoked {key_id} in {domain} at {}: the server refuses it and deleted its half of the share pair",
                info.revoked_at.unwrap_or_default()
            );
            Ok(())
        }
        DeviceCommand::List {
            domain,
            keys,
            server,
            json,
        } => {
            let custody = Custody::new(keys.keys);
            let admin = admin(&custody, &server)?;
            let devices = runtime()?
                .block_on(admin.keys(&domain))
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&devices).unwrap_or_default()
                );
            } else {
                for d in devices {
                    let role = match d.role {
                        Role::Auditor => "auditor",
                        Role::Custodian => "custodian",
                        _ => "device",
                    };
                    let share = if d.holds_share {
                        "; the server holds its share half"
                    } else if d.role == Role::Custodian {
                        ""
                    } else {
                        "; no share half at the server"
                    };
                    println!(
                        "{} {role} \"{}\" registered {}{}{share}",
                        d.key_id,
                        d.label,
                        d.registered_at,
                        d.revoked_at
                            .map(|t| format!(", revoked {t}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
    }
}
