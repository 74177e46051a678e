//! `tabir-server` as a separate process on PostgreSQL (one per replica), for the tests that
//! need real replicas rather than two servers in one test process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    pub audit_key: String,
}

impl ServerProcess {
    /// Start a replica with its own `--data` folder on the schema `schema` of `database_url`,
    /// with the master key `master_key_hex` (as TABIR_MASTER_KEY) and the custodian key given
    /// by flag; wait for its banner and its health.
    pub fn start(
        data: &Path,
        database_url: &str,
        schema: &str,
        master_key_hex: &str,
        custodian_hex: &str,
    ) -> Self {
        Self::start_with(
            data,
            database_url,
            schema,
            master_key_hex,
            custodian_hex,
            &[],
        )
    }

    /// [`ServerProcess::start`] with more command-line arguments after the usual ones (e.g.
    /// `["--nats-url", url, "--search-workers", "1"]`).
    pub fn start_with(
        data: &Path,
        database_url: &str,
        schema: &str,
        master_key_hex: &str,
        custodian_hex: &str,
        extra_args: &[&str],
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tabir-server"))
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--database-url", database_url])
            .args(["--database-schema", schema])
            .args(["--custodian-key", custodian_hex])
            .args(extra_args)
            .env("TABIR_MASTER_KEY", master_key_hex)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut audit_key) = (None, None);
        // "audit public key" is the banner's last line; a server that exits ends the lines.
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("listening on ") {
                url = Some(rest.to_owned());
            } else if let Some(rest) = line.strip_prefix("audit public key: ") {
                audit_key = Some(rest.to_owned());
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let server = Self {
            child,
            url: url.expect("the server printed no address"),
            audit_key: audit_key.expect("the server printed no audit key"),
        };
        super::wait_healthy_blocking(&server.url);
        server
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
