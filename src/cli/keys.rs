//! `sealwright keys ...`: age keypairs, and recovering an app's key from the key chain (the
//! Flux repo holds every app key encrypted to the cluster key, so whoever holds the cluster's
//! private key can restore a lost one).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use secrecy::ExposeSecret;

use super::serve;
use crate::keys::{read_identity_file, write_identity_file, AgeKey, FileKeyStore, KeyStore};
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
        KeysCommand::Recover(a) => run_recover(a),
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

pub fn run_recover(a: RecoverArgs) -> i32 {
    super::exit_code(serve::runtime().and_then(|rt| rt.block_on(recover(a))))
}

/// `sealwright keys recover`: the app's key, decrypted from the Flux repo with the cluster key,
/// written back to the key store (0600, synced, its directory synced). A key file already there
/// is never overwritten: the same key is left alone, and anything else is moved aside first.
async fn recover(a: RecoverArgs) -> anyhow::Result<()> {
    crate::keys::validate_app_name(&a.app)?;
    let cluster = crate::keys::read_identity_file(&a.cluster_identity)?
        .ok_or_else(|| anyhow!("{}: no such file", a.cluster_identity.display()))?;
    let asm = serve::assemble(&a.config, a.data_dir, None).await?;
    let path = format!(
        "apps/{}/age-secret.sops.yaml",
        crate::render::platform_repo_name(&a.app)
    );
    let bytes = asm.reconciler.flux_file(&path).await?.ok_or_else(|| {
        anyhow!(
            "the Flux repo {} holds no {path}: there is no key of app {} to recover",
            asm.config.flux_repo,
            a.app
        )
    })?;
    let key = crate::keys::chain::open_age_secret(&bytes, &cluster)
        .map_err(|e| anyhow!("{path} in the Flux repo: {e}"))?;
    let store = FileKeyStore::new(asm.data_dir.join("keys"));
    let target = PathBuf::from(store.location(&a.app));
    match crate::keys::read_identity_file(&target) {
        Ok(Some(k)) if k.recipient() == key.recipient() => {
            println!(
                "{}: already holds the key of app {} ({}); nothing to do",
                target.display(),
                a.app,
                key.recipient()
            );
            return Ok(());
        }
        Ok(None) => {}
        // Another key, or a file that does not read as one: kept beside, never overwritten.
        _ => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let aside = target.with_extension(format!("agekey.replaced-{now}"));
            std::fs::rename(&target, &aside)
                .with_context(|| format!("move {} aside", target.display()))?;
            println!(
                "{}: moved aside to {} (it did not hold the app's key)",
                target.display(),
                aside.display()
            );
        }
    }
    crate::keys::write_identity_file(&target, &key, sops::scalar::DateTime::now_utc())?;
    println!(
        "recovered the key of app {} ({}) into {}",
        a.app,
        key.recipient(),
        target.display()
    );
    Ok(())
}
