//! `tabir office serve`: the counter app. A web page served on loopback by this binary (every
//! asset compiled in: no CDN, works offline) drives the camera; frames come to this process,
//! which runs the face pipeline, the liveness check and the encryption, and talks to the server
//! through the office SDK exactly as `tabir enroll/verify/identify` do. Nothing biometric
//! leaves the machine except the ciphertexts the SDK sends.
//!
//! The page is not trusted more than it must be: every API call carries a token the service
//! put into the page it served (another site open in the same browser cannot read it), the Host
//! header must name this machine (no DNS rebinding), and the passphrase is asked on the
//! terminal once at start, never in the browser.

mod api;
mod assets;
mod capture;
mod link;

use crate::face::PipelineArgs;
use crate::secrets::{passphrase, PASSPHRASE_ENV};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tabir_client::outbox::Outbox;
use tabir_client::{ClientConfig, OfficeClient};

#[derive(Subcommand)]
pub enum OfficeCommand {
    /// Run the counter app: a local web page with the camera, live guidance, the liveness
    /// check, and enrol / verify / identify by NIK. Open the printed address in a browser on
    /// this machine. Enrolments made while the server is unreachable wait in a sealed queue
    /// and are sent when it answers again.
    Serve(ServeArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// The device's configuration (tabir.toml from `tabir custody device add`).
    #[arg(long, value_name = "FILE", env = "TABIR_CONFIG")]
    config: Option<PathBuf>,
    /// Where the page is served. Loopback only, unless --allow-remote.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve on a non-loopback address (the page then reaches this device's keys from the
    /// network: only behind your own access control).
    #[arg(long)]
    allow_remote: bool,
    /// The sealed enrolment queue [default: `office-queue/` beside the configuration file].
    #[arg(long, value_name = "DIR")]
    queue: Option<PathBuf>,
    /// The page's language: `id` (Bahasa Indonesia) or `en`. The operator can switch it.
    #[arg(long, default_value = "id", value_parser = ["id", "en"])]
    language: String,
    /// For tests and training only: every capture asks for a turn to this side (`left` or
    /// `right`) instead of a random one, so a video prepared for that side passes. The page
    /// shows a warning while it is set.
    #[arg(long, value_name = "SIDE", value_parser = ["left", "right"])]
    fixed_prompt: Option<String>,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

pub fn run(command: OfficeCommand) -> Result<(), String> {
    match command {
        OfficeCommand::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    crate::local_web::check_listen(args.listen, args.allow_remote, "counter app")?;
    let config_path = args
        .config
        .clone()
        .or_else(|| std::env::var_os("TABIR_CONFIG").map(PathBuf::from));
    let config = ClientConfig::load(config_path.as_deref()).map_err(|e| e.to_string())?;
    // Asked once, here, on the terminal: it opens the device's keys and the queue, and is
    // never sent to the page.
    let passphrase = passphrase(PASSPHRASE_ENV, "this device's key files", false)?;
    eprintln!("loading the face models...");
    let face = Arc::new(args.pipeline.load()?);
    let client =
        OfficeClient::open(&config, &passphrase, face.clone()).map_err(|e| e.to_string())?;
    // Beside the configuration file, never in whatever folder the app happens to start in.
    let queue_dir = match (&args.queue, config_path.as_deref().and_then(|p| p.parent())) {
        (Some(dir), _) => dir.clone(),
        (None, Some(folder)) => folder.join("office-queue"),
        (None, None) => {
            return Err(
                "no folder for the enrolment queue: pass --queue DIR (or --config, \
                        and the queue goes beside it)"
                    .into(),
            )
        }
    };
    let outbox = Outbox::open(&queue_dir, &passphrase).map_err(|e| e.to_string())?;
    drop(passphrase);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let state = api::State::new(
            client,
            face,
            outbox,
            config.server.clone(),
            args.language.clone(),
            address,
            args.fixed_prompt.as_deref().map(|side| match side {
                "left" => tabir_face::liveness::Turn::Left,
                _ => tabir_face::liveness::Turn::Right,
            }),
        );
        link::spawn(state.clone());
        let app = api::router(state);
        if args.fixed_prompt.is_some() {
            eprintln!("warning: --fixed-prompt: every capture asks for the same side (tests and training only)");
        }
        println!("counter app on http://{address}/");
        println!("queue: {}", queue_dir.display());
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| e.to_string())
    })
}
