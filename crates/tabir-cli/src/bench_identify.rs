//! `tabir bench identify`: a 1:N search as it runs in production, measured. A server starts in
//! this process on loopback (SQLite in a temporary folder); N synthetic templates are
//! encrypted and enrolled over HTTP; one search is submitted as a job and followed; meanwhile
//! a device keeps verifying 1:1 to show what the search costs the counters. Reported: wall
//! time, CPU-ms per template, the process's peak memory during the search (reset before it,
//! so enrolment does not count), and verification latency before and during the search.

use crate::bench_setup::{bench_domain, BenchDomain, BenchServer, DOMAIN};
use crate::stats::{ms, percentile};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tabir_client::transport::Method;
use tabir_client::ClientError;
use tabir_crypto::EncryptedBit;
use tabir_device_crypto::quantize::{random_unit_vector, vector_at_cosine};
use tabir_proto::messages::{IdentificationJob, JobStatus};
use tabir_proto::routes::{self, CONTENT_TYPE_BLOB};
use tabir_server::{SearchConfig, ServerConfig};

#[derive(clap::Args)]
pub struct IdentifyBenchArgs {
    /// Templates in the gallery.
    #[arg(long, default_value_t = 2000)]
    templates: usize,
    /// Search threads of the server [default: the number of cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Templates per shard.
    #[arg(long, default_value_t = tabir_crypto::DEFAULT_SHARD_TEMPLATES)]
    shard_templates: usize,
    /// Seed of the synthetic embeddings (keys are always fresh).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    params: &'static str,
    templates: usize,
    workers: usize,
    shard_templates: usize,
    shards: u32,
    enrol_seconds: f64,
    search_seconds: f64,
    /// The process's CPU time during the search, less what the verifications sent meanwhile
    /// cost (their count times the CPU of one, measured idle), per template.
    identify_cpu_ms_per_template: f64,
    /// The same without that correction.
    process_cpu_ms_per_template: f64,
    /// Peak resident memory of the whole process (server, keys, SQLite) during the search.
    peak_rss_mib_during_search: f64,
    rss_mib_before_search: f64,
    /// The gallery holds a second photo's match: the search must say so.
    identify_correct: bool,
    verify_ms_p50_idle: f64,
    verify_ms_p90_idle: f64,
    verify_ms_p50_during_search: f64,
    verify_ms_p90_during_search: f64,
    verifications_during_search: usize,
}

/// The i-th synthetic NIK (valid format: province 32, birth date, serial).
fn nik(i: usize) -> String {
    let serial = 1 + i % 9999;
    let day = 1 + (i / 9999) % 28;
    let month = 1 + (i / (9999 * 28)) % 12;
    format!("320101{day:02}{month:02}90{serial:04}")
}

pub fn run(args: IdentifyBenchArgs) -> Result<(), String> {
    if args.templates == 0 || args.templates > 9999 * 28 * 12 {
        return Err("--templates must be between 1 and 3,359,664".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(bench(&args))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "1:N search of {} templates ({}, {} search threads, shards of {} = {})",
        r.templates, r.params, r.workers, r.shard_templates, r.shards
    );
    println!("  enrolment               {:>10.1} s", r.enrol_seconds);
    println!("  search (wall)           {:>10.1} s", r.search_seconds);
    println!(
        "  CPU per template        {:>10.2} ms",
        r.identify_cpu_ms_per_template
    );
    println!(
        "  memory                  {:>10.0} MiB before, peak {:.0} MiB during the search",
        r.rss_mib_before_search, r.peak_rss_mib_during_search
    );
    println!(
        "  1:1 verify, idle        {:>10.1} ms p50, {:.1} ms p90",
        r.verify_ms_p50_idle, r.verify_ms_p90_idle
    );
    println!(
        "  1:1 verify, searching   {:>10.1} ms p50, {:.1} ms p90 ({} verifications)",
        r.verify_ms_p50_during_search, r.verify_ms_p90_during_search, r.verifications_during_search
    );
    println!(
        "  result                  {}",
        if r.identify_correct {
            "correct"
        } else {
            "WRONG"
        }
    );
}

fn bar(len: usize, what: &str, json: bool) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if json || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = format!("{what} [{{bar:30}}] {{pos}}/{{len}} {{elapsed}} (about {{eta}} left)");
    bar.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Resident memory now and its peak, from /proc (Linux); (0, 0) elsewhere.
fn rss_mib() -> (f64, f64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0.0, 0.0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Reset the peak resident memory to the current one (Linux: clear_refs 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn bench(args: &IdentifyBenchArgs) -> Result<Report, String> {
    let mut config = ServerConfig {
        // The bench's device verifies one subject many times: quotas out of the way.
        quotas: tabir_server::Quotas {
            subject_per_day: 0,
            device_per_hour: 0,
            device_per_day: 0,
        },
        ..ServerConfig::default()
    };
    config.search = SearchConfig {
        workers: args.workers.unwrap_or(config.search.workers).max(1),
        shard_templates: args.shard_templates.max(1),
        ..config.search
    };
    let (workers, shard_templates) = (config.search.workers, config.search.shard_templates);
    let server = BenchServer::start("identify", config).await?;
    let outcome = drive(args, &server).await;
    server.stop().await;
    outcome.map(|mut report| {
        report.workers = workers;
        report.shard_templates = shard_templates;
        report
    })
}

async fn drive(args: &IdentifyBenchArgs, server: &BenchServer) -> Result<Report, String> {
    let text = |e: ClientError| e.to_string();
    let BenchDomain {
        config,
        encryptor,
        device_share,
        device,
    } = bench_domain(server).await?;
    let encryptor = Arc::new(encryptor);
    let transport = Arc::new(device);

    // The gallery: random faces, one of them (at a random place) the person searched for.
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(args.seed);
    let wanted_at = rand::Rng::gen_range(&mut rng, 0..args.templates);
    let vectors: Vec<Vec<f32>> = (0..args.templates)
        .map(|_| random_unit_vector(&mut rng, 128))
        .collect();
    let enrolling = Instant::now();
    let progress = bar(args.templates, "encrypting and enrolling", args.json);
    for (chunk_index, chunk) in vectors.chunks(256).enumerate() {
        let templates: Vec<Vec<u8>> = chunk
            .par_iter()
            .map(|v| encryptor.encrypt_template(v).map(|t| t.to_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let mut sends = Vec::new();
        for (offset, template) in templates.into_iter().enumerate() {
            let i = chunk_index * 256 + offset;
            let transport = Arc::clone(&transport);
            sends.push(tokio::spawn(async move {
                transport
                    .send(
                        Method::PUT,
                        &routes::enrolment(DOMAIN, &nik(i)),
                        template,
                        CONTENT_TYPE_BLOB,
                    )
                    .await
                    .map(drop)
            }));
            if sends.len() == 8 {
                for send in sends.drain(..) {
                    send.await.map_err(|e| e.to_string())?.map_err(text)?;
                    progress.inc(1);
                }
            }
        }
        for send in sends {
            send.await.map_err(|e| e.to_string())?.map_err(text)?;
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    let enrol_seconds = enrolling.elapsed().as_secs_f64();

    // 1:1 latency with the server idle, then during the search.
    let verify_probe = encryptor
        .encrypt_probe(&vector_at_cosine(&mut rng, &vectors[0], 0.8))
        .map_err(|e| e.to_string())?
        .to_bytes();
    let verify_path = routes::verification(DOMAIN, &nik(0));
    let mut idle = Vec::new();
    let idle_cpu = cpu_time::ProcessTime::now();
    for _ in 0..10 {
        let sent = Instant::now();
        transport
            .send(
                Method::POST,
                &verify_path,
                verify_probe.clone(),
                CONTENT_TYPE_BLOB,
            )
            .await
            .map_err(text)?;
        idle.push(ms(sent.elapsed()));
    }
    let cpu_ms_per_verification = idle_cpu.elapsed().as_secs_f64() * 1e3 / 10.0;

    let probe = encryptor
        .encrypt_probe(&vector_at_cosine(&mut rng, &vectors[wanted_at], 0.8))
        .map_err(|e| e.to_string())?
        .to_bytes();
    drop(vectors);
    let (rss_before, _) = rss_mib();
    reset_peak_rss();
    let cpu = cpu_time::ProcessTime::now();
    let started = Instant::now();
    let job: IdentificationJob = json(
        transport
            .send(
                Method::POST,
                &routes::identification(DOMAIN),
                probe,
                CONTENT_TYPE_BLOB,
            )
            .await
            .map_err(text)?
            .body,
    )?;
    let searching = Arc::new(AtomicBool::new(true));
    let verifier = {
        let (transport, searching) = (Arc::clone(&transport), Arc::clone(&searching));
        let (path, probe) = (verify_path.clone(), verify_probe.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while searching.load(Ordering::Relaxed) {
                let sent = Instant::now();
                if transport
                    .send(Method::POST, &path, probe.clone(), CONTENT_TYPE_BLOB)
                    .await
                    .is_ok()
                {
                    latencies.push(ms(sent.elapsed()));
                }
                // About what a busy counter sends: a verification every quarter second.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            latencies
        })
    };
    let progress = bar(job.shards_total as usize, "searching", args.json);
    let status_path = routes::identification_job(DOMAIN, &job.job_id);
    let job = loop {
        let job: IdentificationJob = json(
            transport
                .send(Method::GET, &status_path, Vec::new(), CONTENT_TYPE_BLOB)
                .await
                .map_err(text)?
                .body,
        )?;
        progress.set_length(u64::from(job.shards_total));
        progress.set_position(u64::from(job.shards_done));
        if job.ended() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let search_seconds = started.elapsed().as_secs_f64();
    let cpu_ms = cpu.elapsed().as_secs_f64() * 1e3;
    progress.finish_and_clear();
    searching.store(false, Ordering::Relaxed);
    let (_, peak_rss) = rss_mib();
    let mut during = verifier.await.map_err(|e| e.to_string())?;
    if job.state != JobStatus::Done {
        return Err(format!(
            "the search ended {:?} ({})",
            job.state,
            job.error.unwrap_or_default()
        ));
    }
    let answer = transport
        .send(
            Method::GET,
            &routes::identification_result(DOMAIN, &job.job_id),
            Vec::new(),
            CONTENT_TYPE_BLOB,
        )
        .await
        .map_err(text)?;
    let bit = EncryptedBit::from_bytes(&answer.body, &config, encryptor.fingerprint())
        .map_err(|e| e.to_string())?;
    let identify_correct = device_share
        .decrypt(&bit)
        .map_err(|e| e.to_string())?
        .is_match();
    Ok(Report {
        params: config.params.name(),
        templates: args.templates,
        workers: 0,
        shard_templates: 0,
        shards: job.shards_total,
        enrol_seconds,
        search_seconds,
        identify_cpu_ms_per_template: (cpu_ms - cpu_ms_per_verification * during.len() as f64)
            .max(0.0)
            / args.templates as f64,
        process_cpu_ms_per_template: cpu_ms / args.templates as f64,
        peak_rss_mib_during_search: peak_rss,
        rss_mib_before_search: rss_before,
        identify_correct,
        verify_ms_p50_idle: percentile(&mut idle, 0.5),
        verify_ms_p90_idle: percentile(&mut idle, 0.9),
        verify_ms_p50_during_search: percentile(&mut during, 0.5),
        verify_ms_p90_during_search: percentile(&mut during, 0.9),
        verifications_during_search: during.len(),
    })
}

fn json<T: serde::de::DeserializeOwned>(body: Vec<u8>) -> Result<T, String> {
    serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))
}
