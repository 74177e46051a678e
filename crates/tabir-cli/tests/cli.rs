//! The `tabir` binary as a user runs it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn tabir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tabir"))
}

fn image(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/images")
        .join(name)
}

#[test]
fn face_embed_json_reports_faces_and_refusals_one_line_each() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let out = tabir()
        .args(["face", "embed", "--json"])
        .arg(image("obama.jpg"))
        .arg(&readme)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let face = &lines[0];
    assert_eq!(face["embedding"].as_array().unwrap().len(), 128);
    assert_eq!(face["box"].as_array().unwrap().len(), 4);
    assert_eq!(face["landmarks"].as_array().unwrap().len(), 5);
    assert!(face["score"].as_f64().unwrap() > 0.9);
    assert_eq!(lines[1]["error"]["code"], "unreadable_image");
    assert!(lines[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot be read"));
}

#[test]
fn face_compare_decides_genuine_and_impostor_pairs() {
    let run = |a: &str, b: &str| -> serde_json::Value {
        let out = tabir()
            .args(["face", "compare", "--json"])
            .arg(image(a))
            .arg(image(b))
            .output()
            .unwrap();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(run("obama.jpg", "obama3.jpg")["decision"], "match");
    assert_eq!(run("obama.jpg", "biden.jpg")["decision"], "no_match");
}

#[test]
fn a_missing_runtime_fails_the_command_with_a_clear_message() {
    let out = tabir()
        .args([
            "face",
            "embed",
            "--runtime",
            "/nonexistent/libonnxruntime.so",
        ])
        .arg(image("obama.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ORT_DYLIB_PATH") && stderr.contains("tabir doctor"),
        "{stderr}"
    );
}

#[test]
fn bench_crypto_json_has_the_documented_fields() {
    let out = tabir()
        .args([
            "bench",
            "crypto",
            "--json",
            "--pairs",
            "3",
            "--templates",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "params",
        "dim",
        "quant_bits",
        "keygen_ms",
        "server_key_prep_ms",
        "encrypt_probe_ms",
        "encrypt_template_ms",
        "decrypt_us",
        "share_apply_us",
        "verify_ms_median",
        "identify_ms_per_template",
        "identify_cpu_ms_per_template",
    ] {
        assert!(report.get(field).is_some(), "missing {field}");
    }
    assert_eq!(report["dim"], 128);
    // The sizes the custody issue promises: probe <= 64 KiB, template <= 12 KiB, result
    // <= 3 KiB, a share 2.5 KiB, a public key 16 KiB.
    assert!(report["bytes"]["probe"].as_u64().unwrap() <= 64 * 1024);
    assert!(report["bytes"]["template"].as_u64().unwrap() <= 12 * 1024);
    assert!(report["bytes"]["result"].as_u64().unwrap() <= 3 * 1024);
    assert!(report["bytes"]["share"].as_u64().unwrap() <= 3 * 1024);
    assert!(report["bytes"]["public_key"].as_u64().unwrap() <= 17 * 1024);
    assert_eq!(report["agreement"]["pairs"], 3);
    assert_eq!(report["agreement"]["disagreements_outside_band"], 0);
    assert_eq!(report["identify_correct"], true);
}

fn write_log(dir: &Path, entries: &[tabir_proto::audit::AuditEntry]) -> PathBuf {
    let path = dir.join("audit.json");
    std::fs::write(&path, serde_json::to_string(entries).unwrap()).unwrap();
    path
}

#[test]
fn audit_verify_accepts_a_good_log_and_names_the_first_bad_entry() {
    use tabir_proto::audit::{seal, Action, AuditEntry, AuditEvent, Outcome};
    let server = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let public = tabir_proto::hex::encode(&server.verifying_key().to_bytes());
    let mut entries: Vec<AuditEntry> = Vec::new();
    for action in [
        Action::RegisterDomain,
        Action::Enrol,
        Action::Verify,
        Action::DeleteEnrolment,
    ] {
        let event = AuditEvent {
            time: "2026-11-28T02:20:00Z".into(),
            actor: "ab".repeat(32),
            role: None,
            domain: Some("jabar".into()),
            key_fingerprint: None,
            action,
            subject: None,
            outcome: Outcome::Done,
            refers_to: None,
            reported: None,
        };
        let entry = seal(event, entries.last(), &server);
        entries.push(entry);
    }
    let dir = tempfile::tempdir().unwrap();
    let verify = |path: &Path| {
        tabir()
            .args([
                "audit",
                "verify",
                "--json",
                "--server-key",
                &public,
                "--log",
            ])
            .arg(path)
            .output()
            .unwrap()
    };

    let good = verify(&write_log(dir.path(), &entries));
    assert_eq!(good.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["entries"], 4);

    entries[2].event.outcome = Outcome::Refused("forbidden".into());
    let bad = verify(&write_log(dir.path(), &entries));
    assert_eq!(bad.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert!(
        report["error"].as_str().unwrap().starts_with("entry 3"),
        "{report}"
    );

    let unreadable = tabir()
        .args(["audit", "verify", "--server-key", "zz", "--log"])
        .arg(dir.path().join("audit.json"))
        .output()
        .unwrap();
    assert_eq!(unreadable.status.code(), Some(2));
}
