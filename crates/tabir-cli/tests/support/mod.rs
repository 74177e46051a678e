//! A `tabir-server` process for the CLI tests: started on 127.0.0.1:0, its printed address,
//! token and audit key read from stdout, killed when dropped. The server is its own binary
//! (another package): `cargo test --workspace` builds it beside this test's binary.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, dead_code)]

pub mod fake_camera;
pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn tabir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tabir"))
}

pub fn image(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/images")
        .join(name)
}

/// The `tabir-server` binary of this build (target/<profile>/tabir-server).
pub fn tabir_server() -> Command {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/tabir-server
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join(format!("tabir-server{}", std::env::consts::EXE_SUFFIX)))
        .unwrap();
    assert!(
        binary.exists(),
        "{} is missing: build it first (`cargo build -p tabir-server`, or run `cargo test --workspace`)",
        binary.display()
    );
    Command::new(binary)
}

/// Where a test server's master key lives: beside its data folder, never inside it.
pub fn master_key_path(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".master.key");
    PathBuf::from(name)
}

pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    pub token: Option<String>,
    pub audit_key: String,
}

impl ServerProcess {
    /// Start `tabir-server --data DIR --master-key DIR.master.key --listen 127.0.0.1:0
    /// EXTRA...` and wait for its banner.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        Self::start_logging(data, extra, "warn", None)
    }

    /// As [`ServerProcess::start`], logging at `level` (`RUST_LOG`) to the file `log`, or to
    /// the test's stderr.
    pub fn start_logging(data: &Path, extra: &[&str], level: &str, log: Option<&Path>) -> Self {
        Self::start_at(data, "127.0.0.1:0", extra, level, log)
    }

    /// As [`ServerProcess::start_logging`], listening on `listen` (a fixed address lets a
    /// test restart the server where its clients expect it).
    pub fn start_at(
        data: &Path,
        listen: &str,
        extra: &[&str],
        level: &str,
        log: Option<&Path>,
    ) -> Self {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = tabir_server()
            .arg("--data")
            .arg(data)
            .arg("--master-key")
            .arg(master_key_path(data))
            .args(["--listen", listen])
            .args(extra)
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut url = None;
        let mut token = None;
        let mut audit_key = None;
        // The banner: maybe "bootstrap token file" (the token itself is never printed), then
        // "listening on", and "audit public key" last. A server that exits ends the lines.
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("listening on ") {
                url = Some(rest.to_owned());
            } else if let Some(rest) = line.strip_prefix("audit public key: ") {
                audit_key = Some(rest.to_owned());
                break;
            } else if let Some(rest) = line.strip_prefix("bootstrap token file: ") {
                token = Some(std::fs::read_to_string(rest).unwrap().trim().to_owned());
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let url = url.expect("the server printed no address");
        wait_healthy(&url);
        Self {
            child,
            url,
            token,
            audit_key: audit_key.expect("the server printed no audit key"),
        }
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Poll /healthz (a raw HTTP/1.1 GET; no sleeps in place of readiness).
pub fn wait_healthy(url: &str) {
    let address = url.trim_start_matches("http://");
    for _ in 0..500 {
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            use std::io::{Read, Write};
            let _ = write!(
                stream,
                "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            );
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the server at {url} never became healthy");
}

/// GET a path without a signature (health, metrics), body as text.
pub fn get_text(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
