//! Truncation and forks: an auditor keeps the signed checkpoint `tabir audit export` writes;
//! a later log verifies against it only if it still holds the checkpoint's entry with the same
//! hash. A log whose last entries were deleted, in the export or in the server's database
//! (and then appended to again), is a valid chain on its own, and is caught by the checkpoint.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::{tabir, ServerProcess};

struct Office<'a> {
    dir: &'a Path,
    url: String,
}

impl Office<'_> {
    fn run(&self, args: &[&str]) -> Output {
        tabir()
            .args(args)
            .env("TABIR_PASSPHRASE", "checkpoint test passphrase")
            .env("TABIR_BUNDLE_PASSPHRASE", "checkpoint test passphrase")
            .env("TABIR_KEYS_DIR", self.dir.join("keys"))
            .env("TABIR_SERVER", &self.url)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "tabir {args:?}: exit {:?}\nstdout {}\nstderr {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Register one more device (a few more audit entries).
    fn add_device(&self, label: &str) {
        let out = self.dir.join(label);
        self.ok(&[
            "custody",
            "device",
            "add",
            "--domain",
            "checkpoints",
            "--label",
            label,
            "--out",
            out.to_str().unwrap(),
        ]);
    }

    /// Export the log as the auditor; returns the log's path (its checkpoint is beside it).
    fn export(&self, name: &str) -> PathBuf {
        let out = self.dir.join(name);
        let config = self.dir.join("auditor/tabir.toml");
        self.ok(&[
            "audit",
            "export",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        out
    }

    /// `tabir audit verify --json` with extra arguments: its exit code and report.
    fn verify(&self, log: &Path, server_key: &str, extra: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec![
            "audit",
            "verify",
            "--log",
            log.to_str().unwrap(),
            "--server-key",
            server_key,
            "--json",
        ];
        args.extend_from_slice(extra);
        let output = self.run(&args);
        let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {} {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code().unwrap(), report)
    }
}

fn checkpoint_of(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".checkpoint.json");
    PathBuf::from(name)
}

fn checkpoint_seq(log: &Path) -> u64 {
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(checkpoint_of(log)).unwrap()).unwrap();
    checkpoint["seq"].as_u64().unwrap()
}

fn entries(log: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(log).unwrap()).unwrap()
}

/// Write the entries of `log` that `keep` accepts to `out`.
fn write_filtered(log: &Path, out: &Path, keep: impl Fn(u64) -> bool) {
    let kept: Vec<serde_json::Value> = entries(log)
        .into_iter()
        .filter(|e| keep(e["seq"].as_u64().unwrap()))
        .collect();
    std::fs::write(out, serde_json::to_vec(&kept).unwrap()).unwrap();
}

#[test]
fn checkpoints_catch_truncated_and_rewritten_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let mut server = ServerProcess::start(&data, &[]);
    let office = Office {
        dir: dir.path(),
        url: server.url.clone(),
    };
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, server.token.as_deref().unwrap()).unwrap();
    office.ok(&[
        "custody",
        "bootstrap",
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    office.ok(&["custody", "init", "--domain", "checkpoints"]);
    let auditor = dir.path().join("auditor");
    office.ok(&[
        "custody",
        "device",
        "add",
        "--domain",
        "checkpoints",
        "--label",
        "auditor",
        "--role",
        "auditor",
        "--out",
        auditor.to_str().unwrap(),
    ]);
    let key = server.audit_key.clone();

    // The first export and its checkpoint; the export holds the checkpoint's entry.
    let first = office.export("first.json");
    let kept = checkpoint_of(&first);
    let kept_arg = kept.to_str().unwrap().to_owned();
    let kept_seq = checkpoint_seq(&first);
    // The export and its checkpoint are the owner's only.
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [&first, &kept] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
        }
    }
    let (code, report) = office.verify(&first, &key, &["--checkpoint", &kept_arg]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["extends_checkpoint"], kept_seq);

    // Later, more entries: the new log extends the kept checkpoint...
    office.add_device("counter-1");
    office.add_device("counter-2");
    let second = office.export("second.json");
    assert!(checkpoint_seq(&second) > kept_seq);
    let (code, report) = office.verify(&second, &key, &["--checkpoint", &kept_arg]);
    assert_eq!(code, 0, "{report}");
    // ... and what came since verifies on its own from the checkpoint.
    let since = dir.path().join("since.json");
    write_filtered(&second, &since, |seq| seq > kept_seq);
    let (code, report) = office.verify(&since, &key, &["--from-checkpoint", &kept_arg]);
    assert_eq!(code, 0, "{report}");
    assert!(report["entries"].as_u64().unwrap() > 0);

    // An export with its last entries cut off before the checkpoint's: still a valid chain,
    // but it does not reach the checkpoint.
    let cut = dir.path().join("cut.json");
    write_filtered(&second, &cut, |seq| seq + 3 <= kept_seq);
    let (code, report) = office.verify(&cut, &key, &[]);
    assert_eq!(code, 0, "a prefix of a chain is a valid chain: {report}");
    let (code, report) = office.verify(&cut, &key, &["--checkpoint", &kept_arg]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["valid"], false);

    // The server's database loses its last entries (a restored backup, or an operator
    // hiding something), and the server goes on appending: the same sequence numbers now
    // hold other entries. The new log verifies alone; against the checkpoint it is a fork.
    server.kill();
    let database = rusqlite::Connection::open(data.join("tabir.sqlite3")).unwrap();
    let removed = database
        .execute(
            "DELETE FROM audit WHERE seq > ?1",
            [i64::try_from(kept_seq).unwrap() - 3],
        )
        .unwrap();
    assert!(removed >= 3);
    drop(database);
    let server = ServerProcess::start(&data, &[]);
    let office = Office {
        dir: dir.path(),
        url: server.url.clone(),
    };
    office.add_device("counter-3");
    office.add_device("counter-4");
    let rewritten = office.export("rewritten.json");
    assert!(entries(&rewritten)
        .iter()
        .any(|e| e["seq"].as_u64() == Some(kept_seq)));
    let (code, report) = office.verify(&rewritten, &key, &[]);
    assert_eq!(code, 0, "the rewritten chain is valid on its own: {report}");
    let (code, report) = office.verify(&rewritten, &key, &["--checkpoint", &kept_arg]);
    assert_eq!(code, 1, "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains(&kept_seq.to_string()),
        "{report}"
    );

    // A checkpoint signed by another key is refused as a starting point.
    let forged = dir.path().join("forged.checkpoint.json");
    let mut checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    checkpoint["hash"] = serde_json::json!("00".repeat(32));
    std::fs::write(&forged, serde_json::to_vec(&checkpoint).unwrap()).unwrap();
    let (code, report) = office.verify(
        &since,
        &key,
        &["--from-checkpoint", forged.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{report}");
}
