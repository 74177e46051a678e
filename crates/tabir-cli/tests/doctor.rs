//! `tabir doctor`: a missing ONNX Runtime is a FAIL with a fix (exit 1); against a real
//! `tabir-server` with a device bundle from `tabir custody`, every check is ok (exit 0),
//! without the passphrase; a sealed key readable by others and a server that is gone are
//! caught.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{tabir, ServerProcess};

/// The library scripts/setup-ort.sh puts in the checkout.
fn checkout_runtime() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ort/lib/libonnxruntime.so.1.31.1")
}

/// `tabir doctor ARGS` with none of the device's environment (no passphrase either, and no
/// terminal to prompt on), an empty data folder, and the runtime at `runtime`.
fn doctor(args: &[&str], runtime: &Path, data: &Path) -> Output {
    let mut command: Command = tabir();
    command.arg("doctor").args(args);
    for variable in [
        "TABIR_CONFIG",
        "TABIR_SERVER",
        "TABIR_DOMAIN",
        "TABIR_DEVICE_KEY",
        "TABIR_SHARE",
        "TABIR_PUBLIC_KEY",
        "TABIR_TLS_ROOT",
        "TABIR_ALLOW_HTTP",
        "TABIR_PASSPHRASE",
        "TABIR_MODELS_DIR",
    ] {
        command.env_remove(variable);
    }
    command
        .env("ORT_DYLIB_PATH", runtime)
        .env("XDG_DATA_HOME", data)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The checks of `doctor --json`, by name: (status, finding, fix).
fn checks(output: &Output) -> Vec<(String, String, String, Option<String>)> {
    let value: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)));
    value["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {}", text(output)))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["finding"].as_str().unwrap().to_owned(),
                c["fix"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn status_of<'a>(
    checks: &'a [(String, String, String, Option<String>)],
    name: &str,
) -> &'a (String, String, String, Option<String>) {
    checks
        .iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

#[test]
fn a_missing_runtime_fails_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere/libonnxruntime.so.1.31.1");
    let output = doctor(&[], &missing, &dir.path().join("data"));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("FAIL  runtime: "))
        .unwrap_or_else(|| panic!("no failed runtime line: {}", text(&output)));
    assert!(
        lines[at].contains(missing.to_str().unwrap()),
        "{}",
        lines[at]
    );
    let fix = lines.get(at + 1).copied().unwrap_or_default();
    assert!(fix.starts_with("      fix: "), "{}", text(&output));
    assert!(fix.contains("ORT_DYLIB_PATH"), "{fix}");
    assert!(fix.contains("libonnxruntime.so.1.31.1"), "{fix}");
    // The models are still checked against the manifest, but cannot be loaded.
    assert!(
        lines.iter().any(|l| l.starts_with("warn  models: ")),
        "{}",
        text(&output)
    );
    // No configuration anywhere: the bundle fails with the way to give one.
    let bundle = lines
        .iter()
        .position(|l| l.starts_with("FAIL  bundle: "))
        .unwrap_or_else(|| panic!("no failed bundle line: {}", text(&output)));
    assert_eq!(
        lines.get(bundle + 1).copied(),
        Some(
            "      fix: pass --config or set TABIR_CONFIG (the tabir.toml of this device's bundle)"
        )
    );
    // Five checks, each a line; a fix under each that is not ok.
    let checks = lines.iter().filter(|l| !l.starts_with(' ')).count();
    assert_eq!(checks, 5, "{}", text(&output));
}

struct Custodian<'a> {
    keys: &'a Path,
    server: &'a str,
}

impl Custodian<'_> {
    fn run(&self, args: &[&str]) {
        let output = tabir()
            .args(args)
            .env("TABIR_PASSPHRASE", "doctor test passphrase")
            .env("TABIR_BUNDLE_PASSPHRASE", "doctor test passphrase")
            .env("TABIR_KEYS_DIR", self.keys)
            .env("TABIR_SERVER", self.server)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", text(&output));
    }
}

#[test]
fn a_ready_device_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(&dir.path().join("server"), &[]);
    let custodian = Custodian {
        keys: &dir.path().join("keys"),
        server: &server.url,
    };
    let token = server.token.clone().unwrap();
    custodian.run(&["custody", "bootstrap", "--token", &token]);
    custodian.run(&["custody", "init", "--domain", "doctor-test"]);
    let device = dir.path().join("device");
    custodian.run(&[
        "custody",
        "device",
        "add",
        "--domain",
        "doctor-test",
        "--label",
        "counter 1",
        "--out",
        device.to_str().unwrap(),
    ]);
    let config = device.join("tabir.toml");
    let config = config.to_str().unwrap();
    let runtime = checkout_runtime();
    let data = dir.path().join("data");

    let output = doctor(&["--config", config, "--json"], &runtime, &data);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let found = checks(&output);
    let names: Vec<&str> = found.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["runtime", "models", "bundle", "server", "clock"]);
    for (name, status, finding, fix) in &found {
        assert_eq!(status, "ok", "{name}: {finding} (fix: {fix:?})");
        assert_eq!(fix, &None, "{name}");
    }
    let runtime_finding = &status_of(&found, "runtime").2;
    assert!(
        runtime_finding.contains(runtime.to_str().unwrap()) && runtime_finding.contains("loaded"),
        "{runtime_finding}"
    );
    assert!(status_of(&found, "bundle").2.contains("doctor-test"));
    let server_finding = &status_of(&found, "server").2;
    assert!(
        server_finding.contains(&format!("{}/healthz answered 200", server.url)),
        "{server_finding}"
    );
    assert!(status_of(&found, "clock").2.contains("clock is"));

    // A sealed key readable by others, and the server gone: both caught, exit 1.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let share = device.join("share.sealed");
        std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o644)).unwrap();
        server.kill();
        let output = doctor(&["--config", config, "--json"], &runtime, &data);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let found = checks(&output);
        let (_, status, finding, fix) = status_of(&found, "bundle");
        assert_eq!(status, "fail", "{finding}");
        assert!(finding.contains("0644"), "{finding}");
        assert_eq!(
            fix.as_deref(),
            Some(format!("chmod 600 {}", share.display()).as_str())
        );
        let (_, status, finding, fix) = status_of(&found, "server");
        assert_eq!(status, "fail", "{finding}");
        assert!(fix.as_deref().unwrap().contains("tabir-server"), "{fix:?}");
        assert_eq!(status_of(&found, "clock").1, "warn");
        assert_eq!(status_of(&found, "runtime").1, "ok");
        assert_eq!(status_of(&found, "models").1, "ok");
    }
}
