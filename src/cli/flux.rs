//! `sealwright flux render`: the files of the Flux repo and of every platform repo, written to a
//! directory (no Git involved).
//!
//! `DIR/flux/` is the Flux repo, `DIR/platform/<app>-platform/` each platform repo. Files already
//! there are the previous render: unchanged files keep their exact bytes (ciphertext included),
//! files sealwright owns but no longer renders are removed, and files it does not own are never
//! touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::keys::{AgeKey, FileKeyStore, KeyStore};
use crate::render::{self, AppKeys, Rendered, Templates, Tree};
use sops::scalar::DateTime;

#[derive(Subcommand)]
pub enum FluxCommand {
    /// Render the Flux repo and the platform repos of a configuration into a directory
    Render(RenderArgs),
}

#[derive(Args)]
pub struct RenderArgs {
    /// The configuration file (cluster, apps, environments, secrets)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Output directory: DIR/flux/ and DIR/platform/<app>-platform/
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The cluster's age recipient; overrides cluster.recipient of the configuration. With
    /// neither, a local cluster key is generated in the keys dir (_cluster.agekey): fine for a
    /// demo, but whoever reads that directory can then open every app key
    #[arg(long, value_name = "AGE1...")]
    pub cluster_recipient: Option<String>,
    /// Where app keys are created or read (one 0600 file per key)
    #[arg(long, value_name = "DIR", env = "SEALWRIGHT_KEYS_DIR")]
    pub keys_dir: Option<PathBuf>,
}

pub fn run(cmd: FluxCommand) -> i32 {
    match cmd {
        FluxCommand::Render(a) => match render_cmd(a) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("sealwright: {e:#}");
                1
            }
        },
    }
}

/// `$XDG_DATA_HOME/sealwright/keys`, else `~/.local/share/sealwright/keys`.
fn default_keys_dir() -> anyhow::Result<PathBuf> {
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; pass --keys-dir"))?,
        )
        .join(".local/share"),
    };
    Ok(data.join("sealwright/keys"))
}

fn render_cmd(a: RenderArgs) -> anyhow::Result<()> {
    let config = Config::load(&a.config)?;
    // Templates first: a broken override fails before any key is created.
    let templates = Templates::load(config.templates_dir.as_deref())?;
    let keys_dir = match a.keys_dir {
        Some(d) => d,
        None => default_keys_dir()?,
    };
    let store = FileKeyStore::new(&keys_dir);
    let given = a
        .cluster_recipient
        .or_else(|| config.cluster.recipient.clone());
    let check = |recipient: String| {
        config
            .desired_state(recipient)
            .with_context(|| format!("config {}", a.config.display()))
    };
    let state = match given {
        Some(r) => check(r)?,
        None => {
            // Check everything else before a key is generated: a bad config leaves no trace.
            check(AgeKey::generate().recipient())?;
            // The embedded default plays the cluster: its key is generated once, kept next to
            // the app keys, and is what a demo decrypts with.
            let existed = store.local_cluster_key_path().exists();
            let key = store.local_cluster_key()?;
            if !existed {
                eprintln!(
                    "sealwright: no cluster recipient configured; generated a local cluster key {} ({})",
                    store.local_cluster_key_path().display(),
                    key.recipient()
                );
            }
            check(key.recipient())?
        }
    };
    let mut keys = BTreeMap::new();
    for app in &state.apps {
        let age = store.get_or_create(&app.name)?;
        let deploy = if app.repo.is_ssh() {
            Some(store.deploy_key(&app.name)?)
        } else {
            None
        };
        keys.insert(app.name.clone(), AppKeys { age, deploy });
    }
    let flux_dir = a.out.join("flux");
    let platform_dir = a.out.join("platform");
    let mut previous = Rendered {
        flux: read_tree(&flux_dir, &|p, _| {
            render::owned_in_flux_repo(&state.cluster.name, p)
        })?,
        platform: BTreeMap::new(),
    };
    for app in &state.apps {
        let name = render::platform_repo_name(&app.name);
        let tree = read_tree(&platform_dir.join(&name), &render::owned_platform_file)?;
        previous.platform.insert(name, tree);
    }
    let rendered = render::render(&state, &keys, &previous, &templates, DateTime::now_utc())?;
    let mut counts = Counts::default();
    sync_tree(&flux_dir, &previous.flux, &rendered.flux, &mut counts)?;
    for (name, tree) in &rendered.platform {
        let prev = previous.platform.get(name).cloned().unwrap_or_default();
        sync_tree(&platform_dir.join(name), &prev, tree, &mut counts)?;
    }
    println!(
        "{} files under {}: {} created, {} updated, {} removed, {} unchanged",
        counts.created + counts.updated + counts.unchanged,
        a.out.display(),
        counts.created,
        counts.updated,
        counts.removed,
        counts.unchanged
    );
    Ok(())
}

#[derive(Default)]
struct Counts {
    created: usize,
    updated: usize,
    removed: usize,
    unchanged: usize,
}

/// The files under `root` that `owned` selects, by path relative to `root` (`/`-separated).
fn read_tree(root: &Path, owned: &dyn Fn(&str, &[u8]) -> bool) -> anyhow::Result<Tree> {
    let mut tree = Tree::new();
    if !root.exists() {
        return Ok(tree);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(root)?
                    .to_str()
                    .ok_or_else(|| anyhow!("{}: not UTF-8", path.display()))?
                    .to_string();
                let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
                if owned(&rel, &bytes) {
                    tree.insert(rel, bytes);
                }
            }
        }
    }
    Ok(tree)
}

/// Makes `root` hold `next` for the owned files: writes what changed, removes what is gone.
fn sync_tree(root: &Path, prev: &Tree, next: &Tree, counts: &mut Counts) -> anyhow::Result<()> {
    for (rel, bytes) in next {
        let path = root.join(rel);
        match prev.get(rel) {
            Some(old) if old == bytes => {
                counts.unchanged += 1;
                continue;
            }
            Some(_) => counts.updated += 1,
            None => counts.created += 1,
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        }
        crate::fsutil::write_atomic(&path, bytes, 0o644)
            .with_context(|| format!("{}", path.display()))?;
    }
    for rel in prev.keys().filter(|k| !next.contains_key(*k)) {
        let path = root.join(rel);
        std::fs::remove_file(&path).with_context(|| format!("{}", path.display()))?;
        counts.removed += 1;
        // Drop directories left empty (a removed namespace or app); stop at the first that is not.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != root) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    Ok(())
}
