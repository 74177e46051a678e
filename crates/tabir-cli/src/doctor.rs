//! `tabir doctor`: is this office PC ready? Checks ONNX Runtime, the face models, the device
//! bundle, the server and the clock, and says for each problem what to do about it. It never
//! asks for the passphrase: the sealed key files are checked for presence, permissions and
//! format header only, never opened.
//!
//! Exit status: 0 when no check FAILs (warnings allowed), 1 otherwise.

use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tabir_client::custody::{read_public_key, PURPOSE_DECRYPTION_SHARE, PURPOSE_SIGNING_KEY};
use tabir_client::ClientConfig;
use tabir_face::runtime::{
    self, describe_search, init_runtime, Candidate, Model, SearchPaths, RUNTIME_ENV,
    RUNTIME_LIBRARY_FILE,
};
use tabir_face::{FaceError, FacePipeline, PipelineConfig};
use tabir_proto::signing::FRESHNESS_WINDOW_SECS;

#[derive(Args)]
pub struct DoctorArgs {
    /// The device's configuration (tabir.toml from `tabir custody device add`); the
    /// environment (TABIR_SERVER, TABIR_DOMAIN, TABIR_DEVICE_KEY, ...) overrides it, as for
    /// `tabir verify`.
    #[arg(long, value_name = "FILE", env = "TABIR_CONFIG")]
    config: Option<PathBuf>,
    /// Print one JSON object: {"ok", "checks": [{"name", "status", "finding", "fix"}]}.
    #[arg(long)]
    json: bool,
    /// Check this ONNX Runtime library instead of searching for it.
    #[arg(long, value_name = "FILE")]
    runtime: Option<PathBuf>,
    /// Check this models folder instead of searching for it.
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,
}

/// How long the server has to answer /healthz.
const SERVER_TIMEOUT: Duration = Duration::from_secs(3);
/// Format header of a sealed key file (see tabir_client::sealed): magic, purpose length,
/// purpose.
const SEALED_MAGIC: &[u8] = b"TABIRSEAL1";
/// No sealed key file of a bundle is larger (tabir_client::sealed reads at most this much).
const MAX_SEALED_BYTES: u64 = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug)]
struct Check {
    name: &'static str,
    status: Status,
    finding: String,
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, finding: String) -> Self {
        Self {
            name,
            status: Status::Ok,
            finding,
            fix: None,
        }
    }

    fn problem(name: &'static str, status: Status, finding: String, fix: String) -> Self {
        Self {
            name,
            status,
            finding,
            fix: Some(fix),
        }
    }
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let search = SearchPaths::from_process();
    let (runtime_check, library) = check_runtime(&search, args.runtime.as_deref());
    let models_check = check_models(&search, args.models.as_deref(), library.as_deref());
    let (bundle_check, config) = check_bundle(args.config.as_deref());
    let server = config
        .as_ref()
        .map(|c| c.server.clone())
        .or_else(|| std::env::var("TABIR_SERVER").ok().filter(|s| !s.is_empty()));
    let tls_root = config
        .as_ref()
        .and_then(|c| c.tls_root_pem().ok().flatten());
    let (server_check, clock_check) = check_server_and_clock(server.as_deref(), tls_root);
    let checks = [
        runtime_check,
        models_check,
        bundle_check,
        server_check,
        clock_check,
    ];
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    if args.json {
        let list: Vec<_> = checks
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "status": c.status.word().to_ascii_lowercase(),
                    "finding": c.finding,
                    "fix": c.fix,
                })
            })
            .collect();
        println!("{}", json!({"ok": !failed, "checks": list}));
    } else {
        for check in &checks {
            println!(
                "{:<4}  {}: {}",
                check.status.word(),
                check.name,
                check.finding
            );
            if let Some(fix) = &check.fix {
                println!("      fix: {fix}");
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// "next to the tabir binary (/opt/tabir) or into ~/.local/share/tabir": where an operator
/// can put a file, from what the search looks at.
fn places(search: &SearchPaths, sub: &str) -> String {
    let inside = |dir: &Path| {
        if sub.is_empty() {
            dir.display().to_string()
        } else {
            dir.join(sub).display().to_string()
        }
    };
    let mut places = Vec::new();
    if let Some(exe) = &search.exe_dir {
        places.push(format!("next to the tabir binary ({})", inside(exe)));
    }
    if let Some(data) = &search.data_dir {
        places.push(format!("into {}", inside(data)));
    }
    if places.is_empty() {
        places.push("next to the tabir binary".into());
    }
    places.join(" or ")
}

/// Where ONNX Runtime is, and that it loads. Returns the library when it loaded.
fn check_runtime(search: &SearchPaths, given: Option<&Path>) -> (Check, Option<PathBuf>) {
    const NAME: &str = "runtime";
    let (library, origin) = match given {
        Some(path) => (path.to_path_buf(), "--runtime"),
        None => {
            let candidates = search.runtime_candidates();
            match candidates.iter().find(|c| c.found) {
                Some(c) => (c.path.clone(), c.origin),
                None => return (runtime_not_found(search, &candidates), None),
            }
        }
    };
    match init_runtime(&library) {
        Ok(()) => (
            Check::ok(NAME, format!("{} ({origin}), loaded", library.display())),
            Some(library),
        ),
        Err(error) => {
            let detail = match error {
                FaceError::RuntimeUnavailable { detail } => detail,
                other => other.to_string(),
            };
            (
                Check::problem(
                    NAME,
                    Status::Fail,
                    format!("{} ({origin}) does not load: {detail}", library.display()),
                    format!(
                        "replace it with ONNX Runtime 1.31.1 for this system ({RUNTIME_LIBRARY_FILE}, as in the release)"
                    ),
                ),
                None,
            )
        }
    }
}

fn runtime_not_found(search: &SearchPaths, candidates: &[Candidate]) -> Check {
    const NAME: &str = "runtime";
    if let Some(named) = &search.runtime_override {
        return Check::problem(
            NAME,
            Status::Fail,
            format!(
                "{RUNTIME_ENV}={} names no {RUNTIME_LIBRARY_FILE}",
                named.display()
            ),
            format!(
                "point {RUNTIME_ENV} at {RUNTIME_LIBRARY_FILE}, or unset it and copy the library {}",
                places(search, "")
            ),
        );
    }
    Check::problem(
        NAME,
        Status::Fail,
        format!(
            "ONNX Runtime not found; looked at {}",
            describe_search(candidates)
        ),
        format!(
            "copy {RUNTIME_LIBRARY_FILE} {}, or set {RUNTIME_ENV} to its path",
            places(search, "")
        ),
    )
}

/// The models folder, and that both models match the manifest and load.
fn check_models(search: &SearchPaths, given: Option<&Path>, library: Option<&Path>) -> Check {
    const NAME: &str = "models";
    let files = runtime::model_files().join(", ");
    let (dir, origin) = match given {
        Some(dir) => (dir.to_path_buf(), "--models"),
        None => {
            let candidates = search.models_candidates();
            match candidates.iter().find(|c| c.found) {
                Some(c) => (c.path.clone(), c.origin),
                None => {
                    let fix = match &search.models_override {
                        Some(named) => format!(
                            "copy the release's models/ folder ({files}) to {}, or unset {} and copy it {}",
                            named.display(),
                            runtime::MODELS_ENV,
                            places(search, "models")
                        ),
                        None => format!(
                            "copy the release's models/ folder ({files}) {}, or set {} to its path",
                            places(search, "models"),
                            runtime::MODELS_ENV
                        ),
                    };
                    return Check::problem(
                        NAME,
                        Status::Fail,
                        format!(
                            "no models folder found; looked at {}",
                            describe_search(&candidates)
                        ),
                        fix,
                    );
                }
            }
        }
    };
    let place = format!("{} ({origin})", dir.display());
    let invalid: Vec<String> = [Model::Detector, Model::Embedder]
        .into_iter()
        .filter_map(|model| runtime::check_model_file(&dir, model).err())
        .map(|e| e.to_string())
        .collect();
    if !invalid.is_empty() {
        return Check::problem(
            NAME,
            Status::Fail,
            format!("{place}: {}", invalid.join("; ")),
            format!(
                "copy the release's models/ folder ({files}) over {}",
                dir.display()
            ),
        );
    }
    let Some(library) = library else {
        return Check::problem(
            NAME,
            Status::Warn,
            format!("{place}: yunet and sface match the manifest; not loaded, as ONNX Runtime is unavailable"),
            "fix the runtime, then run tabir doctor again".into(),
        );
    };
    let config = PipelineConfig {
        runtime_library: library.to_path_buf(),
        models_dir: dir.clone(),
        threads: 1,
        ..PipelineConfig::default()
    };
    match FacePipeline::load(&config) {
        Ok(_) => Check::ok(
            NAME,
            format!("{place}: yunet and sface match the manifest and load"),
        ),
        Err(error) => Check::problem(
            NAME,
            Status::Fail,
            format!("{place}: {error}"),
            format!(
                "use the models/ folder and ONNX Runtime ({RUNTIME_LIBRARY_FILE}) of this tabir release"
            ),
        ),
    }
}

/// The device configuration and the files it names. Returns the configuration when it loads
/// (for the server check), whatever the files' state.
fn check_bundle(path: Option<&Path>) -> (Check, Option<ClientConfig>) {
    const NAME: &str = "bundle";
    const REISSUE: &str =
        "ask the custodian for this device's bundle (`tabir custody device add`) and copy it whole";
    if let Some(path) = path {
        if !path.is_file() {
            return (
                Check::problem(
                    NAME,
                    Status::Fail,
                    format!("{} does not exist", path.display()),
                    "pass --config or set TABIR_CONFIG to the tabir.toml of this device's bundle"
                        .into(),
                ),
                None,
            );
        }
    }
    let config = match ClientConfig::load(path) {
        Ok(config) => config,
        Err(error) if path.is_none() => {
            // Only the environment: say what it lacks when some of it is set.
            let partial = ["TABIR_SERVER", "TABIR_DOMAIN", "TABIR_DEVICE_KEY"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
            let detail = if partial {
                format!(" ({error})")
            } else {
                String::new()
            };
            return (
                Check::problem(
                    NAME,
                    Status::Fail,
                    format!("no device configuration: no --config, no TABIR_CONFIG{detail}"),
                    "pass --config or set TABIR_CONFIG (the tabir.toml of this device's bundle)"
                        .into(),
                ),
                None,
            );
        }
        Err(error) => {
            return (
                Check::problem(NAME, Status::Fail, error.to_string(), REISSUE.into()),
                None,
            )
        }
    };
    let mut issues: Vec<(String, String)> = Vec::new();
    sealed_file(
        &config.device_key,
        PURPOSE_SIGNING_KEY,
        "device key",
        &mut issues,
    );
    match &config.share {
        Some(share) => sealed_file(share, PURPOSE_DECRYPTION_SHARE, "share", &mut issues),
        None => issues.push((
            "no share in the configuration: not an office device bundle".into(),
            REISSUE.into(),
        )),
    }
    match &config.public_key {
        Some(public) => match read_public_key(public) {
            Ok(key) => {
                let fingerprint = key.fingerprint().to_hex();
                if let Some(expected) = &config.fingerprint {
                    if *expected != fingerprint {
                        issues.push((
                            format!("{} belongs to key domain {fingerprint}, the configuration names {expected}", public.display()),
                            REISSUE.into(),
                        ));
                    }
                }
            }
            Err(error) => issues.push((error.to_string(), REISSUE.into())),
        },
        None => issues.push((
            "no public_key in the configuration: not an office device bundle".into(),
            REISSUE.into(),
        )),
    }
    if let Some(root) = &config.tls_root {
        match std::fs::read(root) {
            Ok(pem) if pem.windows(10).any(|w| w == b"-----BEGIN") => {}
            Ok(_) => issues.push((
                format!("tls_root {} is not a PEM certificate", root.display()),
                "set tls_root to the server's CA certificate (PEM) from the custodian".into(),
            )),
            Err(error) => issues.push((
                format!("tls_root {}: {error}", root.display()),
                "copy the server's CA certificate (PEM) from the custodian to that path".into(),
            )),
        }
    }
    if let Some(issue) = server_url_issue(&config.server, config.allow_http) {
        issues.push(issue);
    }
    if issues.is_empty() {
        let overridden = ["TABIR_SERVER", "TABIR_DOMAIN", "TABIR_DEVICE_KEY"]
            .into_iter()
            .filter(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
            .collect::<Vec<_>>();
        let overridden = if overridden.is_empty() {
            String::new()
        } else {
            format!(" ({} set in the environment)", overridden.join(", "))
        };
        let source = path.map_or("the environment".into(), |p| p.display().to_string());
        let check = Check::ok(
            NAME,
            format!(
                "{source}: domain {}, server {}{overridden}; device key, share and public key present, sealed keys 0600",
                config.domain, config.server
            ),
        );
        return (check, Some(config));
    }
    let (findings, fixes): (Vec<_>, Vec<_>) = issues.into_iter().unzip();
    let mut fixes_unique: Vec<String> = Vec::new();
    for fix in fixes {
        if !fixes_unique.contains(&fix) {
            fixes_unique.push(fix);
        }
    }
    (
        Check::problem(
            NAME,
            Status::Fail,
            findings.join("; "),
            fixes_unique.join("; "),
        ),
        Some(config),
    )
}

/// Whether `server` is a URL the client accepts (the same rule as tabir_client's transport).
fn server_url_issue(server: &str, allow_http: bool) -> Option<(String, String)> {
    let fix =
        "set server in tabir.toml (or TABIR_SERVER) to the https:// address of the Tabir server";
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        return Some((
            format!("the server {server:?} is not an http(s) URL"),
            fix.into(),
        ));
    }
    if server.starts_with("http://") && !allow_http && !is_loopback(server) {
        return Some((
            format!("the server {server} is plain http to another machine; the client refuses it"),
            format!("{fix}, or set allow_http = true (TABIR_ALLOW_HTTP=1) if a protected network carries it"),
        ));
    }
    None
}

/// Whether an `http://` URL points at this machine.
fn is_loopback(url: &str) -> bool {
    let rest = url.trim_start_matches("http://");
    let host = match rest.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => rest.split(['/', ':']).next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A sealed key file: present, 0600, and a sealed file of the right purpose (never opened).
fn sealed_file(path: &Path, purpose: &str, what: &str, issues: &mut Vec<(String, String)>) {
    let shown = path.display();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => {
            issues.push((
                format!("the {what} {shown} is not a file"),
                "copy the device bundle whole, next to its tabir.toml".into(),
            ));
            return;
        }
        Err(error) => {
            issues.push((
                format!("the {what} {shown}: {error}"),
                "copy the device bundle whole, next to its tabir.toml".into(),
            ));
            return;
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            issues.push((
                format!("the {what} {shown} has permissions {mode:04o}; sealed keys must be 0600"),
                format!("chmod 600 {shown}"),
            ));
        }
    }
    let header = if metadata.len() > MAX_SEALED_BYTES {
        Err("too large".to_owned())
    } else {
        std::fs::read(path).map_err(|e| e.to_string())
    };
    let problem = match header {
        Err(error) => Some(error),
        Ok(bytes) => sealed_header_problem(&bytes, purpose),
    };
    if let Some(problem) = problem {
        issues.push((
            format!("the {what} {shown} {problem}"),
            "copy the device bundle whole again from the custodian's copy".into(),
        ));
    }
}

/// What is wrong with a sealed file's format header, if anything: its magic and purpose.
fn sealed_header_problem(bytes: &[u8], purpose: &str) -> Option<String> {
    let Some(rest) = bytes.strip_prefix(SEALED_MAGIC) else {
        return Some("is not a Tabir sealed file".into());
    };
    let found = rest
        .split_first()
        .and_then(|(&len, rest)| rest.get(..usize::from(len)));
    match found {
        Some(found) if found == purpose.as_bytes() => None,
        Some(found) => Some(format!(
            "holds a {}, not a {purpose}",
            String::from_utf8_lossy(found)
        )),
        None => Some("is cut short".into()),
    }
}

/// What /healthz answered.
struct Answer {
    status: u16,
    latency: Duration,
    /// The `Date` header.
    date: Option<String>,
    /// Local time half-way through the exchange, seconds since the epoch.
    local_mid: f64,
}

async fn probe(url: &str, tls_root: Option<Vec<u8>>) -> Result<Answer, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(SERVER_TIMEOUT)
        .timeout(SERVER_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(certificate) = tls_root
        .as_deref()
        .and_then(|pem| reqwest::Certificate::from_pem(pem).ok())
    {
        builder = builder.add_root_certificate(certificate);
    }
    let client = builder.build()?;
    let sent = SystemTime::now();
    let started = Instant::now();
    let response = client.get(url).send().await?;
    let latency = started.elapsed();
    let date = response
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let local_mid = seconds(sent) + latency.as_secs_f64() / 2.0;
    Ok(Answer {
        status: response.status().as_u16(),
        latency,
        date,
        local_mid,
    })
}

fn seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An error and its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The innermost cause of an error ("Connection refused (os error 111)").
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn check_server_and_clock(server: Option<&str>, tls_root: Option<Vec<u8>>) -> (Check, Check) {
    let skipped = |why: &str| {
        Check::problem(
            "clock",
            Status::Warn,
            format!("not checked: {why}"),
            "fix the server check, then run tabir doctor again".into(),
        )
    };
    let Some(server) = server else {
        return (
            Check::problem(
                "server",
                Status::Fail,
                "no server URL (the device configuration did not load)".into(),
                "pass --config or set TABIR_CONFIG (or TABIR_SERVER)".into(),
            ),
            skipped("no server to ask"),
        );
    };
    let url = format!(
        "{}{}",
        server.trim_end_matches('/'),
        tabir_proto::routes::HEALTH
    );
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (e.to_string(), "run tabir doctor again".to_owned()))
        .and_then(|rt| {
            rt.block_on(probe(&url, tls_root))
                .map_err(|e| describe_request_error(&e))
        });
    let answer = match answer {
        Ok(answer) => answer,
        Err((finding, fix)) => {
            return (
                Check::problem("server", Status::Fail, format!("{url}: {finding}"), fix),
                skipped("the server did not answer"),
            )
        }
    };
    let ms = answer.latency.as_secs_f64() * 1e3;
    let server_check = match answer.status {
        200 => Check::ok("server", format!("{url} answered 200 in {ms:.0} ms")),
        503 => Check::problem(
            "server",
            Status::Fail,
            format!("{url} answered 503 in {ms:.0} ms: the server runs but its database does not answer"),
            "tell the server's operator (the server's log says why; docs/operations.md, Health and metrics)".into(),
        ),
        other => Check::problem(
            "server",
            Status::Fail,
            format!("{url} answered {other}: not a Tabir server's health check"),
            "check the server URL (server in tabir.toml, or TABIR_SERVER)".into(),
        ),
    };
    (
        server_check,
        check_clock(answer.date.as_deref(), answer.local_mid),
    )
}

fn describe_request_error(error: &reqwest::Error) -> (String, String) {
    let reach = "check that tabir-server runs there and that this PC reaches it (network, firewall, proxy); the address is server in tabir.toml or TABIR_SERVER".to_owned();
    if error.is_timeout() {
        return (
            format!("no answer within {} s", SERVER_TIMEOUT.as_secs()),
            reach,
        );
    }
    let detail = error_chain(error);
    let lower = detail.to_ascii_lowercase();
    if error.is_connect() && !lower.contains("certificate") {
        return (format!("cannot connect ({})", root_cause(error)), reach);
    }
    if lower.contains("certificate") || lower.contains("tls") {
        return (
            detail,
            "the server's certificate is not trusted: set tls_root in tabir.toml to its CA certificate (from the custodian), and check this PC's date".into(),
        );
    }
    if error.is_builder() {
        return (
            detail,
            "set server in tabir.toml (or TABIR_SERVER) to the https:// address of the Tabir server"
                .into(),
        );
    }
    (detail, reach)
}

/// Seconds since the epoch of an HTTP date in the IMF-fixdate form servers send
/// ("Sun, 06 Nov 1994 08:49:37 GMT").
fn parse_http_date(text: &str) -> Option<u64> {
    let (_, rest) = text.trim().split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3_600 + m * 60 + s)
}

/// How far this PC's clock is from the server's, from the answer's Date header.
fn check_clock(date: Option<&str>, local_mid: f64) -> Check {
    const NAME: &str = "clock";
    let window = FRESHNESS_WINDOW_SECS;
    let fix = format!(
        "set this PC's clock right (turn on automatic time / NTP); if it is right, the server's clock is off: tell its operator. Requests more than {window} s off are refused"
    );
    let Some(date) = date else {
        return Check::problem(
            NAME,
            Status::Warn,
            "the server sent no Date header; the clock skew is unknown".into(),
            format!("check this PC's clock against a time source: requests more than {window} s off are refused"),
        );
    };
    let Some(server) = parse_http_date(date) else {
        return Check::problem(
            NAME,
            Status::Warn,
            format!("the server's Date header {date:?} cannot be read; the clock skew is unknown"),
            format!("check this PC's clock against a time source: requests more than {window} s off are refused"),
        );
    };
    // Date has a resolution of one second (the server's time lies in [date, date + 1)).
    let skew = server as f64 + 0.5 - local_mid;
    let (status, finding) = describe_skew(skew, window);
    match status {
        Status::Ok => Check::ok(NAME, finding),
        status => Check::problem(NAME, status, finding, fix),
    }
}

/// The status and words for a skew of `skew` seconds (server minus this PC): ok within half the
/// freshness window, a warning up to it, a failure beyond it.
fn describe_skew(skew: f64, window: u64) -> (Status, String) {
    let off = skew.abs();
    let side = if skew > 0.0 { "behind" } else { "ahead of" };
    let how_far = if off < 1.5 {
        "within 1 s of the server's".to_owned()
    } else {
        format!("{off:.0} s {side} the server's")
    };
    let window_f = window as f64;
    if off > window_f {
        (
            Status::Fail,
            format!("this PC's clock is {how_far}: the server refuses its requests as stale (more than {window} s off)"),
        )
    } else if off > window_f / 2.0 {
        (
            Status::Warn,
            format!("this PC's clock is {how_far}, over half the {window} s the server allows"),
        )
    } else {
        (
            Status::Ok,
            format!("this PC's clock is {how_far} (the server allows {window} s)"),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn skew_is_ok_then_warned_then_failed() {
        assert_eq!(describe_skew(0.2, 300).0, Status::Ok);
        assert!(describe_skew(0.2, 300).1.contains("within 1 s"));
        assert_eq!(describe_skew(-150.0, 300).0, Status::Ok);
        let (status, words) = describe_skew(151.0, 300);
        assert_eq!(status, Status::Warn);
        assert!(words.contains("151 s behind"), "{words}");
        let (status, words) = describe_skew(-301.0, 300);
        assert_eq!(status, Status::Fail);
        assert!(words.contains("301 s ahead of"), "{words}");
        // From a Date header: this PC 400 s ahead fails, 10 s behind is fine.
        let check = check_clock(Some("Thu, 01 Jan 1970 00:16:40 GMT"), 1400.0);
        assert_eq!(check.status, Status::Fail);
        assert!(check.fix.unwrap().contains("NTP"));
        let check = check_clock(Some("Thu, 01 Jan 1970 00:16:40 GMT"), 990.5);
        assert_eq!(check.status, Status::Ok, "{}", check.finding);
        assert_eq!(check_clock(None, 0.0).status, Status::Warn);
    }

    #[test]
    fn sealed_headers_are_read_without_the_passphrase() {
        let mut sealed = b"TABIRSEAL1".to_vec();
        sealed.push(11);
        sealed.extend_from_slice(b"signing-key");
        sealed.extend_from_slice(&[0; 40]);
        assert_eq!(sealed_header_problem(&sealed, "signing-key"), None);
        assert_eq!(
            sealed_header_problem(&sealed, "decryption-share").as_deref(),
            Some("holds a signing-key, not a decryption-share")
        );
        assert_eq!(
            sealed_header_problem(b"-----BEGIN", "signing-key").as_deref(),
            Some("is not a Tabir sealed file")
        );
        assert_eq!(
            sealed_header_problem(b"TABIRSEAL1\x20sig", "signing-key").as_deref(),
            Some("is cut short")
        );
    }

    #[test]
    fn server_urls_follow_the_client_rule() {
        assert!(server_url_issue("https://tabir.example", false).is_none());
        assert!(server_url_issue("http://127.0.0.1:8080", false).is_none());
        assert!(server_url_issue("http://[::1]:8080", false).is_none());
        assert!(server_url_issue("http://localhost", false).is_none());
        assert!(server_url_issue("http://10.0.0.5:8080", true).is_none());
        let (finding, fix) = server_url_issue("http://10.0.0.5:8080", false).unwrap();
        assert!(finding.contains("plain http"));
        assert!(fix.contains("allow_http"));
        assert!(server_url_issue("tabir.example", false).is_some());
    }
}
