//! `sealwright keys ...`: age keypairs.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::ExposeSecret;

use crate::keys::{read_identity_file, write_identity_file, AgeKey};
use crate::sops::scalar::DateTime;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate an age X25519 keypair: the recipient goes to stdout, the identity to --out (0600)
    Generate(GenerateArgs),
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
