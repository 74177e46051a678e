//! The real server on loopback, driven as a device, a custodian and an auditor would: register
//! a domain (with the server's reference share) and a device (with its share delta), enrol,
//! verify a genuine-like and an impostor-like probe (encrypted here with the public key only),
//! open the answers with the device's own share and report them, identify, delete; on SQLite
//! and, where configured, PostgreSQL. Every answer is also checked for what must never leave
//! the server: templates, probes, scores, escrowed (unshared) results.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use reqwest::Method;
use std::sync::Arc;
use support::*;
use tabir_crypto::ciphertexts::{EncryptedBit, EscrowedBit, Probe, Template};
use tabir_crypto::Decision;
use tabir_device_crypto::quantize::{random_unit_vector, vector_at_cosine};
use tabir_proto::audit::{self, Action, Outcome, ReportedDecision};
use tabir_proto::messages::{
    AuditPage, DecisionReport, DomainInfo, EnrolmentReceipt, ReportReceipt, ServerInfo,
};
use tabir_proto::{routes, Role};
use tabir_server::ServerConfig;
use tabir_store::Store;

const ALICE: &str = "3201014101900001";
const BUDI: &str = "3201012501900002";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn end_to_end_on_sqlite() {
    let (store, _dir) = sqlite_store();
    runtime().block_on(end_to_end(store));
}

#[test]
fn end_to_end_on_postgres() {
    let Some((store, _schema)) = postgres_store("e2e") else {
        return;
    };
    runtime().block_on(end_to_end(store));
}

/// Everything a response may carry: an encrypted bit (with the caller's share applied), or
/// JSON without any field that could hold a template, a probe or a score.
fn assert_blind(answer: &Answer) {
    let content_type = answer
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let keys = keys();
    let (config, fingerprint) = (&keys.config, keys.fingerprint);
    if content_type == routes::CONTENT_TYPE_BLOB {
        assert!(
            EncryptedBit::from_bytes(&answer.body, config, fingerprint).is_ok(),
            "a binary answer that is not an encrypted bit"
        );
        assert!(EscrowedBit::from_bytes(&answer.body, config, fingerprint).is_err());
        assert!(Template::from_bytes(&answer.body, config, fingerprint).is_err());
        assert!(Probe::from_bytes(&answer.body, config, fingerprint).is_err());
    } else if content_type.starts_with("application/json") {
        let value: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_no_forbidden_fields(&value);
    } else {
        assert!(content_type.starts_with("text/plain"), "{content_type}");
    }
}

/// The audit entry that escrows an answer's result.
fn escrow_seq(answer: &Answer) -> u64 {
    answer
        .headers
        .get(routes::HEADER_AUDIT_SEQ)
        .expect("a verification answer names its audit entry")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn assert_no_forbidden_fields(value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                for forbidden in [
                    "template",
                    "probe",
                    "score",
                    "embedding",
                    "ciphertext",
                    "secret",
                ] {
                    assert!(
                        key != forbidden && !key.ends_with(&format!("_{forbidden}"))
                            // The policies: thresholds, not anyone's score.
                            || key == "threshold_score"
                            || key == "identify_threshold_score",
                        "a response carries the field {key}"
                    );
                }
                assert_no_forbidden_fields(inner);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(assert_no_forbidden_fields),
        _ => {}
    }
}

async fn end_to_end(store: Arc<dyn Store>) {
    let harness = Harness::start(Arc::clone(&store), ServerConfig::default()).await;
    let http = &harness.http;
    let keys = keys();
    let mut seen = Vec::new();

    // Custodian: register the domain; the server computes the same fingerprint.
    let answer = http
        .send(
            &harness.custodian,
            Method::PUT,
            &routes::domain(DOMAIN),
            keys.registration.clone(),
        )
        .await
        .expect(201);
    let info: DomainInfo = answer.json();
    assert_eq!(info.fingerprint, keys.fingerprint.to_hex());
    assert_eq!(info.dim, DIM);
    seen.push(answer);

    let device = signing_key(10);
    let auditor = signing_key(11);
    let (_, device_share) = harness
        .register_with_share(&device, DOMAIN, Role::Device)
        .await;
    harness.register(&auditor, DOMAIN, Role::Auditor).await;

    // Device: enrol two people.
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let alice = random_unit_vector(&mut rng, DIM as usize);
    let budi = random_unit_vector(&mut rng, DIM as usize);
    for (nik, embedding) in [(ALICE, &alice), (BUDI, &budi)] {
        let template = keys.template(embedding);
        let answer = http
            .send(
                &device,
                Method::PUT,
                &routes::enrolment(DOMAIN, nik),
                template,
            )
            .await
            .expect(201);
        let receipt: EnrolmentReceipt = answer.json();
        assert!(!receipt.replaced);
        seen.push(answer);
    }
    // Re-enrolling replaces (200), and the gallery keeps one template per person.
    let template = keys.template(&alice);
    let answer = http
        .send(
            &device,
            Method::PUT,
            &routes::enrolment(DOMAIN, ALICE),
            template,
        )
        .await
        .expect(200);
    assert!(answer.json::<EnrolmentReceipt>().replaced);
    assert_eq!(blocking(|| store.templates(DOMAIN)).unwrap().len(), 2);

    // 1:1: a genuine-like probe (cosine 0.8) matches, an impostor-like one (0.1) does not.
    // The device opens each answer with its own share and reports what it read.
    let report = |seq: u64, decision: Decision| {
        let body = serde_json::to_vec(&DecisionReport {
            decision: match decision {
                Decision::Match => ReportedDecision::Match,
                Decision::NoMatch => ReportedDecision::NoMatch,
            },
        })
        .unwrap();
        (routes::decision_report(DOMAIN, seq), body)
    };
    for (cosine, expected) in [(0.8f32, Decision::Match), (0.1, Decision::NoMatch)] {
        let probe_vector = vector_at_cosine(&mut rng, &alice, cosine);
        let answer = http
            .send(
                &device,
                Method::POST,
                &routes::verification(DOMAIN, ALICE),
                keys.probe(&probe_vector),
            )
            .await
            .expect(200);
        let decision = keys.open(&device_share, &answer.body);
        assert_eq!(decision, expected, "cosine {cosine}");
        let seq = escrow_seq(&answer);
        let escrowed = blocking(|| store.escrow_page(DOMAIN, seq, seq, 1)).unwrap();
        assert_eq!(
            escrowed.len(),
            1,
            "the result is escrowed with its audit entry"
        );
        let (path, body) = report(seq, decision);
        let receipt: ReportReceipt = http
            .send(&device, Method::POST, &path, body)
            .await
            .expect(201)
            .json();
        assert!(receipt.audit_seq > seq);
        seen.push(answer);
    }

    // 1:N: Budi's second photo matches someone in the gallery; a stranger matches no one.
    for (anchor, cosine, expected) in [(&budi, 0.8f32, true), (&alice, 0.0, false)] {
        let probe_vector = vector_at_cosine(&mut rng, anchor, cosine);
        let (job, answer) = identify_job(http, &device, keys.probe(&probe_vector)).await;
        assert_eq!(job.shards_total, 1, "a small gallery is one shard");
        let answer = answer.expect("the job is done");
        let decision = keys.open(&device_share, &answer.body);
        assert_eq!(decision.is_match(), expected);
        let (path, body) = report(escrow_seq(&answer), decision);
        http.send(&device, Method::POST, &path, body)
            .await
            .expect(201);
        seen.push(answer);
    }

    // Delete: the template is gone; verifying again is refused as an unknown subject.
    let answer = http
        .send(
            &device,
            Method::DELETE,
            &routes::enrolment(DOMAIN, ALICE),
            Vec::new(),
        )
        .await
        .expect(200);
    seen.push(answer);
    let alice_id = harness.subject_tag(ALICE);
    assert!(blocking(|| store.template(DOMAIN, &alice_id))
        .unwrap()
        .is_none());
    let probe = keys.probe(&alice);
    http.send(
        &device,
        Method::POST,
        &routes::verification(DOMAIN, ALICE),
        probe,
    )
    .await
    .refused(404, "unknown_subject");

    // Auditor: the registry, the server's key, and the whole log, which verifies.
    let answer = http
        .send(&auditor, Method::GET, routes::DOMAINS, Vec::new())
        .await
        .expect(200);
    assert_eq!(answer.json::<Vec<DomainInfo>>().len(), 1);
    seen.push(answer);
    let answer = http
        .send(&auditor, Method::GET, &routes::devices(DOMAIN), Vec::new())
        .await
        .expect(200);
    seen.push(answer);
    let answer = http
        .send(&auditor, Method::GET, routes::SERVER_INFO, Vec::new())
        .await
        .expect(200);
    let info: ServerInfo = answer.json();
    assert_eq!(
        info.audit_public_key,
        tabir_proto::hex::encode(harness.audit_key.as_bytes())
    );
    seen.push(answer);
    let answer = http
        .send(
            &auditor,
            Method::GET,
            &routes::audit_page(0, 1000),
            Vec::new(),
        )
        .await
        .expect(200);
    let page: AuditPage = answer.json();
    audit::verify_log(&page.entries, None, &harness.audit_key).unwrap();
    // An auditor sees its domain's entries whole and the rest (here: the bootstrap, which
    // belongs to no domain) redacted; the chain verifies all the same.
    for entry in &page.entries {
        match entry.full() {
            Some(whole) => assert_eq!(whole.event.domain.as_deref(), Some(DOMAIN)),
            None => assert_eq!(entry.seq(), 1, "only the bootstrap is outside the domain"),
        }
    }
    seen.push(answer);
    // The custodian sees everything.
    let page: AuditPage = http
        .send(
            &harness.custodian,
            Method::GET,
            &routes::audit_page(0, 1000),
            Vec::new(),
        )
        .await
        .expect(200)
        .json();
    audit::verify_log(&page.entries, None, &harness.audit_key).unwrap();
    let entries: Vec<&audit::AuditEntry> = page.entries.iter().filter_map(|e| e.full()).collect();
    assert_eq!(entries.len(), page.entries.len());
    let actions: Vec<Action> = entries.iter().map(|e| e.event.action).collect();
    for action in [
        Action::BootstrapCustodian,
        Action::RegisterDomain,
        Action::RegisterDevice,
        Action::Enrol,
        Action::ReplaceEnrolment,
        Action::Verify,
        Action::Identify,
        Action::ReportDecision,
        Action::DeleteEnrolment,
        Action::ReadAudit,
    ] {
        assert!(actions.contains(&action), "{action:?} not in the log");
    }
    let refused_verify = entries.iter().find(|e| {
        e.event.action == Action::Verify
            && e.event.outcome == Outcome::Refused("unknown_subject".into())
    });
    assert!(
        refused_verify.is_some(),
        "the refused verification is audited"
    );

    // Health and metrics need no signature; metrics carry route templates, not subject ids.
    let metrics = http.get_unsigned(routes::METRICS).await.expect(200);
    let text = String::from_utf8(metrics.body.clone()).unwrap();
    assert!(
        text.contains("tabir_fhe_jobs_total{op=\"verify\"} 2"),
        "{text}"
    );
    assert!(!text.contains(ALICE));
    seen.push(metrics);
    seen.push(http.get_unsigned(routes::HEALTH).await.expect(200));

    for answer in &seen {
        assert_blind(answer);
    }
    harness
        .server
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
