//! `tabir custody`: key domains and device keys, for custodians and auditors.

use crate::secrets::{passphrase, BUNDLE_PASSPHRASE_ENV, PASSPHRASE_ENV};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Instant;
use tabir_client::custody::{Custody, IssuedKey, Registration};
use tabir_client::{AdminClient, Transport};
use tabir_crypto::params::DomainConfig;
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
}

impl ServerUrl {
    fn tls_root(&self) -> Result<Option<Vec<u8>>, String> {
        self.tls_root
            .as_ref()
            .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
            .transpose()
    }
}

#[derive(Subcommand)]
pub enum CustodyCommand {
    /// Create a key domain: its secret key sealed at rest (0600), its evaluation keys and their
    /// fingerprint. Also creates the custodian's own signing key on first use.
    Init {
        #[arg(long)]
        domain: String,
        /// Match policy: the cosine similarity at or above which two faces match.
        #[arg(long, default_value_t = tabir_face::DEFAULT_COSINE_THRESHOLD)]
        threshold: f32,
        #[command(flatten)]
        keys: KeysDir,
        #[arg(long)]
        json: bool,
    },
    /// Register the custodian's key with a fresh server, using the one-time token it printed.
    Bootstrap {
        #[arg(long, value_name = "TOKEN", env = "TABIR_BOOTSTRAP_TOKEN")]
        token: String,
        #[arg(long, default_value = "custodian")]
        label: String,
        #[command(flatten)]
        keys: KeysDir,
        #[command(flatten)]
        server: ServerUrl,
    },
    /// Register a domain's evaluation keys with the server (it checks the fingerprint).
    Register {
        #[arg(long)]
        domain: String,
        #[command(flatten)]
        keys: KeysDir,
        #[command(flatten)]
        server: ServerUrl,
    },
    /// Issue, revoke and list device and auditor keys.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Domains, fingerprints, devices, creation and revocation times, and where secret files
    /// are (never their contents).
    Status {
        #[command(flatten)]
        keys: KeysDir,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Issue a key for an office device (or an auditor), write its bundle (sealed keys and
    /// tabir.toml) to --out, and register it with the server.
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
    /// Revoke a device's key at once (the server refuses it from now on).
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
    let (key, _) = custody
        .custodian_key(&custodian_passphrase(false)?)
        .map_err(|e| e.to_string())?;
    let transport = Transport::new(&server.server, key, server.tls_root()?.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(AdminClient::new(transport))
}

pub fn run(command: CustodyCommand) -> Result<(), String> {
    match command {
        CustodyCommand::Init {
            domain,
            threshold,
            keys,
            json,
        } => {
            let custody = Custody::new(keys.keys);
            let first_use = !custody.custodian_key_path().exists();
            let passphrase = custodian_passphrase(first_use)?;
            let (_, created) = custody
                .custodian_key(&passphrase)
                .map_err(|e| e.to_string())?;
            let config =
                DomainConfig::with_cosine_threshold(128, threshold).map_err(|e| e.to_string())?;
            let spinner = indicatif::ProgressBar::new_spinner()
                .with_message(format!("generating the keys of domain {domain}"));
            if json {
                spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            spinner.enable_steady_tick(std::time::Duration::from_millis(100));
            let started = Instant::now();
            let manifest = custody.create_domain(&domain, config, &passphrase);
            spinner.finish_and_clear();
            let manifest = manifest.map_err(|e| e.to_string())?;
            let dir = custody.domain_dir(&domain);
            if json {
                println!("{}", serde_json::to_string(&manifest).unwrap_or_default());
            } else {
                if created {
                    println!(
                        "created the custodian key {}",
                        custody.custodian_key_path().display()
                    );
                }
                println!(
                    "created key domain {domain} in {:.1} s\n  fingerprint {}\n  policy: cosine >= {} (score >= {})\n  secret key (sealed, 0600): {}\n  evaluation keys: {}",
                    started.elapsed().as_secs_f64(),
                    manifest.fingerprint,
                    manifest.threshold_cosine,
                    manifest.threshold_score,
                    dir.join(tabir_client::custody::DOMAIN_SECRET_FILE).display(),
                    dir.join(tabir_client::custody::EVALUATION_KEYS_FILE).display(),
                );
            }
            Ok(())
        }
        CustodyCommand::Bootstrap {
            token,
            label,
            keys,
            server,
        } => {
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
                ))
                .map_err(|e| e.to_string())?;
            println!(
                "registered as the custodian of {} (key id {})",
                server.server, info.key_id
            );
            Ok(())
        }
        CustodyCommand::Register {
            domain,
            keys,
            server,
        } => {
            let custody = Custody::new(keys.keys);
            let mut manifest = custody.manifest(&domain).map_err(|e| e.to_string())?;
            let blob = custody
                .evaluation_keys(&domain)
                .map_err(|e| e.to_string())?;
            let admin = admin(&custody, &server)?;
            let size = blob.len();
            let started = Instant::now();
            let info = runtime()?
                .block_on(admin.register_domain(&domain, blob))
                .map_err(|e| e.to_string())?;
            if info.fingerprint != manifest.fingerprint {
                return Err(format!(
                    "the server computed fingerprint {}, the custodian's records say {}",
                    info.fingerprint, manifest.fingerprint
                ));
            }
            manifest.registrations.push(Registration {
                server: server.server.clone(),
                at: info.registered_at.clone(),
            });
            custody
                .save_manifest(&manifest)
                .map_err(|e| e.to_string())?;
            println!(
                "registered key domain {domain} with {} ({:.1} MB in {:.1} s); fingerprint {} confirmed",
                server.server,
                size as f64 / 1e6,
                started.elapsed().as_secs_f64(),
                info.fingerprint
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
                println!("  no key domains (create one with `tabir custody init --domain NAME`)");
            }
            for domain in &status.domains {
                let m = &domain.manifest;
                println!(
                    "domain {}\n  fingerprint {}\n  created {}  policy cosine >= {}",
                    m.name, m.fingerprint, m.created_at, m.threshold_cosine
                );
                for r in &m.registrations {
                    println!("  registered with {} at {}", r.server, r.at);
                }
                for d in &m.devices {
                    println!(
                        "  {:?} {} \"{}\" issued {}{}",
                        d.role,
                        d.key_id,
                        d.label,
                        d.issued_at,
                        d.revoked_at
                            .as_ref()
                            .map(|t| format!(", REVOKED {t}"))
                            .unwrap_or_default()
                    );
                }
                for file in &domain.secret_files {
                    println!(
                        "  secret file {} ({} bytes, mode {})",
                        file.path.display(),
                        file.bytes,
                        file.mode
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
            let mut manifest = custody.manifest(&domain).map_err(|e| e.to_string())?;
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
            let public_key = custody
                .issue_bundle(&domain, role, &server.server, &out, &custodian, &bundle)
                .map_err(|e| e.to_string())?;
            let admin = admin(&custody, &server)?;
            let info = runtime()?
                .block_on(admin.register_key(&domain, &label, &public_key, role))
                .map_err(|e| {
                    format!(
                        "the bundle is in {}, but registering it failed: {e}",
                        out.display()
                    )
                })?;
            manifest.devices.push(IssuedKey {
                key_id: info.key_id.clone(),
                label,
                role,
                issued_at: info.registered_at,
                bundle: out.clone(),
                revoked_at: None,
            });
            custody
                .save_manifest(&manifest)
                .map_err(|e| e.to_string())?;
            println!(
                "issued {role:?} key {} for domain {domain}; bundle in {} (hand it over with its passphrase, separately)",
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
            let mut manifest = custody.manifest(&domain).map_err(|e| e.to_string())?;
            let admin = admin(&custody, &server)?;
            let info = runtime()?
                .block_on(admin.revoke_key(&domain, &key_id))
                .map_err(|e| e.to_string())?;
            for device in manifest.devices.iter_mut().filter(|d| d.key_id == key_id) {
                device.revoked_at = info.revoked_at.clone();
            }
            custody
                .save_manifest(&manifest)
                .map_err(|e| e.to_string())?;
            println!(
                "revoked {key_id} in {domain} at {}",
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
                    println!(
                        "{} {:?} \"{}\" registered {}{}",
                        d.key_id,
                        d.role,
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
