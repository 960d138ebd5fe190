//! `sealwright keys ...`: age keypairs, and recovering an app's key from the key chain (the
//! Flux repo holds every app key encrypted to the cluster key, so whoever holds the cluster's
//! private key can restore a lost one).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::ExposeSecret;

use crate::keys::{read_identity_file, write_identity_file, AgeKey};
use sops::scalar::DateTime;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate an age X25519 keypair: the recipient goes to stdout, the identity to --out (0600)
    Generate(GenerateArgs),
    /// Restore an app's lost key from the Flux repo (apps/<app>-platform/age-secret.sops.yaml),
    /// decrypted with the cluster's private key
    Recover(RecoverArgs),
}

#[derive(Args)]
pub struct RecoverArgs {
    /// The app whose key to restore.
    #[arg(long, value_name = "APP")]
    pub app: String,
    /// The cluster's age identity file (the private half of the cluster recipient).
    #[arg(long, value_name = "FILE")]
    pub cluster_identity: PathBuf,
    /// The server's configuration file (where the Flux repo is).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long, value_name = "DIR", env = "SEALWRIGHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Write the identity here (mode 0600; refuses to overwrite). Without it, the identity file
    /// text goes to stdout and the recipient to stderr, like age-keygen.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(cmd: KeysCommand) -> i32 {
    match cmd {
        KeysCommand::Generate(a) => generate(a),
        KeysCommand::Recover(a) => super::serve::run_recover(a),
    }
}

fn generate(a: GenerateArgs) -> i32 {
    let key = AgeKey::generate();
    let now = DateTime::now_utc();
    match a.out {
        Some(path) => {
            // Never replace an existing key: that would silently lose access to its secrets.
            if path.exists() || read_identity_file(&path).ok().flatten().is_some() {
                eprintln!(
                    "sealwright: {}: already exists; not overwriting a key",
                    path.display()
                );
                return 1;
            }
            if let Err(e) = write_identity_file(&path, &key, now) {
                eprintln!("sealwright: {e}");
                return 1;
            }
            println!("{}", key.recipient());
        }
        None => {
            let mut out = std::io::stdout().lock();
            if out
                .write_all(key.identity_file(now).expose_secret().as_bytes())
                .is_err()
            {
                return 3;
            }
            eprintln!("Public key: {}", key.recipient());
        }
    }
    0
}
