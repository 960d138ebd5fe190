//! The SOPS engine: pure Rust, byte-compatible with sops 3.11 in both directions
//! (`../shared/SOPS-FORMAT.md` is the specification it follows).
//!
//! Layers, bottom up:
//! - [`value`]: the ordered document tree with comments; [`store`]: bytes <-> tree per format;
//! - [`scalar`]: typed plaintexts; [`cipher`]: AES-256-GCM `ENC[...]` values;
//! - [`rules`]: which values are encrypted; [`walk`]: the tree walk, AAD paths and the MAC;
//! - [`metadata`]: the `sops` block; [`agekeys`]: age wrapping and identity lookup;
//!   [`shamir`]: key groups;
//! - [`config`]: `.sops.yaml` creation rules; [`document`]: whole-file operations.
//!
//! The product never shells out to `sops`; tests prove compatibility against the real binary.
//!
//! # Example
//!
//! Encrypt a YAML document to an age recipient and decrypt it again:
//!
//! ```
//! use age::secrecy::ExposeSecret;
//! use sops::agekeys::Identities;
//! use sops::scalar::DateTime;
//! use sops::{EmitOptions, EncryptSettings, Format, KeySpec};
//!
//! let identity = age::x25519::Identity::generate();
//! let settings = EncryptSettings {
//!     keys: KeySpec { groups: vec![vec![identity.to_public().to_string()]], shamir_threshold: 0 },
//!     rule: sops::rules::CryptRule::default(),
//!     mac_only_encrypted: false,
//! };
//! let plain = Format::Yaml.parse_plain(b"# rotate yearly\npassword: hunter2\n")?;
//! let doc = sops::encrypt(plain, &settings, Format::Yaml, DateTime::now_utc())?;
//! let file = Format::Yaml.emit_encrypted(&doc, EmitOptions::default())?;
//! assert!(!String::from_utf8_lossy(&file).contains("hunter2"));
//!
//! let mut ids = Identities::default();
//! ids.add_text("example", identity.to_string().expose_secret())?;
//! let opened = sops::decrypt(&Format::Yaml.parse_encrypted(&file)?, &ids, true)?;
//! let text = Format::Yaml.emit_plain(&opened.branches, EmitOptions::default())?;
//! assert_eq!(text, b"# rotate yearly\npassword: hunter2\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod agekeys;
pub mod cipher;
pub mod config;
pub mod document;
pub mod error;
pub mod metadata;
pub mod rules;
pub mod scalar;
pub mod shamir;
pub mod store;
pub mod value;
pub mod walk;

pub use document::{
    decrypt, encrypt, encrypt_yaml_to, reencrypt, rotate, update_keys, Decrypted, EmitOptions,
    EncryptSettings, Encrypted, Format, KeySpec,
};
pub use error::SopsError;
pub use value::{Map, MapItem, Value};

/// Where the shared test data lives (`../shared` beside the repository, or `$SEALWRIGHT_SHARED`).
#[cfg(test)]
pub(crate) mod testdata {
    use std::path::PathBuf;

    pub fn shared_dir() -> PathBuf {
        std::env::var_os("SEALWRIGHT_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"))
            })
    }
}
