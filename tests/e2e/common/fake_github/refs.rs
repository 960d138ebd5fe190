//! Git refs: create, get, update (fast-forward or forced) and delete, on the real refs.

use super::*;

pub(super) fn create_ref(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let dir = sh.repo_dir(owner, name);
    let (full, sha) = (
        c.str("ref").unwrap_or_default(),
        c.str("sha").unwrap_or_default(),
    );
    if !full.starts_with("refs/") || full.matches('/').count() < 2 {
        return Reply::error(
            422,
            "Reference name must contain at least three slash-separated components.",
        );
    }
    if git_ok(None, &["check-ref-format", full]).is_err() {
        return Reply::error(422, &format!("{full} is not a valid ref name."));
    }
    let Some(kind) = object_type(&dir, sha) else {
        return Reply::error(422, "Object does not exist");
    };
    if resolve_ref(&dir, full).is_some() {
        return Reply::error(422, "Reference already exists");
    }
    // Empty old value: create only if absent; a d/f conflict (heads/a vs heads/a/b) fails too.
    if git_ok(Some(&dir), &["update-ref", full, sha, ""]).is_err() {
        return Reply::error(422, "Reference update failed");
    }
    Reply::json(
        201,
        ref_json(
            sh,
            sh.example("git/create-ref", 201),
            owner,
            name,
            full,
            sha,
            &kind,
        ),
    )
}

pub(super) fn get_ref(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let dir = sh.repo_dir(owner, name);
    let full = format!("refs/{}", c.param("ref"));
    match resolve_ref(&dir, &full) {
        Some(sha) => {
            let kind = object_type(&dir, &sha).unwrap_or_else(|| "commit".into());
            Reply::json(
                200,
                ref_json(
                    sh,
                    sh.example("git/get-ref", 200),
                    owner,
                    name,
                    &full,
                    &sha,
                    &kind,
                ),
            )
        }
        None if git_ok(Some(&dir), &["for-each-ref", "--count=1"])
            .unwrap_or_default()
            .is_empty() =>
        {
            Reply::error(409, "Git Repository is empty.")
        }
        None => Reply::not_found(),
    }
}

pub(super) fn update_ref(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let dir = sh.repo_dir(owner, name);
    let full = format!("refs/{}", c.param("ref"));
    let sha = c.str("sha").unwrap_or_default();
    let Some(old) = resolve_ref(&dir, &full) else {
        return Reply::error(422, "Reference does not exist");
    };
    let Some(kind) = object_type(&dir, sha) else {
        return Reply::error(422, "Object does not exist");
    };
    if c.bool("force") != Some(true) && !is_ancestor(&dir, &old, sha) {
        return Reply::error(422, "Update is not a fast forward");
    }
    // Compare-and-swap against the value just checked.
    if git_ok(Some(&dir), &["update-ref", &full, sha, &old]).is_err() {
        return Reply::error(422, "Reference cannot be updated");
    }
    Reply::json(
        200,
        ref_json(
            sh,
            sh.example("git/update-ref", 200),
            owner,
            name,
            &full,
            sha,
            &kind,
        ),
    )
}

pub(super) fn delete_ref(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let dir = sh.repo_dir(owner, name);
    let full = format!("refs/{}", c.param("ref"));
    let Some(old) = resolve_ref(&dir, &full) else {
        return Reply::error(422, "Reference does not exist");
    };
    if git_ok(Some(&dir), &["update-ref", "-d", &full, &old]).is_err() {
        return Reply::error(422, "Reference cannot be deleted");
    }
    Reply::empty(204)
}
