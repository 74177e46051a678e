//! Two `tabir-server` processes on one PostgreSQL database, as two replicas behind a load
//! balancer: concurrent enrolments and verifications through both end in one linear audit
//! chain that verifies under the shared audit key, and a request accepted by one replica is
//! refused as a replay by the other. Runs where PostgreSQL does (TABIR_TEST_DATABASE_URL).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::Method;
use support::process::ServerProcess;
use support::*;
use tabir_proto::audit::{self, Action, LogEntry, Outcome};
use tabir_proto::{routes, Role};

const SUBJECTS: usize = 12;

fn nik(serial: usize) -> String {
    format!("320101410190{:04}", serial + 1)
}

fn unit_vector(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; DIM as usize];
    v[axis % DIM as usize] = 1.0;
    v
}

/// Register a device key with a share through `http` (as the custodian).
async fn register_device(
    http: &Http,
    custodian: &ed25519_dalek::SigningKey,
    seed: u64,
) -> ed25519_dalek::SigningKey {
    let key = signing_key(seed);
    let (_, delta) = keys().issue();
    let registration = tabir_proto::messages::DeviceRegistration {
        label: format!("replica test device {seed}"),
        public_key: tabir_proto::hex::encode(key.verifying_key().as_bytes()),
        role: Role::Device,
        share_delta: Some(tabir_proto::hex::encode(&delta.to_bytes())),
    };
    http.send(
        custodian,
        Method::POST,
        &routes::devices(DOMAIN),
        serde_json::to_vec(&registration).unwrap(),
    )
    .await
    .expect(201);
    key
}

#[test]
fn two_server_processes_on_one_database_keep_one_chain_and_refuse_each_others_replays() {
    let Some(url) = database_url("two server processes on PostgreSQL") else {
        return;
    };
    let schema = schema_name("replicas");
    let _drop = DropSchema::new(&url, &schema);
    let master_key = random_master_key_hex();
    let custodian = signing_key(60);
    let custodian_hex = tabir_proto::hex::encode(custodian.verifying_key().as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let first = ServerProcess::start(
        &dir.path().join("a"),
        &url,
        &schema,
        &master_key,
        &custodian_hex,
    );
    // Every replica signs the log with the same key: the first one's, copied.
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::copy(
        dir.path().join("a").join(tabir_server::SERVER_KEY_FILE),
        dir.path().join("b").join(tabir_server::SERVER_KEY_FILE),
    )
    .unwrap();
    let second = ServerProcess::start(
        &dir.path().join("b"),
        &url,
        &schema,
        &master_key,
        &custodian_hex,
    );
    assert_eq!(first.audit_key, second.audit_key);
    let audit_key = tabir_proto::signing::parse_public_key(&first.audit_key).unwrap();

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let replicas = [Http::new(first.url.clone()), Http::new(second.url.clone())];
            replicas[0]
                .send(
                    &custodian,
                    Method::PUT,
                    &routes::domain(DOMAIN),
                    keys().registration.clone(),
                )
                .await
                .expect(201);
            let devices = [
                register_device(&replicas[0], &custodian, 61).await,
                register_device(&replicas[1], &custodian, 62).await,
            ];

            // Enrolments through both replicas at once, then verifications crossing over.
            let mut tasks = Vec::new();
            for serial in 0..SUBJECTS {
                let http = replicas[serial % 2].clone();
                let device = devices[serial % 2].clone();
                tasks.push(tokio::spawn(async move {
                    http.send(
                        &device,
                        Method::PUT,
                        &routes::enrolment(DOMAIN, &nik(serial)),
                        keys().template(&unit_vector(serial)),
                    )
                    .await
                    .expect(201);
                }));
            }
            for task in tasks.drain(..) {
                task.await.unwrap();
            }
            for serial in 0..SUBJECTS {
                let http = replicas[(serial + 1) % 2].clone();
                let device = devices[serial % 2].clone();
                tasks.push(tokio::spawn(async move {
                    http.send(
                        &device,
                        Method::POST,
                        &routes::verification(DOMAIN, &nik(serial)),
                        keys().probe(&unit_vector(serial)),
                    )
                    .await
                    .expect(200);
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }

            // A request accepted by one replica is a replay at the other, both ways.
            for (accepts, replays) in [(0, 1), (1, 0)] {
                let signing = Signing {
                    timestamp: Some(now()),
                    nonce: Some(fresh_nonce()),
                    ..Default::default()
                };
                let path = routes::verification(DOMAIN, &nik(accepts));
                let probe = keys().probe(&unit_vector(accepts));
                replicas[accepts]
                    .send_with(&devices[0], Method::POST, &path, probe.clone(), &signing)
                    .await
                    .expect(200);
                replicas[replays]
                    .send_with(&devices[0], Method::POST, &path, probe, &signing)
                    .await
                    .refused(401, "replayed_request");
            }

            // One linear chain, whichever replica appended, read through either.
            let log = whole_log(&replicas[1], &custodian).await;
            audit::verify_log(&log, None, &audit_key).unwrap();
            let seqs: Vec<u64> = log.iter().map(LogEntry::seq).collect();
            assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>());
            // The other replica reads the same chain (and one more entry: the first read).
            let through_first = whole_log(&replicas[0], &custodian).await;
            assert_eq!(through_first.len(), log.len() + 1);
            assert!(
                through_first[..log.len()] == log[..],
                "the replicas read different logs"
            );
            let count = |action: Action, outcome: Outcome| {
                log.iter()
                    .filter_map(LogEntry::full)
                    .filter(|e| e.event.action == action && e.event.outcome == outcome)
                    .count()
            };
            assert_eq!(count(Action::Enrol, Outcome::Done), SUBJECTS);
            assert_eq!(count(Action::Verify, Outcome::Done), SUBJECTS + 2);
        });
}

/// A replica that stalls while holding the audit lock (here: a bare connection that takes it
/// and waits) costs the others a 503 `storage_unavailable` after the lock timeout, not a hang;
/// once it lets go, appends go on.
#[test]
fn a_stalled_holder_of_the_audit_lock_costs_others_a_503_not_a_hang() {
    let Some(url) = database_url("stalled audit lock on PostgreSQL") else {
        return;
    };
    let schema = schema_name("stalled");
    let _drop = DropSchema::new(&url, &schema);
    let store = tabir_store::postgres::PostgresStore::connect_with(
        &url,
        &tabir_store::postgres::PostgresOptions {
            schema: Some(schema.clone()),
            lock_timeout: std::time::Duration::from_secs(1),
            ..Default::default()
        },
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let harness = Harness::start(
            std::sync::Arc::new(store),
            tabir_server::ServerConfig::default(),
        )
        .await;
        harness.register_domain().await;
        let device = signing_key(63);
        harness.register(&device, DOMAIN, Role::Device).await;

        // The stalled replica, on its own thread (the synchronous client runs its own runtime).
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (lock_url, lock_schema) = (url.clone(), schema.clone());
        let stalled = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&lock_url, postgres::NoTls).unwrap();
            let mut transaction = client.transaction().unwrap();
            transaction
                .execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended('tabir:audit:' || $1::text, 0))",
                    &[&lock_schema],
                )
                .unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
            transaction.rollback().unwrap();
        });
        tokio::task::block_in_place(|| locked_rx.recv().unwrap());

        let path = routes::enrolment(DOMAIN, &nik(0));
        let template = keys().template(&unit_vector(0));
        let answer = harness
            .http
            .send(&device, Method::PUT, &path, template.clone())
            .await;
        answer.refused(503, "storage_unavailable");
        assert!(answer.headers.contains_key("retry-after"));
        assert!(blocking(|| harness.store.templates(DOMAIN))
            .unwrap()
            .is_empty());

        release_tx.send(()).unwrap();
        tokio::task::block_in_place(|| stalled.join().unwrap());
        harness
            .http
            .send(&device, Method::PUT, &path, template)
            .await
            .expect(201);
        let log = blocking(|| harness.store.audit_page(0, 10_000)).unwrap();
        audit::verify_chain(&log, None, &harness.audit_key).unwrap();
    });
}
