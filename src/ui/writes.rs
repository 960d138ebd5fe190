//! The secret writes the dashboard's forms started and that have not settled: a row is pending
//! while its write runs, and shows the failure in words if it failed (until the next write of
//! that secret, or for ten minutes). A write that succeeded leaves nothing here: the API's view
//! (committed, the commit, the pull request) is then the truth.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a failed write is shown on its row.
const SHOW_FAILURE: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// `create`, `update` or `delete`, under way.
    Running(&'static str),
    Failed {
        op: &'static str,
        message: String,
        at: Instant,
    },
}

#[derive(Default)]
pub struct Writes {
    by_secret: Mutex<BTreeMap<(String, String), (u64, Write)>>,
    next: std::sync::atomic::AtomicU64,
}

impl Writes {
    /// A write of `app`/`name` starts; its ticket says which one finished.
    pub fn start(&self, app: &str, name: &str, op: &'static str) -> u64 {
        let t = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock()
            .insert((app.to_owned(), name.to_owned()), (t, Write::Running(op)));
        t
    }

    /// The write with `ticket` ended; a newer write of the same secret keeps its own state.
    pub fn finish(&self, app: &str, name: &str, ticket: u64, failure: Option<String>) {
        let mut m = self.lock();
        let key = (app.to_owned(), name.to_owned());
        let Some((t, Write::Running(op))) = m.get(&key).cloned() else {
            return;
        };
        if t != ticket {
            return;
        }
        match failure {
            None => {
                m.remove(&key);
            }
            Some(message) => {
                m.insert(
                    key,
                    (
                        t,
                        Write::Failed {
                            op,
                            message,
                            at: Instant::now(),
                        },
                    ),
                );
            }
        }
    }

    /// The unsettled writes of `app`, by secret name.
    pub fn of(&self, app: &str) -> BTreeMap<String, Write> {
        let mut m = self.lock();
        m.retain(|_, (_, w)| !matches!(w, Write::Failed { at, .. } if at.elapsed() > SHOW_FAILURE));
        m.iter()
            .filter(|((a, _), _)| a == app)
            .map(|((_, n), (_, w))| (n.clone(), w.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), (u64, Write)>> {
        self.by_secret.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_running_then_gone_or_failed_and_a_newer_one_wins() {
        let w = Writes::default();
        let t1 = w.start("shop", "db", "create");
        assert_eq!(w.of("shop")["db"], Write::Running("create"));
        assert!(w.of("other").is_empty());
        w.finish("shop", "db", t1, None);
        assert!(w.of("shop").is_empty());
        let t2 = w.start("shop", "db", "update");
        let t3 = w.start("shop", "db", "update");
        w.finish("shop", "db", t2, Some("old".into()));
        assert_eq!(
            w.of("shop")["db"],
            Write::Running("update"),
            "the newer write is still running"
        );
        w.finish("shop", "db", t3, Some("targetNamespaces: no".into()));
        assert!(
            matches!(&w.of("shop")["db"], Write::Failed { message, .. } if message == "targetNamespaces: no")
        );
    }
}
