//! Response bodies: each starts from the spec's example (so its shape is GitHub's) with the
//! example's names, URLs and values replaced by this fake's.

use super::*;

/// The examples' API host, replaced by this fake's base URL so that URLs in responses work
/// (one example URL has it with http:).
pub(super) const API: &str = "https://api.github.com/";
pub(super) const API_HTTP: &str = "http://api.github.com/";

/// The string at a JSON pointer of an example ("" if absent).
pub(super) fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Replaces substrings in every string inside `v` (empty patterns are skipped).
pub(super) fn substitute(v: &mut Value, subs: &[(&str, &str)]) {
    match v {
        Value::String(s) => {
            for (from, to) in subs {
                if !from.is_empty() && s.contains(from) {
                    *s = s.replace(from, to);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, subs)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, subs)),
        _ => {}
    }
}

/// Sets `key` only where the template has it (the examples of different schemas share fields).
pub(super) fn set(obj: &mut Value, key: &str, value: Value) {
    if let Some(slot) = obj.get_mut(key) {
        *slot = value;
    }
}

/// A stable id per login, so the same user has the same id in every response.
pub(super) fn user_id(login: &str) -> u64 {
    let h = login.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    1 + h % 90_000_000
}

/// A "Simple User" (owner, organization, PR user ...) from the repos/get example's owner.
pub(super) fn user_json(sh: &Shared, login: &str, org: bool) -> Value {
    let mut u = sh.example("repos/get", 200)["owner"].clone();
    let example_login = str_at(&u, "/login");
    substitute(
        &mut u,
        &[
            (API, &sh.base_url),
            (API_HTTP, &sh.base_url),
            (&example_login, login),
        ],
    );
    let id = user_id(login);
    u["login"] = json!(login);
    u["id"] = json!(id);
    u["node_id"] = json!(format!("{}_fake{id}", if org { "O" } else { "U" }));
    u["type"] = json!(if org { "Organization" } else { "User" });
    u["site_admin"] = json!(false);
    u
}

/// Fills the fields of a repository-shaped object (full, minimal, or a PR's head/base repo).
pub(super) fn repo_fields(sh: &Shared, mut v: Value, r: &Repo) -> Value {
    let full_name = format!("{}/{}", r.owner, r.name);
    let example_full_name = str_at(&v, "/full_name");
    substitute(
        &mut v,
        &[
            (API, &sh.base_url),
            (API_HTTP, &sh.base_url),
            (&example_full_name, &full_name),
        ],
    );
    let ssh_url = match &sh.opts.ssh_url_prefix {
        Some(p) => format!("{p}{full_name}.git"),
        None => format!("git@github.com:{full_name}.git"),
    };
    let clone_url = match &sh.opts.clone_url_prefix {
        Some(p) => format!("{p}{full_name}.git"),
        None => format!("file://{}", sh.repo_dir(&r.owner, &r.name).display()),
    };
    set(&mut v, "id", json!(r.id));
    set(&mut v, "node_id", json!(format!("R_fake{}", r.id)));
    set(&mut v, "name", json!(r.name));
    set(&mut v, "full_name", json!(full_name));
    set(&mut v, "owner", user_json(sh, &r.owner, r.owner_is_org));
    set(&mut v, "private", json!(r.private));
    set(
        &mut v,
        "visibility",
        json!(if r.private { "private" } else { "public" }),
    );
    set(&mut v, "description", json!(r.description));
    set(&mut v, "homepage", json!(r.homepage));
    set(&mut v, "fork", json!(false));
    set(&mut v, "default_branch", json!(r.default_branch));
    set(&mut v, "ssh_url", json!(ssh_url));
    set(&mut v, "clone_url", json!(clone_url));
    set(&mut v, "mirror_url", Value::Null);
    set(&mut v, "license", Value::Null);
    set(&mut v, "language", Value::Null);
    set(&mut v, "topics", json!([]));
    set(&mut v, "is_template", json!(false));
    set(&mut v, "archived", json!(false));
    set(&mut v, "disabled", json!(false));
    set(&mut v, "has_discussions", json!(r.has_discussions));
    set(
        &mut v,
        "delete_branch_on_merge",
        json!(r.delete_branch_on_merge),
    );
    set(&mut v, "template_repository", Value::Null);
    for k in ["created_at", "updated_at", "pushed_at"] {
        set(&mut v, k, json!(r.created_at));
    }
    for k in [
        "forks",
        "forks_count",
        "stargazers_count",
        "watchers",
        "watchers_count",
        "open_issues",
        "open_issues_count",
        "size",
        "subscribers_count",
        "network_count",
    ] {
        set(&mut v, k, json!(0));
    }
    set(
        &mut v,
        "permissions",
        json!({"admin": true, "maintain": true, "push": true, "triage": true, "pull": true}),
    );
    v
}

/// The full repository of repos/get and the create operations.
pub(super) fn full_repo_json(sh: &Shared, template: Value, r: &Repo) -> Value {
    let mut v = repo_fields(sh, template, r);
    let o = v.as_object_mut().unwrap();
    // A new repository is no fork: no parent/source.
    o.remove("parent");
    o.remove("source");
    o.insert(
        "organization".into(),
        if r.owner_is_org {
            user_json(sh, &r.owner, true)
        } else {
            Value::Null
        },
    );
    // Two of the spec's example violations: create-in-org lacks has_discussions, get lacks
    // language.
    o.insert("has_discussions".into(), json!(r.has_discussions));
    o.insert("language".into(), Value::Null);
    v
}

pub(super) fn key_json(sh: &Shared, mut v: Value, owner: &str, name: &str, k: &DeployKey) -> Value {
    v["id"] = json!(k.id);
    v["key"] = json!(k.key);
    v["url"] = json!(format!("{}repos/{owner}/{name}/keys/{}", sh.base_url, k.id));
    v["title"] = json!(k.title);
    v["verified"] = json!(true);
    v["created_at"] = json!(k.created_at);
    v["read_only"] = json!(k.read_only);
    set(&mut v, "added_by", json!(sh.opts.user_login));
    set(&mut v, "last_used", Value::Null);
    set(&mut v, "enabled", json!(true));
    v
}

pub(super) fn ref_json(
    sh: &Shared,
    mut v: Value,
    owner: &str,
    name: &str,
    full: &str,
    sha: &str,
    kind: &str,
) -> Value {
    let api = format!("{}repos/{owner}/{name}/git", sh.base_url);
    v["ref"] = json!(full);
    v["node_id"] = json!(format!("REF_fake_{full}"));
    v["url"] = json!(format!("{api}/{full}"));
    v["object"] = json!({"type": kind, "sha": sha, "url": format!("{api}/{kind}s/{sha}")});
    v
}

pub(super) fn status_json(sh: &Shared, mut v: Value, r: &Repo, s: &Status) -> Value {
    set(
        &mut v,
        "url",
        json!(format!(
            "{}repos/{}/{}/statuses/{}",
            sh.base_url, r.owner, r.name, s.sha
        )),
    );
    set(&mut v, "id", json!(s.id));
    set(&mut v, "node_id", json!(format!("SC_fake{}", s.id)));
    set(&mut v, "state", json!(s.state));
    set(&mut v, "context", json!(s.context));
    set(&mut v, "description", json!(s.description));
    set(&mut v, "target_url", json!(s.target_url));
    set(&mut v, "created_at", json!(s.created_at));
    set(&mut v, "updated_at", json!(s.created_at));
    v
}

/// A pull request, full (pulls/get, pulls/create) or simple (pulls/list): the fields the
/// template lacks are not added.
pub(super) fn pr_json(sh: &Shared, mut v: Value, r: &Repo, p: &Pull) -> Value {
    let dir = sh.repo_dir(&r.owner, &r.name);
    let (head, base) = if p.open {
        (
            resolve_ref(&dir, &format!("refs/heads/{}", p.head_ref))
                .unwrap_or_else(|| p.head_sha.clone()),
            resolve_ref(&dir, &format!("refs/heads/{}", p.base_ref))
                .unwrap_or_else(|| p.base_sha.clone()),
        )
    } else {
        (p.head_sha.clone(), p.base_sha.clone())
    };
    // The example's own number, sha and repo name appear inside its URLs and _links.
    let (n, ex_n) = (p.number, v["number"].to_string());
    let (ex_sha, ex_repo) = (str_at(&v, "/head/sha"), str_at(&v, "/base/repo/full_name"));
    let full_name = format!("{}/{}", r.owner, r.name);
    substitute(
        &mut v,
        &[
            (API, &sh.base_url),
            (API_HTTP, &sh.base_url),
            (&format!("/pulls/{ex_n}"), &format!("/pulls/{n}")),
            (&format!("/pull/{ex_n}"), &format!("/pull/{n}")),
            (&format!("/issues/{ex_n}"), &format!("/issues/{n}")),
            (&ex_sha, &head),
            (&ex_repo, &full_name),
        ],
    );
    set(&mut v, "id", json!(p.id));
    set(&mut v, "node_id", json!(format!("PR_fake{}", p.id)));
    set(&mut v, "number", json!(p.number));
    set(
        &mut v,
        "state",
        json!(if p.open { "open" } else { "closed" }),
    );
    set(&mut v, "locked", json!(false));
    set(&mut v, "active_lock_reason", Value::Null);
    set(&mut v, "title", json!(p.title));
    set(&mut v, "body", json!(p.body));
    set(&mut v, "user", user_json(sh, &p.user, false));
    set(&mut v, "draft", json!(p.draft));
    set(&mut v, "created_at", json!(p.created_at));
    set(&mut v, "updated_at", json!(p.updated_at));
    set(&mut v, "closed_at", json!(p.closed_at));
    set(&mut v, "merged_at", json!(p.merged_at));
    set(&mut v, "merge_commit_sha", json!(p.merge_commit_sha));
    set(
        &mut v,
        "author_association",
        json!(if p.user == r.owner { "OWNER" } else { "MEMBER" }),
    );
    // No labels, milestone, assignees or reviewers in this fake. Clearing requested_teams also
    // removes the spec example's violation (requested_teams[0] lacks `type`).
    for k in [
        "labels",
        "assignees",
        "requested_reviewers",
        "requested_teams",
    ] {
        set(&mut v, k, json!([]));
    }
    for k in ["milestone", "assignee", "auto_merge"] {
        set(&mut v, k, Value::Null);
    }
    for (side, rf, sha) in [("head", &p.head_ref, &head), ("base", &p.base_ref, &base)] {
        if let Some(s) = v.get_mut(side) {
            s["label"] = json!(format!("{}:{rf}", r.owner));
            s["ref"] = json!(rf);
            s["sha"] = json!(sha);
            s["user"] = user_json(sh, &r.owner, r.owner_is_org);
            let repo = s["repo"].take();
            s["repo"] = repo_fields(sh, repo, r);
        }
    }

    // Fields only the full pull request has.
    if v.get("merged").is_some() {
        let mergeable = p.open.then(|| merge_tree(&dir, &base, &head).is_ok());
        set(&mut v, "merged", json!(p.merged));
        set(
            &mut v,
            "merged_by",
            if p.merged {
                user_json(sh, &sh.opts.user_login, false)
            } else {
                Value::Null
            },
        );
        set(&mut v, "mergeable", json!(mergeable));
        set(&mut v, "rebaseable", json!(mergeable));
        set(
            &mut v,
            "mergeable_state",
            json!(match mergeable {
                Some(true) => "clean",
                Some(false) => "dirty",
                None => "unknown",
            }),
        );
        set(&mut v, "comments", json!(0));
        set(&mut v, "review_comments", json!(0));
        set(&mut v, "maintainer_can_modify", json!(false));
        let (commits, additions, deletions, files) = diff_stats(&dir, &base, &head);
        set(&mut v, "commits", json!(commits));
        set(&mut v, "additions", json!(additions));
        set(&mut v, "deletions", json!(deletions));
        set(&mut v, "changed_files", json!(files));
    }
    v
}

/// (commits, additions, deletions, changed files) of base...head, as GitHub counts a PR.
pub(super) fn diff_stats(dir: &Path, base: &str, head: &str) -> (u64, u64, u64, u64) {
    let commits = git_ok(
        Some(dir),
        &["rev-list", "--count", &format!("{base}..{head}")],
    )
    .ok()
    .and_then(|s| s.parse().ok())
    .unwrap_or(0);
    let numstat = git_ok(
        Some(dir),
        &["diff", "--numstat", &format!("{base}...{head}")],
    )
    .unwrap_or_default();
    let (mut add, mut del, mut files) = (0, 0, 0);
    for l in numstat.lines() {
        let mut f = l.split('\t');
        add += f.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        del += f.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        files += 1;
    }
    (commits, add, del, files)
}
