//! Key custody at the server: results open only with the asking device's share, every result
//! is escrowed and re-shared only to auditors, reports are checked against the escrow, a
//! revoked device's share opens nothing the server returns afterwards, and a copy of the
//! database without the master key opens nothing at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use reqwest::Method;
use std::sync::Arc;
use support::*;
use tabir_crypto::ciphertexts::EncryptedBit;
use tabir_crypto::Decision;
use tabir_device_crypto::quantize::{random_unit_vector, vector_at_cosine};
use tabir_device_crypto::DecryptionShare;
use tabir_proto::audit::{Action, Outcome, ReportedDecision};
use tabir_proto::messages::{DecisionReport, ResharePage, ReshareRequest};
use tabir_proto::{routes, Role};
use tabir_server::ServerConfig;
use tabir_store::Store;

const NIK: &str = "3201014101900001";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn seq_of(answer: &Answer) -> u64 {
    answer.headers[routes::HEADER_AUDIT_SEQ]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn report_body(decision: Decision) -> Vec<u8> {
    serde_json::to_vec(&DecisionReport {
        decision: match decision {
            Decision::Match => ReportedDecision::Match,
            Decision::NoMatch => ReportedDecision::NoMatch,
        },
    })
    .unwrap()
}

fn flip(decision: Decision) -> Decision {
    match decision {
        Decision::Match => Decision::NoMatch,
        Decision::NoMatch => Decision::Match,
    }
}

/// What an auditor reads from the escrow of a range: (seq, actor, decision).
async fn audit_escrow(
    harness: &Harness,
    auditor: &ed25519_dalek::SigningKey,
    share: &DecryptionShare,
    from: u64,
    to: u64,
) -> (ResharePage, Vec<(u64, String, Decision)>) {
    let page: ResharePage = harness
        .http
        .send(
            auditor,
            Method::POST,
            &routes::escrow_reshare(DOMAIN),
            serde_json::to_vec(&ReshareRequest { from, to }).unwrap(),
        )
        .await
        .expect(200)
        .json();
    let keys = keys();
    let read = page
        .results
        .iter()
        .map(|r| {
            let bytes = tabir_proto::hex::decode_vec(&r.bit).unwrap();
            (r.seq, r.actor.clone(), keys.open(share, &bytes))
        })
        .collect();
    (page, read)
}

#[test]
fn escrow_reports_reshares_and_revocation() {
    let (store, _dir) = sqlite_store();
    runtime().block_on(escrow(store));
}

async fn escrow(store: Arc<dyn Store>) {
    // One subject is verified about fifty times here: no quotas.
    let harness = Harness::start(Arc::clone(&store), no_quotas()).await;
    let http = &harness.http;
    let keys = keys();
    harness.register_domain().await;
    let (honest, liar, silent, auditor) = (
        signing_key(40),
        signing_key(41),
        signing_key(42),
        signing_key(43),
    );
    let (honest_id, honest_share) = harness
        .register_with_share(&honest, DOMAIN, Role::Device)
        .await;
    let (liar_id, liar_share) = harness
        .register_with_share(&liar, DOMAIN, Role::Device)
        .await;
    let (silent_id, _) = harness
        .register_with_share(&silent, DOMAIN, Role::Device)
        .await;
    let (_, auditor_share) = harness
        .register_with_share(&auditor, DOMAIN, Role::Auditor)
        .await;

    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let enrolled = random_unit_vector(&mut rng, DIM as usize);
    let enrol = http
        .send(
            &honest,
            Method::PUT,
            &routes::enrolment(DOMAIN, NIK),
            keys.template(&enrolled),
        )
        .await
        .expect(201);
    let enrol_seq: u64 = enrol
        .json::<tabir_proto::messages::EnrolmentReceipt>()
        .audit_seq;
    let verify = |device: &ed25519_dalek::SigningKey, genuine: bool, rng: &mut ChaCha20Rng| {
        let cosine = if genuine { 0.8 } else { 0.05 };
        let probe = keys.probe(&vector_at_cosine(rng, &enrolled, cosine));
        let (http, device) = (http.clone(), device.clone());
        async move {
            http.send(
                &device,
                Method::POST,
                &routes::verification(DOMAIN, NIK),
                probe,
            )
            .await
            .expect(200)
        }
    };

    // Honest device: four verifications, each read with its own share and reported as read.
    let first_seq = seq_of(&verify(&honest, true, &mut rng).await);
    let mut honest_seqs = vec![first_seq];
    for genuine in [false, true, false] {
        honest_seqs.push(seq_of(&verify(&honest, genuine, &mut rng).await));
    }
    for (i, seq) in honest_seqs.iter().enumerate() {
        let expected = if i % 2 == 0 {
            Decision::Match
        } else {
            Decision::NoMatch
        };
        http.send(
            &honest,
            Method::POST,
            &routes::decision_report(DOMAIN, *seq),
            report_body(expected),
        )
        .await
        .expect(201);
    }
    // A lying device reports the opposite of what it read; a silent one reports nothing.
    let answer = verify(&liar, true, &mut rng).await;
    let liar_seq = seq_of(&answer);
    let liar_read = keys.open(&liar_share, &answer.body);
    assert_eq!(liar_read, Decision::Match);
    http.send(
        &liar,
        Method::POST,
        &routes::decision_report(DOMAIN, liar_seq),
        report_body(flip(liar_read)),
    )
    .await
    .expect(201);
    let silent_seq = seq_of(&verify(&silent, false, &mut rng).await);

    // Reports are accepted once, only from the device that asked, only for escrowed results.
    http.send(
        &liar,
        Method::POST,
        &routes::decision_report(DOMAIN, liar_seq),
        report_body(liar_read),
    )
    .await
    .refused(409, "already_reported");
    http.send(
        &honest,
        Method::POST,
        &routes::decision_report(DOMAIN, silent_seq),
        report_body(Decision::NoMatch),
    )
    .await
    .refused(404, "unknown_escrow");
    http.send(
        &honest,
        Method::POST,
        &routes::decision_report(DOMAIN, enrol_seq),
        report_body(Decision::Match),
    )
    .await
    .refused(404, "unknown_escrow");
    http.send(
        &auditor,
        Method::POST,
        &routes::decision_report(DOMAIN, silent_seq),
        report_body(Decision::Match),
    )
    .await
    .refused(403, "forbidden");

    // The auditor opens every escrowed result with its own share and compares with the log.
    let (page, read) = audit_escrow(&harness, &auditor, &auditor_share, 1, u64::MAX).await;
    assert_eq!(
        read.len(),
        6,
        "every verification is escrowed, nothing else"
    );
    assert!(page.next_from.is_none());
    let log = blocking(|| store.audit_page(0, 10_000)).unwrap();
    let reported = |seq: u64| {
        log.iter()
            .find(|e| {
                // Refused reports are on the record too, as refusals.
                e.event.action == Action::ReportDecision
                    && e.event.outcome == Outcome::Done
                    && e.event.refers_to.map(|r| r.from) == Some(seq)
            })
            .and_then(|e| e.event.reported)
    };
    let (mut matching, mut mismatched, mut unreported) = (0, Vec::new(), Vec::new());
    for (seq, actor, escrowed) in &read {
        match reported(*seq) {
            None => unreported.push((*seq, actor.clone())),
            Some(r) => {
                let r = match r {
                    ReportedDecision::Match => Decision::Match,
                    ReportedDecision::NoMatch => Decision::NoMatch,
                };
                if r == *escrowed {
                    matching += 1;
                } else {
                    mismatched.push((*seq, actor.clone()));
                }
            }
        }
    }
    assert_eq!(matching, 4, "the honest device's reports all match");
    assert_eq!(mismatched, vec![(liar_seq, liar_id.clone())]);
    assert_eq!(unreported, vec![(silent_seq, silent_id.clone())]);
    // The request is itself on the record, naming the auditor and the range.
    let request = blocking(|| store.audit_page(page.audit_seq - 1, 1)).unwrap();
    assert_eq!(request[0].event.action, Action::ReshareEscrow);
    assert!(request[0].event.refers_to.is_some());

    // Only the auditor's share opens what it received; the honest device's does not (better
    // than chance it cannot: six bits, so check they are not all right).
    let honest_reads: Vec<Decision> = page
        .results
        .iter()
        .map(|r| {
            let bytes = tabir_proto::hex::decode_vec(&r.bit).unwrap();
            let bit = EncryptedBit::from_bytes(&bytes, &keys.config, keys.fingerprint).unwrap();
            honest_share.decrypt(&bit).unwrap()
        })
        .collect();
    let truths: Vec<Decision> = read.iter().map(|(_, _, d)| *d).collect();
    assert_ne!(
        honest_reads, truths,
        "a device's share opened an auditor's re-share"
    );

    // Re-sharing is for auditors of the domain, over ranges; no route takes a ciphertext.
    http.send(
        &honest,
        Method::POST,
        &routes::escrow_reshare(DOMAIN),
        serde_json::to_vec(&ReshareRequest { from: 1, to: 10 }).unwrap(),
    )
    .await
    .refused(403, "forbidden");
    http.send(
        &auditor,
        Method::POST,
        &routes::escrow_reshare(DOMAIN),
        serde_json::to_vec(&ReshareRequest { from: 9, to: 3 }).unwrap(),
    )
    .await
    .refused(400, "bad_request");
    let a_result_sent_back = verify(&honest, true, &mut rng).await.body;
    http.send(
        &auditor,
        Method::POST,
        &routes::escrow_reshare(DOMAIN),
        a_result_sent_back,
    )
    .await
    .refused(400, "bad_request");
    let (_, nothing) = audit_escrow(&harness, &auditor, &auditor_share, 1, enrol_seq).await;
    assert!(nothing.is_empty(), "an enrolment has no escrowed result");

    // Revocation: the liar is revoked; its share, applied to everything the server answers
    // the honest device afterwards, reads no better than a coin.
    http.send(
        &harness.custodian,
        Method::DELETE,
        &routes::device(DOMAIN, &liar_id),
        Vec::new(),
    )
    .await
    .expect(200);
    assert_eq!(blocking(|| store.key_share(&liar_id)).unwrap(), None);
    http.send(
        &liar,
        Method::POST,
        &routes::verification(DOMAIN, NIK),
        keys.probe(&enrolled),
    )
    .await
    .refused(401, "unauthenticated");
    let rounds = 40;
    let (mut honest_right, mut revoked_right) = (0, 0);
    for i in 0..rounds {
        let genuine = i % 2 == 0;
        let answer = verify(&honest, genuine, &mut rng).await;
        let truth = if genuine {
            Decision::Match
        } else {
            Decision::NoMatch
        };
        honest_right += usize::from(keys.open(&honest_share, &answer.body) == truth);
        revoked_right += usize::from(keys.open(&liar_share, &answer.body) == truth);
    }
    assert_eq!(honest_right, rounds);
    // Binomial(40, 1/2): outside 8..=32 with probability about 1e-4.
    assert!(
        (8..=32).contains(&revoked_right),
        "the revoked share read {revoked_right} of {rounds}"
    );
    assert!(blocking(|| store.key_share(&honest_id)).unwrap().is_some());
}

#[test]
fn a_revoked_device_is_refused_and_its_share_gets_nothing() {
    let (store, _dir) = sqlite_store();
    runtime().block_on(async move {
        let harness = Harness::start(Arc::clone(&store), ServerConfig::default()).await;
        harness.register_domain().await;
        let device = signing_key(50);
        let (device_id, _) = harness
            .register_with_share(&device, DOMAIN, Role::Device)
            .await;
        harness
            .http
            .send(
                &harness.custodian,
                Method::DELETE,
                &routes::device(DOMAIN, &device_id),
                Vec::new(),
            )
            .await
            .expect(200);
        let probe = keys().probe(&random_unit_vector(
            &mut ChaCha20Rng::seed_from_u64(1),
            DIM as usize,
        ));
        harness
            .http
            .send(
                &device,
                Method::POST,
                &routes::verification(DOMAIN, NIK),
                probe,
            )
            .await
            .refused(401, "unauthenticated");
        assert_eq!(blocking(|| store.key_share(&device_id)).unwrap(), None);
    });
}

#[test]
fn a_database_copy_without_the_master_key_opens_nothing() {
    let (store, dir) = sqlite_store();
    runtime().block_on(async move {
        let harness = Harness::start(Arc::clone(&store), ServerConfig::default()).await;
        harness.register_domain().await;
        let device = signing_key(60);
        let (device_id, _) = harness
            .register_with_share(&device, DOMAIN, Role::Device)
            .await;
        harness
            .server
            .shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap();

        // The stored shares are sealed: no share decodes from them.
        let sealed_reference = blocking(|| store.domain_share(DOMAIN)).unwrap().unwrap();
        let sealed_device = blocking(|| store.key_share(&device_id)).unwrap().unwrap();
        for sealed in [&sealed_reference, &sealed_device] {
            assert!(tabir_crypto::ServerShare::import_secret(
                sealed,
                &keys().config,
                keys().fingerprint
            )
            .is_err());
        }
        // A server started on the copy with another master key refuses to start.
        drop(store);
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(
            dir.path().join(tabir_store::sqlite::DATABASE_FILE),
            copy.path().join(tabir_store::sqlite::DATABASE_FILE),
        )
        .unwrap();
        let copied: Arc<dyn Store> =
            Arc::new(tabir_store::sqlite::SqliteStore::open(copy.path()).unwrap());
        let started = tabir_server::start(
            tabir_server::Startup {
                store: copied,
                server_key: tabir_server::load_or_create_server_key(
                    &copy.path().join("server.key"),
                )
                .unwrap(),
                master_key: tabir_server::MasterKey::generate(),
                config: ServerConfig::default(),
                custodian_key: None,
                tls: None,
            },
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        )
        .await;
        match started {
            Err(tabir_server::StartError::WrongMasterKey(_)) => {}
            Err(other) => panic!("unexpected start error: {other}"),
            Ok(_) => panic!("a server started on a database copy with another master key"),
        }
    });
}
