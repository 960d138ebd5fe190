//! The tenant boundary and the limits, as the server's configuration sets them: which namespaces
//! no app may ever target (Flux's, the system ones, sealwright's own, and the configured ones),
//! which namespaces a tenant's key may claim (`tenants.<id>.namespaces` patterns), which Secret
//! types may be written, and how large a write may be.
//!
//! This module only decides; the reconciler asks it on every route that names a namespace or
//! writes a secret (the API, the registrations directory, later the CRD), so the rules hold the
//! same way everywhere. That a namespace belongs to at most one app is the reconciler's to check:
//! it knows the apps.

use std::collections::{BTreeMap, BTreeSet};

/// Namespaces Kubernetes itself uses; never an app's.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["kube-system", "kube-public", "kube-node-lease", "default"];

/// The namespace sealwright runs in when the configuration does not say (controller mode).
pub const DEFAULT_OWN_NAMESPACE: &str = "sealwright-system";

/// The Secret types that may be written unless the configuration lists others. Service-account
/// and bootstrap tokens are left out on purpose: either one written into a namespace is a
/// credential the cluster itself honours.
pub const DEFAULT_SECRET_TYPES: &[&str] = &[
    "Opaque",
    "kubernetes.io/tls",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/dockercfg",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
];

/// How much one write or one app may hold. Every limit is enforced at the edge with a 422 that
/// names it; restart time stays linear in what is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Keys in one secret's `data`.
    pub keys_per_secret: usize,
    /// Bytes of one secret's data (keys and values); Kubernetes refuses a Secret over 1 MiB.
    pub value_bytes: usize,
    /// Bytes of one request body.
    pub body_bytes: usize,
    /// Managed secrets of one app.
    pub secrets_per_app: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            keys_per_secret: 1_000,
            value_bytes: 1024 * 1024,
            body_bytes: 1024 * 1024 + 64 * 1024,
            secrets_per_app: 2_000,
        }
    }
}

/// Why a namespace or a type is refused. The field is filled in by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A reserved namespace: never a target.
    Reserved,
    /// A tenant key claimed a namespace outside its patterns.
    OutsideTenant {
        tenant: String,
        patterns: Vec<String>,
    },
}

impl Refusal {
    pub fn reason(&self) -> String {
        match self {
            Refusal::Reserved => "reserved".into(),
            Refusal::OutsideTenant { tenant, patterns } => format!(
                "not a namespace tenant {tenant:?} may claim (its namespaces: {})",
                patterns.join(", ")
            ),
        }
    }
}

/// The boundary, built once from the configuration.
#[derive(Clone, Debug)]
pub struct Boundary {
    reserved: BTreeSet<String>,
    tenants: BTreeMap<String, Vec<String>>,
    secret_types: BTreeSet<String>,
    pub limits: Limits,
}

impl Boundary {
    /// The tenants the configuration names (`tenants.<id>`).
    pub fn tenant_ids(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }
}

impl Default for Boundary {
    /// The embedded default's rules: Flux in `flux-system`, sealwright in `sealwright-system`.
    fn default() -> Boundary {
        Boundary::new(
            "flux-system",
            DEFAULT_OWN_NAMESPACE,
            &[],
            BTreeMap::new(),
            None,
            Limits::default(),
        )
    }
}

impl Boundary {
    pub fn new(
        flux_namespace: &str,
        own_namespace: &str,
        reserved: &[String],
        tenants: BTreeMap<String, Vec<String>>,
        secret_types: Option<Vec<String>>,
        limits: Limits,
    ) -> Boundary {
        let mut all: BTreeSet<String> = SYSTEM_NAMESPACES.iter().map(|s| s.to_string()).collect();
        all.insert(flux_namespace.to_owned());
        all.insert(own_namespace.to_owned());
        all.extend(reserved.iter().cloned());
        Boundary {
            reserved: all,
            tenants,
            secret_types: secret_types
                .unwrap_or_else(|| DEFAULT_SECRET_TYPES.iter().map(|s| s.to_string()).collect())
                .into_iter()
                .collect(),
            limits,
        }
    }

    /// Whether no app may target `ns`.
    pub fn is_reserved(&self, ns: &str) -> bool {
        self.reserved.contains(ns)
    }

    /// Every reserved namespace, sorted (for the README's rule and `doctor`).
    pub fn reserved(&self) -> impl Iterator<Item = &str> {
        self.reserved.iter().map(String::as_str)
    }

    /// Whether `ns` may be an environment namespace of an app of `tenant`. The patterns bind
    /// tenant keys only (`by_tenant_key`); admins and the registrations directory are bound by
    /// the reserved list alone.
    pub fn check_namespace(
        &self,
        tenant: &str,
        ns: &str,
        by_tenant_key: bool,
    ) -> Result<(), Refusal> {
        if self.is_reserved(ns) {
            return Err(Refusal::Reserved);
        }
        if by_tenant_key {
            if let Some(patterns) = self.tenants.get(tenant) {
                if !patterns.iter().any(|p| glob_match(p, ns)) {
                    return Err(Refusal::OutsideTenant {
                        tenant: tenant.to_owned(),
                        patterns: patterns.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether a Secret of this type may be written; the error is the reason.
    pub fn check_secret_type(&self, t: &str) -> Result<(), String> {
        if self.secret_types.contains(t) {
            return Ok(());
        }
        Err(format!(
            "{t:?} is not an allowed Secret type (allowed: {}; the server's secret_types setting lists them)",
            self.secret_types.iter().cloned().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// `*` matches any run of characters (namespaces have no `/`, so one wildcard kind is enough).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Checks a pattern as the configuration gives it: a DNS label with `*` wildcards.
pub fn validate_pattern(p: &str) -> Result<(), String> {
    let ok = !p.is_empty()
        && p.len() <= 63
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'*');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a namespace pattern (lowercase letters, digits, '-' and '*')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("acme-*", "acme-prod"));
        assert!(!glob_match("acme-*", "acme"));
        assert!(!glob_match("acme-*", "evil-acme-prod"));
        assert!(glob_match("*-acme", "prod-acme"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxcyyb"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("*", "anything"));
        assert!(validate_pattern("acme-*").is_ok());
        assert!(validate_pattern("Acme").is_err());
        assert!(validate_pattern("a/b").is_err());
    }

    #[test]
    fn reserved_namespaces_and_tenant_patterns() {
        let b = Boundary::new(
            "flux",
            "sw",
            &["vault".into()],
            BTreeMap::from([("acme".to_owned(), vec!["acme-*".to_owned()])]),
            None,
            Limits::default(),
        );
        for ns in [
            "flux",
            "sw",
            "vault",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "default",
        ] {
            assert_eq!(
                b.check_namespace("any", ns, false),
                Err(Refusal::Reserved),
                "{ns}"
            );
            assert_eq!(
                b.check_namespace("acme", ns, true),
                Err(Refusal::Reserved),
                "{ns}"
            );
        }
        assert!(b.check_namespace("acme", "acme-prod", true).is_ok());
        let e = b.check_namespace("acme", "shop-prod", true).unwrap_err();
        assert!(e.reason().contains("acme-*"), "{}", e.reason());
        // Admins are bound by the reserved list only; tenants without patterns likewise.
        assert!(b.check_namespace("acme", "shop-prod", false).is_ok());
        assert!(b.check_namespace("other", "shop-prod", true).is_ok());
        // flux-system is reserved by default.
        assert!(Boundary::default().is_reserved("flux-system"));
        assert!(Boundary::default().is_reserved("sealwright-system"));
    }

    #[test]
    fn secret_types_allowlist() {
        let b = Boundary::default();
        for t in DEFAULT_SECRET_TYPES {
            assert!(b.check_secret_type(t).is_ok());
        }
        for t in [
            "kubernetes.io/service-account-token",
            "bootstrap.kubernetes.io/token",
            "example.com/custom",
        ] {
            let e = b.check_secret_type(t).unwrap_err();
            assert!(e.contains("not an allowed Secret type"), "{e}");
        }
        let custom = Boundary::new(
            "f",
            "s",
            &[],
            BTreeMap::new(),
            Some(vec!["Opaque".into(), "example.com/custom".into()]),
            Limits::default(),
        );
        assert!(custom.check_secret_type("example.com/custom").is_ok());
        assert!(custom.check_secret_type("kubernetes.io/tls").is_err());
    }
}
