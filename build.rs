//! Links the `sealwright` binary as a position-dependent executable on Linux.
//!
//! A position-independent executable must have its ~35,000 relative relocations applied at
//! every start. That writes every page of `.data.rel.ro` (about 165 pages), and each write
//! is a copy-on-write page fault. A CLI that may run once per file (`sealwright sops encrypt`)
//! pays for this every time: the relocations are half of its page faults and about 0.7 ms of
//! each start on the 2-core machine (README, "CLI start"). Shared libraries and the heap keep
//! address randomisation; only the executable's own image gets a fixed address.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
