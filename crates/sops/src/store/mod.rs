//! Stores: bytes <-> document branches ([`Map`]) for each file format sops knows.
//!
//! A store knows nothing about encryption: it parses a file into branches (the `sops` metadata is
//! just a top-level entry at this level) and emits branches back in the exact style sops 3.11 uses,
//! so that files written by sealwright and by sops sit side by side without noisy diffs.

pub mod binary;
pub mod dotenv;
pub mod json;
pub mod yaml;
