//! sealwright: secrets the GitOps way for platform teams running Flux.
//!
//! The layout follows `../shared/DESIGN.md` section 5: the SOPS engine ([`sops`]), age keys and
//! their store ([`keys`]), rendering ([`render`]), Git delivery ([`git`], [`host`]), the
//! reconciler ([`reconcile`]), deployment credentials ([`tokens`]), external secrets
//! ([`external`]), the HTTP API ([`api`]), the audit log ([`audit`]), the configuration directory
//! watcher ([`watch`]) and the command line ([`cli`]).
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod boundary;
pub mod cli;
pub mod clock;
pub mod config;
pub mod controller;
pub mod external;
pub mod fields;
pub mod fsutil;
pub mod gate;
pub mod git;
pub mod host;
pub mod keys;
pub mod model;
pub mod names;
pub mod plain;
pub mod random;
pub mod recipe;
pub mod reconcile;
pub mod render;
pub mod spec;
pub mod tls;
pub mod tokens;
pub mod ui;
pub mod watch;
