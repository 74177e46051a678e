//! Writes the seed corpora of the fuzz targets: small valid inputs (and a few near misses) for
//! each, under `fuzz/corpus/<target>/`. Everything is made here, from a fresh key domain and
//! fixed keys, so the corpora can be remade after a wire format changes:
//!
//!     cargo run --release --manifest-path fuzz/Cargo.toml --example make_seeds
//!
//! (from the repository root; an argument names another output folder). Ciphertexts and
//! shares come out different on every run (fresh keys and randomness); the rest is fixed.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use image::{DynamicImage, ImageFormat, RgbImage};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use tabir_client::sealed::{seal, unseal, Passphrase};
use tabir_crypto::{
    DomainConfig, DomainRegistration, EvaluationKeys, Probe, ServerKeys, ShareDelta, Template,
};
use tabir_device_crypto::quantize::{random_unit_vector, vector_at_cosine};
use tabir_device_crypto::{domain_config, generate_key_domain, Encryptor};
use tabir_fuzz::{
    device_signing_key, sealed_input, server_signing_key, zero_domain, RequestInput, NOW,
    PASSPHRASE,
};
use tabir_proto::audit::{
    seal as seal_entry, Action, AuditEntry, AuditEvent, Checkpoint, LogEntry, Outcome,
    ReportedDecision, SeqRange,
};
use tabir_proto::messages::{
    AuditPage, CustodianBootstrap, DecisionReport, DeletionReceipt, DeviceInfo, DeviceRegistration,
    DomainInfo, EnrolmentReceipt, ReportReceipt, ResharePage, ReshareRequest, ResharedResult,
    ServerInfo,
};
use tabir_proto::signing::RequestSignature;
use tabir_proto::{hex, ErrorBody, ErrorCode, Role, SubjectTag};
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::prelude::*;
use tfhe::named::Named;
use tfhe_versionable::{Versionize, VersionsDispatch};

type Error = Box<dyn std::error::Error>;

struct Corpus(PathBuf);

impl Corpus {
    fn write(&self, target: &str, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let folder = self.0.join(target);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join(name), bytes)?;
        Ok(())
    }

    fn json<T: Serialize>(&self, target: &str, name: &str, value: &T) -> Result<(), Error> {
        self.write(target, name, &serde_json::to_vec_pretty(value)?)
    }
}

fn main() -> Result<(), Error> {
    let out = Corpus(PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    ));
    let crypto = crypto_seeds(&out)?;
    tiny_key_seeds(&out, &crypto)?;
    sealed_seeds(&out, &crypto)?;
    audit_seeds(&out)?;
    request_seeds(&out)?;
    json_seeds(&out, &crypto)?;
    photo_seeds(&out)?;
    println!("seeds written under {}", out.0.display());
    Ok(())
}

/// Blobs of one real key domain that later seeds reuse.
struct CryptoBlobs {
    config: DomainConfig,
    server_share: Vec<u8>,
    decryption_share: Vec<u8>,
    custodian_share: Vec<u8>,
    delta: Vec<u8>,
    encrypted_bit: Vec<u8>,
    identify_threshold_score: i32,
}

fn crypto_seeds(out: &Corpus) -> Result<CryptoBlobs, Error> {
    let config = domain_config(128, 0.363)?;
    let domain = generate_key_domain(config)?;
    let public_key = domain.evaluation_keys.public_key();
    let (device_share, delta) = domain.custodian_share.issue(&config)?;
    let custodian_share = domain.custodian_share.export_secret().to_vec();
    let registration = DomainRegistration {
        evaluation_keys: domain.evaluation_keys,
        server_share: domain.server_share,
        identify_threshold: tabir_device_crypto::identify_threshold(&config, 0.5)?,
    };
    let registration_bytes = registration.to_bytes();
    let keys_bytes = registration.evaluation_keys.to_bytes();
    let fingerprint = registration.evaluation_keys.fingerprint();
    let server_share_bytes = registration.server_share.export_secret().to_vec();
    let device_server_share = registration.server_share.derive(&ShareDelta::from_bytes(
        &delta.to_bytes(),
        &config,
        fingerprint,
    )?)?;

    // Evaluation keys: 30 MB, so only the start of the real blobs (their headers and the
    // configuration); the real public key whole (16 KiB).
    out.write("evaluation_keys", "public-key", &public_key.to_bytes())?;
    out.write(
        "evaluation_keys",
        "evaluation-keys-prefix",
        &keys_bytes[..2048],
    )?;
    out.write(
        "evaluation_keys",
        "registration-prefix",
        &registration_bytes[..2048],
    )?;

    let encryptor = Encryptor::new(&public_key)?;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let enrolled = random_unit_vector(&mut rng, 128);
    let same = vector_at_cosine(&mut rng, &enrolled, 0.7);
    let template = encryptor.encrypt_template(&enrolled)?;
    let probe = encryptor.encrypt_probe(&same)?;
    let template_bytes = template.to_bytes();
    let probe_bytes = probe.to_bytes();
    out.write("template", "template", &template_bytes)?;
    // The same coefficients under the all-zero domain the targets expect first.
    let zero_template =
        Template::from_rounded(zero_domain(), template.coefficients().to_vec(), &config)?;
    out.write(
        "template",
        "template-zero-domain",
        &zero_template.to_bytes(),
    )?;
    out.write("template", "probe-prefix", &probe_bytes[..1024])?;
    out.write(
        "template",
        "truncated",
        &template_bytes[..template_bytes.len() - 1],
    )?;
    out.write("probe", "probe", &probe_bytes)?;
    let zero_probe = Probe::from_rounded(zero_domain(), probe.coefficients().to_vec(), &config)?;
    out.write(
        "probe",
        "probe-zero-domain-prefix",
        &zero_probe.to_bytes()[..4096],
    )?;
    out.write("probe", "template", &template_bytes)?;

    let server = ServerKeys::prepare(EvaluationKeys::from_bytes(&keys_bytes)?)?;
    let escrowed = server.verify(&probe, &template)?;
    let encrypted = device_server_share.apply(&escrowed)?;
    let escrowed_bytes = escrowed.to_bytes();
    let encrypted_bytes = encrypted.to_bytes();
    out.write("bit", "escrowed-bit", &escrowed_bytes)?;
    out.write("bit", "encrypted-bit", &encrypted_bytes)?;
    out.write("bit", "share-as-bit", &server_share_bytes[..64])?;

    let decryption_share = device_share.export_secret().to_vec();
    let delta_bytes = delta.to_bytes().to_vec();
    out.write("shares", "server-share", &server_share_bytes)?;
    out.write("shares", "decryption-share", &decryption_share)?;
    out.write("shares", "custodian-share", &custodian_share)?;
    out.write("shares", "share-delta", &delta_bytes)?;
    out.write("shares", "bit", &encrypted_bytes)?;

    Ok(CryptoBlobs {
        identify_threshold_score: registration.identify_threshold.score,
        config,
        server_share: server_share_bytes,
        decryption_share,
        custodian_share,
        delta: delta_bytes,
        encrypted_bit: encrypted_bytes,
    })
}

/// Blobs with the exact layout of `EvaluationKeys` and `DomainRegistration` (same type names,
/// same versioned fields) but tiny key shapes: they decode all the way to the shape checks,
/// where a fuzzer can take them apart, at a size a fuzzer can mutate.
#[derive(Serialize, Deserialize, Versionize)]
#[versionize(TinyKeysVersions)]
struct TinyKeys {
    config: DomainConfig,
    bootstrap_key: SeededLweBootstrapKeyOwned<u64>,
    keyswitch_key: SeededLweKeyswitchKeyOwned<u64>,
    public_key: SeededGlweCiphertextOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
enum TinyKeysVersions {
    V0(TinyKeys),
}

impl Named for TinyKeys {
    const NAME: &'static str = "tabir::EvaluationKeys/2";
}

#[derive(Serialize, Deserialize, Versionize)]
#[versionize(TinyRegistrationVersions)]
struct TinyRegistration {
    /// The evaluation keys' own blob (the registration's "/3" form).
    evaluation_keys: Vec<u8>,
    server_share: Vec<u8>,
    identify_threshold: tabir_crypto::Threshold,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
enum TinyRegistrationVersions {
    V0(TinyRegistration),
}

impl Named for TinyRegistration {
    const NAME: &'static str = "tabir::DomainRegistration/3";
}

#[derive(Serialize, Deserialize, Versionize)]
#[versionize(TinyPublicKeyVersions)]
struct TinyPublicKey {
    config: DomainConfig,
    fingerprint: tabir_crypto::KeyFingerprint,
    public_key: SeededGlweCiphertextOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
enum TinyPublicKeyVersions {
    V0(TinyPublicKey),
}

impl Named for TinyPublicKey {
    const NAME: &'static str = "tabir::DomainPublicKey/2";
}

fn tfhe_blob<T: Serialize + Versionize + Named>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    tfhe::safe_serialization::safe_serialize(value, &mut out, 1 << 20)?;
    Ok(out)
}

fn tiny_keys(config: DomainConfig, polynomial_size: usize) -> TinyKeys {
    let seed = CompressionSeed::from(Seed(42));
    let modulus = CiphertextModulus::new_native();
    let (glwe_size, poly) = (GlweSize(2), PolynomialSize(polynomial_size));
    TinyKeys {
        config,
        bootstrap_key: SeededLweBootstrapKey::new(
            1u64,
            glwe_size,
            poly,
            DecompositionBaseLog(23),
            DecompositionLevelCount(1),
            LweDimension(2),
            seed.clone(),
            modulus,
        ),
        keyswitch_key: SeededLweKeyswitchKey::new(
            2u64,
            DecompositionBaseLog(4),
            DecompositionLevelCount(4),
            LweDimension(polynomial_size),
            LweDimension(2),
            seed.clone(),
            modulus,
        ),
        public_key: SeededGlweCiphertext::new(3u64, glwe_size, poly, seed, modulus),
    }
}

fn tiny_key_seeds(out: &Corpus, crypto: &CryptoBlobs) -> Result<(), Error> {
    let config = crypto.config;
    out.write(
        "evaluation_keys",
        "tiny-evaluation-keys",
        &tfhe_blob(&tiny_keys(config, 8))?,
    )?;
    out.write(
        "evaluation_keys",
        "tiny-evaluation-keys-bad-config",
        &tfhe_blob(&tiny_keys(DomainConfig { dim: 0, ..config }, 4))?,
    )?;
    out.write(
        "evaluation_keys",
        "tiny-registration",
        &tfhe_blob(&TinyRegistration {
            evaluation_keys: tfhe_blob(&tiny_keys(config, 4))?,
            server_share: crypto.server_share.clone(),
            identify_threshold: config.threshold,
        })?,
    )?;
    let seed = CompressionSeed::from(Seed(7));
    out.write(
        "evaluation_keys",
        "tiny-public-key",
        &tfhe_blob(&TinyPublicKey {
            config,
            fingerprint: zero_domain(),
            public_key: SeededGlweCiphertext::new(
                5u64,
                GlweSize(2),
                PolynomialSize(8),
                seed,
                CiphertextModulus::new_native(),
            ),
        })?,
    )?;
    Ok(())
}

/// A sealed file exactly as tabir-client writes one, with a chosen (cheap) KDF cost, salt and
/// nonce: `seal` always spends 64 MiB, too slow for a fuzzer to start from.
fn seal_with_cost(
    secret: &[u8],
    purpose: &str,
    cost: [u32; 3],
    salt: [u8; 16],
    nonce: [u8; 24],
) -> Result<Vec<u8>, Error> {
    let params = Params::new(cost[0], cost[1], cost[2], Some(32)).map_err(|e| e.to_string())?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(PASSPHRASE.as_bytes(), &salt, &mut key)
        .map_err(|e| e.to_string())?;
    let check = Sha256::new()
        .chain_update(b"tabir-seal-check-v1\0")
        .chain_update(key)
        .finalize();
    let mut file = sealed_input::MAGIC.to_vec();
    file.push(u8::try_from(purpose.len())?);
    file.extend_from_slice(purpose.as_bytes());
    for value in cost {
        file.extend_from_slice(&value.to_le_bytes());
    }
    file.extend_from_slice(&salt);
    file.extend_from_slice(&check[..16]);
    file.extend_from_slice(&nonce);
    let ciphertext = XChaCha20Poly1305::new((&key).into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &file,
            },
        )
        .map_err(|e| e.to_string())?;
    file.extend_from_slice(&ciphertext);
    let digest = Sha256::digest(&file);
    file.extend_from_slice(&digest);
    Ok(file)
}

fn sealed_seeds(out: &Corpus, crypto: &CryptoBlobs) -> Result<(), Error> {
    let passphrase = Passphrase::new(PASSPHRASE.to_owned());
    let signing_key = [0x5a; 32];
    let secrets: [(&str, &[u8]); 3] = [
        ("decryption-share", &crypto.decryption_share),
        ("custodian-share", &crypto.custodian_share),
        ("signing-key", &signing_key),
    ];
    for (index, (purpose, secret)) in secrets.into_iter().enumerate() {
        let file = seal_with_cost(secret, purpose, [256, 1, 1], [index as u8; 16], [9; 24])?;
        let opened = unseal(&file, purpose, &passphrase, Path::new("seed"))?;
        assert_eq!(
            opened.as_slice(),
            secret,
            "the seed opens as tabir-client opens it"
        );
        let mode = (index as u8) << 1;
        // As is, and without its digest (the target appends it).
        let mut raw = vec![mode];
        raw.extend_from_slice(&file);
        out.write("sealed", &format!("{purpose}"), &raw)?;
        let mut fixed = vec![mode | 1];
        fixed.extend_from_slice(&file[..file.len() - 32]);
        out.write("sealed", &format!("{purpose}-digest-appended"), &fixed)?;
    }
    // The file's own purpose asked for (mode 3), and a cost `unseal` refuses.
    let file = seal_with_cost(b"x", "device-key", [64, 1, 2], [1; 16], [2; 24])?;
    let mut own = vec![(3 << 1) | 1];
    own.extend_from_slice(&file[..file.len() - 32]);
    out.write("sealed", "own-purpose", &own)?;
    let mut costly = own.clone();
    let at = 1 + sealed_input::MAGIC.len() + 1 + "device-key".len();
    costly[at..at + 4].copy_from_slice(&(2u32 << 20).to_le_bytes());
    out.write("sealed", "refused-cost", &costly)?;
    // One file from `seal` itself (64 MiB Argon2id, about a second per run of this seed).
    let real = seal(&signing_key, "signing-key", &passphrase)?;
    let mut raw = vec![2 << 1];
    raw.extend_from_slice(&real);
    out.write("sealed", "signing-key-real-cost", &raw)?;
    Ok(())
}

fn event(action: Action, outcome: Outcome) -> AuditEvent {
    AuditEvent {
        time: "2026-11-28T01:00:00Z".into(),
        actor: hex::encode(&[0xab; 32]),
        role: Some(Role::Device),
        domain: Some("jabar-bansos".into()),
        key_fingerprint: Some(hex::encode(&[0xcd; 32])),
        action,
        subject: SubjectTag::parse(&hex::encode(&[0x11; 32])),
        outcome,
        refers_to: None,
        reported: None,
    }
}

/// A signed, chained log of six entries of every shape.
fn log() -> Vec<AuditEntry> {
    let key = server_signing_key();
    let events = [
        AuditEvent {
            actor: "server".into(),
            role: None,
            domain: None,
            key_fingerprint: None,
            subject: None,
            ..event(Action::BootstrapCustodian, Outcome::Done)
        },
        event(Action::Enrol, Outcome::Done),
        event(Action::Verify, Outcome::Done),
        AuditEvent {
            refers_to: Some(SeqRange { from: 3, to: 3 }),
            reported: Some(ReportedDecision::Match),
            ..event(Action::ReportDecision, Outcome::Done)
        },
        event(
            Action::Identify,
            Outcome::Refused(ErrorCode::WrongKeyDomain.name().into()),
        ),
        AuditEvent {
            role: Some(Role::Auditor),
            refers_to: Some(SeqRange { from: 1, to: 5 }),
            ..event(Action::ReshareEscrow, Outcome::Failed)
        },
    ];
    let mut entries: Vec<AuditEntry> = Vec::new();
    for event in events {
        let entry = seal_entry(event, entries.last(), &key);
        entries.push(entry);
    }
    entries
}

fn mixed(entries: &[AuditEntry]) -> Vec<LogEntry> {
    entries
        .iter()
        .map(|e| {
            if e.seq % 2 == 0 {
                LogEntry::Redacted(e.redacted())
            } else {
                LogEntry::Full(e.clone())
            }
        })
        .collect()
}

fn audit_seeds(out: &Corpus) -> Result<(), Error> {
    let key = server_signing_key();
    let entries = log();
    let checkpoint = Checkpoint::sign(
        4,
        entries[3].hash.clone(),
        "2026-11-28T02:00:00Z".into(),
        &key,
    );
    let with_checkpoint = |log: &[u8]| -> Result<Vec<u8>, Error> {
        let mut bytes = log.to_vec();
        bytes.push(0xFF);
        bytes.extend_from_slice(&serde_json::to_vec(&checkpoint)?);
        Ok(bytes)
    };
    let whole = serde_json::to_vec(&entries)?;
    let redacted = serde_json::to_vec(&mixed(&entries))?;
    out.write("audit_log", "log", &whole)?;
    out.write(
        "audit_log",
        "log-with-checkpoint",
        &with_checkpoint(&whole)?,
    )?;
    out.write(
        "audit_log",
        "log-redacted-with-checkpoint",
        &with_checkpoint(&redacted)?,
    )?;
    out.write(
        "audit_log",
        "tail-with-checkpoint",
        &with_checkpoint(&serde_json::to_vec(&entries[2..])?)?,
    )?;
    out.json("audit_log", "entry", &entries[3])?;
    out.json("audit_log", "redacted-entry", &entries[1].redacted())?;

    let page = AuditPage {
        entries: mixed(&entries[..4]),
        next_after: Some(4),
    };
    out.json("audit_page", "first-page", &page)?;
    let later = AuditPage {
        entries: mixed(&entries[3..]),
        next_after: None,
    };
    out.json("audit_page", "later-page", &later)?;
    out.json(
        "audit_page",
        "empty",
        &AuditPage {
            entries: Vec::new(),
            next_after: None,
        },
    )?;
    Ok(())
}

fn request_seeds(out: &Corpus) -> Result<(), Error> {
    let key = device_signing_key();
    let requests: [(&str, &str, &[u8], Option<&str>); 4] = [
        (
            "POST",
            "/v1/domains/jabar-bansos/subjects/3201012501900001/verifications",
            b"probe bytes",
            Some("0123456789abcdef0123456789abcdef"),
        ),
        ("GET", "/v1/audit?after=0&limit=100", b"", None),
        (
            "PUT",
            "/v1/domains/jabar-bansos/subjects/3171066509850123",
            b"template bytes",
            Some("fedcba9876543210fedcba9876543210"),
        ),
        (
            "post",
            "/v1/domains/jabar-bansos/decisions/42",
            br#"{"decision":"match"}"#,
            Some("not a request id"),
        ),
    ];
    for (index, (method, path, body, request_id)) in requests.into_iter().enumerate() {
        let signed = RequestSignature::sign(
            &key,
            method,
            path,
            body,
            NOW,
            "00112233445566778899aabbccddeeff".into(),
            request_id.map(str::to_owned),
        );
        let timestamp = signed.timestamp.to_string();
        let input = RequestInput {
            method,
            path,
            key_id: &signed.key_id,
            timestamp: &timestamp,
            nonce: &signed.nonce,
            content_sha256: &signed.content_sha256,
            signature: &signed.signature,
            request_id,
            body,
        };
        out.write(
            "request_signature",
            &format!("request-{index}"),
            &input.to_bytes(),
        )?;
    }
    Ok(())
}

fn json_seeds(out: &Corpus, crypto: &CryptoBlobs) -> Result<(), Error> {
    let target = "json_messages";
    let info = DomainInfo {
        name: "jabar-bansos".into(),
        fingerprint: hex::encode(&[0xcd; 32]),
        params: crypto.config.params.name().into(),
        dim: 128,
        threshold_cosine: crypto.config.threshold.cosine,
        threshold_score: crypto.config.threshold.score,
        identify_threshold_cosine: 0.5,
        identify_threshold_score: crypto.identify_threshold_score,
        registered_at: "2026-11-28T01:00:00Z".into(),
    };
    out.json(target, "domain-info", &info)?;
    out.json(target, "domains", &vec![info.clone(), info])?;
    let public_key = hex::encode(device_signing_key().verifying_key().as_bytes());
    out.json(
        target,
        "device-registration",
        &DeviceRegistration {
            label: "Kantor Desa Sukamaju, loket 1".into(),
            public_key: public_key.clone(),
            role: Role::Device,
            share_delta: Some(hex::encode(&crypto.delta)),
        },
    )?;
    out.json(
        target,
        "custodian-registration",
        &DeviceRegistration {
            label: "custodian 2".into(),
            public_key: public_key.clone(),
            role: Role::Custodian,
            share_delta: None,
        },
    )?;
    let device = DeviceInfo {
        key_id: hex::encode(&[0xab; 32]),
        label: "loket 1".into(),
        role: Role::Auditor,
        domain: "jabar-bansos".into(),
        registered_at: "2026-11-28T01:00:00Z".into(),
        revoked_at: Some("2026-11-29T01:00:00Z".into()),
        holds_share: false,
    };
    out.json(target, "devices", &vec![device])?;
    out.json(
        target,
        "enrolment-receipt",
        &EnrolmentReceipt {
            replaced: true,
            audit_seq: 12,
        },
    )?;
    out.json(
        target,
        "deletion-receipt",
        &DeletionReceipt { audit_seq: 13 },
    )?;
    out.json(
        target,
        "server-info",
        &ServerInfo {
            audit_public_key: hex::encode(server_signing_key().verifying_key().as_bytes()),
            version: "0.1.0".into(),
            protocol: 1,
        },
    )?;
    out.json(
        target,
        "custodian-bootstrap",
        &CustodianBootstrap {
            label: "custodian 1".into(),
            public_key,
        },
    )?;
    out.json(
        target,
        "decision-report",
        &DecisionReport {
            decision: ReportedDecision::NoMatch,
        },
    )?;
    out.json(target, "report-receipt", &ReportReceipt { audit_seq: 14 })?;
    out.json(
        target,
        "reshare-request",
        &ReshareRequest { from: 1, to: 256 },
    )?;
    out.json(
        target,
        "reshare-page",
        &ResharePage {
            audit_seq: 15,
            results: vec![ResharedResult {
                seq: 3,
                actor: hex::encode(&[0xab; 32]),
                action: Action::Verify,
                bit: hex::encode(&crypto.encrypted_bit),
            }],
            next_from: Some(4),
        },
    )?;
    out.json(
        target,
        "error-body",
        &ErrorBody::new(ErrorCode::WrongKeyDomain),
    )?;
    out.json(
        target,
        "audit-page",
        &AuditPage {
            entries: mixed(&log()[..2]),
            next_after: Some(2),
        },
    )?;
    Ok(())
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), format)?;
    Ok(bytes)
}

/// A JPEG with an EXIF orientation tag (APP1 right after SOI).
fn with_orientation(jpeg: &[u8], orientation: u8) -> Vec<u8> {
    let mut tiff = b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00".to_vec();
    tiff.extend_from_slice(&[orientation, 0, 0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn photo_seeds(out: &Corpus) -> Result<(), Error> {
    // A face, small: the repository's test photo scaled down.
    let face = image::load_from_memory(&std::fs::read("tests/images/obama.jpg")?)?.resize(
        40,
        40,
        image::imageops::FilterType::Triangle,
    );
    let jpeg = encode(&DynamicImage::ImageRgb8(face.to_rgb8()), ImageFormat::Jpeg)?;
    out.write("photo", "face.jpg", &jpeg)?;
    out.write("photo", "face-rotated.jpg", &with_orientation(&jpeg, 6))?;
    out.write("photo", "face-truncated.jpg", &jpeg[..jpeg.len() / 2])?;
    out.write(
        "photo",
        "face.png",
        &encode(&DynamicImage::ImageRgb8(face.to_rgb8()), ImageFormat::Png)?,
    )?;
    let gray = DynamicImage::ImageLuma8(face.to_luma8()).resize(
        16,
        16,
        image::imageops::FilterType::Nearest,
    );
    out.write("photo", "gray.jpg", &encode(&gray, ImageFormat::Jpeg)?)?;
    out.write(
        "photo",
        "gray16.png",
        &encode(
            &DynamicImage::ImageLuma16(gray.to_luma16()),
            ImageFormat::Png,
        )?,
    )?;
    out.write(
        "photo",
        "rgba.png",
        &encode(&DynamicImage::ImageRgba8(gray.to_rgba8()), ImageFormat::Png)?,
    )?;
    let tiny = RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30]));
    out.write(
        "photo",
        "tiny.png",
        &encode(&DynamicImage::ImageRgb8(tiny), ImageFormat::Png)?,
    )?;
    Ok(())
}
