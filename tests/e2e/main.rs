//! The integration tests, one binary (as ripgrep does): every end-to-end flow against real peers
//! (the `sealwright` binary, the real `sops` and `age`, Git servers on loopback, `kubectl
//! kustomize`); `common/` holds what they share: the fake GitHub API (the one peer with no real
//! stand-in here), the Git servers, the server runner and the Flux CRD schema check. One module per flow; `cargo nextest run --test e2e` runs them all.

mod common;

mod boundary;
mod controller;
mod credentials;
mod dashboard;
mod drift;
mod environments;
mod external_secrets;
mod fake_github_ssh;
mod flux_cli;
mod flux_install;
mod flux_render;
mod git_http;
mod git_logs;
mod git_race;
mod keys_cli;
mod layers;
mod recipes;
mod review_race;
mod serve_crash;
mod serve_e2e;
mod serve_github;
mod sops_cli;
mod sops_interop;
mod sops_proptest;
mod sops_tamper;
mod sops_vectors;
mod tls;
