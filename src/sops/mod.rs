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

/// Where the shared test data lives (`../shared`, or `$SEALWRIGHT_SHARED`).
#[cfg(test)]
pub(crate) mod testdata {
    use std::path::PathBuf;

    pub fn shared_dir() -> PathBuf {
        std::env::var_os("SEALWRIGHT_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")))
    }
}
