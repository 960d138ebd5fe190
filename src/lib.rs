//! sealwright: secrets the GitOps way for platform teams running Flux.
//!
//! This crate holds the SOPS engine ([`sops`]), age keys and their store ([`keys`]) and the command
//! line ([`cli`]). Later concerns
//! (keys, git, host, render, reconcile, api) follow the layout of `../shared/DESIGN.md` section 5.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod git;
pub mod host;
pub mod keys;
pub mod model;
pub mod names;
pub mod render;
pub mod sops;
