//! The transport's refusals: plain http only to this machine unless explicitly allowed, and no
//! redirects (a redirect would carry the signed headers and the body somewhere else).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use tabir_client::transport::Method;
use tabir_client::{ClientError, RetryPolicy, Transport};

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9; 32])
}

#[test]
fn plain_http_is_for_this_machine_only_unless_allowed() {
    for local in [
        "http://127.0.0.1:8080",
        "http://localhost:8080/",
        "http://[::1]:8080",
        "https://tabir.example:8443",
    ] {
        assert!(Transport::new(local, key(), None).is_ok(), "{local}");
    }
    for remote in [
        "http://10.1.2.3:8080",
        "http://tabir.example",
        "http://localhost.evil.example:8080",
        "http://127.0.0.1@evil.example/",
    ] {
        match Transport::new(remote, key(), None) {
            Err(ClientError::Config(message)) => {
                assert!(message.contains("plain http"), "{message}")
            }
            other => panic!("{remote}: {other:?}"),
        }
        assert!(Transport::with_insecure_http(remote, key(), None).is_ok());
    }
    assert!(matches!(
        Transport::new("ftp://tabir.example", key(), None),
        Err(ClientError::Config(_))
    ));
}

#[test]
fn a_redirect_is_not_followed() {
    // Where a hostile answer points: nothing may connect to it.
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let target = format!("http://{}/v1/steal", elsewhere.local_addr().unwrap());
    // A "server" that answers every request with a redirect there.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in server.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buffer = [0u8; 65536];
            let _ = stream.read(&mut buffer);
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    let transport = Transport::new(&format!("http://{address}"), key(), None)
        .unwrap()
        .with_retry(RetryPolicy::none());
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(transport.send(
            Method::POST,
            "/v1/domains/d/subjects/3201014101900001/verifications",
            b"probe".to_vec(),
            "application/octet-stream",
        ));
    match answer {
        Err(ClientError::Refused { status, .. }) => assert_eq!(status, 307),
        other => panic!("a redirect answered {other:?}"),
    }
    match elsewhere.accept() {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the redirect was followed: {other:?}"),
    }
}
