//! Group commit: one queue per repository. Every submitted op is queued, then a task is spawned
//! that takes the repository's commit lock and drains the whole queue into one round. Ops that
//! arrive while a round is in flight wait for the lock and are all taken by the next round, so a
//! burst of N writes costs about two commits, not N. The round runs in its own task, so a caller
//! that goes away (an HTTP client that hung up) never cancels a commit that others wait on.

use std::future::Future;
use std::sync::{Arc, Mutex};

pub(crate) struct Batcher<Op> {
    inner: Arc<Shared<Op>>,
}

struct Shared<Op> {
    queue: Mutex<Vec<Op>>,
    lock: tokio::sync::Mutex<()>,
}

impl<Op: Send + 'static> Batcher<Op> {
    pub(crate) fn new() -> Self {
        Batcher {
            inner: Arc::new(Shared {
                queue: Mutex::new(Vec::new()),
                lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Queues `op`; `round` is called, one call at a time, with every op queued when it starts.
    /// Each op carries its own reply channel, which `round` must answer.
    pub(crate) fn submit<F, Fut>(&self, op: Op, round: F)
    where
        F: FnOnce(Vec<Op>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(op);
        let shared = self.inner.clone();
        tokio::spawn(async move {
            let _turn = shared.lock.lock().await;
            let ops = std::mem::take(&mut *shared.queue.lock().unwrap_or_else(|p| p.into_inner()));
            if !ops.is_empty() {
                round(ops).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_ops_share_rounds_and_every_one_is_answered() {
        let batcher: Arc<Batcher<(usize, oneshot::Sender<usize>)>> = Arc::new(Batcher::new());
        let rounds = Arc::new(AtomicUsize::new(0));
        let mut waiting = Vec::new();
        for i in 0..100 {
            let (tx, rx) = oneshot::channel();
            let rounds = rounds.clone();
            batcher.submit((i, tx), move |ops| async move {
                let round = rounds.fetch_add(1, Ordering::SeqCst);
                // A commit takes a while: ops queue up behind it.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                for (_, tx) in ops {
                    let _ = tx.send(round);
                }
            });
            waiting.push(rx);
        }
        let mut seen = std::collections::BTreeSet::new();
        for rx in waiting {
            seen.insert(rx.await.unwrap());
        }
        let n = rounds.load(Ordering::SeqCst);
        assert!(n <= 3, "100 queued ops took {n} rounds");
        assert_eq!(seen.len(), n);
    }
}
