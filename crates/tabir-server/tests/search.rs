//! 1:N identification as a job on the in-process queue: a gallery cut into several shards gives
//! the right any-match bit; progress, result and cancellation answer as documented; a job is
//! private to the device that submitted it; a job left running when the server stops is
//! resumed by the next start on the same store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tabir_device_crypto::quantize::{random_unit_vector, vector_at_cosine};
use tabir_proto::audit::{Action, Outcome};
use tabir_proto::messages::{AuditPage, IdentificationJob, JobStatus};
use tabir_proto::{routes, Role};
use tabir_server::{SearchConfig, ServerConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn nik(serial: usize) -> String {
    format!("320101410190{:04}", serial + 1)
}

/// No quotas, shards of `shard_templates`, and `workers` search threads.
fn config(shard_templates: usize, workers: usize) -> ServerConfig {
    ServerConfig {
        search: SearchConfig {
            workers,
            shard_templates,
            ..SearchConfig::default()
        },
        ..no_quotas()
    }
}

/// Enrol `count` random unit vectors; returns them.
async fn enrol_gallery(
    harness: &Harness,
    device: &ed25519_dalek::SigningKey,
    count: usize,
    rng: &mut ChaCha20Rng,
) -> Vec<Vec<f32>> {
    let mut gallery = Vec::new();
    for serial in 0..count {
        let vector = random_unit_vector(rng, DIM as usize);
        harness
            .http
            .send(
                device,
                Method::PUT,
                &routes::enrolment(DOMAIN, &nik(serial)),
                keys().template(&vector),
            )
            .await
            .expect(201);
        gallery.push(vector);
    }
    gallery
}

async fn submit(
    harness: &Harness,
    device: &ed25519_dalek::SigningKey,
    probe: &[f32],
) -> IdentificationJob {
    harness
        .http
        .send(
            device,
            Method::POST,
            &routes::identification(DOMAIN),
            keys().probe(probe),
        )
        .await
        .expect(202)
        .json()
}

#[test]
fn a_gallery_in_several_shards_gives_the_right_any_match_bit() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        let harness = Harness::start(store, config(4, 2)).await;
        harness.register_domain().await;
        let device = signing_key(40);
        let (_, share) = harness
            .register_with_share(&device, DOMAIN, Role::Device)
            .await;
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let gallery = enrol_gallery(&harness, &device, 10, &mut rng).await;

        // A second photo of subject 9 (last shard), of subject 0 (first shard), a stranger.
        for (probe, expected) in [
            (vector_at_cosine(&mut rng, &gallery[9], 0.8), true),
            (vector_at_cosine(&mut rng, &gallery[0], 0.8), true),
            (random_unit_vector(&mut rng, DIM as usize), false),
        ] {
            let (job, answer) = identify_job(&harness.http, &device, keys().probe(&probe)).await;
            assert_eq!(job.state, JobStatus::Done);
            assert_eq!((job.gallery_size, job.shards_total), (10, 3));
            assert_eq!(job.shards_done, 3);
            let answer = answer.unwrap();
            let seq: u64 = answer.headers[routes::HEADER_AUDIT_SEQ]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(job.audit_seq, Some(seq));
            assert_eq!(
                keys().open(&share, &answer.body).is_match(),
                expected,
                "expected match: {expected}"
            );
        }

        // The log: one submission and one escrowed Identify entry per search.
        let page: AuditPage = harness
            .http
            .send(
                &harness.custodian,
                Method::GET,
                &routes::audit_page(0, routes::AUDIT_PAGE_MAX),
                Vec::new(),
            )
            .await
            .expect(200)
            .json();
        let count = |action: Action| {
            page.entries
                .iter()
                .filter_map(|e| e.full())
                .filter(|e| e.event.action == action && e.event.outcome == Outcome::Done)
                .count()
        };
        assert_eq!(count(Action::SubmitIdentification), 3);
        assert_eq!(count(Action::Identify), 3);
        let escrowed = blocking(|| harness.store.escrow_page(DOMAIN, 0, u64::MAX, 100)).unwrap();
        assert_eq!(
            escrowed
                .iter()
                .filter(|e| e.action == Action::Identify)
                .count(),
            3
        );
    });
}

#[test]
fn an_empty_gallery_is_searched_at_once_and_matches_no_one() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        let harness = Harness::start(store, config(4, 1)).await;
        harness.register_domain().await;
        let device = signing_key(41);
        let (_, share) = harness
            .register_with_share(&device, DOMAIN, Role::Device)
            .await;
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let probe = random_unit_vector(&mut rng, DIM as usize);
        let (job, answer) = identify_job(&harness.http, &device, keys().probe(&probe)).await;
        assert_eq!((job.gallery_size, job.shards_total), (0, 0));
        assert!(!keys().open(&share, &answer.unwrap().body).is_match());
    });
}

#[test]
fn jobs_answer_progress_result_and_cancellation_and_only_to_their_device() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        // No search threads: jobs stay running, so every answer to a running job is seen.
        let harness = Harness::start(store, config(4, 0)).await;
        harness.register_domain().await;
        let device = signing_key(42);
        let other = signing_key(43);
        harness
            .register_with_share(&device, DOMAIN, Role::Device)
            .await;
        let (other_id, _) = harness
            .register_with_share(&other, DOMAIN, Role::Device)
            .await;
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        enrol_gallery(&harness, &device, 6, &mut rng).await;
        let probe = random_unit_vector(&mut rng, DIM as usize);
        let job = submit(&harness, &device, &probe).await;
        assert_eq!(job.state, JobStatus::Running);
        assert_eq!(
            (job.gallery_size, job.shards_total, job.shards_done),
            (6, 2, 0)
        );
        assert_eq!(job.job_id.len(), 32);

        let http = &harness.http;
        let status = routes::identification_job(DOMAIN, &job.job_id);
        let result = routes::identification_result(DOMAIN, &job.job_id);
        let running: IdentificationJob = http
            .send(&device, Method::GET, &status, Vec::new())
            .await
            .expect(200)
            .json();
        assert_eq!(running, job);
        http.send(&device, Method::GET, &result, Vec::new())
            .await
            .refused(409, "job_not_done");
        // Another device of the domain cannot see, read or cancel it; nor can anyone guess.
        for path in [&status, &result] {
            http.send(&other, Method::GET, path, Vec::new())
                .await
                .refused(404, "unknown_job");
        }
        http.send(&other, Method::DELETE, &status, Vec::new())
            .await
            .refused(404, "unknown_job");
        let made_up = routes::identification_job(DOMAIN, &"0".repeat(32));
        http.send(&device, Method::GET, &made_up, Vec::new())
            .await
            .refused(404, "unknown_job");
        let not_an_id = routes::identification_job(DOMAIN, "not-a-job-id");
        http.send(&device, Method::GET, &not_an_id, Vec::new())
            .await
            .refused(404, "unknown_job");

        // Cancel: the job ends, its result is gone for good, a second cancel is refused.
        let cancelled: IdentificationJob = http
            .send(&device, Method::DELETE, &status, Vec::new())
            .await
            .expect(200)
            .json();
        assert_eq!(cancelled.state, JobStatus::Cancelled);
        http.send(&device, Method::GET, &result, Vec::new())
            .await
            .refused(410, "job_cancelled");
        http.send(&device, Method::DELETE, &status, Vec::new())
            .await
            .refused(409, "job_ended");
        // Its probe is deleted with it.
        let id = job.job_id.clone();
        assert!(blocking(|| harness.store.job_probe(&id)).unwrap().is_none());

        // At most two running searches per device: a third waits for one to end.
        submit(&harness, &device, &probe).await;
        submit(&harness, &device, &probe).await;
        let answer = http
            .send(
                &device,
                Method::POST,
                &routes::identification(DOMAIN),
                keys().probe(&probe),
            )
            .await;
        answer.refused(429, "quota_exceeded");
        assert!(answer.headers.contains_key(reqwest::header::RETRY_AFTER));
        // Another device is not held back by it.
        let others = submit(&harness, &other, &probe).await;
        assert_eq!(others.state, JobStatus::Running);
        // Revoking that device cancels its running search.
        http.send(
            &harness.custodian,
            Method::DELETE,
            &routes::device(DOMAIN, &other_id),
            Vec::new(),
        )
        .await
        .expect(200);
        let id = others.job_id.clone();
        let job = blocking(|| harness.store.job(&id)).unwrap().unwrap();
        assert_eq!(job.state, tabir_store::JobState::Cancelled);
    });
}

#[test]
fn a_job_left_running_at_shutdown_is_resumed_by_the_next_start() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn tabir_store::Store> =
            Arc::new(tabir_store::sqlite::SqliteStore::open(dir.path()).unwrap());
        // The first server runs no searches: the job waits in the store.
        let harness = Harness::start(Arc::clone(&store), config(4, 0)).await;
        harness.register_domain().await;
        let device = signing_key(44);
        let (_, share) = harness
            .register_with_share(&device, DOMAIN, Role::Device)
            .await;
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let gallery = enrol_gallery(&harness, &device, 7, &mut rng).await;
        let probe = vector_at_cosine(&mut rng, &gallery[5], 0.8);
        let job = submit(&harness, &device, &probe).await;
        let master_key_hex = harness.master_key_hex.clone();
        let Harness { server, .. } = harness;
        server.shutdown(Duration::from_secs(1)).await.unwrap();

        // The next start on the same store, with search threads, finishes it.
        let keys_dir = tempfile::tempdir().unwrap();
        let server_key = tabir_server::load_or_create_server_key(
            &keys_dir.path().join(tabir_server::SERVER_KEY_FILE),
        )
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let restarted = tabir_server::start(
            tabir_server::Startup {
                store: Arc::clone(&store),
                server_key,
                master_key: tabir_server::MasterKey::from_hex(&master_key_hex).unwrap(),
                config: config(4, 2),
                custodian_key: None,
                tls: None,
            },
            listener,
        )
        .await
        .unwrap();
        let http = Http::new(format!("http://{}", restarted.address));
        wait_healthy(&http).await;
        let done = wait_job(&http, &device, &job.job_id).await;
        assert_eq!(done.state, JobStatus::Done);
        assert_eq!(done.shards_done, 2);
        let answer = http
            .send(
                &device,
                Method::GET,
                &routes::identification_result(DOMAIN, &job.job_id),
                Vec::new(),
            )
            .await
            .expect(200);
        assert!(keys().open(&share, &answer.body).is_match());
        restarted.shutdown(Duration::from_secs(1)).await.unwrap();
    });
}

#[test]
fn searches_decide_at_the_domains_stricter_1_to_n_threshold() {
    runtime().block_on(async {
        let (store, _dir) = sqlite_store();
        let harness = Harness::start(store, config(4, 2)).await;
        harness.register_domain().await;
        let device = signing_key(45);
        let (_, share) = harness
            .register_with_share(&device, DOMAIN, Role::Device)
            .await;
        // The registry shows both policies: 1:1 at 0.363, 1:N at 0.5 (the test domain's).
        let info: tabir_proto::messages::DomainInfo = harness
            .http
            .send(&device, Method::GET, &routes::domain(DOMAIN), Vec::new())
            .await
            .expect(200)
            .json();
        assert_eq!(info.threshold_cosine, 0.363);
        assert_eq!(info.identify_threshold_cosine, 0.5);
        assert!(info.identify_threshold_score > info.threshold_score);

        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let gallery = enrol_gallery(&harness, &device, 5, &mut rng).await;
        // Cosine 0.43 with subject 2: a match at 0.363, not at 0.5 (both about 70 score units
        // away, beyond the decision band).
        let probe = vector_at_cosine(&mut rng, &gallery[2], 0.43);
        let verified = harness
            .http
            .send(
                &device,
                Method::POST,
                &routes::verification(DOMAIN, &nik(2)),
                keys().probe(&probe),
            )
            .await
            .expect(200);
        assert!(keys().open(&share, &verified.body).is_match());
        let (_, answer) = identify_job(&harness.http, &device, keys().probe(&probe)).await;
        assert!(!keys().open(&share, &answer.unwrap().body).is_match());
        // A closer photo matches in the search too.
        let probe = vector_at_cosine(&mut rng, &gallery[2], 0.7);
        let (_, answer) = identify_job(&harness.http, &device, keys().probe(&probe)).await;
        assert!(keys().open(&share, &answer.unwrap().body).is_match());
    });
}
