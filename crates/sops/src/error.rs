//! The SOPS engine's error type: one enum that says which stage failed and why, with the path
//! inside the document where it matters. No variant carries a plaintext value.

use super::agekeys::AgeError;
use super::config::ConfigError;
use super::metadata::MetadataError;
use super::rules::RuleError;
use super::shamir::ShamirError;
use super::store::{binary::BinaryError, dotenv::DotenvError, json::JsonError, yaml::YamlError};
use super::walk::WalkError;

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error("YAML: {0}")]
    Yaml(#[from] YamlError),
    #[error("JSON: {0}")]
    Json(#[from] JsonError),
    #[error("dotenv: {0}")]
    Dotenv(#[from] DotenvError),
    #[error("binary: {0}")]
    Binary(#[from] BinaryError),
    #[error("file cannot be completely empty, it must contain at least one document")]
    Empty,
    #[error("the file already has a top-level `sops` entry: it is already encrypted (decrypt it first, or use updatekeys/rotate/set)")]
    AlreadyEncrypted,
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error("{0}")]
    Rule(#[from] RuleError),
    #[error("error encrypting tree: {0}")]
    Encrypt(WalkError),
    #[error("error decrypting tree: {0}")]
    Decrypt(WalkError),
    #[error("cannot decrypt MAC: could not decrypt with AES_GCM: message authentication failed (lastmodified or mac was altered)")]
    MacUndecryptable,
    #[error("MAC mismatch: file has {file}, computed {computed} (the content was altered)")]
    MacMismatch { file: String, computed: String },
    #[error("failed to get the data key required to decrypt the SOPS file: {0}")]
    DataKey(String),
    #[error("{0}")]
    Age(#[from] AgeError),
    #[error("key groups: {0}")]
    Shamir(#[from] ShamirError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("no age recipients given: pass --age or add a creation rule with keys to .sops.yaml")]
    NoRecipients,
    #[error("this file has {0} keys, which sealwright cannot re-wrap a data key for; only age is supported")]
    ForeignKeys(&'static str),
    #[error("invalid tree path {path:?}: {reason}")]
    TreePath { path: String, reason: &'static str },
    #[error("value not found at {0}")]
    PathNotFound(String),
    #[error("the value is not valid JSON: {0}")]
    SetValue(String),
    #[error("{format} cannot represent this document: {reason}")]
    Unrepresentable {
        format: &'static str,
        reason: &'static str,
    },
}

impl SopsError {
    /// The exit code the sops CLI uses for the same failure (SOPS-FORMAT.md 11), so scripts that
    /// switch on sops' codes keep working.
    pub fn exit_code(&self) -> i32 {
        match self {
            SopsError::Yaml(_)
            | SopsError::Json(_)
            | SopsError::Dotenv(_)
            | SopsError::Binary(_) => 2,
            SopsError::Empty => 92,
            SopsError::AlreadyEncrypted => 203,
            SopsError::Metadata(_) | SopsError::Config(_) => 1,
            SopsError::Rule(_) => 8,
            SopsError::Encrypt(_) => 23,
            SopsError::Decrypt(_) => 25,
            SopsError::MacUndecryptable | SopsError::MacMismatch { .. } => 51,
            SopsError::DataKey(_) => 128,
            SopsError::Age(_) | SopsError::NoRecipients => 111,
            SopsError::Shamir(_) | SopsError::ForeignKeys(_) => 1,
            SopsError::TreePath { .. } | SopsError::PathNotFound(_) | SopsError::SetValue(_) => 91,
            SopsError::Unrepresentable { .. } => 4,
        }
    }
}
