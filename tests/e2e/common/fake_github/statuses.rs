//! Commit statuses: create one, and the combined status of a ref (the latest per context).

use super::*;

pub(super) fn create_status(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let dir = sh.repo_dir(owner, name);
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let sha_arg = c.param("sha");
    let is_hex = sha_arg.len() >= 7 && sha_arg.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(sha) = is_hex.then(|| resolve_commit(&dir, sha_arg)).flatten() else {
        return Reply::error(422, &format!("No commit found for SHA: {sha_arg}"));
    };
    let s = Status {
        id: sh.new_id(),
        sha,
        state: c.str("state").unwrap_or("pending").to_string(),
        context: c.str("context").unwrap_or("default").to_string(),
        description: c.str("description").map(str::to_string),
        target_url: c.str("target_url").map(str::to_string),
        created_at: now(),
    };
    let mut body = status_json(sh, sh.example("repos/create-commit-status", 201), repo, &s);
    body["creator"] = user_json(sh, &sh.opts.user_login, false);
    repo.statuses.push(s);
    Reply::json(201, body)
}

pub(super) fn combined_status(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let dir = sh.repo_dir(owner, name);
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let Some(sha) = resolve_commit(&dir, c.param("ref")) else {
        return Reply::not_found();
    };
    let latest = latest_per_context(&repo.statuses, &sha);
    // GitHub: failure if any is error/failure; pending if none or any pending; else success.
    let state = if latest
        .iter()
        .any(|s| s.state == "error" || s.state == "failure")
    {
        "failure"
    } else if latest.is_empty() || latest.iter().any(|s| s.state == "pending") {
        "pending"
    } else {
        "success"
    };
    let mut body = sh.example("repos/get-combined-status-for-ref", 200);
    let item = body["statuses"][0].clone();
    let statuses: Vec<Value> = latest
        .iter()
        .map(|s| status_json(sh, item.clone(), repo, s))
        .collect();
    let api = format!("{}repos/{owner}/{name}", sh.base_url);
    body["state"] = json!(state);
    body["sha"] = json!(sha);
    body["total_count"] = json!(statuses.len());
    body["statuses"] = Value::Array(statuses);
    body["commit_url"] = json!(format!("{api}/commits/{sha}"));
    body["url"] = json!(format!("{api}/commits/{sha}/status"));
    let minimal = body["repository"].take();
    body["repository"] = repo_fields(sh, minimal, repo);
    Reply::json(200, body)
}

pub(super) fn latest_per_context<'a>(all: &'a [Status], sha: &str) -> Vec<&'a Status> {
    let mut latest: Vec<&Status> = Vec::new();
    for s in all.iter().filter(|s| s.sha == sha) {
        match latest.iter_mut().find(|l| l.context == s.context) {
            Some(l) => *l = s,
            None => latest.push(s),
        }
    }
    latest
}
