//! Pull requests: create, list, get and merge (merge, squash or rebase, as real git commits moved
//! in with a compare-and-swap).

use super::*;

pub(super) fn create_pull(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let dir = sh.repo_dir(owner, name);
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let head_arg = c.str("head").unwrap_or_default();
    let base_ref = c.str("base").unwrap_or_default().to_string();
    let invalid = |field: &str| {
        Reply::validation_failed(
            json!([{"resource": "PullRequest", "field": field, "code": "invalid"}]),
        )
    };
    // "owner:branch" names the head's owner; forks do not exist in this fake.
    let head_ref = match head_arg.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(owner) => b.to_string(),
        Some(_) => return invalid("head"),
        None => head_arg.to_string(),
    };
    let Some(head_sha) = resolve_ref(&dir, &format!("refs/heads/{head_ref}")) else {
        return invalid("head");
    };
    let Some(base_sha) = resolve_ref(&dir, &format!("refs/heads/{base_ref}")) else {
        return invalid("base");
    };
    let Some(title) = c.str("title").filter(|t| !t.trim().is_empty()) else {
        return Reply::validation_failed(
            json!([{"resource": "PullRequest", "code": "missing_field", "field": "title"}]),
        );
    };
    if repo
        .pulls
        .iter()
        .any(|p| p.open && p.head_ref == head_ref && p.base_ref == base_ref)
    {
        return Reply::validation_failed(json!([{
            "resource": "PullRequest", "code": "custom",
            "message": format!("A pull request already exists for {owner}:{head_ref}.")
        }]));
    }
    if is_ancestor(&dir, &head_sha, &base_sha) {
        return Reply::validation_failed(json!([{
            "resource": "PullRequest", "code": "custom",
            "message": format!("No commits between {base_ref} and {head_ref}")
        }]));
    }
    let t = now();
    let pr = Pull {
        id: sh.new_id(),
        number: repo.pulls.len() as u64 + 1,
        title: title.to_string(),
        body: c.str("body").map(str::to_string),
        user: sh.opts.user_login.clone(),
        head_ref,
        base_ref,
        head_sha,
        base_sha,
        open: true,
        draft: c.bool("draft").unwrap_or(false),
        merged: false,
        merge_commit_sha: None,
        created_at: t.clone(),
        updated_at: t,
        closed_at: None,
        merged_at: None,
    };
    let body = pr_json(sh, sh.example("pulls/create", 201), repo, &pr);
    repo.pulls.push(pr);
    Reply::json(201, body)
}

pub(super) fn list_pulls(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let q = |k: &str| c.query.get(k).map(String::as_str);
    let state = q("state").unwrap_or("open");
    // GitHub ignores a `head` filter that is not "owner:branch" (a classic client mistake).
    let head = q("head").and_then(|h| h.split_once(':'));
    let base = q("base");
    let mut hits: Vec<&Pull> = repo
        .pulls
        .iter()
        .filter(|p| match state {
            "closed" => !p.open,
            "all" => true,
            _ => p.open,
        })
        .filter(|p| head.is_none_or(|(o, b)| o.eq_ignore_ascii_case(owner) && p.head_ref == b))
        .filter(|p| base.is_none_or(|b| p.base_ref == b))
        .collect();
    let asc = q("direction") == Some("asc");
    hits.sort_by_key(|p| p.number);
    if !asc {
        hits.reverse();
    }
    let per_page: usize = q("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = q("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let template = sh.example("pulls/list", 200)[0].clone();
    let items: Vec<Value> = hits
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| pr_json(sh, template.clone(), repo, p))
        .collect();
    let mut reply = Reply::json(200, Value::Array(items));
    if hits.len() > page * per_page {
        let mut query: Vec<String> = c
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        query.push(format!("page={}", page + 1));
        let next = format!(
            "{}repos/{owner}/{name}/pulls?{}",
            sh.base_url,
            query.join("&")
        );
        reply = reply.with_header("link", &format!("<{next}>; rel=\"next\""));
    }
    reply
}

pub(super) fn get_pull(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let Some(repo) = st.repo(sh, c.param("owner"), c.param("repo")) else {
        return Reply::not_found();
    };
    let n: u64 = c.param("pull_number").parse().unwrap_or(0);
    let Some(pr) = repo.pulls.iter().find(|p| p.number == n) else {
        return Reply::not_found();
    };
    Reply::json(200, pr_json(sh, sh.example("pulls/get", 200), repo, pr))
}

pub(super) fn merge_pull(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let dir = sh.repo_dir(owner, name);
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let n: u64 = c.param("pull_number").parse().unwrap_or(0);
    let delete_branch = repo.delete_branch_on_merge;
    let Some(pr) = repo.pulls.iter_mut().find(|p| p.number == n) else {
        return Reply::not_found();
    };
    if !pr.open {
        return Reply::not_mergeable();
    }
    let (Some(head), Some(base)) = (
        resolve_ref(&dir, &format!("refs/heads/{}", pr.head_ref)),
        resolve_ref(&dir, &format!("refs/heads/{}", pr.base_ref)),
    ) else {
        return Reply::not_mergeable();
    };
    if c.str("sha").is_some_and(|s| s != head) {
        return Reply::error(
            409,
            "Head branch was modified. Review and try the merge again.",
        );
    }

    let merger = sh.opts.user_login.clone();
    let method = c.str("merge_method").unwrap_or("merge");
    let new = match method {
        "rebase" => rebase_commits(&dir, &base, &head),
        _ => {
            let tree = match merge_tree(&dir, &base, &head) {
                Ok(t) => t,
                Err(_) => return Reply::not_mergeable(),
            };
            let (title, message, parents) = if method == "squash" {
                let (t, m) = squash_message(&dir, &base, &head, pr);
                (t, m, vec![base.clone()])
            } else {
                let t = format!(
                    "Merge pull request #{} from {owner}/{}",
                    pr.number, pr.head_ref
                );
                (t, pr.title.clone(), vec![base.clone(), head.clone()])
            };
            let title = c.str("commit_title").map(str::to_string).unwrap_or(title);
            let message = c
                .str("commit_message")
                .map(str::to_string)
                .unwrap_or(message);
            let full = if message.is_empty() {
                title
            } else {
                format!("{title}\n\n{message}")
            };
            commit_tree(&dir, &tree, &parents, &full, &merger).map_err(|_| ())
        }
    };
    let Ok(new) = new else {
        return Reply::not_mergeable();
    };
    // Compare-and-swap: if the base moved since it was read (a push), do not clobber it.
    let base_full = format!("refs/heads/{}", pr.base_ref);
    if git_ok(Some(&dir), &["update-ref", &base_full, &new, &base]).is_err() {
        return Reply::error(
            409,
            "Base branch was modified. Review and try the merge again.",
        );
    }
    let t = now();
    pr.open = false;
    pr.merged = true;
    pr.head_sha = head.clone();
    pr.base_sha = base;
    pr.merge_commit_sha = Some(new.clone());
    pr.closed_at = Some(t.clone());
    pr.merged_at = Some(t.clone());
    pr.updated_at = t;
    if delete_branch {
        let _ = git_ok(
            Some(&dir),
            &[
                "update-ref",
                "-d",
                &format!("refs/heads/{}", pr.head_ref),
                &head,
            ],
        );
    }
    let mut body = sh.example("pulls/merge", 200);
    body["sha"] = json!(new);
    body["merged"] = json!(true);
    body["message"] = json!("Pull Request successfully merged");
    Reply::json(200, body)
}

/// GitHub's default squash message: title = the only commit's subject, else the PR title, plus
/// " (#N)"; body = the only commit's body, else "* message" for every commit.
pub(super) fn squash_message(dir: &Path, base: &str, head: &str, pr: &Pull) -> (String, String) {
    let log = git_ok(
        Some(dir),
        &[
            "log",
            "--reverse",
            "--format=%B%x00",
            &format!("{base}..{head}"),
        ],
    )
    .unwrap_or_default();
    let msgs: Vec<&str> = log
        .split('\0')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if let [only] = msgs.as_slice() {
        let (subject, body) = only.split_once('\n').unwrap_or((only, ""));
        (
            format!("{subject} (#{})", pr.number),
            body.trim().to_string(),
        )
    } else {
        let list: Vec<String> = msgs.iter().map(|m| format!("* {m}")).collect();
        (format!("{} (#{})", pr.title, pr.number), list.join("\n\n"))
    }
}

/// Rebase-merge: replays each commit of base..head onto base (cherry-picks done with
/// `merge-tree --merge-base`), keeping authors and messages. Refuses merge commits, as GitHub does.
pub(super) fn rebase_commits(dir: &Path, base: &str, head: &str) -> Result<String, ()> {
    let list = git_ok(
        Some(dir),
        &[
            "rev-list",
            "--reverse",
            "--parents",
            &format!("{base}..{head}"),
        ],
    )
    .map_err(|_| ())?;
    let mut onto = base.to_string();
    for line in list.lines() {
        let ids: Vec<&str> = line.split_whitespace().collect();
        let [commit, parent] = ids.as_slice() else {
            return Err(());
        };
        let out = run_git(
            Some(dir),
            &[
                "merge-tree",
                "--write-tree",
                "--no-messages",
                &format!("--merge-base={parent}"),
                &onto,
                commit,
            ],
            None,
            &[],
        );
        if out.0 != 0 {
            return Err(());
        }
        let tree = out.1.lines().next().unwrap_or_default().to_string();
        let meta = git_ok(
            Some(dir),
            &[
                "show",
                "-s",
                "--date=raw",
                "--format=%an%x00%ae%x00%ad%x00%B",
                commit,
            ],
        )
        .map_err(|_| ())?;
        let f: Vec<&str> = meta.splitn(4, '\0').collect();
        let [an, ae, ad, msg] = f.as_slice() else {
            return Err(());
        };
        let env = [
            ("GIT_AUTHOR_NAME", an.to_string()),
            ("GIT_AUTHOR_EMAIL", ae.to_string()),
            ("GIT_AUTHOR_DATE", ad.to_string()),
            ("GIT_COMMITTER_NAME", "GitHub".to_string()),
            ("GIT_COMMITTER_EMAIL", "noreply@github.com".to_string()),
        ];
        let out = run_git(
            Some(dir),
            &["commit-tree", &tree, "-p", &onto, "-F", "-"],
            Some(msg.as_bytes()),
            &env,
        );
        if out.0 != 0 {
            return Err(());
        }
        onto = out.1.trim().to_string();
    }
    Ok(onto)
}
