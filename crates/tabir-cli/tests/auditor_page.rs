//! `tabir audit serve`, the auditor page, against a real `tabir-server` process: a custodian
//! issues a device and an auditor, the device enrols and verifies (a match, a no-match, one
//! over the subject quota, one of a subject never enrolled), then the page is served on a free
//! loopback port and every panel's JSON is checked against what happened: the domain and its
//! fingerprint, both keys with their issue times, the log verifying, the escrow check matching,
//! and today's counts for the device. Then the red paths: a log checked under another key, the
//! server gone, no token, a foreign Host, a wrong passphrase, a non-loopback address.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use support::{image, tabir, ServerProcess};

const NIK: &str = "3201014101900001";
const NEVER_ENROLLED: &str = "3201014101900002";
const PASSPHRASE: &str = "auditor page test passphrase";
const DOMAIN: &str = "page-test";

struct Env<'a> {
    keys: &'a Path,
    server: &'a str,
}

impl Env<'_> {
    fn run(&self, args: &[&str]) -> Output {
        tabir()
            .args(args)
            .env("TABIR_PASSPHRASE", PASSPHRASE)
            .env("TABIR_BUNDLE_PASSPHRASE", PASSPHRASE)
            .env("TABIR_KEYS_DIR", self.keys)
            .env("TABIR_SERVER", self.server)
            .env_remove("TABIR_CONFIG")
            .output()
            .unwrap()
    }
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

fn json(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {text} stderr {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// `tabir audit serve ...` with the auditor's passphrase in the environment.
fn serve_command(config: &Path, passphrase: &str, extra: &[&str]) -> Command {
    let mut command = tabir();
    command
        .args(["audit", "serve", "--config"])
        .arg(config)
        .args(extra)
        .env("TABIR_PASSPHRASE", passphrase)
        .env_remove("TABIR_CONFIG")
        .env_remove("TABIR_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A running `tabir audit serve`, killed when dropped.
struct Page {
    child: Child,
    base: String,
    token: String,
}

impl Page {
    fn start(config: &Path, extra: &[&str]) -> Self {
        let mut child = serve_command(config, PASSPHRASE, extra).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut base = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(url) = line.strip_prefix("auditor page on ") {
                base = Some(url.trim_end_matches('/').to_owned());
                break;
            }
        }
        let Some(base) = base else {
            let _ = child.wait();
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("audit serve printed no address: {stderr}");
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("audit serve: {line}");
            }
        });
        assert!(
            base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"),
            "the bound address, not port 0: {base}"
        );
        let page = ureq::get(&format!("{base}/")).call().unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.content_type().starts_with("text/html"));
        let html = page.into_string().unwrap();
        let token = html
            .split("name=\"tabir-token\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the page carries its token")
            .to_owned();
        assert_eq!(token.len(), 32, "{token}");
        Self { child, base, token }
    }

    fn html(&self) -> String {
        ureq::get(&format!("{}/", self.base))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }

    /// A panel's JSON with the page's token: (status, body).
    fn get(&self, path: &str) -> (u16, Value) {
        answer(
            ureq::get(&format!("{}{path}", self.base))
                .set("x-tabir-auditor", &self.token)
                .call(),
        )
    }

    fn post(&self, path: &str) -> (u16, Value) {
        answer(
            ureq::post(&format!("{}{path}", self.base))
                .set("x-tabir-auditor", &self.token)
                .call(),
        )
    }

    #[track_caller]
    fn panel(&self, name: &str) -> Value {
        let (status, body) = self.get(&format!("/api/{name}"));
        assert_eq!(status, 200, "{name}: {body}");
        body
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{error}"),
    };
    let status = response.status();
    (status, response.into_json().unwrap())
}

/// Run `audit serve` expecting it to refuse to start: (exit code, stderr). It must never print
/// an address (if it does, it is killed and the test fails).
fn serve_refused(config: &Path, passphrase: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut child = serve_command(config, passphrase, extra).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("auditor page on") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("audit serve started: {line}");
        }
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

/// Today's UTC date, YYYY-MM-DD.
fn today() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let z = i64::try_from(seconds / 86_400).unwrap() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A GET with a Host header of our choosing (a rebinding attack sends its own name).
fn get_with_host(base: &str, path: &str, host: &str) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn auditor_page_shows_what_the_log_and_the_escrow_say() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    // Two verifications of one subject a day: the third is a quota hit.
    let mut server = ServerProcess::start(
        &dir.path().join("server"),
        &["--quota-subject-per-day", "2"],
    );
    let env = Env {
        keys: &keys,
        server: &server.url,
    };
    let token = server.token.clone().unwrap();
    ok(env.run(&["custody", "bootstrap", "--token", &token]));
    ok(env.run(&["custody", "init", "--domain", DOMAIN]));
    let device = dir.path().join("device");
    let auditor = dir.path().join("auditor");
    ok(env.run(&[
        "custody",
        "device",
        "add",
        "--domain",
        DOMAIN,
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
        DOMAIN,
        "--label",
        "auditor 1",
        "--role",
        "auditor",
        "--out",
        auditor.to_str().unwrap(),
    ]));
    let status = json(&ok(env.run(&["custody", "status", "--json"])));
    let domain = &status["domains"][0];
    let fingerprint = domain["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 64);
    let issued: Vec<Value> = domain["devices"].as_array().unwrap().clone();
    assert_eq!(issued.len(), 2);
    let issued_to = |label: &str| {
        issued
            .iter()
            .find(|d| d["label"] == label)
            .unwrap_or_else(|| panic!("{label} not issued: {issued:?}"))
            .clone()
    };
    let device_id = issued_to("counter 1")["key_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let config = device.join("tabir.toml");
    let config = config.to_str().unwrap();
    let photo = |name: &str| image(name).to_str().unwrap().to_owned();
    let day_before = today();
    ok(env.run(&[
        "enroll",
        "--config",
        config,
        "--subject",
        NIK,
        &photo("obama.jpg"),
    ]));
    let verify = |subject: &str, name: &str| {
        let output = env.run(&[
            "verify",
            "--config",
            config,
            "--subject",
            subject,
            &photo(name),
            "--json",
        ]);
        (output.status.code(), json(&output))
    };
    let (code, genuine) = verify(NIK, "obama2.jpg");
    assert_eq!(
        (code, &genuine["decision"]),
        (Some(0), &Value::from("match"))
    );
    assert_eq!(genuine["report"]["status"], "reported");
    let (code, impostor) = verify(NIK, "biden.jpg");
    assert_eq!(
        (code, &impostor["decision"]),
        (Some(1), &Value::from("no_match"))
    );
    assert_eq!(impostor["report"]["status"], "reported");
    let (code, over) = verify(NIK, "obama2.jpg");
    assert_eq!(code, Some(2));
    assert_eq!(over["error"]["code"], "quota_exceeded", "{over}");
    let (code, unknown) = verify(NEVER_ENROLLED, "obama2.jpg");
    assert_eq!(code, Some(2));
    assert_eq!(unknown["error"]["code"], "unknown_subject", "{unknown}");

    // Refused before anything is served: a wrong passphrase, an address off this machine.
    let auditor_config = auditor.join("tabir.toml");
    let (code, stderr) = serve_refused(
        &auditor_config,
        "not the auditor's passphrase",
        &["--listen", "127.0.0.1:0"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("wrong passphrase"), "{stderr}");
    let (code, stderr) = serve_refused(&auditor_config, PASSPHRASE, &["--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");

    let page = Page::start(
        &auditor_config,
        &["--listen", "127.0.0.1:0", "--server-key", &server.audit_key],
    );
    let html = page.html();
    for panel in [
        "panel-summary",
        "panel-devices",
        "panel-log",
        "panel-escrow",
        "panel-activity",
        "id=\"refresh\"",
        "/assets/auditor.js",
    ] {
        assert!(html.contains(panel), "{panel} not in the page");
    }
    for asset in ["auditor.js", "auditor.css"] {
        let response = ureq::get(&format!("{}/assets/{asset}", page.base))
            .call()
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(!response.into_string().unwrap().is_empty());
    }
    // The API answers its own page only: no token, or a foreign Host, is refused.
    let (status, body) = answer(ureq::get(&format!("{}/api/summary", page.base)).call());
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &Value::from("bad_token"))
    );
    let foreign = get_with_host(&page.base, "/", "tabir.attacker.example");
    assert!(foreign.starts_with("HTTP/1.1 421"), "{foreign}");

    // Key domains: the bundle's domain with the fingerprint the custodian recorded.
    let summary = page.panel("summary");
    assert_eq!(summary["domain"], DOMAIN);
    assert_eq!(summary["bundle_fingerprint"], fingerprint.as_str());
    let domains = summary["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 1, "{summary}");
    assert_eq!(domains[0]["name"], DOMAIN);
    assert_eq!(domains[0]["fingerprint"], fingerprint.as_str());
    assert_eq!(domains[0]["matches_bundle"], true);
    assert!(domains[0]["params"].as_str().unwrap().starts_with("tfhe-"));
    assert_eq!(summary["server_key"]["pinned"], true);
    assert_eq!(summary["server_key"]["matches_pinned"], true);

    // Devices and shares: both keys, with the issue times the custodian recorded.
    let devices = page.panel("devices");
    let listed = devices["devices"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{devices}");
    for (label, role) in [("counter 1", "device"), ("auditor 1", "auditor")] {
        let expected = issued_to(label);
        let row = listed
            .iter()
            .find(|d| d["label"] == label)
            .unwrap_or_else(|| panic!("{label} not listed: {devices}"));
        assert_eq!(row["role"], role);
        assert_eq!(row["key_id"], expected["key_id"]);
        assert_eq!(row["registered_at"], expected["issued_at"]);
        assert!(row["registered_at"].as_str().unwrap().ends_with('Z'));
        assert!(row["revoked_at"].is_null());
        assert_eq!(row["holds_share"], true);
    }
    let device_row = listed.iter().find(|d| d["label"] == "counter 1").unwrap();
    // Enrol, 2 verifications and their 2 reports, the quota hit, the unknown subject.
    assert_eq!(device_row["log"]["entries"], 7, "{device_row}");
    assert_eq!(devices["check"]["registrations_in_log"], 2);
    assert_eq!(devices["check"]["agrees"], true, "{devices}");

    // The log verifies under the key the server printed at its start.
    let log = page.panel("log");
    assert_eq!(log["valid"], true, "{log}");
    assert!(log["error"].is_null());
    assert!(log["bad_entry"].is_null());
    assert!(log["entries"].as_u64().unwrap() >= 10, "{log}");
    assert_eq!(log["verified_through"], log["last_seq"]);

    // The escrow check: both verifications reported, and as escrowed.
    let escrow = page.panel("escrow");
    assert_eq!(escrow["checked"], 2, "{escrow}");
    assert_eq!(escrow["matching"], 2, "{escrow}");
    assert_eq!(escrow["mismatched"].as_array().unwrap().len(), 0);
    assert_eq!(escrow["unreported"].as_array().unwrap().len(), 0);
    assert_eq!(escrow["missing_escrow"].as_array().unwrap().len(), 0);
    assert_eq!(escrow["clean"], true);

    // The charts' data: the device's counts.
    let activity = page.panel("activity");
    let day_after = today();
    assert_eq!(activity["devices"], serde_json::json!([device_id]));
    let rows: Vec<&Value> = activity["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["device"] == device_id.as_str())
        .collect();
    let sum = |field: &str| -> u64 { rows.iter().map(|r| r[field].as_u64().unwrap()).sum() };
    let expected = [
        ("verifications", 2),
        ("identifications", 0),
        ("refusals", 1),
        ("quota_hits", 1),
    ];
    if day_before == day_after {
        // Everything happened today (UTC): one row, today's.
        assert_eq!(rows.len(), 1, "{activity}");
        assert_eq!(rows[0]["day"], day_after.as_str());
        assert!(activity["days"]
            .as_array()
            .unwrap()
            .contains(&Value::from(day_after.as_str())));
        for (field, count) in expected {
            assert_eq!(rows[0][field], count, "{field}: {activity}");
        }
    } else {
        // The test ran across midnight UTC: the days' counts add up.
        for (field, count) in expected {
            assert_eq!(sum(field), count, "{field}: {activity}");
        }
    }

    // Nothing secret or biometric in the page or its answers.
    let everything = format!("{html}{summary}{devices}{log}{escrow}{activity}");
    for secret in [PASSPHRASE, NIK, NEVER_ENROLLED, "\"subject\""] {
        assert!(!everything.contains(secret), "{secret} in the page");
    }

    // Checked under another key, the log fails at its first entry, in red, and the escrow
    // check refuses to run on it.
    let other_key = tabir_proto::hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .as_bytes(),
    );
    let wrong = Page::start(
        &auditor_config,
        &["--listen", "127.0.0.1:0", "--server-key", &other_key],
    );
    let log = wrong.panel("log");
    assert_eq!(log["valid"], false, "{log}");
    assert_eq!(log["bad_entry"], 1, "{log}");
    assert!(log["error"].as_str().unwrap().contains("entry 1"), "{log}");
    assert_eq!(log["server_key"]["matches_pinned"], false);
    let (status, escrow) = wrong.get("/api/escrow");
    assert_eq!(status, 409, "{escrow}");
    assert_eq!(escrow["error"]["code"], "log_invalid", "{escrow}");
    drop(wrong);

    // The server gone: a refresh says so on every panel.
    server.kill();
    let (status, refreshed) = page.post("/api/refresh");
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["reached_server"], false);
    for panel in ["summary", "devices", "log", "escrow", "activity"] {
        let (status, body) = page.get(&format!("/api/{panel}"));
        assert_eq!(status, 502, "{panel}: {body}");
        assert_eq!(
            body["error"]["code"], "server_unreachable",
            "{panel}: {body}"
        );
    }
    drop(page);
}
