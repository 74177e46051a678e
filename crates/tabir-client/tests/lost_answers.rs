//! Answers lost on the way back: a proxy in front of the server forwards each request, and for
//! the first request of a chosen method drops the connection instead of passing the answer on;
//! the server has acted, the client never heard. The SDK retries with the same request id, and
//! the server answers the retry from its record instead of acting twice: a deletion whose
//! answer was lost is reported as done (not as "unknown subject"), a verification is evaluated
//! and logged once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::{passphrase, runtime, start};
use tabir_client::OfficeClient;
use tabir_proto::audit::{Action, Outcome};
use tabir_proto::SubjectId;
use tabir_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards HTTP/1.1 requests one per connection; the first `method` request's answer is
/// dropped (and counted) after the server has sent it.
struct LossyProxy {
    address: SocketAddr,
    dropped: Arc<AtomicUsize>,
    forwarded: Arc<AtomicUsize>,
}

async fn read_request(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        request.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    client.read_exact(&mut body).await.ok()?;
    request.extend_from_slice(&body);
    Some(request)
}

impl LossyProxy {
    async fn start(server: SocketAddr, method: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let (drops, forwards) = (Arc::clone(&dropped), Arc::clone(&forwarded));
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let (drops, forwards) = (Arc::clone(&drops), Arc::clone(&forwards));
                tokio::spawn(async move {
                    // One request per connection: the server is asked to close after it.
                    let Some(request) = read_request(&mut client).await else {
                        return;
                    };
                    let line_end = request.windows(2).position(|w| w == b"\r\n").unwrap();
                    let mut upstream_request = request[..line_end + 2].to_vec();
                    upstream_request.extend_from_slice(b"connection: close\r\n");
                    upstream_request.extend_from_slice(&request[line_end + 2..]);
                    let mut upstream = TcpStream::connect(server).await.unwrap();
                    upstream.write_all(&upstream_request).await.unwrap();
                    let mut answer = Vec::new();
                    upstream.read_to_end(&mut answer).await.unwrap();
                    forwards.fetch_add(1, Ordering::SeqCst);
                    let lose = request.starts_with(format!("{method} ").as_bytes())
                        && drops
                            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                            .is_ok();
                    // A lost answer: the client's connection closes with nothing on it.
                    if !lose {
                        client.write_all(&answer).await.unwrap();
                    }
                });
            }
        });
        Self {
            address,
            dropped,
            forwarded,
        }
    }
}

/// The device's configuration, pointed at `url` (the proxy).
fn office_via(running: &support::Running, url: &str) -> OfficeClient {
    let mut config = running.device_config.clone();
    config.server = url.to_owned();
    OfficeClient::open_without_face(&config, &passphrase()).unwrap()
}

fn embedding(seed: u64) -> Vec<f32> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    tabir_device_crypto::quantize::random_unit_vector(&mut rng, 128)
}

#[test]
fn a_lost_answer_is_retried_under_its_request_id_and_the_server_acts_once() {
    runtime().block_on(async {
        let running = start(ServerConfig::default(), "device-lossy").await;
        let subject = SubjectId::parse("3201012501900007").unwrap();
        let direct = office_via(&running, &running.url);
        direct
            .enroll_embedding(&subject, &embedding(1))
            .await
            .unwrap();

        // A verification whose answer is lost once: the retry is answered from the record.
        let proxy = LossyProxy::start(running.server.address, "POST").await;
        let office = office_via(&running, &format!("http://{}", proxy.address));
        let read = office
            .verify_embedding_unreported(&subject, &embedding(1))
            .await
            .unwrap();
        assert!(read.decision.is_match());
        assert_eq!(proxy.dropped.load(Ordering::SeqCst), 1);
        assert!(
            proxy.forwarded.load(Ordering::SeqCst) >= 2,
            "no retry was made"
        );

        // A deletion whose answer is lost once: reported as done, and done once.
        let proxy = LossyProxy::start(running.server.address, "DELETE").await;
        let office = office_via(&running, &format!("http://{}", proxy.address));
        let deleted = office.delete(&subject).await.unwrap();
        assert_eq!(proxy.dropped.load(Ordering::SeqCst), 1);
        assert!(deleted.audit_seq > read.audit_seq);
        // A new deletion (a new request id) finds nothing to delete.
        match direct.delete(&subject).await {
            Err(tabir_client::ClientError::Refused { code, .. }) => {
                assert_eq!(code, "unknown_subject");
            }
            other => panic!("a second deletion: {other:?}"),
        }

        // The log holds one verification and one deletion of the subject.
        let store = Arc::clone(&running.store);
        let log = tokio::task::spawn_blocking(move || store.audit_page(0, 10_000))
            .await
            .unwrap()
            .unwrap();
        let done = |action: Action| {
            log.iter()
                .filter(|e| e.event.action == action && e.event.outcome == Outcome::Done)
                .count()
        };
        assert_eq!(done(Action::Verify), 1);
        assert_eq!(done(Action::DeleteEnrolment), 1);
    });
}
