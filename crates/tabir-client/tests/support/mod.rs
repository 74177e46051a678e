//! What the SDK tests share: a server on loopback with its custodian given by flag, a key
//! domain created and registered through the SDK's ceremony, and one device issued.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::sync::Arc;
use tabir_client::ceremony::{init_domain, issue_key, Issue};
use tabir_client::custody::Custody;
use tabir_client::{AdminClient, ClientConfig, Passphrase, Transport};
use tabir_proto::Role;
use tabir_server::{ServerConfig, Startup};

pub const DOMAIN: &str = "sdk-test";

pub fn passphrase() -> Passphrase {
    Passphrase::new("a test passphrase".into())
}

pub struct Running {
    pub server: tabir_server::RunningServer,
    pub url: String,
    pub device_config: ClientConfig,
    pub custody: Custody,
    pub store: Arc<dyn tabir_store::Store>,
    pub keys: tempfile::TempDir,
    _data: tempfile::TempDir,
}

/// A server whose custodian is given by flag, a key domain created and registered with it
/// (fresh keys: the server's share exists only at the server), and one device issued.
pub async fn start(config: ServerConfig, bundle: &str) -> Running {
    let keys = tempfile::tempdir().unwrap();
    let custody = Custody::new(keys.path().join("keys"));
    let (custodian, _) = custody.custodian_key(&passphrase()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let store: Arc<dyn tabir_store::Store> =
        Arc::new(tabir_store::sqlite::SqliteStore::open(data.path()).unwrap());
    let server = tabir_server::start(
        Startup {
            store: Arc::clone(&store),
            server_key: tabir_server::load_or_create_server_key(&data.path().join("server.key"))
                .unwrap(),
            master_key: tabir_server::MasterKey::generate(),
            config,
            custodian_key: Some(tabir_proto::hex::encode(
                custodian.verifying_key().as_bytes(),
            )),
            tls: None,
        },
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .await
    .unwrap();
    assert!(
        server.bootstrap_token.is_none(),
        "a flag-given custodian needs no token"
    );
    let url = format!("http://{}", server.address);
    let admin = AdminClient::new(Transport::new(&url, custodian, None).unwrap());
    let config =
        tabir_device_crypto::domain_config(128, tabir_face::DEFAULT_COSINE_THRESHOLD).unwrap();
    let manifest = init_domain(
        &custody,
        &admin,
        DOMAIN,
        config,
        tabir_device_crypto::identify_threshold(
            &config,
            tabir_face::DEFAULT_IDENTIFY_COSINE_THRESHOLD,
        )
        .unwrap(),
        &passphrase(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(manifest.registrations.len(), 1);
    let out = keys.path().join(bundle);
    let (info, _) = issue_key(
        &custody,
        &admin,
        Issue {
            domain: DOMAIN,
            label: "sdk test device",
            role: Role::Device,
            server: &url,
            out: &out,
            custodian_passphrase: &passphrase(),
            bundle_passphrase: &passphrase(),
        },
    )
    .await
    .unwrap();
    assert!(info.holds_share);
    let device_config = ClientConfig::load(Some(&out.join("tabir.toml"))).unwrap();
    Running {
        server,
        url,
        device_config,
        custody,
        store,
        keys,
        _data: data,
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}
