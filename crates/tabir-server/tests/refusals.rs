//! Every way a request is refused: its status and error code, and nothing written (no
//! template stored, no key changed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::Method;
use std::sync::Arc;
use support::*;
use tabir_proto::messages::DeviceInfo;
use tabir_proto::signing::FRESHNESS_WINDOW_SECS;
use tabir_proto::{routes, Role};
use tabir_server::ServerConfig;
use tabir_store::Store;

const NIK: &str = "3201014101900001";

fn template() -> Vec<u8> {
    let embedding = {
        let mut v = vec![0.0f32; DIM as usize];
        v[0] = 1.0;
        v
    };
    keys().template(&embedding)
}

fn unit_vector(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; DIM as usize];
    v[axis] = 1.0;
    v
}

/// A second server on the same store (a replica, or the same server after a restart), with
/// the same master key.
async fn start_replica(store: Arc<dyn Store>, master_key_hex: &str) -> Http {
    let data = tempfile::tempdir().unwrap();
    let server_key =
        tabir_server::load_or_create_server_key(&data.path().join("server.key")).unwrap();
    let server = tabir_server::start(
        tabir_server::Startup {
            store,
            server_key,
            master_key: tabir_server::MasterKey::from_hex(master_key_hex).unwrap(),
            config: ServerConfig::default(),
            custodian_key: None,
            tls: None,
        },
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .await
    .unwrap();
    let http = Http::new(format!("http://{}", server.address));
    wait_healthy(&http).await;
    // Runs until the test's runtime ends.
    std::mem::forget(data);
    tokio::spawn(server.wait());
    http
}

fn stored(store: &dyn Store) -> usize {
    blocking(|| store.templates(DOMAIN))
        .map(|t| t.len())
        .unwrap_or(0)
}

#[test]
fn refusals_have_their_status_and_code_and_write_nothing() {
    let (store, _dir) = sqlite_store();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(refusals(store));
}

async fn refusals(store: Arc<dyn Store>) {
    let harness = Harness::start(Arc::clone(&store), ServerConfig::default()).await;
    let http = &harness.http;
    harness.register_domain().await;
    let device = signing_key(20);
    let device_id = harness.register(&device, DOMAIN, Role::Device).await;
    let auditor = signing_key(21);
    harness.register(&auditor, DOMAIN, Role::Auditor).await;
    let enrol_path = routes::enrolment(DOMAIN, NIK);
    let subject = harness.subject_tag(NIK);

    // Unsigned.
    http.send_with(
        &device,
        Method::PUT,
        &enrol_path,
        template(),
        &Signing {
            unsigned: true,
            ..Default::default()
        },
    )
    .await
    .refused(401, "unauthenticated");
    // A signature over another body.
    http.send_with(
        &device,
        Method::PUT,
        &enrol_path,
        template(),
        &Signing {
            signed_body: Some(b"other".to_vec()),
            ..Default::default()
        },
    )
    .await
    .refused(400, "body_mismatch");
    // A key nobody registered.
    http.send(&signing_key(99), Method::PUT, &enrol_path, template())
        .await
        .refused(401, "unauthenticated");
    // Stale and future timestamps.
    for timestamp in [
        now() - FRESHNESS_WINDOW_SECS - 5,
        now() + FRESHNESS_WINDOW_SECS + 5,
    ] {
        http.send_with(
            &device,
            Method::PUT,
            &enrol_path,
            template(),
            &Signing {
                timestamp: Some(timestamp),
                ..Default::default()
            },
        )
        .await
        .refused(401, "stale_request");
    }
    // Wrong role: an auditor cannot enrol, a device cannot register domains or devices.
    http.send(&auditor, Method::PUT, &enrol_path, template())
        .await
        .refused(403, "forbidden");
    http.send(
        &device,
        Method::PUT,
        &routes::domain("another"),
        keys().registration.clone(),
    )
    .await
    .refused(403, "forbidden");
    http.send(&device, Method::GET, &routes::audit_page(0, 10), Vec::new())
        .await
        .refused(403, "forbidden");
    // Wrong domain: a device acts only in its own.
    http.send(
        &device,
        Method::PUT,
        &routes::enrolment("other-domain", NIK),
        template(),
    )
    .await
    .refused(403, "forbidden");
    // Oversized body (declared, and the limit checked before the signature).
    http.send(
        &device,
        Method::PUT,
        &enrol_path,
        vec![0u8; tabir_crypto::ciphertexts::TEMPLATE_LIMIT as usize + 1],
    )
    .await
    .refused(413, "payload_too_large");
    // Malformed blobs: garbage, a truncated template.
    http.send(
        &device,
        Method::PUT,
        &enrol_path,
        b"not a template".to_vec(),
    )
    .await
    .refused(400, "malformed_blob");
    let good = template();
    http.send(
        &device,
        Method::PUT,
        &enrol_path,
        good[..good.len() / 2].to_vec(),
    )
    .await
    .refused(400, "malformed_blob");
    // A template where a probe belongs (a probe is too large for the template route).
    http.send(
        &device,
        Method::POST,
        &routes::verification(DOMAIN, NIK),
        template(),
    )
    .await
    .refused(400, "wrong_blob_type");
    // A template made under another key domain (another fingerprint).
    let foreign = other_keys().template(&unit_vector(2));
    http.send(&device, Method::PUT, &enrol_path, foreign)
        .await
        .refused(409, "wrong_key_domain");
    // An invalid NIK.
    http.send(
        &device,
        Method::PUT,
        &routes::enrolment(DOMAIN, "1234"),
        template(),
    )
    .await
    .refused(400, "invalid_subject_id");
    assert_eq!(
        stored(store.as_ref()),
        0,
        "a refused enrolment wrote a template"
    );

    // Replay: the same nonce twice; the second is refused and writes nothing more.
    let nonce = fresh_nonce();
    let signing = Signing {
        nonce: Some(nonce),
        ..Default::default()
    };
    let enrolment = template();
    http.send_with(
        &device,
        Method::PUT,
        &enrol_path,
        enrolment.clone(),
        &signing,
    )
    .await
    .expect(201);
    let audit_before = blocking(|| store.audit_page(0, 10_000)).unwrap().len();
    http.send_with(&device, Method::PUT, &enrol_path, enrolment, &signing)
        .await
        .refused(401, "replayed_request");
    http.send_with(&device, Method::DELETE, &enrol_path, Vec::new(), &signing)
        .await
        .refused(401, "replayed_request");
    assert!(blocking(|| store.template(DOMAIN, &subject))
        .unwrap()
        .is_some());
    assert_eq!(
        blocking(|| store.audit_page(0, 10_000)).unwrap().len(),
        audit_before
    );

    // The same request replayed at another replica (a second server on the same store, as
    // after a restart) is refused too: nonces live in the store.
    let replica = start_replica(Arc::clone(&store), &harness.master_key_hex).await;
    let verification = routes::verification(DOMAIN, NIK);
    let probe = keys().probe(&unit_vector(3));
    let once = Signing {
        nonce: Some(fresh_nonce()),
        timestamp: Some(now()),
        ..Default::default()
    };
    http.send_with(&device, Method::POST, &verification, probe.clone(), &once)
        .await
        .expect(200);
    replica
        .send_with(&device, Method::POST, &verification, probe, &once)
        .await
        .refused(401, "replayed_request");

    // Revoked: after revocation the device is refused at once.
    let revoked: DeviceInfo = http
        .send(
            &harness.custodian,
            Method::DELETE,
            &routes::device(DOMAIN, &device_id),
            Vec::new(),
        )
        .await
        .expect(200)
        .json();
    assert!(revoked.revoked_at.is_some());
    assert!(
        !revoked.holds_share,
        "revocation deletes the server's share"
    );
    assert_eq!(blocking(|| store.key_share(&device_id)).unwrap(), None);
    http.send(&device, Method::DELETE, &enrol_path, Vec::new())
        .await
        .refused(401, "unauthenticated");
    assert!(blocking(|| store.template(DOMAIN, &subject))
        .unwrap()
        .is_some());
    let key = blocking(|| store.key(&device_id)).unwrap().unwrap();
    assert!(key.revoked_at.is_some());

    // Custodian-side refusals: a duplicate domain, a bad domain name, malformed keys, keys
    // without the server's share, a device without a share delta or with a garbled one.
    http.send(
        &harness.custodian,
        Method::PUT,
        &routes::domain(DOMAIN),
        keys().registration.clone(),
    )
    .await
    .refused(409, "domain_exists");
    http.send(
        &harness.custodian,
        Method::PUT,
        &routes::domain("Bad_Name"),
        keys().registration.clone(),
    )
    .await
    .refused(400, "bad_request");
    http.send(
        &harness.custodian,
        Method::PUT,
        &routes::domain("keys-only"),
        keys().evaluation.clone(),
    )
    .await
    .refused(400, "wrong_blob_type");
    for delta in [None, Some("00ff".to_owned())] {
        let registration = tabir_proto::messages::DeviceRegistration {
            label: "no share".into(),
            public_key: tabir_proto::hex::encode(signing_key(77).verifying_key().as_bytes()),
            role: Role::Device,
            share_delta: delta,
        };
        let answer = http
            .send(
                &harness.custodian,
                Method::POST,
                &routes::devices(DOMAIN),
                serde_json::to_vec(&registration).unwrap(),
            )
            .await;
        assert_eq!(answer.status.as_u16(), 400, "{}", answer.code());
    }
    // A share delta of the other domain does not fit this one.
    let (_, foreign_delta) = other_keys().issue();
    let registration = tabir_proto::messages::DeviceRegistration {
        label: "foreign share".into(),
        public_key: tabir_proto::hex::encode(signing_key(78).verifying_key().as_bytes()),
        role: Role::Device,
        share_delta: Some(tabir_proto::hex::encode(&foreign_delta.to_bytes())),
    };
    http.send(
        &harness.custodian,
        Method::POST,
        &routes::devices(DOMAIN),
        serde_json::to_vec(&registration).unwrap(),
    )
    .await
    .refused(409, "wrong_key_domain");
    http.send(
        &harness.custodian,
        Method::PUT,
        &routes::domain("garbage"),
        b"not keys".to_vec(),
    )
    .await
    .refused(400, "malformed_blob");
    assert_eq!(blocking(|| store.domains()).unwrap().len(), 1);
    // Unknown routes answer the JSON error too.
    http.get_unsigned("/v1/nothing-here")
        .await
        .refused(404, "not_found");
    // The bootstrap token is single-use.
    let reuse = http
        .client
        .post(format!("{}{}", http.base, routes::BOOTSTRAP))
        .bearer_auth(&harness.server.bootstrap_token.as_ref().unwrap().token)
        .body(r#"{"label":"x","public_key":"0000000000000000000000000000000000000000000000000000000000000000"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status().as_u16(), 401);

    // The authenticated refusals are in the log, as refusals, and the chain still verifies.
    let log = blocking(|| store.audit_page(0, 10_000)).unwrap();
    tabir_proto::audit::verify_chain(&log, None, &harness.audit_key).unwrap();
    let refusals = log
        .iter()
        .filter(|e| matches!(e.event.outcome, tabir_proto::audit::Outcome::Refused(_)))
        .count();
    assert!(refusals >= 8, "{refusals} refusals audited");
}
