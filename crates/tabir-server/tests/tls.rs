//! Serving HTTPS with rustls from PEM files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;
use tabir_proto::routes;
use tabir_server::{ServerConfig, Startup, TlsFiles};

#[test]
fn serves_https_with_the_given_certificate() {
    let (store, dir) = support::sqlite_store();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let certificate = dir.path().join("cert.pem");
    let private_key = dir.path().join("key.pem");
    std::fs::write(&certificate, certified.cert.pem()).unwrap();
    std::fs::write(&private_key, certified.key_pair.serialize_pem()).unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let server_key =
                tabir_server::load_or_create_server_key(&dir.path().join("server.key")).unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let server = tabir_server::start(
                Startup {
                    store: Arc::clone(&store),
                    server_key,
                    master_key: tabir_server::MasterKey::generate(),
                    config: ServerConfig::default(),
                    custodian_key: None,
                    tls: Some(TlsFiles {
                        certificate,
                        private_key,
                    }),
                },
                listener,
            )
            .await
            .unwrap();
            let client = reqwest::Client::builder()
                .add_root_certificate(
                    reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap(),
                )
                .resolve("localhost", server.address)
                .build()
                .unwrap();
            let url = format!(
                "https://localhost:{}{}",
                server.address.port(),
                routes::HEALTH
            );
            let answer = client.get(&url).send().await.unwrap();
            assert_eq!(answer.status().as_u16(), 200);
            // Plain HTTP to the TLS port gets no answer.
            let plain = format!("http://{}{}", server.address, routes::HEALTH);
            assert!(reqwest::Client::new()
                .get(&plain)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .map(|r| !r.status().is_success())
                .unwrap_or(true));
            server.shutdown(Duration::from_secs(5)).await.unwrap();
        });
}
