//! The Git layer: sealwright's only way to deliver anything is a commit.
//!
//! [`GitEngine::apply`] turns a [`ChangeSet`] into one pushed commit on a branch, or into nothing when
//! the branch already holds it. For a remote repository, work happens in one local bare cache per
//! remote (no working directory, no `git` process): fetch the branch, let the caller's planner look
//! at the tip and say what to change, build the tree in memory, commit, and push with
//! compare-and-swap semantics. When someone else moved the branch in between (the push negotiation
//! sees another tip, libgit2 reports a non-fast-forward, or the server refuses the update), the
//! engine fetches again and calls the planner again on the new tip — the change may have become
//! empty — with jittered, bounded backoff. A repository on this machine is written in place
//! instead: the same planning and retries, with the objects written straight into it and the
//! branch moved by an atomic ref compare-and-swap — no cache, no fetch, no pack to copy.
//!
//! Every git2 call runs on tokio's blocking pool, behind a per-repository async lock (one process
//! never races itself) and, for caches, a file lock (two processes sharing a cache never corrupt it).

mod changeset;
mod message;
mod transport;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::cell::RefCell;
use std::rc::Rc;

use git2::{AutotagOption, Direction, ErrorCode, FetchOptions, Oid, PushOptions, Repository};
use rand::Rng;
use sha2::{Digest, Sha256};

pub use changeset::{ChangeSet, ForeignCommit, Snapshot};
pub use message::{
    change_ids_in, ChangeId, CommitMessage, Identity, SecretChange, SecretChangeKind,
    CHANGE_ID_TRAILER,
};
pub use transport::{Credentials, HostKeys, Remote};

use transport::{redact, CallbackState};

/// What a planner may fail with; the engine wraps it with the branch it was planning for.
pub type PlanError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("invalid path {path:?}: {problem}")]
    BadPath { path: String, problem: String },
    #[error("remote {url}: {problem}")]
    BadRemote { url: String, problem: String },
    #[error("invalid branch: {0}")]
    BadBranch(#[from] crate::names::NameError),
    #[error("commit identity {field}: {problem}")]
    BadIdentity {
        field: &'static str,
        problem: &'static str,
    },
    #[error("{url}: the SSH host key was refused: {problem}")]
    HostKey { url: String, problem: String },
    #[error("{url}: the server refused the credentials (checked {attempts} times)")]
    Auth { url: String, attempts: u32 },
    #[error("{url}: {context}: {message}")]
    Remote {
        url: String,
        context: &'static str,
        message: String,
    },
    #[error("{url}: the server refused the push to {branch}: {reason}")]
    PushRejected {
        url: String,
        branch: String,
        reason: String,
    },
    #[error(
        "{url}: branch {branch} kept moving while we pushed; gave up after {attempts} attempts"
    )]
    Contended {
        url: String,
        branch: String,
        attempts: u32,
    },
    #[error("this replica does not hold the lease, so it writes nothing (the leader does)")]
    NotLeader,
    #[error("planning the change for branch {branch}: {source}")]
    Plan { branch: String, source: PlanError },
    #[error("local Git cache: {context}: {message}")]
    Local {
        context: &'static str,
        message: String,
    },
    #[error("local Git cache {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the Git worker stopped unexpectedly: {0}")]
    Worker(String),
}

impl GitError {
    pub(crate) fn local(context: &'static str, e: git2::Error) -> Self {
        GitError::Local {
            context,
            message: e.message().to_owned(),
        }
    }

    /// Whether retrying later could help (network trouble, a busy branch) rather than a fix of
    /// configuration or input.
    pub fn is_transient(&self) -> bool {
        matches!(self, GitError::Remote { .. } | GitError::Contended { .. })
    }
}

/// How hard to try when the branch keeps moving.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// The backoff before attempt n+1 is uniformly random in `0..=min(max_delay, base_delay * 2^(n-1))`
    /// ("full jitter"), so racing writers spread out instead of colliding again in step.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.max_delay);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
    }
}

/// Where a change goes: `branch`, started from `start_from`'s tip when `branch` does not exist yet on
/// the remote (a pull-request branch off `main`); without `start_from`, a missing branch starts empty.
#[derive(Clone, Debug)]
pub struct Target {
    pub branch: String,
    pub start_from: Option<String>,
}

impl Target {
    pub fn branch(branch: &str) -> Self {
        Self {
            branch: branch.to_owned(),
            start_from: None,
        }
    }

    pub fn new_branch(branch: &str, start_from: &str) -> Self {
        Self {
            branch: branch.to_owned(),
            start_from: Some(start_from.to_owned()),
        }
    }
}

/// What the planner asks for: the change and its message.
pub struct Proposal {
    pub changes: ChangeSet,
    pub message: CommitMessage,
}

/// The outcome of an apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The branch already held the change: no commit, no push. `head` is the branch tip (None when
    /// the branch does not exist).
    Unchanged { head: Option<String> },
    /// One commit was pushed; `attempts` counts the pushes it took (1 without contention).
    Committed { commit: String, attempts: u32 },
}

impl Applied {
    pub fn commit(&self) -> Option<&str> {
        match self {
            Applied::Committed { commit, .. } => Some(commit),
            Applied::Unchanged { head } => head.as_deref(),
        }
    }
}

/// The Git engine: bare caches under one folder, the committer identity, the retry policy and a clock.
pub struct GitEngine {
    cache_root: PathBuf,
    committer: Identity,
    retry: RetryPolicy,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Checked right before every branch move: closed, nothing is written.
    gate: Arc<crate::gate::WriteGate>,
}

impl GitEngine {
    pub fn new(cache_root: impl Into<PathBuf>, committer: Identity) -> Self {
        tune_libgit2();
        Self {
            cache_root: cache_root.into(),
            committer,
            retry: RetryPolicy::default(),
            clock: Arc::new(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            }),
            locks: Mutex::new(HashMap::new()),
            gate: Arc::new(crate::gate::WriteGate::open()),
        }
    }

    /// Writes only while `gate` is open (controller mode: while this replica holds the lease).
    pub fn with_gate(mut self, gate: Arc<crate::gate::WriteGate>) -> Self {
        self.gate = gate;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Commit times come from this clock (unix seconds), so that tests are deterministic.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The bare cache for a remote: `<cache_root>/<last path segment>-<hash of the URL>.git`.
    pub fn cache_path(&self, remote: &Remote) -> PathBuf {
        let url = remote.url();
        let digest = Sha256::digest(url.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let last = url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("repo")
            .trim_end_matches(".git");
        let slug: String = last
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        self.cache_root.join(format!("{slug}-{hash}.git"))
    }

    /// Commits `changes` to `branch` with `message`, authored by `author`: no commit when the branch
    /// already holds them; after a race, the same changes are re-applied on the new tip.
    pub async fn apply(
        &self,
        remote: Arc<Remote>,
        branch: &str,
        changes: ChangeSet,
        message: CommitMessage,
        author: &Identity,
    ) -> Result<Applied, GitError> {
        self.apply_with(
            remote,
            Target::branch(branch),
            author,
            move |_tip: &Snapshot<'_>| {
                Ok(Some(Proposal {
                    changes: changes.clone(),
                    message: message.clone(),
                }))
            },
        )
        .await
    }

    /// Like [`apply`](Self::apply), but the change is planned by `planner` from the branch tip, and
    /// planned again on the new tip after every race. `Ok(None)` from the planner means nothing to do.
    pub async fn apply_with<P>(
        &self,
        remote: Arc<Remote>,
        target: Target,
        author: &Identity,
        mut planner: P,
    ) -> Result<Applied, GitError>
    where
        P: FnMut(&Snapshot<'_>) -> Result<Option<Proposal>, PlanError> + Send + 'static,
    {
        crate::names::validate_branch("branch", &target.branch)?;
        if let Some(start) = &target.start_from {
            crate::names::validate_branch("start_from", start)?;
        }
        remote.check_ready()?;
        let cache = self.cache_path(&remote);
        // Writers in this process take turns per repository (a repository on this machine is
        // written in place, so it is its own key), rather than race and retry.
        let lock = self.lock_for(&remote.local_path().unwrap_or_else(|| cache.clone()));
        let _guard = lock.lock_owned().await;
        let author = author.clone();
        let committer = self.committer.clone();
        let retry = self.retry.clone();
        let clock = self.clock.clone();
        let gate = self.gate.clone();
        let span =
            tracing::info_span!("git.apply", url = %redact(remote.url()), branch = %target.branch);
        tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let ctx = ApplyContext {
                cache: &cache,
                remote: &remote,
                target: &target,
                author: &author,
                committer: &committer,
                retry: &retry,
                now: clock(),
                gate: &gate,
            };
            ctx.run(&mut planner)
        })
        .await
        .map_err(|e| GitError::Worker(e.to_string()))?
    }

    /// Fetches `branch` and hands its tip to `read` (a branch that does not exist shows no files).
    pub async fn read<T, F>(
        &self,
        remote: Arc<Remote>,
        branch: &str,
        read: F,
    ) -> Result<T, GitError>
    where
        F: FnOnce(&Snapshot<'_>) -> Result<T, GitError> + Send + 'static,
        T: Send + 'static,
    {
        crate::names::validate_branch("branch", branch)?;
        remote.check_ready()?;
        if let Some(path) = remote.local_path() {
            // On this machine the repository is read in place: refs and objects only ever
            // appear whole, so no lock and no copy are needed.
            let branch = branch.to_owned();
            return tokio::task::spawn_blocking(move || {
                let repo = Repository::open_bare(&path)
                    .map_err(|e| explain_local(e, &remote, "open the repository"))?;
                let tip = branch_tip(&repo, &remote, &branch)?;
                let snapshot = Snapshot::new(&repo, tip)
                    .map_err(|e| explain_local(e, &remote, "read the branch tip"))?;
                read(&snapshot)
            })
            .await
            .map_err(|e| GitError::Worker(e.to_string()))?;
        }
        let cache = self.cache_path(&remote);
        let lock = self.lock_for(&cache);
        let _guard = lock.lock_owned().await;
        let branch = branch.to_owned();
        tokio::task::spawn_blocking(move || {
            let (repo, _file_lock) = open_cache(&cache)?;
            let heads = fetch(&repo, &remote, &[branch.as_str()])?;
            let snapshot = Snapshot::new(&repo, heads.get(&branch).copied())
                .map_err(|e| GitError::local("open the fetched commit", e))?;
            read(&snapshot)
        })
        .await
        .map_err(|e| GitError::Worker(e.to_string()))?
    }

    /// Where `branch` points on the remote now (`None` when it does not exist), without fetching:
    /// one listing of the remote's refs, or a ref lookup for a repository on this machine. The
    /// reconciler uses it to see that a repository did not move since its last round.
    pub async fn remote_head(
        &self,
        remote: Arc<Remote>,
        branch: &str,
    ) -> Result<Option<String>, GitError> {
        crate::names::validate_branch("branch", branch)?;
        remote.check_ready()?;
        let branch = branch.to_owned();
        tokio::task::spawn_blocking(move || {
            let refname = format!("refs/heads/{branch}");
            if let Some(path) = remote.local_path() {
                let repo = match Repository::open_bare(&path) {
                    Ok(r) => r,
                    Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
                    Err(e) => return Err(GitError::local("open the repository", e)),
                };
                return match repo.refname_to_id(&refname) {
                    Ok(id) => Ok(Some(id.to_string())),
                    Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
                    Err(e) => Err(GitError::local("read the branch", e)),
                };
            }
            let state = Rc::new(RefCell::new(CallbackState::default()));
            let mut detached = git2::Remote::create_detached(remote.url())
                .map_err(|e| GitError::local("set up the remote", e))?;
            let connection = detached
                .connect_auth(Direction::Fetch, Some(remote.callbacks(&state)), None)
                .map_err(|e| explain(e, &state, &remote, "connect to list branches"))?;
            let heads = connection
                .list()
                .map_err(|e| explain(e, &state, &remote, "list the remote branches"))?;
            Ok(heads
                .iter()
                .find(|h| h.name() == refname)
                .map(|h| h.oid().to_string()))
        })
        .await
        .map_err(|e| GitError::Worker(e.to_string()))?
    }

    fn lock_for(&self, cache: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(cache.to_path_buf()).or_default().clone()
    }
}

/// One apply, on the blocking pool.
struct ApplyContext<'a> {
    cache: &'a Path,
    remote: &'a Remote,
    target: &'a Target,
    author: &'a Identity,
    committer: &'a Identity,
    retry: &'a RetryPolicy,
    now: i64,
    gate: &'a crate::gate::WriteGate,
}

impl ApplyContext<'_> {
    fn run<P>(&self, planner: &mut P) -> Result<Applied, GitError>
    where
        P: FnMut(&Snapshot<'_>) -> Result<Option<Proposal>, PlanError>,
    {
        if let Some(path) = self.remote.local_path() {
            return self.run_in_place(&path, planner);
        }
        let (repo, _file_lock) = open_cache(self.cache)?;
        let branch = self.target.branch.as_str();
        let mut wanted = vec![branch];
        wanted.extend(self.target.start_from.as_deref());
        // A refusal from the server is retried only when the branch moved since: otherwise it is final.
        let mut refused: Option<(Option<Oid>, String)> = None;
        for attempt in 1..=self.retry.max_attempts {
            let heads = fetch(&repo, self.remote, &wanted)?;
            let tip = heads.get(branch).copied();
            if let Some((refused_at, reason)) = &refused {
                if *refused_at == tip {
                    return Err(self.rejected(reason));
                }
            }
            let base = tip.or_else(|| {
                let start = self.target.start_from.as_deref()?;
                heads.get(start).copied()
            });
            let snapshot = Snapshot::new(&repo, base)
                .map_err(|e| GitError::local("open the fetched commit", e))?;
            let proposal = planner(&snapshot).map_err(|source| GitError::Plan {
                branch: branch.to_owned(),
                source,
            })?;
            let Some(proposal) = proposal else {
                return Ok(Applied::Unchanged {
                    head: tip.map(|t| t.to_string()),
                });
            };
            let changes = proposal.changes.against(&snapshot)?;
            // A new branch off `start_from` with nothing to change is not worth creating.
            if changes.is_empty() {
                tracing::debug!(attempt, "nothing to commit");
                return Ok(Applied::Unchanged {
                    head: tip.map(|t| t.to_string()),
                });
            }
            let commit = self.commit(&repo, &snapshot, &changes, &proposal.message)?;
            self.check_gate()?;
            match push(&repo, self.remote, branch, tip, commit)? {
                PushOutcome::Pushed => {
                    // Keep the tracking ref current: it is the "have" of the next fetch negotiation.
                    set_tracking_ref(&repo, branch, Some(commit))?;
                    tracing::info!(commit = %commit, attempt, files = changes.len(), "pushed");
                    return Ok(Applied::Committed {
                        commit: commit.to_string(),
                        attempts: attempt,
                    });
                }
                PushOutcome::Moved => {
                    tracing::info!(attempt, "branch moved; planning again on the new tip");
                }
                PushOutcome::Refused(reason) => {
                    tracing::warn!(attempt, reason = %reason, "push refused by the server");
                    refused = Some((tip, reason));
                    continue; // no backoff: the next fetch tells whether it was a race
                }
            }
            if attempt < self.retry.max_attempts {
                std::thread::sleep(self.retry.delay(attempt));
            }
        }
        if let Some((_, reason)) = refused {
            return Err(self.rejected(&reason));
        }
        Err(GitError::Contended {
            url: redact(self.remote.url()),
            branch: branch.to_owned(),
            attempts: self.retry.max_attempts,
        })
    }

    /// An apply to a repository on this machine, written in place: the new objects go straight
    /// into its object database and the branch moves by compare-and-swap. No cache, no fetch and
    /// no pack to copy; objects of a lost race are unreachable leftovers, as in Git.
    fn run_in_place<P>(&self, path: &Path, planner: &mut P) -> Result<Applied, GitError>
    where
        P: FnMut(&Snapshot<'_>) -> Result<Option<Proposal>, PlanError>,
    {
        let repo = Repository::open_bare(path)
            .map_err(|e| explain_local(e, self.remote, "open the repository"))?;
        let branch = self.target.branch.as_str();
        for attempt in 1..=self.retry.max_attempts {
            let tip = branch_tip(&repo, self.remote, branch)?;
            let base = match (tip, &self.target.start_from) {
                (Some(t), _) => Some(t),
                (None, Some(start)) => branch_tip(&repo, self.remote, start)?,
                (None, None) => None,
            };
            let snapshot = Snapshot::new(&repo, base)
                .map_err(|e| explain_local(e, self.remote, "read the branch tip"))?;
            let proposal = planner(&snapshot).map_err(|source| GitError::Plan {
                branch: branch.to_owned(),
                source,
            })?;
            let unchanged = || Applied::Unchanged {
                head: tip.map(|t| t.to_string()),
            };
            let Some(proposal) = proposal else {
                return Ok(unchanged());
            };
            let changes = proposal.changes.against(&snapshot)?;
            if changes.is_empty() {
                return Ok(unchanged());
            }
            let commit = self.commit(&repo, &snapshot, &changes, &proposal.message)?;
            self.check_gate()?;
            match move_branch_in_place(&repo, self.remote, path, branch, tip, commit)? {
                PushOutcome::Pushed => {
                    tracing::info!(commit = %commit, attempt, files = changes.len(), "committed in place");
                    return Ok(Applied::Committed {
                        commit: commit.to_string(),
                        attempts: attempt,
                    });
                }
                PushOutcome::Moved | PushOutcome::Refused(_) => {
                    tracing::info!(attempt, "branch moved; planning again on the new tip");
                }
            }
            if attempt < self.retry.max_attempts {
                std::thread::sleep(self.retry.delay(attempt));
            }
        }
        Err(GitError::Contended {
            url: redact(self.remote.url()),
            branch: branch.to_owned(),
            attempts: self.retry.max_attempts,
        })
    }

    /// The last check before a branch moves: a replica that lost its lease writes nothing.
    fn check_gate(&self) -> Result<(), GitError> {
        if self.gate.is_open() {
            Ok(())
        } else {
            Err(GitError::NotLeader)
        }
    }

    fn commit(
        &self,
        repo: &Repository,
        snapshot: &Snapshot<'_>,
        changes: &ChangeSet,
        message: &CommitMessage,
    ) -> Result<Oid, GitError> {
        let local = |context| move |e| GitError::local(context, e);
        let tree_id = changeset::build_tree(repo, snapshot.tree(), changes)?;
        let tree = repo
            .find_tree(tree_id)
            .map_err(local("find the new tree"))?;
        let parents = match snapshot.commit() {
            Some(id) => vec![repo
                .find_commit(id)
                .map_err(local("find the parent commit"))?],
            None => Vec::new(),
        };
        let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let author = self.author.signature(self.now)?;
        let committer = self.committer.signature(self.now)?;
        repo.commit(
            None,
            &author,
            &committer,
            &message.render(),
            &tree,
            &parent_refs,
        )
        .map_err(local("write the commit"))
    }

    fn rejected(&self, reason: &str) -> GitError {
        GitError::PushRejected {
            url: redact(self.remote.url()),
            branch: self.target.branch.clone(),
            reason: reason.to_owned(),
        }
    }
}

/// Process-wide libgit2 settings, once. By default libgit2 re-hashes every object it reads;
/// `git` itself does that only in `fsck`, and it was a tenth of a write's time. Objects are still
/// hashed when written, a new tree or commit is still checked to name objects that exist, and a
/// server checks what it receives.
fn tune_libgit2() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| git2::opts::strict_hash_verification(false));
}

/// Opens (or creates) the bare cache and takes its cross-process file lock.
fn open_cache(cache: &Path) -> Result<(Repository, std::fs::File), GitError> {
    let io = |e| GitError::Io {
        path: cache.display().to_string(),
        source: e,
    };
    let parent = cache.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io)?;
    let lock_path = cache.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    lock.lock().map_err(io)?;
    // Holding the lock, no other sealwright process is in this cache: a Git lock file left here
    // is the remains of a process that was killed mid-update, and would block every later one.
    remove_stale_locks(cache);
    let repo = match Repository::open_bare(cache) {
        Ok(r) => r,
        Err(e) if e.code() == ErrorCode::NotFound => {
            Repository::init_bare(cache).map_err(|e| GitError::local("create the cache", e))?
        }
        Err(e) => return Err(GitError::local("open the cache", e)),
    };
    Ok((repo, lock))
}

/// Removes the lock files Git leaves behind when a process dies mid-update: `*.lock` under
/// `refs/`, and `packed-refs.lock`, `HEAD.lock`, `config.lock` at the top. Only call this while
/// holding sealwright's own lock on `dir`.
fn remove_stale_locks(dir: &Path) {
    for name in ["packed-refs.lock", "HEAD.lock", "config.lock"] {
        let p = dir.join(name);
        if p.exists() {
            tracing::warn!(path = %p.display(), "removing a lock left by a killed process");
            let _ = std::fs::remove_file(p);
        }
    }
    let mut stack = vec![dir.join("refs")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "lock") {
                tracing::warn!(path = %p.display(), "removing a lock left by a killed process");
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Asks the remote where `branches` are, downloads what is missing, and moves the tracking refs.
/// Returns branch → tip for the branches that exist on the remote.
fn fetch(
    repo: &Repository,
    remote: &Remote,
    branches: &[&str],
) -> Result<HashMap<String, Oid>, GitError> {
    let state = Rc::new(RefCell::new(CallbackState::default()));
    let mut anonymous = repo
        .remote_anonymous(remote.url())
        .map_err(|e| GitError::local("set up the remote", e))?;
    let mut connection = anonymous
        .connect_auth(Direction::Fetch, Some(remote.callbacks(&state)), None)
        .map_err(|e| explain(e, &state, remote, "connect to fetch"))?;
    let advertised = connection
        .list()
        .map_err(|e| explain(e, &state, remote, "list the remote branches"))?;
    let mut heads = HashMap::new();
    for head in advertised {
        if let Some(name) = head.name().strip_prefix("refs/heads/") {
            if branches.contains(&name) {
                heads.insert(name.to_owned(), head.oid());
            }
        }
    }
    let odb = repo
        .odb()
        .map_err(|e| GitError::local("open the object database", e))?;
    let missing: Vec<String> = heads
        .iter()
        .filter(|(_, oid)| !odb.exists(**oid))
        .map(|(name, _)| format!("+refs/heads/{name}:refs/remotes/origin/{name}"))
        .collect();
    if !missing.is_empty() {
        let mut options = FetchOptions::new();
        options.remote_callbacks(remote.callbacks(&state));
        options.download_tags(AutotagOption::None);
        connection
            .remote()
            .download(&missing, Some(&mut options))
            .map_err(|e| explain(e, &state, remote, "fetch"))?;
    }
    drop(connection);
    for branch in branches {
        set_tracking_ref(repo, branch, heads.get(*branch).copied())?;
    }
    Ok(heads)
}

fn set_tracking_ref(repo: &Repository, branch: &str, tip: Option<Oid>) -> Result<(), GitError> {
    let name = format!("refs/remotes/origin/{branch}");
    // Rewriting a ref costs a lock file and a rename; most fetches find it where it was.
    if tip.is_some() && repo.refname_to_id(&name).ok() == tip {
        return Ok(());
    }
    match tip {
        Some(oid) => repo
            .reference(&name, oid, true, "sealwright fetch")
            .map(|_| ())
            .map_err(|e| GitError::local("move a tracking ref", e)),
        None => match repo.find_reference(&name) {
            Ok(mut r) => r
                .delete()
                .map_err(|e| GitError::local("delete a tracking ref", e)),
            Err(_) => Ok(()),
        },
    }
}

enum PushOutcome {
    Pushed,
    /// Someone else moved the branch: plan again.
    Moved,
    /// The server refused the update, with its reason.
    Refused(String),
}

/// Pushes `commit` to `branch`, but only if the remote branch is still at `expected` (None: absent).
fn push(
    repo: &Repository,
    remote: &Remote,
    branch: &str,
    expected: Option<Oid>,
    commit: Oid,
) -> Result<PushOutcome, GitError> {
    // A refspec pushes a ref, not an object id: stage the commit under one of our own.
    let outgoing = format!("refs/sealwright/outgoing/{branch}");
    repo.reference(&outgoing, commit, true, "sealwright push")
        .map_err(|e| GitError::local("stage the outgoing commit", e))?;
    push_refspec(
        repo,
        remote,
        &format!("{outgoing}:refs/heads/{branch}"),
        branch,
        Some(expected),
    )
}

/// Where `branch` points in a repository on this machine (`None`: it does not exist).
fn branch_tip(repo: &Repository, remote: &Remote, branch: &str) -> Result<Option<Oid>, GitError> {
    match repo.refname_to_id(&format!("refs/heads/{branch}")) {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(explain_local(e, remote, "read the branch")),
    }
}

/// Moves `branch` of a repository on this machine from `expected` to `commit`, atomically, or
/// tells that it moved meanwhile. (libgit2's own local transport moves the target ref without
/// checking its old value, so two writers could overwrite each other; this does not.)
fn move_branch_in_place(
    target: &Repository,
    remote: &Remote,
    path: &Path,
    branch: &str,
    expected: Option<Oid>,
    commit: Oid,
) -> Result<PushOutcome, GitError> {
    // Writers of a repository on this machine take `sealwright.lock` in it around the ref
    // update, so a ref lock found while holding it was left by a killed writer: clear it rather
    // than be blocked by it forever. (Repositories of the local host are sealwright's alone.)
    let guard_path = path.join("sealwright.lock");
    let guard = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&guard_path)
        .and_then(|f| f.lock().map(|_| f))
        .map_err(|e| GitError::Io {
            path: guard_path.display().to_string(),
            source: e,
        })?;
    remove_stale_locks(path);
    let name = format!("refs/heads/{branch}");
    let moved = match expected {
        Some(old) => target.reference_matching(&name, commit, true, old, "sealwright push"),
        None => target.reference(&name, commit, false, "sealwright push"),
    };
    let result = match moved {
        Ok(_) => Ok(PushOutcome::Pushed),
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked
            ) =>
        {
            Ok(PushOutcome::Moved)
        }
        Err(e) => Err(explain_local(e, remote, "move the branch")),
    };
    drop(guard);
    result
}

fn explain_local(e: git2::Error, remote: &Remote, context: &'static str) -> GitError {
    GitError::Remote {
        url: redact(remote.url()),
        context,
        message: e.message().trim().to_owned(),
    }
}

/// One libgit2 push of `refspec`. With `expected`, only if the remote branch is still there (None:
/// no check, for scratch refs).
fn push_refspec(
    repo: &Repository,
    remote: &Remote,
    refspec: &str,
    branch: &str,
    expected: Option<Option<Oid>>,
) -> Result<PushOutcome, GitError> {
    let state = Rc::new(RefCell::new(CallbackState::default()));
    let mut callbacks = remote.callbacks(&state);
    let refused = state.clone();
    // A refusal by the server (hook, protected branch, lost race inside receive-pack) does not make
    // push() fail: it only reaches this callback.
    callbacks.push_update_reference(move |refname, status| {
        if let Some(reason) = status {
            refused
                .borrow_mut()
                .rejected_refs
                .push(format!("{refname}: {reason}"));
        }
        Ok(())
    });
    if let Some(expected) = expected {
        let negotiated = state.clone();
        let dst = format!("refs/heads/{branch}");
        let expected_oid = expected.unwrap_or(Oid::ZERO_SHA1);
        // Compare-and-swap: the remote tells where the branch is now; if that is not the tip this
        // change was planned on, stop before sending anything. (receive-pack then checks the old
        // value again under its ref lock.)
        callbacks.push_negotiation(move |updates| {
            for update in updates {
                if update.dst_refname().ok() == Some(dst.as_str()) && update.src() != expected_oid {
                    negotiated.borrow_mut().moved_to = Some(update.src().to_string());
                    return Err(git2::Error::from_str("the remote branch moved"));
                }
            }
            Ok(())
        });
    }
    let mut options = PushOptions::new();
    options.remote_callbacks(callbacks);
    let mut anonymous = repo
        .remote_anonymous(remote.url())
        .map_err(|e| GitError::local("set up the remote", e))?;
    let result = anonymous.push(&[refspec], Some(&mut options));
    drop(options);
    let st = state.borrow();
    if st.moved_to.is_some() {
        return Ok(PushOutcome::Moved);
    }
    match result {
        Err(e) if e.code() == ErrorCode::NotFastForward => Ok(PushOutcome::Moved),
        Err(e) => Err(explain(e, &state, remote, "push")),
        Ok(()) if !st.rejected_refs.is_empty() => {
            Ok(PushOutcome::Refused(st.rejected_refs.join("; ")))
        }
        Ok(()) => Ok(PushOutcome::Pushed),
    }
}

/// Turns a libgit2 failure into an error that says what went wrong, using what the callbacks saw
/// (libgit2 replaces the messages of callback errors with generic ones).
fn explain(
    e: git2::Error,
    state: &Rc<RefCell<CallbackState>>,
    remote: &Remote,
    context: &'static str,
) -> GitError {
    let st = state.borrow();
    let url = redact(remote.url());
    if let Some(problem) = &st.host_key_problem {
        return GitError::HostKey {
            url,
            problem: problem.clone(),
        };
    }
    if st.credentials_rejected || e.code() == ErrorCode::Auth {
        return GitError::Auth {
            url,
            attempts: st.credential_attempts.min(2),
        };
    }
    GitError::Remote {
        url,
        context,
        message: e.message().trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(25),
        };
        for attempt in 1..40 {
            assert!(p.delay(attempt) <= Duration::from_millis(25));
        }
        let first: Vec<_> = (0..50).map(|_| p.delay(1)).collect();
        assert!(first.iter().all(|d| *d <= Duration::from_millis(10)));
        assert!(first.iter().any(|d| *d != first[0]), "delays must vary");
    }

    #[test]
    fn cache_paths_are_per_remote_and_readable() {
        let engine = GitEngine::new("/cache", Identity::new("a", "a@b").unwrap());
        let a = engine.cache_path(
            &Remote::new(
                "https://example.com/org/shop-platform.git",
                Credentials::None,
            )
            .unwrap(),
        );
        let b = engine.cache_path(
            &Remote::new(
                "https://example.com/other/shop-platform.git",
                Credentials::None,
            )
            .unwrap(),
        );
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("shop-platform-") && name.ends_with(".git"),
            "{name}"
        );
    }
}
