//! The command line: clap definitions and dispatch. Each subcommand group has its own module.
//!
//! Start-up is deliberately lazy: parsing arguments and dispatching does no configuration,
//! runtime or network work, so a `sealwright sops encrypt` process costs little more than the
//! encryption itself.

use clap::{Parser, Subcommand};

pub mod client;
pub mod flux;
pub mod keys;
pub mod serve;
pub mod sops;
mod tls_client;

#[derive(Parser)]
#[command(
    name = "sealwright",
    version,
    about = "Secrets the GitOps way: SOPS+age encrypted commits that Flux applies"
)]
pub struct Cli {
    /// More log output on stderr (repeat for more). Logs never contain secret values.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// SOPS files: encrypt, decrypt, updatekeys, rotate, set (compatible with sops 3.11)
    #[command(subcommand)]
    Sops(sops::SopsCommand),
    /// age keypairs: generate
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Flux repo and platform repo contents: render
    #[command(subcommand)]
    Flux(flux::FluxCommand),
    /// Run the reconciler and the HTTP API (the embedded default with examples/quickstart.yaml)
    Serve(serve::ServeArgs),
    /// Run one full reconcile round without a server, then exit
    Reconcile(serve::ReconcileArgs),
    /// Check the configuration, keys, repositories and the Git host, and report
    Doctor(serve::DoctorArgs),
    /// Apps on a running server: create, list, get, delete, deploy
    App(client::AppArgs),
    /// Secrets on a running server: put, patch, delete, list, get
    Secret(client::SecretArgs),
    /// External secrets on a running server: a tenant's defaults, an app's overrides
    ExternalSecret(client::ExternalArgs),
    /// Print the AppPlatformRegistration CRD (YAML) that controller mode needs (flux/crd.yaml)
    Crd,
}

/// Parses the process arguments, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        Command::Sops(cmd) => sops::run(cmd),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Flux(cmd) => flux::run(cmd),
        Command::Serve(a) => serve::run_serve(a),
        Command::Reconcile(a) => serve::run_reconcile(a),
        Command::Doctor(a) => serve::run_doctor(a),
        Command::App(a) => client::run_app(a),
        Command::Secret(a) => client::run_secret(a),
        Command::ExternalSecret(a) => client::run_external(a),
        Command::Crd => {
            use std::io::Write;
            exit_code(
                std::io::stdout()
                    .write_all(&crate::controller::crd::crd_yaml())
                    .map_err(Into::into),
            )
        }
    }
}

/// `Ok` is exit code 0; an error is printed with its causes and is exit code 1.
pub(crate) fn exit_code(r: anyhow::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sealwright: {e:#}");
            1
        }
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}
