//! The operator's commands at the counter: `tabir enroll`, `verify`, `identify`, `delete`.
//! Exit status: 0 done (for verify and identify: match), 1 no match, 2 an error.

use crate::face::PipelineArgs;
use crate::secrets::{passphrase, PASSPHRASE_ENV};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tabir_client::office::{ReportStatus, Timings, VerifyOutcome, WireBytes};
use tabir_client::{ClientConfig, ClientError, OfficeClient};
use tabir_crypto::Decision;
use tabir_proto::SubjectId;

#[derive(Args)]
pub struct DeviceArgs {
    /// The device's configuration (tabir.toml from `tabir custody device add`); the
    /// environment (TABIR_SERVER, TABIR_DOMAIN, TABIR_DEVICE_KEY, TABIR_SECRET_KEY) overrides it.
    #[arg(long, value_name = "FILE", env = "TABIR_CONFIG")]
    config: Option<PathBuf>,
    /// Print one JSON object instead of sentences.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

#[derive(Args)]
pub struct SubjectPhoto {
    /// The subject's NIK (16 digits).
    #[arg(long, value_name = "NIK")]
    subject: String,
    /// The photo taken at the counter (JPEG or PNG).
    image: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
pub struct PhotoOnly {
    /// The photo taken at the counter (JPEG or PNG).
    image: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
pub struct SubjectOnly {
    /// The subject's NIK (16 digits).
    #[arg(long, value_name = "NIK")]
    subject: String,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["image", "job", "cancel"])))]
pub struct IdentifyArgs {
    /// The photo taken at the counter (JPEG or PNG): submit a search of the whole domain and
    /// wait for it with a progress bar (it runs on the server as a job, in shards).
    image: Option<PathBuf>,
    /// Submit, print the job id and return at once; follow it later with --job.
    #[arg(long, requires = "image")]
    detach: bool,
    /// Follow a job submitted earlier (from this device) until it ends, then read its result.
    #[arg(long, value_name = "JOB_ID", conflicts_with = "image")]
    job: Option<String>,
    /// Cancel a running job of this device.
    #[arg(long, value_name = "JOB_ID", conflicts_with_all = ["image", "job"])]
    cancel: Option<String>,
    #[command(flatten)]
    device: DeviceArgs,
}

pub enum Operation {
    Enroll(SubjectPhoto),
    Verify(SubjectPhoto),
    Delete(SubjectOnly),
}

/// A failure, printed as a sentence or as `{"error": {...}}`; exit status 2.
fn report_error(as_json: bool, kind: &str, code: &str, message: &str) -> ExitCode {
    if as_json {
        println!(
            "{}",
            json!({"error": {"kind": kind, "code": code, "message": message}})
        );
    } else {
        eprintln!("tabir: {message}");
    }
    ExitCode::from(2)
}

fn client_error(as_json: bool, error: &ClientError) -> ExitCode {
    report_error(as_json, error.kind(), &error.code(), &error.to_string())
}

fn decision_name(decision: Decision) -> &'static str {
    if decision.is_match() {
        "match"
    } else {
        "no_match"
    }
}

fn timings_json(t: &Timings) -> serde_json::Value {
    json!({
        "face": round(t.face_ms), "encrypt": round(t.encrypt_ms), "server": round(t.server_ms),
        "decrypt": round(t.decrypt_ms), "total": round(t.total_ms),
    })
}

fn bytes_json(b: &WireBytes) -> serde_json::Value {
    json!({"sent": b.sent, "received": b.received})
}

fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

fn read_photo(path: &Path) -> Result<Vec<u8>, ClientError> {
    tabir_face::image_io::read_photo(path).map_err(ClientError::from)
}

/// The device's client (with the face pipeline when a photo is to be read) and a runtime to
/// drive it, or the exit status of a failure already reported.
fn open_device(
    device: &DeviceArgs,
    with_face: bool,
) -> Result<(OfficeClient, tokio::runtime::Runtime), ExitCode> {
    let opened = (|| -> Result<OfficeClient, String> {
        let config = ClientConfig::load(device.config.as_deref()).map_err(|e| e.to_string())?;
        let passphrase = passphrase(PASSPHRASE_ENV, "this device's key files", false)?;
        if !with_face {
            return OfficeClient::open_without_face(&config, &passphrase)
                .map_err(|e| e.to_string());
        }
        let face = Arc::new(device.pipeline.load()?);
        OfficeClient::open(&config, &passphrase, face).map_err(|e| e.to_string())
    })();
    let client =
        opened.map_err(|message| report_error(device.json, "config", "config", &message))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| report_error(device.json, "config", "runtime", &e.to_string()))?;
    Ok((client, runtime))
}

pub fn run(operation: Operation) -> ExitCode {
    let device = match &operation {
        Operation::Enroll(a) | Operation::Verify(a) => &a.device,
        Operation::Delete(a) => &a.device,
    };
    let as_json = device.json;
    let subject = match &operation {
        Operation::Enroll(a) | Operation::Verify(a) => Some(&a.subject),
        Operation::Delete(a) => Some(&a.subject),
    };
    let subject = match subject.map(|s| SubjectId::parse(s)).transpose() {
        Ok(subject) => subject,
        Err(e) => {
            return report_error(
                as_json,
                "config",
                "invalid_subject_id",
                &format!("the subject id is not a valid NIK: {e}"),
            )
        }
    };
    // The photo is read before anything else: a missing or unreadable file fails at once.
    let photo = match &operation {
        Operation::Enroll(a) | Operation::Verify(a) => Some(read_photo(&a.image)),
        Operation::Delete(_) => None,
    };
    let photo = match photo.transpose() {
        Ok(photo) => photo,
        Err(e) => return client_error(as_json, &e),
    };
    // Deleting needs no face models.
    let (client, runtime) = match open_device(device, photo.is_some()) {
        Ok(opened) => opened,
        Err(exit) => return exit,
    };
    let masked = subject.as_ref().map(|s| s.to_string());
    let photo = photo.unwrap_or_default();
    match (operation, subject) {
        (Operation::Enroll(_), Some(subject)) => {
            match runtime.block_on(client.enroll(&subject, photo)) {
                Ok(outcome) => {
                    let result = if outcome.replaced {
                        "replaced"
                    } else {
                        "enrolled"
                    };
                    if as_json {
                        println!(
                            "{}",
                            json!({"result": result, "subject": masked, "audit_seq": outcome.audit_seq,
                        "timings_ms": timings_json(&outcome.timings), "bytes": bytes_json(&outcome.bytes)})
                        );
                    } else {
                        println!(
                            "{result} {} ({:.0} ms, {} bytes sent)",
                            masked.unwrap_or_default(),
                            outcome.timings.total_ms,
                            outcome.bytes.sent
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => client_error(as_json, &e),
            }
        }
        (Operation::Verify(_), Some(subject)) => {
            match runtime.block_on(client.verify(&subject, photo)) {
                Ok(outcome) => decision_exit(as_json, &outcome, masked),
                Err(e) => client_error(as_json, &e),
            }
        }
        (Operation::Delete(_), Some(subject)) => match runtime.block_on(client.delete(&subject)) {
            Ok(outcome) => {
                if as_json {
                    println!(
                        "{}",
                        json!({"result": "deleted", "subject": masked, "audit_seq": outcome.audit_seq,
                        "timings_ms": timings_json(&outcome.timings), "bytes": bytes_json(&outcome.bytes)})
                    );
                } else {
                    println!(
                        "deleted the enrolment of {} (audit entry {})",
                        masked.unwrap_or_default(),
                        outcome.audit_seq
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => client_error(as_json, &e),
        },
        _ => report_error(
            as_json,
            "config",
            "invalid_subject_id",
            "a subject id is required",
        ),
    }
}

/// `tabir identify`: submit a search, follow one, or cancel one.
pub fn identify(args: IdentifyArgs) -> ExitCode {
    let as_json = args.device.json;
    let photo = match args.image.as_deref().map(read_photo).transpose() {
        Ok(photo) => photo,
        Err(e) => return client_error(as_json, &e),
    };
    // Following or cancelling a job needs no face models.
    let (client, runtime) = match open_device(&args.device, photo.is_some()) {
        Ok(opened) => opened,
        Err(exit) => return exit,
    };
    if let Some(job_id) = &args.cancel {
        return match runtime.block_on(client.cancel_identification(job_id)) {
            Ok(job) => {
                if as_json {
                    println!("{}", json!({"result": "cancelled", "job": job}));
                } else {
                    println!(
                        "cancelled job {} ({} of {} shards were done)",
                        job.job_id, job.shards_done, job.shards_total
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => client_error(as_json, &e),
        };
    }
    // What submitting cost (face, encryption, the request), added to the outcome's figures.
    let mut submission: Option<(Timings, WireBytes)> = None;
    // Known from the submission; for --job, from the first status.
    let mut shards_total = 0;
    let job_id = match (photo, &args.job) {
        (Some(photo), _) => match runtime.block_on(client.submit_identification_timed(photo)) {
            Ok(submitted) => {
                let job = submitted.job;
                submission = Some((submitted.timings, submitted.bytes));
                shards_total = u64::from(job.shards_total);
                if args.detach {
                    if as_json {
                        println!("{}", json!({"result": "submitted", "job": job}));
                    } else {
                        println!(
                            "submitted job {} over {} templates in {} shards",
                            job.job_id, job.gallery_size, job.shards_total
                        );
                        println!("follow it with: tabir identify --job {}", job.job_id);
                    }
                    return ExitCode::SUCCESS;
                }
                if !as_json {
                    eprintln!(
                        "searching {} templates in {} shards (job {}; if interrupted, resume with --job)",
                        job.gallery_size, job.shards_total, job.job_id
                    );
                }
                job.job_id
            }
            Err(e) => return client_error(as_json, &e),
        },
        (None, Some(job_id)) => job_id.clone(),
        (None, None) => {
            return report_error(
                as_json,
                "config",
                "usage",
                "give a photo, --job or --cancel",
            )
        }
    };
    let bar = indicatif::ProgressBar::new(shards_total);
    if as_json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} searching [{bar:30}] {pos}/{len} shards, {elapsed} (about {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let outcome = runtime.block_on(client.wait_identification(&job_id, |job| {
        bar.set_length(u64::from(job.shards_total));
        bar.set_position(u64::from(job.shards_done));
    }));
    bar.finish_and_clear();
    match outcome {
        Ok(mut outcome) => {
            if let Some((timings, bytes)) = submission {
                outcome.timings.face_ms = timings.face_ms;
                outcome.timings.encrypt_ms = timings.encrypt_ms;
                outcome.timings.server_ms += timings.server_ms;
                outcome.timings.total_ms += timings.total_ms;
                outcome.bytes.sent += bytes.sent;
                outcome.bytes.received += bytes.received;
            }
            decision_exit(as_json, &outcome, None)
        }
        Err(e) => client_error(as_json, &e),
    }
}

fn decision_exit(as_json: bool, outcome: &VerifyOutcome, subject: Option<String>) -> ExitCode {
    let name = decision_name(outcome.decision);
    let (timings, bytes) = (&outcome.timings, &outcome.bytes);
    if as_json {
        let mut object = json!({
            "decision": name,
            "audit_seq": outcome.audit_seq,
            "report": outcome.report,
            "timings_ms": timings_json(timings),
            "bytes": bytes_json(bytes),
        });
        if let Some(subject) = subject {
            object["subject"] = json!(subject);
        }
        println!("{object}");
    } else {
        println!(
            "{} ({:.0} ms: face {:.0}, encrypt {:.0}, server {:.0}, decrypt {:.1}; {} bytes sent, {} received)",
            name.replace('_', " "),
            timings.total_ms, timings.face_ms, timings.encrypt_ms, timings.server_ms, timings.decrypt_ms,
            bytes.sent, bytes.received
        );
        match &outcome.report {
            ReportStatus::Reported { audit_seq } => println!(
                "   reported to the server (audit entry {audit_seq}; result escrowed as entry {})",
                outcome.audit_seq
            ),
            ReportStatus::Failed { reason } => eprintln!(
                "tabir: warning: the decision was not reported to the server ({reason}); \
                 auditors will list result {} as unreported",
                outcome.audit_seq
            ),
        }
    }
    if outcome.decision.is_match() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
