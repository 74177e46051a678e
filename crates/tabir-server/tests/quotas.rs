//! Verification quotas: per subject (by all devices) and per device, over sliding windows
//! counted in the store, so two servers on one database share them. Past a quota: 429
//! `quota_exceeded` with Retry-After, an audit entry and a metric; nothing is evaluated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::Method;
use std::sync::Arc;
use support::*;
use tabir_proto::audit::{Action, Outcome};
use tabir_proto::{routes, Role};
use tabir_server::{Quotas, ServerConfig};
use tabir_store::Store;

const SUBJECT_A: &str = "3201014101900001";
const SUBJECT_B: &str = "3201014101900002";

fn unit_vector(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; DIM as usize];
    v[axis] = 1.0;
    v
}

/// A second server on the same store and master key (another replica).
async fn start_replica(store: Arc<dyn Store>, master_key_hex: &str, config: ServerConfig) -> Http {
    let data = tempfile::tempdir().unwrap();
    let server_key =
        tabir_server::load_or_create_server_key(&data.path().join("server.key")).unwrap();
    let server = tabir_server::start(
        tabir_server::Startup {
            store,
            server_key,
            master_key: tabir_server::MasterKey::from_hex(master_key_hex).unwrap(),
            config,
            custodian_key: None,
            tls: None,
        },
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .await
    .unwrap();
    let http = Http::new(format!("http://{}", server.address));
    wait_healthy(&http).await;
    std::mem::forget(data);
    tokio::spawn(server.wait());
    http
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().unwrap())
}

#[test]
fn quotas_per_subject_and_device_are_shared_by_replicas() {
    let (store, _dir) = sqlite_store();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(quotas(store));
}

#[test]
fn quotas_on_postgres() {
    let Some((store, _schema)) = postgres_store("quotas") else {
        return;
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(quotas(store));
}

async fn quotas(store: Arc<dyn Store>) {
    let config = ServerConfig {
        quotas: Quotas {
            subject_per_day: 10,
            device_per_hour: 12,
            device_per_day: 2000,
        },
        ..ServerConfig::default()
    };
    let harness = Harness::start(Arc::clone(&store), config.clone()).await;
    let replica = start_replica(Arc::clone(&store), &harness.master_key_hex, config).await;
    harness.register_domain().await;
    let device = signing_key(50);
    harness.register(&device, DOMAIN, Role::Device).await;
    let other_device = signing_key(51);
    harness.register(&other_device, DOMAIN, Role::Device).await;
    for (subject, axis) in [(SUBJECT_A, 0), (SUBJECT_B, 1)] {
        harness
            .http
            .send(
                &device,
                Method::PUT,
                &routes::enrolment(DOMAIN, subject),
                keys().template(&unit_vector(axis)),
            )
            .await
            .expect(201);
    }
    let probe = keys().probe(&unit_vector(0));
    let verify_a = routes::verification(DOMAIN, SUBJECT_A);

    // Ten verifications of subject A, alternating between the two replicas.
    for i in 0..10 {
        let http = if i % 2 == 0 { &harness.http } else { &replica };
        http.send(&device, Method::POST, &verify_a, probe.clone())
            .await
            .expect(200);
    }
    // The eleventh, by another device on either replica, is over the subject's quota.
    for http in [&harness.http, &replica] {
        let answer = http
            .send(&other_device, Method::POST, &verify_a, probe.clone())
            .await;
        answer.refused(429, "quota_exceeded");
        let retry_after: u64 = answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=24 * 3600).contains(&retry_after),
            "Retry-After {retry_after}"
        );
    }

    // Subject B is unaffected, until the first device's hourly quota (12) runs out.
    let verify_b = routes::verification(DOMAIN, SUBJECT_B);
    let probe_b = keys().probe(&unit_vector(1));
    for _ in 0..2 {
        harness
            .http
            .send(&device, Method::POST, &verify_b, probe_b.clone())
            .await
            .expect(200);
    }
    replica
        .send(&device, Method::POST, &verify_b, probe_b.clone())
        .await
        .refused(429, "quota_exceeded");
    // The other device has verified nothing yet: its own quota is whole.
    harness
        .http
        .send(&other_device, Method::POST, &verify_b, probe_b.clone())
        .await
        .expect(200);

    // Every refusal is in the audit log, under the subject's tag, not its NIK.
    let log = blocking(|| store.audit_page(0, 10_000)).unwrap();
    let over_quota: Vec<_> = log
        .iter()
        .filter(|e| e.event.outcome == Outcome::Refused("quota_exceeded".into()))
        .collect();
    assert_eq!(over_quota.len(), 3);
    assert!(over_quota.iter().all(|e| e.event.action == Action::Verify));
    assert_eq!(
        over_quota[0].event.subject.as_ref(),
        Some(&harness.subject_tag(SUBJECT_A))
    );
    let done = log
        .iter()
        .filter(|e| e.event.action == Action::Verify && e.event.outcome == Outcome::Done)
        .count();
    assert_eq!(done, 13);

    // The metric counts by quota, per replica.
    let first = harness.http.get_unsigned(routes::METRICS).await.expect(200);
    let first = String::from_utf8(first.body).unwrap();
    let second = replica.get_unsigned(routes::METRICS).await.expect(200);
    let second = String::from_utf8(second.body).unwrap();
    let subject = "tabir_quota_exceeded_total{quota=\"subject\"}";
    let device_quota = "tabir_quota_exceeded_total{quota=\"device\"}";
    assert_eq!(metric(&first, subject) + metric(&second, subject), 2);
    assert_eq!(
        metric(&first, device_quota) + metric(&second, device_quota),
        1
    );
}
