//! What a commit changes, and the in-memory tree work behind it: [`ChangeSet`] (writes and deletes by
//! path), [`Snapshot`] (a read-only view of a branch tip that planners diff against), and the tree
//! builder that turns a parent tree plus a change set into a new tree without a working directory.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid, Repository, Tree, TreeWalkMode, TreeWalkResult};

use super::GitError;

/// Regular file mode; sealwright writes manifests and nothing executable.
const FILE_MODE: i32 = 0o100644;
const TREE_MODE: i32 = 0o040000;

/// Writes and deletes by repository path (`secrets/shop/db.sops.yaml`). Paths are checked when they
/// are added, so a change set that exists is one Git can store.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// `Some(bytes)` writes the file, `None` deletes it.
    ops: BTreeMap<String, Option<Vec<u8>>>,
}

// File contents may be secret-bearing (a plaintext manifest by mistake, a key); Debug shows paths only.
impl std::fmt::Debug for ChangeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (path, op) in &self.ops {
            match op {
                Some(bytes) => list.entry(&format_args!("write {path} ({} bytes)", bytes.len())),
                None => list.entry(&format_args!("delete {path}")),
            };
        }
        list.finish()
    }
}

impl ChangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `bytes` at `path` (creating or replacing the file).
    pub fn write(&mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Result<&mut Self, GitError> {
        check_path(path)?;
        self.ops.insert(path.to_owned(), Some(bytes.into()));
        Ok(self)
    }

    /// Deletes the file at `path`; deleting a file that is not there is a no-op.
    pub fn delete(&mut self, path: &str) -> Result<&mut Self, GitError> {
        check_path(path)?;
        self.ops.insert(path.to_owned(), None);
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The paths written, in order.
    pub fn writes(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.ops
            .iter()
            .filter_map(|(p, op)| op.as_deref().map(|b| (p.as_str(), b)))
    }

    /// The paths deleted, in order.
    pub fn deletes(&self) -> impl Iterator<Item = &str> {
        self.ops
            .iter()
            .filter(|(_, op)| op.is_none())
            .map(|(p, _)| p.as_str())
    }

    /// The part of this change that would change `snapshot`: writes of identical bytes and deletes of
    /// absent files are dropped. An empty result means "nothing to commit".
    pub fn against(&self, snapshot: &Snapshot<'_>) -> Result<ChangeSet, GitError> {
        let mut out = ChangeSet::new();
        for (path, op) in &self.ops {
            let current = snapshot.read(path)?;
            let differs = match (op, &current) {
                (Some(new), Some(old)) => new != old,
                (Some(_), None) => true,
                (None, Some(_)) => true,
                (None, None) => false,
            };
            if differs {
                out.ops.insert(path.clone(), op.clone());
            }
        }
        Ok(out)
    }
}

/// Refuses what Git cannot store or what would escape the tree: absolute paths, empty, `.` and `..`
/// components, `.git` anywhere (case-insensitively, as Git itself refuses it), NUL and backslashes.
fn check_path(path: &str) -> Result<(), GitError> {
    let bad = |problem: &str| GitError::BadPath {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    if path.is_empty() {
        return Err(bad("is empty"));
    }
    if path.starts_with('/') {
        return Err(bad("must be relative to the repository root"));
    }
    if path.contains('\0') || path.contains('\\') {
        return Err(bad("must not contain NUL or backslash characters"));
    }
    for part in path.split('/') {
        match part {
            "" => return Err(bad("has an empty component (`//` or a trailing `/`)")),
            "." | ".." => return Err(bad("must not contain `.` or `..` components")),
            p if p.eq_ignore_ascii_case(".git") => return Err(bad("must not touch `.git`")),
            _ => {}
        }
    }
    Ok(())
}

/// Whether sealwright made `commit`: authored under its identity, or carrying its change-id
/// trailer (which it writes on every commit, so a change of identity does not make its own
/// history look foreign).
fn is_sealwrights(commit: &git2::Commit<'_>, author_email: &str) -> bool {
    commit.author().email().ok() == Some(author_email)
        || commit.message().is_ok_and(|m| {
            m.lines().any(|l| {
                l.strip_prefix(super::message::CHANGE_ID_TRAILER)
                    .and_then(|r| r.strip_prefix(": "))
                    .is_some_and(|id| super::message::ChangeId::parse(id.trim()).is_some())
            })
        })
}

/// A commit someone other than sealwright made, and the files of sealwright's it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignCommit {
    pub id: String,
    /// `name <email>` as the commit records it.
    pub author: String,
    pub paths: Vec<String>,
}

/// A read-only view of one commit's tree (or of a branch that does not exist yet: no commit, no files).
pub struct Snapshot<'r> {
    repo: &'r Repository,
    commit: Option<Oid>,
    tree: Option<Tree<'r>>,
}

impl<'r> Snapshot<'r> {
    pub(crate) fn new(repo: &'r Repository, commit: Option<Oid>) -> Result<Self, git2::Error> {
        let tree = match commit {
            Some(id) => Some(repo.find_commit(id)?.tree()?),
            None => None,
        };
        Ok(Self { repo, commit, tree })
    }

    /// The commit this view shows, as 40 hex digits; `None` for a branch that does not exist yet.
    pub fn commit_id(&self) -> Option<String> {
        self.commit.map(|c| c.to_string())
    }

    pub(crate) fn commit(&self) -> Option<Oid> {
        self.commit
    }

    /// For each group of paths, the newest commit (on the first-parent line from this snapshot,
    /// at most `limit` commits back) that changed any of them. Groups not resolved within the
    /// limit are left out. Used after a restart, to tell which commit last changed each secret.
    pub fn last_changes(
        &self,
        groups: &[(String, Vec<String>)],
        limit: usize,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(mut id) = self.commit else {
            return out;
        };
        let entry = |tree: Option<&Tree<'_>>, path: &str| {
            tree.and_then(|t| t.get_path(std::path::Path::new(path)).ok())
                .map(|e| e.id())
        };
        for _ in 0..limit {
            let Ok(commit) = self.repo.find_commit(id) else {
                break;
            };
            let tree = commit.tree().ok();
            let parent = commit.parent(0).ok();
            let parent_tree = parent.as_ref().and_then(|p| p.tree().ok());
            for (name, paths) in groups {
                if out.contains_key(name) {
                    continue;
                }
                if paths
                    .iter()
                    .any(|p| entry(tree.as_ref(), p) != entry(parent_tree.as_ref(), p))
                {
                    out.insert(name.clone(), id.to_string());
                }
            }
            match parent {
                Some(p) if out.len() < groups.len() => id = p.id(),
                _ => break,
            }
        }
        out
    }

    /// The same repository at `commit` (an ancestor, say), read-only.
    pub fn at(&self, commit: &str) -> Result<Snapshot<'r>, GitError> {
        let id = Oid::from_str(commit).map_err(|e| GitError::local("parse a commit id", e))?;
        Snapshot::new(self.repo, Some(id)).map_err(|e| GitError::local("open a commit", e))
    }

    /// The newest commit on the first-parent line (at most `limit` back) that sealwright made
    /// (authored as `author_email`, or carrying its change-id trailer): its last render.
    pub fn last_authored_by(&self, author_email: &str, limit: usize) -> Option<String> {
        let mut id = self.commit?;
        for _ in 0..limit {
            let commit = self.repo.find_commit(id).ok()?;
            if is_sealwrights(&commit, author_email) {
                return Some(id.to_string());
            }
            id = commit.parent(0).ok()?.id();
        }
        None
    }

    /// The commits after `since` on the first-parent line to this snapshot (newest first, at
    /// most `limit`) that sealwright did not make (not authored as `author_email`, no change-id
    /// trailer), each with the paths it changed that `owned`
    /// accepts; commits that changed none are left out. `None` when `since` is not an ancestor
    /// within the limit (history was rewritten): nothing can be said about who changed what.
    pub fn foreign_changes(
        &self,
        since: &str,
        author_email: &str,
        owned: &dyn Fn(&str) -> bool,
        limit: usize,
    ) -> Option<Vec<ForeignCommit>> {
        let since = Oid::from_str(since).ok()?;
        let mut id = self.commit?;
        let mut out = Vec::new();
        for _ in 0..limit {
            if id == since {
                return Some(out);
            }
            let commit = self.repo.find_commit(id).ok()?;
            let parent = commit.parent(0).ok();
            let author = commit.author();
            if !is_sealwrights(&commit, author_email) {
                let tree = commit.tree().ok();
                let parent_tree = parent.as_ref().and_then(|p| p.tree().ok());
                let diff = self
                    .repo
                    .diff_tree_to_tree(parent_tree.as_ref(), tree.as_ref(), None)
                    .ok()?;
                let paths: Vec<String> = diff
                    .deltas()
                    .filter_map(|d| d.new_file().path().or_else(|| d.old_file().path()))
                    .filter_map(|p| p.to_str().map(str::to_owned))
                    .filter(|p| owned(p))
                    .collect();
                if !paths.is_empty() {
                    out.push(ForeignCommit {
                        id: id.to_string(),
                        author: format!(
                            "{} <{}>",
                            author.name().unwrap_or("?"),
                            author.email().unwrap_or("?")
                        ),
                        paths,
                    });
                }
            }
            id = parent?.id();
        }
        None
    }

    /// Whether commit `descendant` is `ancestor` or comes after it (both 40 hex digits, both in
    /// this repository; an unknown commit contains nothing).
    pub fn contains(&self, descendant: &str, ancestor: &str) -> bool {
        if descendant == ancestor {
            return true;
        }
        match (Oid::from_str(descendant), Oid::from_str(ancestor)) {
            (Ok(d), Ok(a)) => self.repo.graph_descendant_of(d, a).unwrap_or(false),
            _ => false,
        }
    }

    pub(crate) fn tree(&self) -> Option<&Tree<'r>> {
        self.tree.as_ref()
    }

    /// The bytes of the file at `path`, or `None` when there is no file there.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let Some(tree) = &self.tree else {
            return Ok(None);
        };
        let entry = match tree.get_path(std::path::Path::new(path)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(GitError::local("read a file from the tree", e)),
        };
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        let blob = self
            .repo
            .find_blob(entry.id())
            .map_err(|e| GitError::local("read a blob", e))?;
        Ok(Some(blob.content().to_vec()))
    }

    /// Every file under the folder `dir` (like `apps/shop-platform`), with its bytes; only that
    /// subtree is walked. Paths come back whole (`apps/shop-platform/sync.yaml`).
    pub fn files_in(&self, dir: &str) -> Result<BTreeMap<String, Vec<u8>>, GitError> {
        let mut out = BTreeMap::new();
        let Some(tree) = &self.tree else {
            return Ok(out);
        };
        let dir = dir.trim_end_matches('/');
        let entry = match tree.get_path(std::path::Path::new(dir)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(out),
            Err(e) => return Err(GitError::local("find a folder in the tree", e)),
        };
        if entry.kind() != Some(ObjectType::Tree) {
            return Ok(out);
        }
        let sub = self
            .repo
            .find_tree(entry.id())
            .map_err(|e| GitError::local("read a folder", e))?;
        let mut failure = None;
        sub.walk(TreeWalkMode::PreOrder, |inner, entry| {
            if entry.kind() != Some(ObjectType::Blob) {
                return TreeWalkResult::Ok;
            }
            let Ok(name) = entry.name() else {
                return TreeWalkResult::Ok;
            };
            match self.repo.find_blob(entry.id()) {
                Ok(blob) => {
                    out.insert(format!("{dir}/{inner}{name}"), blob.content().to_vec());
                    TreeWalkResult::Ok
                }
                Err(e) => {
                    failure = Some(e);
                    TreeWalkResult::Abort
                }
            }
        })
        .map_err(|e| GitError::local("walk a folder", e))?;
        match failure {
            Some(e) => Err(GitError::local("read a blob", e)),
            None => Ok(out),
        }
    }

    /// The names of the sub-folders of `dir` (`""` for the root).
    pub fn folders_in(&self, dir: &str) -> Result<Vec<String>, GitError> {
        let Some(tree) = &self.tree else {
            return Ok(Vec::new());
        };
        let dir = dir.trim_end_matches('/');
        let sub = if dir.is_empty() {
            tree.clone()
        } else {
            let entry = match tree.get_path(std::path::Path::new(dir)) {
                Ok(e) => e,
                Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(GitError::local("find a folder in the tree", e)),
            };
            if entry.kind() != Some(ObjectType::Tree) {
                return Ok(Vec::new());
            }
            self.repo
                .find_tree(entry.id())
                .map_err(|e| GitError::local("read a folder", e))?
        };
        Ok(sub
            .iter()
            .filter(|e| e.kind() == Some(ObjectType::Tree))
            .filter_map(|e| e.name().ok().map(str::to_owned))
            .collect())
    }

    /// Every file whose path starts with `prefix` (a folder like `secrets/`, or `""` for all files),
    /// with its bytes.
    pub fn files_under(&self, prefix: &str) -> Result<BTreeMap<String, Vec<u8>>, GitError> {
        let mut out = BTreeMap::new();
        let Some(tree) = &self.tree else {
            return Ok(out);
        };
        let mut failure = None;
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() != Some(ObjectType::Blob) {
                return TreeWalkResult::Ok;
            }
            let Ok(name) = entry.name() else {
                return TreeWalkResult::Ok;
            };
            let path = format!("{dir}{name}");
            if path.starts_with(prefix) {
                match self.repo.find_blob(entry.id()) {
                    Ok(blob) => {
                        out.insert(path, blob.content().to_vec());
                    }
                    Err(e) => {
                        failure = Some(e);
                        return TreeWalkResult::Abort;
                    }
                }
            }
            TreeWalkResult::Ok
        })
        .map_err(|e| GitError::local("walk the tree", e))?;
        match failure {
            Some(e) => Err(GitError::local("read a blob", e)),
            None => Ok(out),
        }
    }
}

/// Builds the tree of `base` with `changes` applied, writing only the blobs and trees that change
/// (nested `TreeBuilder`s; unchanged subtrees are reused by id). Folders left empty disappear, as
/// Git has no empty folders.
pub(crate) fn build_tree(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    changes: &ChangeSet,
) -> Result<Oid, GitError> {
    let ops: BTreeMap<&str, Option<&[u8]>> = changes
        .ops
        .iter()
        .map(|(p, op)| (p.as_str(), op.as_deref()))
        .collect();
    match build_level(repo, base, "", &ops)? {
        Some(id) => Ok(id),
        // Everything was deleted: commit the empty tree.
        None => repo
            .treebuilder(None)
            .and_then(|b| b.write())
            .map_err(|e| GitError::local("write the empty tree", e)),
    }
}

/// One folder level: `ops` holds paths relative to this folder (`dir`, for error messages).
fn build_level(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    dir: &str,
    ops: &BTreeMap<&str, Option<&[u8]>>,
) -> Result<Option<Oid>, GitError> {
    let local = |e| GitError::local("build a tree", e);
    let mut builder = repo.treebuilder(base).map_err(local)?;
    let mut subdirs: BTreeMap<&str, BTreeMap<&str, Option<&[u8]>>> = BTreeMap::new();
    for (&path, &op) in ops {
        match path.split_once('/') {
            Some((head, rest)) => {
                subdirs.entry(head).or_default().insert(rest, op);
            }
            None => {
                let existing = builder.get(path).map_err(local)?.map(|e| e.kind());
                let is_tree = existing == Some(Some(ObjectType::Tree));
                match op {
                    Some(bytes) => {
                        if is_tree || subdirs_hold(ops, path) {
                            return Err(conflict(
                                dir,
                                path,
                                "is a folder, cannot write a file there",
                            ));
                        }
                        let blob = repo.blob(bytes).map_err(local)?;
                        builder.insert(path, blob, FILE_MODE).map_err(local)?;
                    }
                    None if is_tree => {
                        return Err(conflict(dir, path, "is a folder; delete its files instead"));
                    }
                    None if existing.is_some() => {
                        builder.remove(path).map_err(local)?;
                    }
                    None => {}
                }
            }
        }
    }
    for (name, sub_ops) in &subdirs {
        let existing = builder
            .get(name)
            .map_err(local)?
            .map(|e| (e.id(), e.kind()));
        let sub_tree = match existing {
            Some((id, Some(ObjectType::Tree))) => Some(repo.find_tree(id).map_err(local)?),
            Some(_) if sub_ops.values().all(Option::is_none) => continue, // deletes under a file: nothing there
            Some(_) => {
                return Err(conflict(
                    dir,
                    name,
                    "is a file, cannot create a folder there",
                ))
            }
            None => None,
        };
        let sub_dir = format!("{dir}{name}/");
        match build_level(repo, sub_tree.as_ref(), &sub_dir, sub_ops)? {
            Some(id) => {
                builder.insert(name, id, TREE_MODE).map_err(local)?;
            }
            None if existing.is_some() => {
                builder.remove(name).map_err(local)?;
            }
            None => {}
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    builder.write().map(Some).map_err(local)
}

/// Whether the change set also writes below `name` at this level (`a` and `a/b` in one change).
fn subdirs_hold(ops: &BTreeMap<&str, Option<&[u8]>>, name: &str) -> bool {
    let prefix = format!("{name}/");
    ops.range(prefix.as_str()..)
        .next()
        .is_some_and(|(p, _)| p.starts_with(&prefix))
}

fn conflict(dir: &str, name: &str, problem: &str) -> GitError {
    GitError::BadPath {
        path: format!("{dir}{name}"),
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        (dir, repo)
    }

    fn commit(repo: &Repository, parent: Option<Oid>, changes: &ChangeSet) -> Oid {
        let snap = Snapshot::new(repo, parent).unwrap();
        let tree_id = build_tree(repo, snap.tree(), changes).unwrap();
        let tree = repo.find_tree(tree_id).unwrap();
        let sig = git2::Signature::new("t", "t@example.com", &git2::Time::new(0, 0)).unwrap();
        let parents: Vec<git2::Commit> = parent
            .iter()
            .map(|p| repo.find_commit(*p).unwrap())
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(None, &sig, &sig, "m", &tree, &refs).unwrap()
    }

    #[test]
    fn the_last_change_of_each_group_is_found_on_the_first_parent_line() {
        let (_d, repo) = repo();
        let mut c = ChangeSet::new();
        c.write("secrets/a/db.sops.yaml", "1")
            .unwrap()
            .write("secrets/b/db.sops.yaml", "1")
            .unwrap();
        c.write("secrets/a/api.sops.yaml", "1").unwrap();
        let c1 = commit(&repo, None, &c);
        let mut c = ChangeSet::new();
        c.write("secrets/b/db.sops.yaml", "2").unwrap();
        let c2 = commit(&repo, Some(c1), &c);
        let mut c = ChangeSet::new();
        c.write("README.md", "x").unwrap();
        let c3 = commit(&repo, Some(c2), &c);
        let snap = Snapshot::new(&repo, Some(c3)).unwrap();
        let groups = vec![
            (
                "db".to_owned(),
                vec![
                    "secrets/a/db.sops.yaml".to_owned(),
                    "secrets/b/db.sops.yaml".to_owned(),
                ],
            ),
            ("api".to_owned(), vec!["secrets/a/api.sops.yaml".to_owned()]),
            (
                "gone".to_owned(),
                vec!["secrets/a/gone.sops.yaml".to_owned()],
            ),
        ];
        let found = snap.last_changes(&groups, 100);
        assert_eq!(found.get("db"), Some(&c2.to_string()));
        assert_eq!(found.get("api"), Some(&c1.to_string()));
        assert!(!found.contains_key("gone"));
        // A walk too short to reach a change tells nothing about it.
        let short = snap.last_changes(&groups, 1);
        assert!(short.is_empty(), "{short:?}");
        assert!(snap.contains(&c3.to_string(), &c1.to_string()));
        assert!(!Snapshot::new(&repo, Some(c1))
            .unwrap()
            .contains(&c1.to_string(), &c3.to_string()));
    }

    #[test]
    fn paths_are_checked() {
        let mut c = ChangeSet::new();
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "a/../b",
            ".git/config",
            "x/.GIT/y",
            "a\\b",
        ] {
            let err = c.write(bad, "x").unwrap_err().to_string();
            assert!(err.contains("invalid path"), "{bad:?}: {err}");
        }
        c.write("secrets/shop/db.sops.yaml", "x").unwrap();
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn debug_shows_paths_not_contents() {
        let mut c = ChangeSet::new();
        c.write("a.yaml", "hunter2")
            .unwrap()
            .delete("b.yaml")
            .unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("write a.yaml (7 bytes)") && shown.contains("delete b.yaml"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn builds_nested_trees_and_matches_git_layout() {
        let (_d, repo) = repo();
        let mut c = ChangeSet::new();
        c.write("README.md", "hi\n").unwrap();
        c.write("secrets/shop/a.yaml", "a\n").unwrap();
        c.write("secrets/shop/b.yaml", "b\n").unwrap();
        c.write("secrets/billing/c.yaml", "c\n").unwrap();
        let first = commit(&repo, None, &c);
        let snap = Snapshot::new(&repo, Some(first)).unwrap();
        assert_eq!(snap.read("secrets/shop/b.yaml").unwrap().unwrap(), b"b\n");
        assert_eq!(
            snap.read("secrets/shop").unwrap(),
            None,
            "a folder is not a file"
        );
        assert_eq!(snap.read("nope/x").unwrap(), None);
        let files = snap.files_under("secrets/").unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            [
                "secrets/billing/c.yaml",
                "secrets/shop/a.yaml",
                "secrets/shop/b.yaml"
            ]
        );
        assert_eq!(snap.files_under("").unwrap().len(), 4);

        // Deleting the last file of a folder removes the folder; untouched subtrees keep their ids.
        let shop_before = snap
            .tree()
            .unwrap()
            .get_path("secrets/shop".as_ref())
            .unwrap()
            .id();
        let mut d = ChangeSet::new();
        d.delete("secrets/billing/c.yaml").unwrap();
        d.delete("not/there.yaml").unwrap();
        let second = commit(&repo, Some(first), &d);
        let snap2 = Snapshot::new(&repo, Some(second)).unwrap();
        let tree = snap2.tree().unwrap();
        assert!(tree.get_path("secrets/billing".as_ref()).is_err());
        assert_eq!(
            tree.get_path("secrets/shop".as_ref()).unwrap().id(),
            shop_before
        );
    }

    #[test]
    fn against_drops_no_ops() {
        let (_d, repo) = repo();
        let mut c = ChangeSet::new();
        c.write("a", "1").unwrap().write("b", "2").unwrap();
        let first = commit(&repo, None, &c);
        let snap = Snapshot::new(&repo, Some(first)).unwrap();
        let mut again = ChangeSet::new();
        again.write("a", "1").unwrap().delete("zz").unwrap();
        assert!(again.against(&snap).unwrap().is_empty());
        again.write("b", "3").unwrap().delete("a").unwrap();
        let eff = again.against(&snap).unwrap();
        assert_eq!(eff.writes().map(|(p, _)| p).collect::<Vec<_>>(), ["b"]);
        assert_eq!(eff.deletes().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn file_folder_conflicts_are_refused() {
        let (_d, repo) = repo();
        let mut c = ChangeSet::new();
        c.write("a/b", "1").unwrap();
        let first = commit(&repo, None, &c);
        let snap = Snapshot::new(&repo, Some(first)).unwrap();
        let mut over_dir = ChangeSet::new();
        over_dir.write("a", "x").unwrap();
        let e = build_tree(&repo, snap.tree(), &over_dir)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"a\"") && e.contains("folder"), "{e}");
        let mut under_file = ChangeSet::new();
        under_file.write("a/b/c", "x").unwrap();
        let e = build_tree(&repo, snap.tree(), &under_file)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a/b") && e.contains("is a file"), "{e}");
        let mut both = ChangeSet::new();
        both.write("x", "1").unwrap().write("x/y", "2").unwrap();
        assert!(build_tree(&repo, None, &both).is_err());
    }

    #[test]
    fn deleting_everything_gives_the_empty_tree() {
        let (_d, repo) = repo();
        let mut c = ChangeSet::new();
        c.write("only/file", "1").unwrap();
        let first = commit(&repo, None, &c);
        let mut d = ChangeSet::new();
        d.delete("only/file").unwrap();
        let snap = Snapshot::new(&repo, Some(first)).unwrap();
        let id = build_tree(&repo, snap.tree(), &d).unwrap();
        assert_eq!(id.to_string(), "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
    }
}
