//! Which registered app holds which namespace: the index behind the tenant boundary's "one
//! owner per namespace", the Secret-name clash checks and the Flux RBAC, so none of them walks
//! every app (they run on each registration, each secret write and each round).
//!
//! It holds registered apps only (not unregistered ones). A namespace normally has one holder;
//! two come only from a registration stored before the boundary was enforced, and such an app
//! is failed and left out of the RBAC until one registration changes.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub(super) struct Holders {
    by_namespace: BTreeMap<String, BTreeSet<String>>,
    by_app: BTreeMap<String, Vec<String>>,
}

impl Holders {
    /// The app now holds exactly these namespaces (replacing what it held).
    pub fn set<'a>(&mut self, app: &str, namespaces: impl Iterator<Item = &'a str>) {
        self.remove(app);
        let held: Vec<String> = namespaces.map(str::to_owned).collect();
        for ns in &held {
            self.by_namespace
                .entry(ns.clone())
                .or_default()
                .insert(app.to_owned());
        }
        self.by_app.insert(app.to_owned(), held);
    }

    /// The app holds nothing (unregistered).
    pub fn remove(&mut self, app: &str) {
        for ns in self.by_app.remove(app).unwrap_or_default() {
            if let Some(apps) = self.by_namespace.get_mut(&ns) {
                apps.remove(app);
                if apps.is_empty() {
                    self.by_namespace.remove(&ns);
                }
            }
        }
    }

    /// The apps holding `namespace`, by name.
    pub fn of(&self, namespace: &str) -> impl Iterator<Item = &str> {
        self.by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The first app other than `app` holding `namespace`.
    pub fn other(&self, namespace: &str, app: &str) -> Option<&str> {
        self.of(namespace).find(|a| *a != app)
    }

    /// How many apps hold `namespace`.
    pub fn count(&self, namespace: &str) -> usize {
        self.by_namespace.get(namespace).map_or(0, BTreeSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_remove_forgets() {
        let mut h = Holders::default();
        h.set("shop", ["shop-dev", "shop-prod"].into_iter());
        h.set("blog", ["blog-prod"].into_iter());
        assert_eq!(h.other("shop-dev", "blog"), Some("shop"));
        assert_eq!(h.other("shop-dev", "shop"), None);

        // An update that drops a namespace frees it.
        h.set("shop", ["shop-prod"].into_iter());
        assert_eq!(h.count("shop-dev"), 0);
        assert_eq!(h.count("shop-prod"), 1);

        // A legacy registration sharing a namespace: both are holders.
        h.set("legacy", ["shop-prod"].into_iter());
        assert_eq!(h.of("shop-prod").collect::<Vec<_>>(), ["legacy", "shop"]);
        assert_eq!(h.count("shop-prod"), 2);

        h.remove("shop");
        assert_eq!(h.of("shop-prod").collect::<Vec<_>>(), ["legacy"]);
        h.remove("legacy");
        h.remove("blog");
        assert!(h.by_namespace.is_empty() && h.by_app.is_empty());
    }
}
