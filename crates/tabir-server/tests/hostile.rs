//! Hostile clients, spoken to in raw HTTP/1.1 over TCP: headers sent slowly, bodies sent
//! slowly, connections opened and left idle or beyond the cap, and large bodies announced by
//! callers who may not send them. Each must be answered (or cut off) without the server
//! reading what it was never going to accept, and the server must keep serving everyone else.
//!
//! The client-side read limits below only stop a broken server from hanging the test; the
//! server's own deadlines are set either short (the behaviour under test) or far longer than
//! those limits (to prove an answer did not wait for them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::*;
use tabir_proto::signing::RequestSignature;
use tabir_proto::{routes, Role};
use tabir_server::{Limits, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NIK: &str = "3201014101900001";
/// Longer than any server deadline a test relies on; only a hang guard.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(limits: Limits) -> ServerConfig {
    ServerConfig {
        limits,
        ..ServerConfig::default()
    }
}

async fn connect(harness: &Harness) -> TcpStream {
    TcpStream::connect(harness.server.address).await.unwrap()
}

/// Read until the server closes the connection (or the hang guard trips); returns what came.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(HANG_GUARD, stream.read(&mut buffer)).await {
            Err(_) => panic!("the server neither answered nor closed the connection"),
            Ok(Ok(0)) | Ok(Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Read one answer's status line and headers (not its body).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(HANG_GUARD, stream.read(&mut byte)).await {
            Err(_) => panic!("no answer from the server"),
            Ok(Ok(0)) => panic!(
                "the server closed the connection without an answer after {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(_)) => received.push(byte[0]),
            Ok(Err(error)) => panic!("read failed: {error}"),
        }
    }
    String::from_utf8(received).unwrap()
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The request line and headers of a signed request whose body is `body` (which the caller
/// may then send slowly, in part, or never).
fn signed_head(
    key: &ed25519_dalek::SigningKey,
    method: &str,
    path: &str,
    body: &[u8],
    content_length: u64,
) -> Vec<u8> {
    let signature = RequestSignature::sign(key, method, path, body, now(), fresh_nonce(), None);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: tabir\r\ncontent-type: application/octet-stream\r\ncontent-length: {content_length}\r\n"
    );
    for (name, value) in signature.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

#[test]
fn slow_headers_are_cut_off_and_others_are_served() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        let harness = Harness::start(
            store,
            config(Limits {
                header_timeout: Duration::from_millis(500),
                // Only the header deadline can cut these connections off.
                idle_timeout: Duration::from_secs(3600),
                ..Limits::default()
            }),
        )
        .await;

        // Slowloris: a request line and one header, then nothing.
        let mut slow = connect(&harness).await;
        slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: tabir\r\n")
            .await
            .unwrap();
        // A connection that never says anything.
        let mut silent = connect(&harness).await;
        // A kept-alive connection that goes quiet after one request.
        let mut kept_alive = connect(&harness).await;
        kept_alive
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: tabir\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(status_of(&read_head(&mut kept_alive).await), 200);

        // Meanwhile an honest client is served.
        harness.http.get_unsigned(routes::HEALTH).await.expect(200);

        let answer = read_to_close(&mut slow).await;
        // hyper closes a connection whose headers are late, at most with a 408.
        assert!(
            answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
            "unexpected answer to slow headers: {}",
            String::from_utf8_lossy(&answer)
        );
        let answer = read_to_close(&mut silent).await;
        assert!(
            answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
            "unexpected answer to a silent connection: {}",
            String::from_utf8_lossy(&answer)
        );
        let answer = read_to_close(&mut kept_alive).await;
        assert!(
            !answer.windows(12).any(|w| w.starts_with(b"HTTP/1.1 2")),
            "a second answer on a quiet connection: {}",
            String::from_utf8_lossy(&answer)
        );
        harness.http.get_unsigned(routes::HEALTH).await.expect(200);
    });
}

#[test]
fn idle_connections_are_closed() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        let harness = Harness::start(
            store,
            config(Limits {
                // Only the idle deadline can cut this connection off.
                header_timeout: Duration::from_secs(3600),
                idle_timeout: Duration::from_millis(500),
                ..Limits::default()
            }),
        )
        .await;
        let mut silent = connect(&harness).await;
        let answer = read_to_close(&mut silent).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
        // Others are still served: on a new connection (the harness client's pooled one has
        // been idle past the deadline too, and reusing it would race its closing).
        let fresh = Http::new(harness.http.base.clone());
        fresh.get_unsigned(routes::HEALTH).await.expect(200);
    });
}

#[test]
fn a_slow_body_is_answered_408_and_nothing_is_stored() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        let harness = Harness::start(
            Arc::clone(&store),
            config(Limits {
                body_timeout: Duration::from_millis(500),
                // A real link sends a template (12 KB) in well under a second.
                min_body_bytes_per_sec: 1 << 20,
                ..Limits::default()
            }),
        )
        .await;
        harness.register_domain().await;
        let device = signing_key(40);
        harness.register(&device, DOMAIN, Role::Device).await;

        let template = keys().template(&{
            let mut v = vec![0.0f32; DIM as usize];
            v[0] = 1.0;
            v
        });
        let path = routes::enrolment(DOMAIN, NIK);
        let mut stream = connect(&harness).await;
        stream
            .write_all(&signed_head(
                &device,
                "PUT",
                &path,
                &template,
                template.len() as u64,
            ))
            .await
            .unwrap();
        // A tenth of the body, then silence.
        stream
            .write_all(&template[..template.len() / 10])
            .await
            .unwrap();
        let head = read_head(&mut stream).await;
        assert_eq!(status_of(&head), 408, "{head}");
        let rest = read_to_close(&mut stream).await;
        assert!(
            String::from_utf8_lossy(&rest).contains("request_timeout"),
            "{}",
            String::from_utf8_lossy(&rest)
        );
        assert!(blocking(|| store.templates(DOMAIN)).unwrap().is_empty());

        // The same enrolment sent at once is accepted.
        harness
            .http
            .send(&device, reqwest::Method::PUT, &path, template)
            .await
            .expect(201);
    });
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        let harness = Harness::start(
            store,
            config(Limits {
                max_connections: 3,
                ..Limits::default()
            }),
        )
        .await;
        // The harness's HTTP client may keep one connection alive; close it by using a fresh
        // client for the check at the end, and fill the remaining slots with raw connections.
        drop(harness.http.client.clone());
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..6 {
            let mut stream = connect(&harness).await;
            // A refused connection is closed without a byte; an accepted one answers.
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: tabir\r\n\r\n")
                .await
                .unwrap_or(());
            let mut buffer = [0u8; 12];
            match tokio::time::timeout(HANG_GUARD, stream.read(&mut buffer)).await {
                Ok(Ok(n)) if n > 0 => {
                    assert!(buffer.starts_with(b"HTTP/1.1 200"));
                    held.push(stream);
                }
                Ok(_) => refused += 1,
                Err(_) => panic!("a connection was neither served nor closed"),
            }
        }
        assert!(
            held.len() <= 3,
            "{} connections open past a cap of 3",
            held.len()
        );
        assert!(refused >= 3, "only {refused} connections refused");
        let metrics = {
            drop(held);
            // Slots free as the held connections close; poll until one is free.
            let mut text = None;
            for _ in 0..200 {
                let client = Http::new(harness.http.base.clone());
                if let Ok(response) = client
                    .client
                    .get(format!("{}{}", client.base, routes::METRICS))
                    .send()
                    .await
                {
                    text = Some(response.text().await.unwrap());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            text.expect("the server never accepted a connection again")
        };
        let line = metrics
            .lines()
            .find(|l| l.starts_with("tabir_connections_refused_total"))
            .expect("the refused-connections metric");
        let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 3, "{line}");
    });
}

/// 40 MiB announced by callers who may not send them: each is answered from the headers
/// alone. The body deadline is an hour, so an answer cannot come from waiting for a body.
#[test]
fn large_bodies_are_refused_from_the_headers_before_reading() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        let harness = Harness::start(
            Arc::clone(&store),
            config(Limits {
                body_timeout: Duration::from_secs(3600),
                ..Limits::default()
            }),
        )
        .await;
        harness.register_domain().await;
        let device = signing_key(41);
        harness.register(&device, DOMAIN, Role::Device).await;
        let announced: u64 = 40 << 20;
        let claimed = b"forty mebibytes that will never be sent";

        let cases = [
            // A key nobody registered, on the custodian's large-body route.
            (
                signing_key(97),
                "PUT",
                routes::domain("other-domain"),
                401,
                "unauthenticated",
            ),
            // A device on the custodian's route.
            (
                device.clone(),
                "PUT",
                routes::domain("other-domain"),
                403,
                "forbidden",
            ),
            // A device on its own route, past the route's limit.
            (
                device.clone(),
                "PUT",
                routes::enrolment(DOMAIN, NIK),
                413,
                "payload_too_large",
            ),
            (
                device.clone(),
                "POST",
                routes::verification(DOMAIN, NIK),
                413,
                "payload_too_large",
            ),
        ];
        for (key, method, path, status, code) in cases {
            let mut stream = connect(&harness).await;
            stream
                .write_all(&signed_head(&key, method, &path, claimed, announced))
                .await
                .unwrap();
            let head = read_head(&mut stream).await;
            assert_eq!(status_of(&head), status, "{method} {path}: {head}");
            let rest = read_to_close(&mut stream).await;
            assert!(
                String::from_utf8_lossy(&rest).contains(code),
                "{method} {path}: {}",
                String::from_utf8_lossy(&rest)
            );
        }
        assert!(blocking(|| store.templates(DOMAIN)).unwrap().is_empty());
        assert!(blocking(|| store.domain_info("other-domain"))
            .unwrap()
            .is_none());
    });
}

/// Only a few large bodies are read at once: a custodian's third concurrent registration,
/// announced while two are still arriving, is turned away with 429 `overloaded` and Retry-After.
#[test]
fn concurrent_large_bodies_are_capped() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        let harness = Harness::start(
            store,
            config(Limits {
                body_timeout: Duration::from_secs(3600),
                max_large_bodies: 2,
                ..Limits::default()
            }),
        )
        .await;
        let registration = &keys().registration;
        let path = routes::domain("slow-domain");
        let mut slow = Vec::new();
        for _ in 0..2 {
            let mut stream = connect(&harness).await;
            stream
                .write_all(&signed_head(
                    &harness.custodian,
                    "PUT",
                    &path,
                    registration,
                    registration.len() as u64,
                ))
                .await
                .unwrap();
            stream.write_all(&registration[..4096]).await.unwrap();
            slow.push(stream);
        }
        // The two slow uploads hold their slots once the server has read their headers;
        // a third, announced after, is refused (poll: the server reads headers concurrently).
        let mut refused = None;
        for _ in 0..100 {
            let mut stream = connect(&harness).await;
            stream
                .write_all(&signed_head(
                    &harness.custodian,
                    "PUT",
                    &path,
                    registration,
                    registration.len() as u64,
                ))
                .await
                .unwrap();
            let answered =
                tokio::time::timeout(Duration::from_millis(500), read_head(&mut stream)).await;
            if let Ok(head) = answered {
                refused = Some(head);
                break;
            }
        }
        let head = refused.expect("a third large body was read alongside two");
        assert_eq!(status_of(&head), 429, "{head}");
        assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
        drop(slow);
    });
}
