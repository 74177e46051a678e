//! What `bench server` and `bench identify` both need: a server in this process on loopback
//! (SQLite in a temporary folder, the custodian given by key), and a fresh key domain on it
//! with one registered device.

use std::path::PathBuf;
use std::sync::Arc;
use tabir_client::{AdminClient, ClientError, Transport};
use tabir_crypto::{DomainConfig, DomainRegistration};
use tabir_device_crypto::{domain_config, generate_key_domain, DecryptionShare, Encryptor};
use tabir_proto::Role;
use tabir_server::{MasterKey, RunningServer, ServerConfig, Startup};

/// The benchmarks' key domain name.
pub const DOMAIN: &str = "bench";

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A server started for one benchmark run; [`BenchServer::stop`] removes its data.
pub struct BenchServer {
    pub url: String,
    pub custodian: ed25519_dalek::SigningKey,
    server: RunningServer,
    data: PathBuf,
}

impl BenchServer {
    pub async fn start(name: &str, config: ServerConfig) -> Result<Self, String> {
        let data = std::env::temp_dir().join(format!("tabir-bench-{name}-{}", std::process::id()));
        let store = tabir_store::sqlite::SqliteStore::open(&data).map_err(text)?;
        let custodian = tabir_client::custody::new_signing_key();
        let server = tabir_server::start(
            Startup {
                store: Arc::new(store),
                server_key: tabir_server::load_or_create_server_key(
                    &data.join(tabir_server::SERVER_KEY_FILE),
                )
                .map_err(text)?,
                master_key: MasterKey::generate(),
                config,
                custodian_key: Some(tabir_proto::hex::encode(
                    custodian.verifying_key().as_bytes(),
                )),
                tls: None,
            },
            std::net::TcpListener::bind("127.0.0.1:0").map_err(text)?,
        )
        .await
        .map_err(text)?;
        Ok(Self {
            url: format!("http://{}", server.address),
            custodian,
            server,
            data,
        })
    }

    pub async fn stop(self) {
        let _ = self
            .server
            .shutdown(std::time::Duration::from_secs(10))
            .await;
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A fresh key domain registered on the bench server (default policies), with one device.
pub struct BenchDomain {
    pub config: DomainConfig,
    pub encryptor: Encryptor,
    pub device_share: DecryptionShare,
    /// The device's transport (signed requests with its key).
    pub device: Transport,
}

pub async fn bench_domain(server: &BenchServer) -> Result<BenchDomain, String> {
    let client = |e: ClientError| e.to_string();
    let config = domain_config(128, tabir_face::DEFAULT_COSINE_THRESHOLD).map_err(text)?;
    let domain = generate_key_domain(config).map_err(text)?;
    let encryptor = Encryptor::new(&domain.evaluation_keys.public_key()).map_err(text)?;
    let (device_share, delta) = domain.custodian_share.issue(&config).map_err(text)?;
    let admin = AdminClient::new(
        Transport::new(&server.url, server.custodian.clone(), None).map_err(client)?,
    );
    let registration = DomainRegistration {
        evaluation_keys: domain.evaluation_keys,
        server_share: domain.server_share,
        identify_threshold: tabir_device_crypto::identify_threshold(
            &config,
            tabir_face::DEFAULT_IDENTIFY_COSINE_THRESHOLD,
        )
        .map_err(text)?,
    }
    .to_bytes();
    admin
        .register_domain(DOMAIN, &registration)
        .await
        .map_err(client)?;
    let device = tabir_client::custody::new_signing_key();
    admin
        .register_key(
            DOMAIN,
            "bench device",
            &device.verifying_key(),
            Role::Device,
            Some(&delta),
        )
        .await
        .map_err(client)?;
    Ok(BenchDomain {
        config,
        encryptor,
        device_share,
        device: Transport::new(&server.url, device, None).map_err(client)?,
    })
}
