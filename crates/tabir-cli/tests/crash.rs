//! Crash safety: SIGKILL the server in the middle of a burst of enrolments. After restart
//! every acknowledged enrolment is there, nothing is half-written (each stored template decodes
//! and has its audit entry), and the audit chain verifies.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use support::ServerProcess;
use tabir_client::transport::Method;
use tabir_client::{AdminClient, RetryPolicy, Transport};
use tabir_crypto::ciphertexts::{EncryptedBit, Template};
use tabir_crypto::DomainRegistration;
use tabir_device_crypto::{domain_config, generate_key_domain, Encryptor};
use tabir_proto::audit::{verify_chain, Action};
use tabir_proto::routes::{self, CONTENT_TYPE_BLOB};
use tabir_proto::{Role, SubjectId};
use tabir_store::Store;

const DOMAIN: &str = "crash-test";
/// Kill once this many enrolments were acknowledged (others are in flight then).
const KILL_AFTER: usize = 24;

fn nik(serial: usize) -> String {
    format!("320101250190{:04}", serial + 1)
}

#[test]
fn sigkill_during_an_enrolment_burst_loses_no_acknowledged_enrolment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let custodian = tabir_client::custody::new_signing_key();
    let custodian_hex = tabir_proto::hex::encode(custodian.verifying_key().as_bytes());
    let mut server = ServerProcess::start(&data, &["--custodian-key", &custodian_hex]);
    let config = domain_config(128, 0.363).unwrap();
    let domain = generate_key_domain(config).unwrap();
    let encryptor = Encryptor::new(&domain.evaluation_keys.public_key()).unwrap();
    let (device_share, delta) = domain.custodian_share.issue(&config).unwrap();
    let registration = DomainRegistration {
        evaluation_keys: domain.evaluation_keys,
        server_share: domain.server_share,
        identify_threshold: tabir_device_crypto::identify_threshold(&config, 0.5).unwrap(),
    }
    .to_bytes();
    let device = tabir_client::custody::new_signing_key();
    let device_again = device.clone();
    let embedding = {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        tabir_device_crypto::quantize::random_unit_vector(&mut rng, 128)
    };
    let template = encryptor.encrypt_template(&embedding).unwrap().to_bytes();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let acknowledged: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    runtime.block_on(async {
        let admin = AdminClient::new(Transport::new(&server.url, custodian, None).unwrap());
        admin.register_domain(DOMAIN, &registration).await.unwrap();
        admin
            .register_key(
                DOMAIN,
                "burst device",
                &device.verifying_key(),
                Role::Device,
                Some(&delta),
            )
            .await
            .unwrap();
        let transport = Arc::new(
            Transport::new(&server.url, device, None)
                .unwrap()
                .with_retry(RetryPolicy::none()),
        );
        // Four writers enrol distinct subjects as fast as they can.
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let transport = Arc::clone(&transport);
                let acknowledged = Arc::clone(&acknowledged);
                let template = template.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let subject = nik(writer + 4 * i);
                        let path = routes::enrolment(DOMAIN, &subject);
                        match transport
                            .send(Method::PUT, &path, template.clone(), CONTENT_TYPE_BLOB)
                            .await
                        {
                            Ok(_) => {
                                acknowledged.lock().unwrap().insert(subject);
                            }
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        while acknowledged.lock().unwrap().len() < KILL_AFTER {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        server.kill();
        for writer in writers {
            writer.await.unwrap();
        }
    });
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= KILL_AFTER);
    let first_nik = acknowledged.iter().next().unwrap().clone();

    // Read the database the killed server left behind. It names subjects by their keyed
    // tags (made with the master key), never by NIK.
    let master_key =
        tabir_server::MasterKey::load_or_create(&support::master_key_path(&data), None).unwrap();
    let acknowledged: BTreeSet<String> = acknowledged
        .iter()
        .map(|nik| master_key.subject_tag(DOMAIN, nik).as_str().to_owned())
        .collect();
    {
        let store = tabir_store::sqlite::SqliteStore::open(&data).unwrap();
        let stored = store.templates(DOMAIN).unwrap();
        let stored_ids: BTreeSet<String> =
            stored.iter().map(|(s, _)| s.as_str().to_owned()).collect();
        for subject in &acknowledged {
            assert!(
                stored_ids.contains(subject),
                "acknowledged enrolment {subject} was lost"
            );
        }
        for (subject, blob) in &stored {
            Template::from_bytes(blob, encryptor.config(), encryptor.fingerprint())
                .unwrap_or_else(|e| panic!("template of {subject} is damaged: {e}"));
        }
        let log = store.audit_page(0, 100_000).unwrap();
        let server_key = tabir_proto::signing::parse_public_key(&server.audit_key).unwrap();
        verify_chain(&log, None, &server_key).unwrap();
        let enrol_entries: BTreeSet<String> = log
            .iter()
            .filter(|e| e.event.action == Action::Enrol)
            .filter_map(|e| e.event.subject.as_ref().map(|s| s.as_str().to_owned()))
            .collect();
        assert_eq!(
            enrol_entries, stored_ids,
            "every stored template has its audit entry, and no more"
        );
    }

    // The restarted server (same data folder, same master key) serves the same data.
    let restarted = ServerProcess::start(&data, &["--custodian-key", &custodian_hex]);
    assert_eq!(
        restarted.audit_key, server.audit_key,
        "the server's key survives a restart"
    );
    // A device registered before the crash verifies an enrolment acknowledged before it.
    let subject = SubjectId::parse(&first_nik).unwrap();
    let probe = encryptor.encrypt_probe(&embedding).unwrap().to_bytes();
    runtime.block_on(async {
        let transport = Transport::new(&restarted.url, device_again, None).unwrap();
        let reply = transport
            .send(
                Method::POST,
                &routes::verification(DOMAIN, subject.as_str()),
                probe,
                CONTENT_TYPE_BLOB,
            )
            .await
            .unwrap();
        let bit =
            EncryptedBit::from_bytes(&reply.body, encryptor.config(), encryptor.fingerprint())
                .unwrap();
        assert!(device_share.decrypt(&bit).unwrap().is_match());
    });
}
