//! Behaviour under load and at shutdown: more concurrent verifications than the FHE pool
//! admits get 429 with Retry-After (never 500) and every accepted one returns the right bit;
//! a graceful shutdown lets in-flight requests finish.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tabir_crypto::Decision;
use tabir_device_crypto::quantize::{random_unit_vector, vector_at_cosine};
use tabir_proto::{routes, Role};
use tabir_server::ServerConfig;

const NIK: &str = "3201014101900001";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One worker and one queue slot: at most two verifications admitted at a time.
fn small_pool() -> ServerConfig {
    ServerConfig {
        fhe_workers: 1,
        fhe_queue: 1,
        retry_after_secs: 2,
        ..no_quotas()
    }
}

#[test]
fn overload_answers_429_never_500_and_accepted_bits_are_right() {
    let (store, _dir) = sqlite_store();
    runtime().block_on(async move {
        let harness = Harness::start(Arc::clone(&store), small_pool()).await;
        harness.register_domain().await;
        let device = signing_key(30);
        let (_, share) = harness
            .register_with_share(&device, DOMAIN, Role::Device)
            .await;
        let keys = keys();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let enrolled = random_unit_vector(&mut rng, DIM as usize);
        harness
            .http
            .send(
                &device,
                Method::PUT,
                &routes::enrolment(DOMAIN, NIK),
                keys.template(&enrolled),
            )
            .await
            .expect(201);

        // 16 at once, alternating genuine-like and impostor-like probes.
        let mut requests = Vec::new();
        for i in 0..16 {
            let genuine = i % 2 == 0;
            let vector = vector_at_cosine(&mut rng, &enrolled, if genuine { 0.8 } else { 0.05 });
            let probe = keys.probe(&vector);
            let http = harness.http.clone();
            let device = device.clone();
            requests.push(tokio::spawn(async move {
                let answer = http
                    .send(
                        &device,
                        Method::POST,
                        &routes::verification(DOMAIN, NIK),
                        probe,
                    )
                    .await;
                (genuine, answer)
            }));
        }
        let (mut accepted, mut overloaded) = (0, 0);
        for request in requests {
            let (genuine, answer) = request.await.unwrap();
            match answer.status.as_u16() {
                200 => {
                    let expected = if genuine {
                        Decision::Match
                    } else {
                        Decision::NoMatch
                    };
                    assert_eq!(keys.open(&share, &answer.body), expected);
                    accepted += 1;
                }
                429 => {
                    answer.refused(429, "overloaded");
                    assert_eq!(answer.headers.get("retry-after").unwrap(), "2");
                    overloaded += 1;
                }
                other => panic!("status {other}: {}", String::from_utf8_lossy(&answer.body)),
            }
        }
        assert!(accepted >= 2, "{accepted} accepted");
        assert!(
            overloaded >= 1,
            "no request was turned away ({accepted} accepted)"
        );
        let metrics =
            String::from_utf8(harness.http.get_unsigned(routes::METRICS).await.body).unwrap();
        assert!(
            metrics.contains(&format!("tabir_fhe_pool_rejected_total {overloaded}")),
            "{metrics}"
        );
    });
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let (store, _dir) = sqlite_store();
    runtime().block_on(async move {
        let harness = Harness::start(Arc::clone(&store), ServerConfig::default()).await;
        harness.register_domain().await;
        let device = signing_key(31);
        harness.register(&device, DOMAIN, Role::Device).await;
        let keys = keys();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let enrolled = random_unit_vector(&mut rng, DIM as usize);
        harness
            .http
            .send(
                &device,
                Method::PUT,
                &routes::enrolment(DOMAIN, NIK),
                keys.template(&enrolled),
            )
            .await
            .expect(201);
        let probes: Vec<Vec<u8>> = (0..4).map(|_| keys.probe(&enrolled)).collect();
        let in_flight: Vec<_> = probes
            .into_iter()
            .map(|probe| {
                let http = harness.http.clone();
                let device = device.clone();
                tokio::spawn(async move {
                    http.send(
                        &device,
                        Method::POST,
                        &routes::verification(DOMAIN, NIK),
                        probe,
                    )
                    .await
                })
            })
            .collect();
        // Shut down once all four have reached the pool (running, waiting or done).
        let mut reached = false;
        for _ in 0..2000 {
            let metrics =
                String::from_utf8(harness.http.get_unsigned(routes::METRICS).await.body).unwrap();
            let in_pool = metric(&metrics, "tabir_fhe_pool_in_flight ")
                + metric(&metrics, "tabir_fhe_jobs_total{op=\"verify\"} ");
            if in_pool >= 4 {
                reached = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(reached, "the requests never reached the pool");
        let base = harness.http.base.clone();
        harness
            .server
            .shutdown(Duration::from_secs(30))
            .await
            .unwrap();
        for request in in_flight {
            let answer = request.await.unwrap();
            assert_eq!(answer.status.as_u16(), 200);
        }
        // And it no longer accepts connections.
        assert!(reqwest::get(format!("{base}{}", routes::HEALTH))
            .await
            .is_err());
    });
}

/// The value of the metric line starting with `prefix` (0 when absent).
fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}
