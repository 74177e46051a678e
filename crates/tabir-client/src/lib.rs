//! # tabir-client
//!
//! The SDK for the three kinds of Tabir users:
//! - office devices: [`OfficeClient`] (async) and [`blocking::OfficeClient`]: `enroll`,
//!   `verify`, `identify`, `delete` from a photo. The face is detected, aligned and embedded on
//!   the device, the embedding encrypted, the request signed with the device's key; the server
//!   answers with an encrypted bit only this device's domain key can decrypt;
//! - custodians: [`custody::Custody`] (key domains sealed at rest, device bundles) and
//!   [`admin::AdminClient`] (register domains and devices, revoke);
//! - auditors: [`admin::AdminClient::export_audit`] and the registry.
//!
//! Errors ([`ClientError`]) keep apart a photo to retake, a refusal by the server (never
//! retried), and overload or network failures (retried with backoff first).
//!
//! ```no_run
//! # async fn example() -> tabir_client::Result<()> {
//! use std::sync::Arc;
//! use tabir_client::{ClientConfig, OfficeClient, Passphrase};
//! let config = ClientConfig::load(Some("device/tabir.toml".as_ref()))?;
//! let passphrase = Passphrase::from_env("TABIR_PASSPHRASE").expect("set TABIR_PASSPHRASE");
//! let face = Arc::new(tabir_face::FacePipeline::load(&Default::default())?);
//! let office = OfficeClient::open(&config, &passphrase, face)?;
//! let subject = tabir_proto::SubjectId::parse("3201014101900001").expect("a NIK");
//! let outcome = office.verify(&subject, std::fs::read("photo.jpg").expect("a photo")).await?;
//! println!("{}", if outcome.decision.is_match() { "match" } else { "no match" });
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod admin;
pub mod ceremony;
pub mod config;
pub mod custody;
pub mod error;
pub mod escrow;
pub mod office;
pub mod outbox;
pub mod sealed;
pub mod transport;

pub use admin::AdminClient;
pub use config::ClientConfig;
pub use error::{ClientError, Result};
pub use office::{blocking, OfficeClient};
pub use sealed::Passphrase;
pub use transport::{RetryPolicy, Transport};
