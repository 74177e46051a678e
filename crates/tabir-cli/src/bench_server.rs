//! `tabir bench server`: a short load run of 1:1 verifications against a real server on
//! loopback (started in this process with SQLite in a temporary folder, unless --server
//! names one): requests per second and latency percentiles as a device sees them.

use crate::bench_setup::{bench_domain, BenchDomain, BenchServer, DOMAIN};
use crate::stats::{ms, percentile};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tabir_client::transport::Method;
use tabir_client::{ClientError, RetryPolicy};
use tabir_proto::routes::{self, CONTENT_TYPE_BLOB};
use tabir_server::ServerConfig;

#[derive(clap::Args)]
pub struct ServerBenchArgs {
    /// Verifications to send in all.
    #[arg(long, default_value_t = 400)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// FHE worker threads of the server [default: the number of cores].
    #[arg(long)]
    fhe_workers: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    requests: usize,
    concurrency: usize,
    fhe_workers: usize,
    ok: usize,
    overloaded: usize,
    failed: usize,
    seconds: f64,
    requests_per_second: f64,
    latency_ms_p50: f64,
    latency_ms_p90: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
}

const NIK: &str = "3201014101900001";

pub fn run(args: ServerBenchArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(load_run(&args))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "1:1 verifications over HTTP on loopback ({} requests, {} in flight, {} FHE workers)",
            report.requests, report.concurrency, report.fhe_workers
        );
        println!(
            "  ok {}  overloaded (429) {}  failed {}",
            report.ok, report.overloaded, report.failed
        );
        println!(
            "  {:.1} requests/s over {:.1} s",
            report.requests_per_second, report.seconds
        );
        println!(
            "  latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            report.latency_ms_p50,
            report.latency_ms_p90,
            report.latency_ms_p99,
            report.latency_ms_max
        );
    }
    Ok(())
}

async fn load_run(args: &ServerBenchArgs) -> Result<Report, String> {
    // One device verifies one subject over and over: quotas stay on (their accounting is part
    // of each request's cost) but high enough that the run measures throughput, not refusals.
    let mut config = ServerConfig {
        quotas: tabir_server::Quotas {
            subject_per_day: 1_000_000,
            device_per_hour: 1_000_000,
            device_per_day: 1_000_000,
        },
        ..ServerConfig::default()
    };
    if let Some(workers) = args.fhe_workers {
        config.fhe_workers = workers.max(1);
    }
    let fhe_workers = config.fhe_workers;
    let server = BenchServer::start("server", config).await?;
    let outcome = drive(args, &server).await;
    server.stop().await;
    outcome.map(|mut report| {
        report.fhe_workers = fhe_workers;
        report
    })
}

async fn drive(args: &ServerBenchArgs, server: &BenchServer) -> Result<Report, String> {
    let text = |e: ClientError| e.to_string();
    let BenchDomain {
        encryptor, device, ..
    } = bench_domain(server).await?;
    let transport = Arc::new(device.with_retry(RetryPolicy::none()));
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(1);
    let enrolled = tabir_device_crypto::quantize::random_unit_vector(&mut rng, 128);
    let template = encryptor
        .encrypt_template(&enrolled)
        .map_err(|e| e.to_string())?
        .to_bytes();
    transport
        .send(
            Method::PUT,
            &routes::enrolment(DOMAIN, NIK),
            template,
            CONTENT_TYPE_BLOB,
        )
        .await
        .map_err(text)?;
    // Probes are encrypted before the clock starts: the run measures the server.
    let probes: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..16)
            .map(|_| {
                let vector =
                    tabir_device_crypto::quantize::vector_at_cosine(&mut rng, &enrolled, 0.7);
                encryptor.encrypt_probe(&vector).map(|p| p.to_bytes())
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
    );
    let path = routes::verification(DOMAIN, NIK);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (transport, probes, next, path) = (
                Arc::clone(&transport),
                Arc::clone(&probes),
                Arc::clone(&next),
                path.clone(),
            );
            let total = args.requests;
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        return samples;
                    }
                    let sent = Instant::now();
                    let result = transport
                        .send(
                            Method::POST,
                            &path,
                            probes[i % probes.len()].clone(),
                            CONTENT_TYPE_BLOB,
                        )
                        .await;
                    samples.push((ms(sent.elapsed()), result.map(|_| ()).map_err(|e| e.kind())));
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut ok, mut overloaded, mut failed) = (0, 0, 0);
    for worker in workers {
        for (latency, result) in worker.await.map_err(|e| e.to_string())? {
            match result {
                Ok(()) => {
                    ok += 1;
                    latencies.push(latency);
                }
                Err("overloaded") => overloaded += 1,
                Err(_) => failed += 1,
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        requests: args.requests,
        concurrency: args.concurrency,
        fhe_workers: 0,
        ok,
        overloaded,
        failed,
        seconds,
        requests_per_second: ok as f64 / seconds,
        latency_ms_p50: percentile(&mut latencies, 0.5),
        latency_ms_p90: percentile(&mut latencies, 0.9),
        latency_ms_p99: percentile(&mut latencies, 0.99),
        latency_ms_max: percentile(&mut latencies, 1.0),
    })
}
