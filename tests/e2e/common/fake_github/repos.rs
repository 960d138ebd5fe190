//! Repositories: create (in an org or for the user) and get; each is a real bare repository.

use super::*;

pub(super) fn create_in_org(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    create_repo(
        sh,
        st,
        c,
        c.param("org").to_string(),
        true,
        "repos/create-in-org",
    )
}

pub(super) fn create_for_user(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let owner = sh.opts.user_login.clone();
    create_repo(
        sh,
        st,
        c,
        owner,
        false,
        "repos/create-for-authenticated-user",
    )
}

pub(super) fn create_repo(
    sh: &Shared,
    st: &mut State,
    c: &Call,
    owner: String,
    org: bool,
    op: &str,
) -> Reply {
    // GitHub replaces characters it does not allow in names by '-'.
    let name: String = c
        .str("name")
        .unwrap_or_default()
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                ch
            } else {
                '-'
            }
        })
        .collect();
    let name_error = |msg: &str| {
        Reply::validation_failed(json!([{
            "resource": "Repository", "code": "custom", "field": "name", "message": msg
        }]))
    };
    if name.is_empty() || name == "." || name == ".." {
        return name_error("name is invalid");
    }
    let dir = sh.repo_dir(&owner, &name);
    if st.repos.contains_key(&(owner.clone(), name.clone())) || dir.exists() {
        return name_error("name already exists on this account");
    }

    std::fs::create_dir_all(dir.parent().unwrap()).expect("create owner dir");
    let d = dir.to_string_lossy().to_string();
    if let Err(e) = git_ok(None, &["init", "--quiet", "--bare", "-b", "main", &d])
        .and_then(|_| git_ok(Some(&dir), &["config", "http.receivepack", "true"]))
    {
        return Reply::error(500, &format!("fake GitHub: git init failed: {e}"));
    }
    let description = c.str("description").map(str::to_string);
    if c.bool("auto_init") == Some(true) {
        // GitHub's initial commit: a README holding the name and the description.
        let readme = format!(
            "# {name}\n{}",
            description
                .as_deref()
                .map(|d| format!("{d}\n"))
                .unwrap_or_default()
        );
        let res = git_in(&dir, &["hash-object", "-w", "--stdin"], readme.as_bytes())
            .and_then(|blob| {
                git_in(
                    &dir,
                    &["mktree"],
                    format!("100644 blob {blob}\tREADME.md\n").as_bytes(),
                )
            })
            .and_then(|tree| commit_tree(&dir, &tree, &[], "Initial commit", &sh.opts.user_login))
            .and_then(|commit| git_ok(Some(&dir), &["update-ref", "refs/heads/main", &commit, ""]));
        if let Err(e) = res {
            return Reply::error(500, &format!("fake GitHub: auto_init failed: {e}"));
        }
    }

    let repo = Repo {
        id: sh.new_id(),
        owner: owner.clone(),
        name: name.clone(),
        owner_is_org: org,
        private: c.bool("private").unwrap_or(false) || c.str("visibility") == Some("private"),
        description,
        homepage: c.str("homepage").map(str::to_string),
        has_discussions: c.bool("has_discussions").unwrap_or(false),
        delete_branch_on_merge: c.bool("delete_branch_on_merge").unwrap_or(false),
        default_branch: "main".into(),
        created_at: now(),
        keys: Vec::new(),
        pulls: Vec::new(),
        statuses: Vec::new(),
    };
    let body = full_repo_json(sh, sh.example(op, 201), &repo);
    st.repos.insert((owner, name), repo);
    Reply::json(201, body)
}

pub(super) fn get_repo(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let Some(repo) = st.repo(sh, c.param("owner"), c.param("repo")) else {
        return Reply::not_found();
    };
    Reply::json(200, full_repo_json(sh, sh.example("repos/get", 200), repo))
}

impl State {
    /// The repo, also adopting one that a test created on disk itself (seeded bare repos).
    pub(super) fn repo(&mut self, sh: &Shared, owner: &str, name: &str) -> Option<&mut Repo> {
        let k = (owner.to_string(), name.to_string());
        if !self.repos.contains_key(&k) {
            let dir = sh.repo_dir(owner, name);
            if owner.contains("..") || name.contains("..") || !dir.join("HEAD").is_file() {
                return None;
            }
            let head = git_ok(Some(&dir), &["symbolic-ref", "HEAD"]).unwrap_or_default();
            self.repos.insert(
                k.clone(),
                Repo {
                    id: sh.new_id(),
                    owner: owner.into(),
                    name: name.into(),
                    owner_is_org: owner != sh.opts.user_login,
                    private: false,
                    description: None,
                    homepage: None,
                    has_discussions: false,
                    delete_branch_on_merge: false,
                    default_branch: head.strip_prefix("refs/heads/").unwrap_or("main").into(),
                    created_at: now(),
                    keys: Vec::new(),
                    pulls: Vec::new(),
                    statuses: Vec::new(),
                },
            );
        }
        self.repos.get_mut(&k)
    }
}
