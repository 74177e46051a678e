//! `tabir bench crypto`: times every step of the encrypted matcher and checks that the
//! decrypted bits agree with the plaintext twin.

use crate::stats::{median, ms, percentile};
use clap::{Args, Subcommand};
use cpu_time::ProcessTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tabir_crypto::{
    CandidateBits, DomainConfig, EncryptedBit, EscrowedBit, ServerKeys, ServerShare,
};
use tabir_device_crypto::quantize::{
    random_unit_vector, synthetic_pair, vector_at_cosine, QuantisedEmbedding,
};
use tabir_device_crypto::{
    domain_config, generate_key_domain, quantise, twin, DecryptionShare, Encryptor,
};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Key generation, encryption, 1:1 and 1:N evaluation, decryption, sizes, and agreement
    /// of the encrypted decisions with the plaintext twin.
    Crypto(CryptoBenchArgs),
    /// Detect + align + embed on one 640x480 photo, on one thread (median over runs).
    Face(FaceBenchArgs),
    /// A short load run of 1:1 verifications against a server on loopback: requests per
    /// second and latency percentiles.
    Server(crate::bench_server::ServerBenchArgs),
    /// A 1:N search job over N synthetic templates on a server on loopback: wall time,
    /// CPU-ms per template, peak memory, and 1:1 latency while it runs.
    Identify(crate::bench_identify::IdentifyBenchArgs),
}

#[derive(Args)]
pub struct FaceBenchArgs {
    #[command(flatten)]
    pipeline: crate::face::PipelineArgs,
    /// Photo to fit into 640x480 (default: the bundled tests/images/obama.jpg).
    #[arg(long)]
    image: Option<std::path::PathBuf>,
    /// Timed runs (after one warm-up run).
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CryptoBenchArgs {
    /// Probe/template pairs to verify (a third genuine-like, a third impostor-like, a third
    /// close to the threshold).
    #[arg(long, default_value_t = 60)]
    pairs: usize,
    /// Gallery size for the 1:N identification.
    #[arg(long, default_value_t = 32)]
    templates: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 128)]
    dim: u32,
    /// Cosine policy threshold.
    #[arg(long, default_value_t = 0.363)]
    threshold: f32,
    /// Parameter set by wire id: 2 (KS32, the default for new domains) or 1 (64-bit
    /// keyswitch, domains made before), to compare them in one run.
    #[arg(long, default_value_t = tabir_crypto::ParamSetId::DEFAULT.wire_id())]
    params: u16,
    /// Seed for the synthetic embeddings (the keys are always fresh).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct CryptoReport {
    params: &'static str,
    dim: u32,
    quant_bits: u8,
    threshold_cosine: f32,
    threshold_score: i32,
    delta_log: u32,
    threads: usize,
    keygen_ms: f64,
    server_key_prep_ms: f64,
    encrypt_probe_ms: f64,
    encrypt_template_ms: f64,
    /// The server applying the caller's share to a result (included in verify_ms).
    share_apply_us: f64,
    /// The device opening the bit with its share.
    decrypt_us: f64,
    verify_ms_median: f64,
    verify_ms_p90: f64,
    identify_templates: usize,
    identify_ms_total: f64,
    identify_ms_per_template: f64,
    identify_cpu_ms_per_template: f64,
    identify_correct: bool,
    bytes: Sizes,
    agreement: Agreement,
}

#[derive(Serialize)]
struct Sizes {
    probe: usize,
    template: usize,
    result: usize,
    evaluation_keys: usize,
    /// The domain's public key, as a device bundle holds it.
    public_key: usize,
    /// One decryption share, as sealed in a bundle (before sealing).
    share: usize,
}

#[derive(Serialize)]
struct Agreement {
    pairs: usize,
    disagreements: usize,
    disagreements_outside_band: usize,
    band_score_units: f64,
    pairs_inside_band: usize,
}

pub fn run(command: BenchCommand) -> Result<(), String> {
    match command {
        BenchCommand::Server(args) => crate::bench_server::run(args),
        BenchCommand::Identify(args) => crate::bench_identify::run(args),
        BenchCommand::Face(args) => {
            crate::bench_face::run(&args.pipeline, args.image.as_deref(), args.runs, args.json)
        }
        BenchCommand::Crypto(args) => {
            let report = crypto(&args).map_err(|e| e.to_string())?;
            if args.json {
                let line = serde_json::to_string(&report).map_err(|e| e.to_string())?;
                println!("{line}");
            } else {
                print_table(&report);
            }
            Ok(())
        }
    }
}

/// One status line on stderr, rewritten in place; silent when stderr is not a terminal.
fn progress(text: &str) {
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r{text:<60}\r");
        let _ = err.flush();
    }
}

/// The parties of one key domain, as the benchmark plays them.
struct Parties {
    device: Encryptor,
    device_share: DecryptionShare,
    server: ServerKeys,
    server_share: ServerShare,
}

impl Parties {
    fn open(&self, escrowed: &EscrowedBit) -> tabir_crypto::Result<tabir_crypto::Decision> {
        self.device_share
            .decrypt(&self.server_share.apply(escrowed)?)
    }
}

fn crypto(args: &CryptoBenchArgs) -> tabir_crypto::Result<CryptoReport> {
    let config = DomainConfig {
        params: tabir_crypto::ParamSetId::from_wire_id(args.params)?,
        ..domain_config(args.dim, args.threshold)?
    };
    config.validate()?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);

    progress("generating keys");
    let start = Instant::now();
    let domain = generate_key_domain(config)?;
    let keygen = start.elapsed();
    let evaluation_key_bytes = domain.evaluation_keys.to_bytes().len();
    let public_key = domain.evaluation_keys.public_key();
    let (device_share, delta) = domain.custodian_share.issue(&config)?;
    let server_share = domain.server_share.derive(&delta)?;

    progress("preparing server keys");
    let start = Instant::now();
    let server = ServerKeys::prepare(domain.evaluation_keys)?;
    let server_key_prep = start.elapsed();
    let parties = Parties {
        device: Encryptor::new(&public_key)?,
        device_share,
        server,
        server_share,
    };
    let (client, server) = (&parties.device, &parties.server);

    // Agreement and 1:1 timings over the same pairs.
    let band = twin::decision_band(&config);
    let mut agreement = Agreement {
        pairs: args.pairs,
        disagreements: 0,
        disagreements_outside_band: 0,
        band_score_units: band,
        pairs_inside_band: 0,
    };
    let (mut verify_ms, mut probe_ms, mut template_ms, mut apply_us, mut decrypt_us) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sizes = Sizes {
        probe: 0,
        template: 0,
        result: 0,
        evaluation_keys: evaluation_key_bytes,
        public_key: public_key.to_bytes().len(),
        share: parties.device_share.export_secret().len(),
    };
    for i in 0..args.pairs {
        progress(&format!("verifying pair {}/{}", i + 1, args.pairs));
        let cosine = match i % 3 {
            0 => rng.gen_range(0.45..0.75),
            1 => rng.gen_range(-0.1..0.1),
            _ => args.threshold + rng.gen_range(-0.03..0.03),
        };
        let (a, b) = pair(&mut rng, &config, cosine)?;

        let start = Instant::now();
        let template = client.encrypt_template_quantised(&a)?;
        template_ms.push(ms(start.elapsed()));
        let start = Instant::now();
        let probe = client.encrypt_probe_quantised(&b)?;
        probe_ms.push(ms(start.elapsed()));

        // The server's work per request: the match, then its half of the decryption.
        let start = Instant::now();
        let escrowed = server.verify(&probe, &template)?;
        let applying = Instant::now();
        let bit: EncryptedBit = parties.server_share.apply(&escrowed)?;
        apply_us.push(applying.elapsed().as_secs_f64() * 1e6);
        verify_ms.push(ms(start.elapsed()));

        let start = Instant::now();
        let decision = parties.device_share.decrypt(&bit)?;
        decrypt_us.push(start.elapsed().as_secs_f64() * 1e6);

        if i == 0 {
            sizes.probe = probe.to_bytes().len();
            sizes.template = template.to_bytes().len();
            sizes.result = bit.to_bytes().len();
        }
        let expected = twin::plaintext_match(&config, &b, &a);
        let outside_band = twin::distance_from_boundary(&config, &b, &a) > band;
        if !outside_band {
            agreement.pairs_inside_band += 1;
        }
        if decision.is_match() != expected {
            agreement.disagreements += 1;
            if outside_band {
                agreement.disagreements_outside_band += 1;
            }
        }
    }

    // 1:N: a gallery with one genuine-like entry at a random position.
    progress(&format!("identifying against {} templates", args.templates));
    let (identify_total, identify_cpu, identify_correct) =
        identify(&parties, &config, args.templates, &mut rng)?;
    progress("");

    let per_template = |d: Duration| {
        if args.templates == 0 {
            0.0
        } else {
            ms(d) / args.templates as f64
        }
    };
    Ok(CryptoReport {
        params: config.params.name(),
        dim: config.dim,
        quant_bits: config.quant_bits,
        threshold_cosine: config.threshold.cosine,
        threshold_score: config.threshold.score,
        delta_log: config.delta_log()?,
        threads: rayon_threads(),
        keygen_ms: ms(keygen),
        server_key_prep_ms: ms(server_key_prep),
        encrypt_probe_ms: median(&mut probe_ms),
        encrypt_template_ms: median(&mut template_ms),
        share_apply_us: median(&mut apply_us),
        decrypt_us: median(&mut decrypt_us),
        verify_ms_median: median(&mut verify_ms),
        verify_ms_p90: percentile(&mut verify_ms, 0.9),
        identify_templates: args.templates,
        identify_ms_total: ms(identify_total),
        identify_ms_per_template: per_template(identify_total),
        identify_cpu_ms_per_template: per_template(identify_cpu),
        identify_correct,
        bytes: sizes,
        agreement,
    })
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn pair(
    rng: &mut ChaCha20Rng,
    config: &DomainConfig,
    cosine: f32,
) -> tabir_crypto::Result<(QuantisedEmbedding, QuantisedEmbedding)> {
    let (a, b) = synthetic_pair(rng, config.dim as usize, cosine);
    Ok((quantise(&a, config)?, quantise(&b, config)?))
}

/// Returns wall time, process CPU time, and whether every decrypted bit equals the twin
/// (for pairs outside the band).
fn identify(
    parties: &Parties,
    config: &DomainConfig,
    templates: usize,
    rng: &mut ChaCha20Rng,
) -> tabir_crypto::Result<(Duration, Duration, bool)> {
    let (client, server) = (&parties.device, &parties.server);
    let genuine_at = if templates == 0 {
        0
    } else {
        rng.gen_range(0..templates)
    };
    let probe_float = random_unit_vector(rng, config.dim as usize);
    let probe_vector = quantise(&probe_float, config)?;
    let mut gallery_plain = Vec::with_capacity(templates);
    for j in 0..templates {
        let cosine = if j == genuine_at {
            0.6
        } else {
            rng.gen_range(-0.1..0.1)
        };
        gallery_plain.push(quantise(
            &vector_at_cosine(rng, &probe_float, cosine),
            config,
        )?);
    }
    let probe = client.encrypt_probe_quantised(&probe_vector)?;
    let gallery = gallery_plain
        .iter()
        .map(|t| client.encrypt_template_quantised(t))
        .collect::<tabir_crypto::Result<Vec<_>>>()?;

    let wall = Instant::now();
    let cpu = ProcessTime::now();
    let result = server.identify(&probe, &gallery, CandidateBits::Reveal, usize::MAX)?;
    let (wall, cpu) = (wall.elapsed(), cpu.elapsed());

    let any_match = parties.open(&result.any_match)?;
    let candidates = result
        .candidates
        .iter()
        .map(|bit| parties.open(bit))
        .collect::<tabir_crypto::Result<Vec<_>>>()?;
    let band = twin::decision_band(config);
    let mut correct = true;
    let mut any = false;
    for (template, got) in gallery_plain.iter().zip(&candidates) {
        let expected = twin::plaintext_match(config, &probe_vector, template);
        any |= expected;
        if twin::distance_from_boundary(config, &probe_vector, template) > band
            && got.is_match() != expected
        {
            correct = false;
        }
    }
    correct &= any_match.is_match() == any;
    Ok((wall, cpu, correct))
}

fn print_table(r: &CryptoReport) {
    println!("parameters        {}", r.params);
    println!(
        "encoding          d = {}, {}-bit, theta = {} (cosine {}), Delta = 2^{}",
        r.dim, r.quant_bits, r.threshold_score, r.threshold_cosine, r.delta_log
    );
    println!("key generation    {:>9.1} ms", r.keygen_ms);
    println!("server key prep   {:>9.1} ms", r.server_key_prep_ms);
    println!("encrypt probe     {:>9.2} ms", r.encrypt_probe_ms);
    println!("encrypt template  {:>9.2} ms", r.encrypt_template_ms);
    println!("decrypt (share)   {:>9.1} us", r.decrypt_us);
    println!(
        "verify 1:1        {:>9.1} ms median, {:.1} ms p90 (server, one thread; share applied in {:.1} us)",
        r.verify_ms_median, r.verify_ms_p90, r.share_apply_us
    );
    println!(
        "identify 1:{:<6} {:>9.1} ms per template wall ({} threads), {:.1} CPU-ms, correct: {}",
        r.identify_templates,
        r.identify_ms_per_template,
        r.threads,
        r.identify_cpu_ms_per_template,
        r.identify_correct
    );
    println!(
        "sizes             probe {} B, template {} B, result {} B, evaluation keys {} B, public key {} B, share {} B",
        r.bytes.probe,
        r.bytes.template,
        r.bytes.result,
        r.bytes.evaluation_keys,
        r.bytes.public_key,
        r.bytes.share
    );
    println!(
        "agreement         {} pairs, {} disagreements ({} outside the +/-{:.0} band; {} pairs inside it)",
        r.agreement.pairs,
        r.agreement.disagreements,
        r.agreement.disagreements_outside_band,
        r.agreement.band_score_units,
        r.agreement.pairs_inside_band
    );
}
