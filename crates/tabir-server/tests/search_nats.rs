//! 1:N identification jobs spread over several `tabir-server` processes through NATS
//! JetStream, as a deployment with search workers on several machines: shards split over two
//! worker processes give the same decisions as one process alone, a worker killed in the
//! middle of a shard costs a redelivery (after the ack wait), not the job, and a shard that
//! fails on every delivery ends the job with `shard_failed` (audited) instead of looping.
//!
//! Runs where both PostgreSQL (TABIR_TEST_DATABASE_URL) and NATS with JetStream
//! (TABIR_TEST_NATS_URL, default nats://127.0.0.1:4222) are reachable; elsewhere each test says
//! it was skipped. Every test has its own schema and its own stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use async_nats::jetstream;
use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use reqwest::Method;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use support::process::ServerProcess;
use support::*;
use tabir_device_crypto::quantize::{quantise, random_unit_vector, vector_at_cosine};
use tabir_device_crypto::DecryptionShare;
use tabir_proto::audit::{self, Action, LogEntry, Outcome};
use tabir_proto::messages::{DeviceInfo, IdentificationJob, JobStatus};
use tabir_proto::{routes, Role};

/// One test at a time: each runs server processes that share this machine's few cores, and
/// the kill test's timing should not depend on another test's load.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The NATS URL the tests may use, or None (with a note naming `test`) when nothing answers
/// there.
fn nats_url(test: &str) -> Option<String> {
    let url = std::env::var("TABIR_TEST_NATS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let address = url.trim_start_matches("nats://");
    let address = address.rsplit('@').next().unwrap_or(address);
    let reachable = address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .is_some_and(|address| {
            TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok()
        });
    if reachable {
        Some(url)
    } else {
        eprintln!("{test}: skipped, NATS at {url} is not reachable");
        None
    }
}

/// Both services, or None (with a note) when either is missing.
fn services(test: &str) -> Option<(String, String)> {
    let database = database_url(test)?;
    let nats = nats_url(test)?;
    Some((database, nats))
}

/// A stream name of letters, digits and underscores, unique per process and call.
fn stream_name(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "TABIR_TEST_{}_{}_{nanos}",
        test.to_uppercase(),
        std::process::id()
    )
}

/// Deletes a test's stream (and with it its consumer) at the end of the test.
struct DropStream {
    nats: String,
    stream: String,
}

impl Drop for DropStream {
    fn drop(&mut self) {
        let (nats, stream) = (self.nats.clone(), self.stream.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let deleted = async {
                    let client = async_nats::connect(&nats).await.ok()?;
                    jetstream::new(client).delete_stream(&stream).await.ok()
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), deleted).await;
            });
        })
        .join();
    }
}

/// One deployment: a schema, a stream, the keys every replica shares (master key, custodian,
/// audit-signing key), and a folder per replica. Replicas are started by [`Deployment::start`]
/// and must be dropped before the deployment (declare them after it): the schema and the
/// stream go with the deployment.
struct Deployment {
    database: String,
    nats: String,
    schema: String,
    stream: String,
    master_key: String,
    custodian: SigningKey,
    dir: tempfile::TempDir,
    _drop_stream: DropStream,
    _drop_schema: DropSchema,
}

impl Deployment {
    fn new(test: &str, database: String, nats: String) -> Self {
        let schema = schema_name(test);
        let stream = stream_name(test);
        let dir = tempfile::tempdir().unwrap();
        // Every replica signs the log with the same key: created once, copied to each.
        tabir_server::load_or_create_server_key(&dir.path().join(tabir_server::SERVER_KEY_FILE))
            .unwrap();
        Self {
            _drop_stream: DropStream {
                nats: nats.clone(),
                stream: stream.clone(),
            },
            _drop_schema: DropSchema::new(&database, &schema),
            database,
            nats,
            schema,
            stream,
            master_key: random_master_key_hex(),
            custodian: signing_key(70),
            dir,
        }
    }

    /// Start the replica `name` on the deployment's schema and stream, with `search_args`.
    fn start(&self, name: &str, search_args: &[&str]) -> ServerProcess {
        let data: PathBuf = self.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy(
            self.dir.path().join(tabir_server::SERVER_KEY_FILE),
            data.join(tabir_server::SERVER_KEY_FILE),
        )
        .unwrap();
        let mut args = vec!["--nats-url", &self.nats, "--nats-stream", &self.stream];
        args.extend_from_slice(search_args);
        let custodian_hex = tabir_proto::hex::encode(self.custodian.verifying_key().as_bytes());
        ServerProcess::start_with(
            &data,
            &self.database,
            &self.schema,
            &self.master_key,
            &custodian_hex,
            &args,
        )
    }

    /// Run SQL on the deployment's schema (from a thread of its own: the synchronous client
    /// must not run on an async worker).
    fn execute(&self, sql: String) -> u64 {
        let database = self.database.clone();
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&database, postgres::NoTls).unwrap();
            client.execute(sql.as_str(), &[]).unwrap()
        })
        .join()
        .unwrap()
    }

    /// The shared consumer's view: deliveries, redeliveries, and what is held unacknowledged.
    async fn consumer_info(&self) -> jetstream::consumer::Info {
        let client = async_nats::connect(&self.nats).await.unwrap();
        let consumer: jetstream::consumer::PullConsumer = jetstream::new(client)
            .get_consumer_from_stream(format!("{}_WORKERS", self.stream), &self.stream)
            .await
            .unwrap();
        consumer.get_info().await.unwrap()
    }

    /// The consumer's view once no delivery is held unacknowledged (a job may be seen ended
    /// just before its last task's acknowledgement reaches NATS).
    async fn settled_consumer_info(&self) -> jetstream::consumer::Info {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = self.consumer_info().await;
            if info.num_ack_pending == 0 {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "deliveries stay unacknowledged: {info:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Register the test domain, a device with a decryption share, and `gallery` (subject
    /// `i` holds `gallery[i]`), all through `http`.
    async fn populate(&self, http: &Http, gallery: &[Vec<f32>]) -> Device {
        http.send(
            &self.custodian,
            Method::PUT,
            &routes::domain(DOMAIN),
            keys().registration.clone(),
        )
        .await
        .expect(201);
        let key = signing_key(71);
        let (share, delta) = keys().issue();
        let registration = tabir_proto::messages::DeviceRegistration {
            label: "search test device".into(),
            public_key: tabir_proto::hex::encode(key.verifying_key().as_bytes()),
            role: Role::Device,
            share_delta: Some(tabir_proto::hex::encode(&delta.to_bytes())),
        };
        let info: DeviceInfo = http
            .send(
                &self.custodian,
                Method::POST,
                &routes::devices(DOMAIN),
                serde_json::to_vec(&registration).unwrap(),
            )
            .await
            .expect(201)
            .json();
        assert!(info.holds_share);
        let mut tasks = Vec::new();
        for (serial, vector) in gallery.iter().enumerate() {
            let (http, key, template) = (http.clone(), key.clone(), keys().template(vector));
            tasks.push(tokio::spawn(async move {
                http.send(
                    &key,
                    Method::PUT,
                    &routes::enrolment(DOMAIN, &nik(serial)),
                    template,
                )
                .await
                .expect(201);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        Device {
            key,
            key_id: info.key_id,
            share,
        }
    }
}

/// A device key with its decryption share.
struct Device {
    key: SigningKey,
    key_id: String,
    share: DecryptionShare,
}

fn nik(serial: usize) -> String {
    format!("320101410190{:04}", serial + 1)
}

/// `size` random unit vectors (faces), the same for a given `seed`.
fn gallery(size: usize, seed: u64) -> (Vec<Vec<f32>>, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let vectors = (0..size)
        .map(|_| random_unit_vector(&mut rng, DIM as usize))
        .collect();
    (vectors, rng)
}

/// A second photo of the person enrolled as `gallery[index]` (cosine 0.8: a match), and a
/// stranger (a random face: no match), each checked against the gallery in the clear first
/// (quantised scores against the domain's threshold), so a wrong encrypted bit is the
/// server's and not the data's.
fn probes(gallery: &[Vec<f32>], index: usize, rng: &mut ChaCha20Rng) -> [(Vec<f32>, bool); 2] {
    let cases = [
        (vector_at_cosine(rng, &gallery[index], 0.8), true),
        (random_unit_vector(rng, DIM as usize), false),
    ];
    for (probe, expected) in &cases {
        assert_eq!(any_match_in_the_clear(probe, gallery), *expected);
    }
    cases
}

fn any_match_in_the_clear(probe: &[f32], gallery: &[Vec<f32>]) -> bool {
    let config = &keys().config;
    let probe = quantise(probe, config).unwrap();
    gallery.iter().any(|template| {
        probe.score(&quantise(template, config).unwrap()) >= i64::from(config.threshold.score)
    })
}

/// Submit a job with `vector` through `submit`.
async fn submit(submit: &Http, device: &Device, vector: &[f32]) -> IdentificationJob {
    let job: IdentificationJob = submit
        .send(
            &device.key,
            Method::POST,
            &routes::identification(DOMAIN),
            keys().probe(vector),
        )
        .await
        .expect(202)
        .json();
    assert_eq!(job.state, JobStatus::Running);
    job
}

/// Wait for `job` through `poll` until it ends; when done, fetch its result there and open
/// it with the device's share. Returns the final state and whether it matched.
async fn finish(
    poll: &Http,
    device: &Device,
    job: &IdentificationJob,
) -> (IdentificationJob, bool) {
    let job = wait_job(poll, &device.key, &job.job_id).await;
    assert_eq!(job.state, JobStatus::Done, "job: {job:?}");
    let answer = poll
        .send(
            &device.key,
            Method::GET,
            &routes::identification_result(DOMAIN, &job.job_id),
            Vec::new(),
        )
        .await
        .expect(200);
    let seq: u64 = answer.headers[routes::HEADER_AUDIT_SEQ]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(job.audit_seq, Some(seq));
    let decision = keys().open(&device.share, &answer.body);
    (job, decision.is_match())
}

/// Submit through `through`, follow and fetch through `poll`: (final state, matched).
async fn identify(
    through: &Http,
    poll: &Http,
    device: &Device,
    vector: &[f32],
) -> (IdentificationJob, bool) {
    let job = submit(through, device, vector).await;
    finish(poll, device, &job).await
}

/// Shards this process has evaluated (its `/metrics`, FHE operation `identify_shard`).
async fn shards_run(http: &Http) -> u64 {
    let answer = http.get_unsigned(routes::METRICS).await.expect(200);
    let text = String::from_utf8(answer.body).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("tabir_fhe_jobs_total{op=\"identify_shard\"} "))
        .map_or(0, |count| count.trim().parse().unwrap())
}

/// Send `signal` (`STOP`, `CONT`) to a server process.
fn signal(server: &ServerProcess, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_search_split_over_two_worker_processes_gives_the_same_bit_as_one() {
    let test = "search split over two worker processes on NATS";
    let Some((database, nats)) = services(test) else {
        return;
    };
    let _serial = serial();
    let started = Instant::now();
    const GALLERY: usize = 24;
    let search = ["--search-workers", "1", "--shard-templates", "4"];
    let deployment = Deployment::new("split", database, nats);
    let first = deployment.start("a", &search);
    runtime().block_on(async {
        let a = Http::new(first.url.clone());
        let (faces, mut rng) = gallery(GALLERY, 80);
        let device = deployment.populate(&a, &faces).await;
        // A match in the gallery's last shard, and a stranger.
        let cases = probes(&faces, GALLERY - 3, &mut rng);

        // One worker process alone: it runs every shard.
        let mut alone = Vec::new();
        for (vector, expected) in &cases {
            let (job, matched) = identify(&a, &a, &device, vector).await;
            assert_eq!((job.shards_total, job.shards_done), (6, 6));
            assert_eq!(job.gallery_size, GALLERY as u64);
            assert_eq!(matched, *expected, "one worker process");
            alone.push(matched);
        }
        assert_eq!(
            shards_run(&a).await,
            12,
            "the only worker ran every shard once"
        );

        // A second worker process on the same schema and stream: jobs submitted through the
        // first and followed through the second give the same decisions, and both worked.
        let second = deployment.start("b", &search);
        let b = Http::new(second.url.clone());
        let before = (shards_run(&a).await, shards_run(&b).await);
        let mut split = Vec::new();
        for (vector, expected) in &cases {
            let (job, matched) = identify(&a, &b, &device, vector).await;
            assert_eq!((job.shards_total, job.shards_done), (6, 6));
            assert_eq!(matched, *expected, "two worker processes");
            split.push(matched);
        }
        assert_eq!(split, alone);
        let by_a = shards_run(&a).await - before.0;
        let by_b = shards_run(&b).await - before.1;
        eprintln!("{test}: shards run by the first process {by_a}, by the second {by_b}");
        assert_eq!(by_a + by_b, 12, "every shard ran once, none twice");
        assert!(
            by_a > 0 && by_b > 0,
            "the work did not spread: {by_a} / {by_b}"
        );
        drop(second);
    });
    drop(first);
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_worker_killed_mid_shard_still_finishes_the_job_with_the_right_bit() {
    let test = "worker killed mid-shard on NATS";
    let Some((database, nats)) = services(test) else {
        return;
    };
    let _serial = serial();
    let started = Instant::now();
    const GALLERY: usize = 48;
    let search = [
        "--search-workers",
        "1",
        "--shard-templates",
        "8",
        "--nats-ack-wait",
        "3",
    ];
    let deployment = Deployment::new("killed", database, nats);
    let survivor = deployment.start("a", &search);
    let mut victim = deployment.start("b", &search);
    runtime().block_on(async {
        let a = Http::new(survivor.url.clone());
        let b = Http::new(victim.url.clone());
        let (faces, mut rng) = gallery(GALLERY, 81);
        let device = deployment.populate(&a, &faces).await;
        // A match in the gallery's middle, and a stranger.
        let [(matching, _), (stranger, _)] = probes(&faces, GALLERY / 2 + 1, &mut rng);

        // A first job warms both processes (each prepares the domain's keys on its first
        // shard), so the kill below lands in a shard's evaluation.
        let (job, matched) = identify(&a, &b, &device, &stranger).await;
        assert_eq!((job.shards_total, job.shards_done), (6, 6));
        assert!(!matched);
        assert!(shards_run(&b).await > 0, "the second process took no shard");
        let warm = deployment.consumer_info().await;
        assert_eq!(
            warm.delivered.consumer_sequence, warm.delivered.stream_sequence,
            "a task was redelivered before the kill"
        );

        // Freeze the second process while it
        // holds a shard (each worker process holds at most one task: two unacknowledged
        // deliveries mean both hold one), then kill it.
        let job = submit(&a, &device, &matching).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "the second process never held a shard of the job"
            );
            if deployment.consumer_info().await.num_ack_pending == 2 {
                signal(&victim, "STOP");
                if deployment.consumer_info().await.num_ack_pending == 2 {
                    break;
                }
                signal(&victim, "CONT");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let killed_at = Instant::now();
        victim.child.kill().unwrap();
        victim.child.wait().unwrap();
        let (job, matched) = finish(&a, &device, &job).await;
        eprintln!(
            "{test}: the job ended {:.1} s after the kill",
            killed_at.elapsed().as_secs_f64()
        );
        assert_eq!((job.shards_total, job.shards_done), (6, 6));
        assert!(matched, "the job lost the match");
        // The killed process's shard was delivered again (to the survivor).
        let info = deployment.settled_consumer_info().await;
        assert!(
            info.delivered.consumer_sequence > info.delivered.stream_sequence,
            "no task was redelivered: {:?}",
            info.delivered
        );
    });
    drop(victim);
    drop(survivor);
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_shard_that_always_fails_ends_the_job_with_shard_failed() {
    let test = "shard that always fails on NATS";
    let Some((database, nats)) = services(test) else {
        return;
    };
    let _serial = serial();
    let started = Instant::now();
    const GALLERY: usize = 8;
    let search = [
        "--search-workers",
        "1",
        "--shard-templates",
        "4",
        "--search-attempts",
        "2",
        "--nats-ack-wait",
        "3",
    ];
    let deployment = Deployment::new("failing", database, nats);
    let server = deployment.start("a", &search);
    let audit_key = tabir_proto::signing::parse_public_key(&server.audit_key).unwrap();
    runtime().block_on(async {
        let http = Http::new(server.url.clone());
        let (faces, _) = gallery(GALLERY, 82);
        let device = deployment.populate(&http, &faces).await;
        // The first template no longer decodes: its shard fails on every delivery.
        let changed = deployment.execute(format!(
            "UPDATE {}.templates SET template = '\\x00'::bytea WHERE position = 1",
            deployment.schema
        ));
        assert_eq!(changed, 1);

        let job = submit(&http, &device, &faces[0]).await;
        assert_eq!(job.shards_total, 2);
        let job = wait_job(&http, &device.key, &job.job_id).await;
        assert_eq!(job.state, JobStatus::Failed, "job: {job:?}");
        assert_eq!(job.error.as_deref(), Some("shard_failed"));
        assert_eq!(job.audit_seq, None);
        assert!(job.shards_done < job.shards_total);
        http.send(
            &device.key,
            Method::GET,
            &routes::identification_result(DOMAIN, &job.job_id),
            Vec::new(),
        )
        .await
        .refused(500, "shard_failed");

        // The log says so, once, in the device's name; the chain verifies.
        let log = whole_log(&http, &deployment.custodian).await;
        audit::verify_log(&log, None, &audit_key).unwrap();
        let identifications: Vec<_> = log
            .iter()
            .filter_map(LogEntry::full)
            .filter(|entry| entry.event.action == Action::Identify)
            .collect();
        assert_eq!(identifications.len(), 1, "{identifications:?}");
        assert_eq!(
            identifications[0].event.outcome,
            Outcome::Refused("shard_failed".into())
        );
        assert_eq!(identifications[0].event.actor, device.key_id);
        // Nothing is left held on the queue: the failing task was not left to loop.
        let info = deployment.settled_consumer_info().await;
        assert_eq!(info.num_pending, 0, "{info:?}");
    });
    drop(server);
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
}
