//! The SDK end to end against a real server on loopback, on the fixture photos: custody
//! (a key domain created and registered, a device bundle with its own share), enrol, genuine
//! verify (match), impostor verify (no match), each decision reported, identify, delete,
//! verify again (refused: unknown subject); the blocking facade; retries on 429; sealed-key
//! failures; first-version bundles refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use support::{passphrase, runtime, start, DOMAIN};
use tabir_client::custody::{Custody, CUSTODIAN_KEY_FILE};
use tabir_client::office::ReportStatus;
use tabir_client::sealed::SealError;
use tabir_client::{ClientConfig, ClientError, OfficeClient, Passphrase, Transport};
use tabir_face::FacePipeline;
use tabir_proto::{ErrorCode, SubjectId};
use tabir_server::ServerConfig;

fn photo(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/images")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn face() -> Arc<FacePipeline> {
    static FACE: OnceLock<Arc<FacePipeline>> = OnceLock::new();
    Arc::clone(FACE.get_or_init(|| Arc::new(FacePipeline::load(&Default::default()).unwrap())))
}

#[test]
fn enrol_verify_identify_delete_through_the_sdk() {
    runtime().block_on(async {
        let running = start(ServerConfig::default(), "device-e2e").await;
        let office = OfficeClient::open(&running.device_config, &passphrase(), face()).unwrap();
        let obama = SubjectId::parse("3201012501900001").unwrap();

        let enrolled = office.enroll(&obama, photo("obama.jpg")).await.unwrap();
        assert!(!enrolled.replaced);
        // docs/crypto.md: a template is 11.5 KiB, a probe 48 KiB, a result 2.5 KiB.
        assert!(enrolled.bytes.sent < 12 * 1024, "{}", enrolled.bytes.sent);

        let genuine = office.verify(&obama, photo("obama2.jpg")).await.unwrap();
        assert!(genuine.decision.is_match());
        assert!(genuine.bytes.sent <= 64 * 1024, "{}", genuine.bytes.sent);
        assert!(
            genuine.bytes.received < 3 * 1024,
            "{}",
            genuine.bytes.received
        );
        // The decision was reported, after the entry that escrows the result.
        match genuine.report {
            ReportStatus::Reported { audit_seq } => assert!(audit_seq > genuine.audit_seq),
            other => panic!("not reported: {other:?}"),
        }
        let impostor = office.verify(&obama, photo("biden.jpg")).await.unwrap();
        assert!(!impostor.decision.is_match());
        assert!(matches!(impostor.report, ReportStatus::Reported { .. }));
        // Reporting twice is refused: once per result.
        let again = office
            .report(impostor.audit_seq, impostor.decision)
            .await
            .unwrap_err();
        assert_eq!(again.refusal_code(), Some(ErrorCode::AlreadyReported));

        assert!(office
            .identify(photo("obama3.jpg"))
            .await
            .unwrap()
            .decision
            .is_match());
        assert!(!office
            .identify(photo("biden.jpg"))
            .await
            .unwrap()
            .decision
            .is_match());

        office.delete(&obama).await.unwrap();
        let again = office
            .verify(&obama, photo("obama2.jpg"))
            .await
            .unwrap_err();
        assert_eq!(
            again.refusal_code(),
            Some(ErrorCode::UnknownSubject),
            "{again}"
        );
        assert_eq!(again.kind(), "refused");

        // A photo without a face is refused on the device, before anything is sent.
        let blank = {
            let image = image_bytes();
            office.verify(&obama, image).await.unwrap_err()
        };
        assert!(matches!(blank, ClientError::Photo(_)), "{blank}");
        assert_eq!(blank.code(), "no_face");

        running
            .server
            .shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap();
    });
}

/// A plain grey PNG: decodes fine, holds no face.
fn image_bytes() -> Vec<u8> {
    // 64x64 8-bit grey PNG, built by hand: the SDK's tests need no image encoder.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/no-face.png");
    std::fs::read(path).unwrap()
}

#[test]
fn the_blocking_facade_and_retries_on_overload() {
    // One worker and no queue: concurrent verifications get 429 and the SDK retries them.
    let config = ServerConfig {
        fhe_workers: 1,
        fhe_queue: 0,
        retry_after_secs: 1,
        ..ServerConfig::default()
    };
    let rt = runtime();
    let running = rt.block_on(start(config, "device-blocking"));
    let subject = SubjectId::parse("3201012501900002").unwrap();
    {
        let office = tabir_client::blocking::OfficeClient::open(
            &running.device_config,
            &passphrase(),
            face(),
        )
        .unwrap();
        office.enroll(&subject, photo("obama.jpg")).unwrap();
        assert!(office
            .verify(&subject, photo("obama2.jpg"))
            .unwrap()
            .decision
            .is_match());
    }
    let office =
        Arc::new(OfficeClient::open(&running.device_config, &passphrase(), face()).unwrap());
    rt.block_on(async {
        let embedding = office.embed(photo("obama2.jpg")).await.unwrap();
        let embedding = Arc::new(embedding.as_slice().to_vec());
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let office = Arc::clone(&office);
                let embedding = Arc::clone(&embedding);
                let subject = subject.clone();
                tokio::spawn(async move { office.verify_embedding(&subject, &embedding).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().unwrap().decision.is_match());
        }
        let metrics = reqwest::get(format!("{}/metrics", running.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let rejected: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("tabir_fhe_pool_rejected_total "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            rejected >= 1,
            "no request was turned away, so none was retried"
        );
        running
            .server
            .shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap();
    });
}

#[test]
fn sealed_keys_refuse_a_wrong_passphrase_and_a_tampered_file() {
    let dir = tempfile::tempdir().unwrap();
    let custody = Custody::new(dir.path());
    custody.custodian_key(&passphrase()).unwrap();
    let path = dir.path().join(CUSTODIAN_KEY_FILE);
    let wrong = tabir_client::custody::read_signing_key(
        &path,
        &Passphrase::new("not the passphrase".into()),
    )
    .unwrap_err();
    assert!(
        matches!(
            wrong,
            ClientError::Sealed(SealError::WrongPassphrase { .. })
        ),
        "{wrong}"
    );
    assert!(wrong.to_string().contains("wrong passphrase"));

    let copy = dir.path().join("tampered.sealed");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&copy, bytes).unwrap();
    let tampered = tabir_client::custody::read_signing_key(&copy, &passphrase()).unwrap_err();
    assert!(
        matches!(tampered, ClientError::Sealed(SealError::Tampered { .. })),
        "{tampered}"
    );
    assert!(tampered.to_string().contains("altered"));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn custody_holds_no_domain_secret_and_bundles_hold_only_their_share() {
    let rt = runtime();
    let running = rt.block_on(start(ServerConfig::default(), "device-custody"));
    let status = running.custody.status().unwrap();
    let domain = &status.domains[0];
    let names: Vec<String> = domain
        .secret_files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["custodian-share.sealed", "device.sealed", "share.sealed"],
        "only shares and signing keys are secret files"
    );
    assert!(domain.legacy_secret_files.is_empty());
    for file in &domain.secret_files {
        assert_eq!(file.mode, "600", "{}", file.path.display());
    }
    // Nothing in the key folder or the bundle is a first-version domain secret.
    let dir = running.custody.domain_dir(DOMAIN);
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files
            .iter()
            .any(|f| f.contains("secret") || f.ends_with(".pending")),
        "{files:?}"
    );
    // A first-version bundle (its whole domain secret on the device) is refused with the way
    // forward.
    let legacy = running.keys.path().join("legacy.toml");
    std::fs::write(
        &legacy,
        "server = \"http://127.0.0.1:1\"\ndomain = \"old\"\ndevice_key = \"device.sealed\"\nsecret_key = \"domain-secret.sealed\"\n",
    )
    .unwrap();
    let refused = ClientConfig::load(Some(&legacy)).unwrap_err();
    assert!(refused.to_string().contains("re-enrolled"), "{refused}");
    rt.block_on(running.server.shutdown(std::time::Duration::from_secs(5)))
        .unwrap();
}

#[test]
fn a_network_failure_names_the_server_but_not_the_subject() {
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let transport = Transport::new(&url, tabir_client::custody::new_signing_key(), None)
        .unwrap()
        .with_retry(tabir_client::RetryPolicy::none());
    let nik = "3201012501900001";
    let error = runtime()
        .block_on(transport.send(
            tabir_client::transport::Method::POST,
            &tabir_proto::routes::verification(DOMAIN, nik),
            Vec::new(),
            tabir_proto::routes::CONTENT_TYPE_BLOB,
        ))
        .unwrap_err();
    assert_eq!(error.kind(), "network", "{error}");
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(
        !message.contains(nik),
        "the subject id leaked into: {message}"
    );
}
