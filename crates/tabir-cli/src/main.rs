//! `tabir`: the command-line entry point.

mod audit;
mod bench;
mod bench_face;
mod bench_identify;
mod bench_server;
mod bench_setup;
mod counter;
mod custody;
mod doctor;
mod face;
mod local_web;
mod office;
mod secrets;
mod stats;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tabir",
    version,
    about = "Privacy-preserving face verification: encrypted matching with TFHE. The office \
             device, custodian and auditor tool (the server is the separate tabir-server binary)",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol a subject from a photo (the template is encrypted on this device).
    Enroll(office::SubjectPhoto),
    /// Verify a photo against a subject's enrolment. Exit 0 match, 1 no match, 2 error.
    Verify(office::SubjectPhoto),
    /// Does the photo match anyone enrolled in the domain? The search runs on the server as a
    /// job, followed with a progress bar (--detach, --job, --cancel). Exit 0 match, 1 no match,
    /// 2 error.
    Identify(office::IdentifyArgs),
    /// Delete a subject's enrolment (the audit log keeps the event, not the data).
    Delete(office::SubjectOnly),
    /// The counter app: a local web page with the camera, live guidance and the liveness
    /// check, for enrol, verify and identify (`tabir office serve`).
    #[command(subcommand)]
    Office(counter::OfficeCommand),
    /// Key domains and device keys, for custodians.
    #[command(subcommand)]
    Custody(custody::CustodyCommand),
    /// The device's face pipeline in the clear: embed photos, compare two faces.
    #[command(subcommand)]
    Face(face::FaceCommand),
    /// Export the audit log, check it against the server's public key, and check the
    /// decisions devices reported against the escrowed results.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Is this office PC ready? Checks ONNX Runtime, the face models, the device bundle, the
    /// server and the clock, with a fix for each problem. Exit 0 when nothing fails, 1 otherwise.
    Doctor(doctor::DoctorArgs),
    /// Measure the hot paths on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Face(command) => face::run(command).map(|()| ExitCode::SUCCESS),
        Command::Enroll(args) => return office::run(office::Operation::Enroll(args)),
        Command::Verify(args) => return office::run(office::Operation::Verify(args)),
        Command::Identify(args) => return office::identify(args),
        Command::Delete(args) => return office::run(office::Operation::Delete(args)),
        Command::Office(command) => counter::run(command).map(|()| ExitCode::SUCCESS),
        Command::Custody(command) => custody::run(command).map(|()| ExitCode::SUCCESS),
        Command::Audit(command) => audit::run(command),
        Command::Doctor(args) => return doctor::run(args),
        Command::Bench(command) => bench::run(command).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tabir: {error}");
            ExitCode::from(2)
        }
    }
}
