//! `tabir`: the command-line entry point.

mod audit;
mod bench;
mod bench_face;
mod face;
mod server;
mod stats;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tabir",
    version,
    about = "Privacy-preserving face verification: encrypted matching with TFHE",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The device's face pipeline in the clear: embed photos, compare two faces.
    #[command(subcommand)]
    Face(face::FaceCommand),
    /// Run the verification server (holds evaluation keys only).
    Server(server::ServerArgs),
    /// Check an exported audit log against the server's public key.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Measure the hot paths on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Face(command) => face::run(command).map(|()| ExitCode::SUCCESS),
        Command::Server(args) => server::run(args).map(|()| ExitCode::SUCCESS),
        Command::Audit(command) => audit::run(command),
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
