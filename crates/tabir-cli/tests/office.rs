//! The operator's, custodian's and auditor's commands end to end against a real `tabir-server`
//! process, on the fixture photos: custody bootstrap, init (keys generated, split and
//! registered at once), device add, enroll, verify (match: exit 0; no match: exit 1), identify,
//! delete, verify again (refused: exit 2), a photo without a face (exit 2, nothing sent),
//! a lying device and a silent one caught by `tabir audit decisions`, revocation, audit
//! export and verify.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Output;
use support::{get_text, image, tabir, ServerProcess};

const NIK: &str = "3201014101900001";

struct Env<'a> {
    keys: &'a Path,
    server: &'a str,
}

impl Env<'_> {
    fn run(&self, args: &[&str]) -> Output {
        tabir()
            .args(args)
            .env("TABIR_PASSPHRASE", "cli test passphrase")
            .env("TABIR_BUNDLE_PASSPHRASE", "cli test passphrase")
            .env("TABIR_KEYS_DIR", self.keys)
            .env("TABIR_SERVER", self.server)
            .output()
            .unwrap()
    }
}

fn json(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {text} stderr {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[track_caller]
fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout {}\nstderr {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Requests the server has answered so far (from /metrics).
fn requests_answered(url: &str) -> u64 {
    get_text(url, "/metrics")
        .lines()
        .filter(|l| {
            l.starts_with("tabir_http_requests_total{")
                && !l.contains("/metrics")
                && !l.contains("/healthz")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn custody_and_office_commands_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let server = ServerProcess::start(&dir.path().join("server"), &[]);
    let env = Env {
        keys: &keys,
        server: &server.url,
    };
    // Init needs the custodian registered first (it registers the domain at once).
    let early = env.run(&["custody", "init", "--domain", "cli-test"]);
    assert_eq!(early.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&early.stderr).contains("custody bootstrap"));
    let token = server.token.clone().unwrap();
    ok(env.run(&["custody", "bootstrap", "--token", &token]));
    let created = ok(env.run(&["custody", "init", "--domain", "cli-test"]));
    assert!(String::from_utf8_lossy(&created.stdout).contains("no file holds it"));
    // A second init of the same domain is refused, and the first is untouched.
    let again = env.run(&["custody", "init", "--domain", "cli-test"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let device = dir.path().join("device");
    let auditor = dir.path().join("auditor");
    ok(env.run(&[
        "custody",
        "device",
        "add",
        "--domain",
        "cli-test",
        "--label",
        "counter 1",
        "--out",
        device.to_str().unwrap(),
    ]));
    ok(env.run(&[
        "custody",
        "device",
        "add",
        "--domain",
        "cli-test",
        "--label",
        "auditor",
        "--role",
        "auditor",
        "--out",
        auditor.to_str().unwrap(),
    ]));
    let config = device.join("tabir.toml");
    let config = config.to_str().unwrap();
    let photo = |name: &str| image(name).to_str().unwrap().to_owned();

    let enrolled = ok(env.run(&[
        "enroll",
        "--config",
        config,
        "--subject",
        NIK,
        &photo("obama.jpg"),
        "--json",
    ]));
    let enrolled = json(&enrolled);
    assert_eq!(enrolled["result"], "enrolled");
    assert!(enrolled["bytes"]["sent"].as_u64().unwrap() < 12 * 1024);

    let genuine = env.run(&[
        "verify",
        "--config",
        config,
        "--subject",
        NIK,
        &photo("obama2.jpg"),
        "--json",
    ]);
    assert_eq!(genuine.status.code(), Some(0));
    let genuine = json(&genuine);
    assert_eq!(genuine["decision"], "match");
    assert!(genuine["bytes"]["sent"].as_u64().unwrap() <= 64 * 1024);
    assert_eq!(genuine["report"]["status"], "reported");
    assert!(genuine["audit_seq"].as_u64().unwrap() > 0);
    assert!(genuine["timings_ms"]["total"].as_f64().unwrap() > 0.0);
    assert_eq!(genuine["subject"], "32**********0001");

    let impostor = env.run(&[
        "verify",
        "--config",
        config,
        "--subject",
        NIK,
        &photo("biden.jpg"),
        "--json",
    ]);
    assert_eq!(impostor.status.code(), Some(1));
    assert_eq!(json(&impostor)["decision"], "no_match");

    let identified = env.run(&[
        "identify",
        "--config",
        config,
        &photo("obama3.jpg"),
        "--json",
    ]);
    assert_eq!(identified.status.code(), Some(0));
    assert_eq!(json(&identified)["decision"], "match");

    // A photo with no face: the face error, exit 2, and no request reaches the server.
    let blank = dir.path().join("blank.png");
    image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]))
        .save(&blank)
        .unwrap();
    let before = requests_answered(&server.url);
    let refused = env.run(&[
        "verify",
        "--config",
        config,
        "--subject",
        NIK,
        blank.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let refused = json(&refused);
    assert_eq!(refused["error"]["kind"], "photo");
    assert_eq!(refused["error"]["code"], "no_face");
    assert_eq!(
        requests_answered(&server.url),
        before,
        "a refused photo reached the server"
    );

    ok(env.run(&["delete", "--config", config, "--subject", NIK]));
    let gone = env.run(&[
        "verify",
        "--config",
        config,
        "--subject",
        NIK,
        &photo("obama2.jpg"),
        "--json",
    ]);
    assert_eq!(gone.status.code(), Some(2));
    assert_eq!(json(&gone)["error"]["code"], "unknown_subject");

    // A device that lies about what it read, and one that reports nothing: the auditor's
    // escrow check lists both; everything the CLI reported matches.
    let (lying_seq, silent_seq) = lying_and_silent(&device.join("tabir.toml"));
    let auditor_config = auditor.join("tabir.toml");
    let checked = env.run(&[
        "audit",
        "decisions",
        "--config",
        auditor_config.to_str().unwrap(),
        "--server-key",
        &server.audit_key,
        "--json",
    ]);
    assert_eq!(checked.status.code(), Some(1), "findings give exit 1");
    let checked = json(&checked);
    // Verified: genuine, impostor; identified once; then the two below.
    assert_eq!(checked["checked"], 5, "{checked}");
    assert_eq!(checked["matching"], 3, "{checked}");
    let mismatched = checked["mismatched"].as_array().unwrap();
    assert_eq!(mismatched.len(), 1, "{checked}");
    assert_eq!(mismatched[0]["seq"], lying_seq);
    assert_eq!(mismatched[0]["escrowed"], "match");
    assert_eq!(mismatched[0]["reported"], "no_match");
    let unreported = checked["unreported"].as_array().unwrap();
    assert_eq!(unreported.len(), 1, "{checked}");
    assert_eq!(unreported[0]["seq"], silent_seq);
    // A clean range exits 0, in words too.
    let clean = env.run(&[
        "audit",
        "decisions",
        "--config",
        auditor_config.to_str().unwrap(),
        "--to",
        &(lying_seq - 1).to_string(),
    ]);
    assert_eq!(clean.status.code(), Some(0));
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(
        text.contains("3 checked, 3 matching, 0 mismatched, 0 unreported"),
        "{text}"
    );

    // Custody status: the domain, its fingerprint, both keys with their shares; no secret
    // content, and no file that holds the domain's secret key.
    let status = json(&ok(env.run(&["custody", "status", "--json"])));
    let domain = &status["domains"][0];
    assert_eq!(domain["name"], "cli-test");
    assert_eq!(domain["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(domain["devices"].as_array().unwrap().len(), 2);
    let secret_files = domain["secret_files"].as_array().unwrap();
    assert!(secret_files.iter().all(|f| f["mode"] == "600"));
    let names: Vec<&str> = secret_files
        .iter()
        .map(|f| f["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "custodian-share.sealed",
            "device.sealed",
            "share.sealed",
            "device.sealed",
            "share.sealed"
        ]
    );
    assert!(domain["legacy_secret_files"].as_array().unwrap().is_empty());

    // Revoke the device: its next request is refused.
    let device_id = domain["devices"][0]["key_id"].as_str().unwrap().to_owned();
    ok(env.run(&[
        "custody", "device", "revoke", "--domain", "cli-test", "--key-id", &device_id,
    ]));
    let revoked = env.run(&[
        "enroll",
        "--config",
        config,
        "--subject",
        NIK,
        &photo("obama.jpg"),
        "--json",
    ]);
    assert_eq!(revoked.status.code(), Some(2));
    assert_eq!(json(&revoked)["error"]["code"], "unauthenticated");
    let listed = json(&ok(env.run(&[
        "custody", "device", "list", "--domain", "cli-test", "--json",
    ])));
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["key_id"] == device_id.as_str()
            && d["revoked_at"].is_string()
            && d["holds_share"] == false));
    let status = ok(env.run(&["custody", "status"]));
    assert!(String::from_utf8_lossy(&status.stdout).contains("REVOKED"));

    // The auditor exports the log; it verifies against the key the server printed at start.
    let log = dir.path().join("audit.json");
    let exported = ok(env.run(&[
        "audit",
        "export",
        "--config",
        auditor.join("tabir.toml").to_str().unwrap(),
        "--out",
        log.to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&exported.stdout).contains(&server.audit_key));
    let verified = env.run(&[
        "audit",
        "verify",
        "--log",
        log.to_str().unwrap(),
        "--server-key",
        &server.audit_key,
        "--json",
    ]);
    assert_eq!(verified.status.code(), Some(0));
    assert_eq!(json(&verified)["valid"], true);
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    for action in [
        "enrol",
        "verify",
        "identify",
        "report_decision",
        "reshare_escrow",
        "delete_enrolment",
        "revoke_device",
    ] {
        assert!(
            entries.iter().any(|e| e["action"] == action),
            "{action} not in the log"
        );
    }
}

/// Through the SDK, as a dishonest integration could: enrol a synthetic subject, verify it
/// with a genuine-like probe and report the opposite of the match read; verify again and
/// report nothing. Returns the two results' audit entries.
fn lying_and_silent(config: &Path) -> (u64, u64) {
    use rand::SeedableRng;
    use tabir_device_crypto::quantize::{random_unit_vector, vector_at_cosine};
    let config = tabir_client::ClientConfig::load(Some(config)).unwrap();
    let passphrase = tabir_client::Passphrase::new("cli test passphrase".into());
    let office = tabir_client::OfficeClient::open_without_face(&config, &passphrase).unwrap();
    let subject = tabir_proto::SubjectId::parse("3201014101900002").unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
    let enrolled = random_unit_vector(&mut rng, 128);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        office.enroll_embedding(&subject, &enrolled).await.unwrap();
        let probe = vector_at_cosine(&mut rng, &enrolled, 0.8);
        let read = office
            .verify_embedding_unreported(&subject, &probe)
            .await
            .unwrap();
        assert!(read.decision.is_match());
        office
            .report(read.audit_seq, tabir_crypto::Decision::NoMatch)
            .await
            .unwrap();
        let silent = office
            .verify_embedding_unreported(&subject, &probe)
            .await
            .unwrap();
        (read.audit_seq, silent.audit_seq)
    })
}
