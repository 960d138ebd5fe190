//! Deploy keys: create, list and delete, each written into (or removed from) the SSH server's
//! `authorized_keys`, so a key GitHub holds is a key that pushes.

use super::*;

pub(super) fn create_deploy_key(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let key_error = |msg: &str| {
        Reply::validation_failed(json!([{
            "resource": "PublicKey", "code": "custom", "field": "key", "message": msg
        }]))
    };
    let Some(key) = key_material(c.str("key").unwrap_or_default()) else {
        return key_error("key is invalid. You must supply a key in OpenSSH public key format");
    };
    // GitHub refuses a key that is already used anywhere (any repo), not only on this one.
    if st
        .repos
        .values()
        .any(|r| r.keys.iter().any(|k| k.key == key))
    {
        return key_error("key is already in use");
    }
    let read_only = c.bool("read_only").unwrap_or(false);
    let line = match (&sh.opts.authorized_keys, &sh.opts.git_ssh_cmd) {
        (Some(file), Some(cmd)) => {
            let line = format!(
                "command=\"{} {} '{owner}/{name}.git' {}\",restrict {key}",
                cmd.display(),
                sh.opts.repos_root.display(),
                if read_only { "ro" } else { "rw" }
            );
            if let Err(e) = append_line(file, &line) {
                return Reply::error(500, &format!("fake GitHub: authorized_keys: {e}"));
            }
            Some(line)
        }
        _ => None,
    };
    let k = DeployKey {
        id: sh.new_id(),
        title: c.str("title").unwrap_or_default().to_string(),
        key,
        read_only,
        created_at: now(),
        line,
    };
    let body = key_json(
        sh,
        sh.example("repos/create-deploy-key", 201),
        owner,
        name,
        &k,
    );
    st.repo(sh, owner, name).unwrap().keys.push(k);
    Reply::json(201, body)
}

pub(super) fn list_deploy_keys(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let template = sh.example("repos/list-deploy-keys", 200)[0].clone();
    let keys = repo
        .keys
        .iter()
        .map(|k| key_json(sh, template.clone(), owner, name, k))
        .collect();
    Reply::json(200, Value::Array(keys))
}

pub(super) fn delete_deploy_key(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let Some(repo) = st.repo(sh, c.param("owner"), c.param("repo")) else {
        return Reply::not_found();
    };
    let id: u64 = c.param("key_id").parse().unwrap_or(0);
    let Some(i) = repo.keys.iter().position(|k| k.id == id) else {
        return Reply::not_found();
    };
    let k = repo.keys.remove(i);
    if let (Some(file), Some(line)) = (&sh.opts.authorized_keys, &k.line) {
        if let Err(e) = remove_line(file, line) {
            return Reply::error(500, &format!("fake GitHub: authorized_keys: {e}"));
        }
    }
    Reply::empty(204)
}

/// `type base64` of an OpenSSH public key (GitHub drops the comment), or None if it is not one.
pub(super) fn key_material(key: &str) -> Option<String> {
    let mut it = key.split_whitespace();
    let (kind, data) = (it.next()?, it.next()?);
    let known =
        kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
    let base64 = data.len() >= 16
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    (known && base64).then(|| format!("{kind} {data}"))
}

pub(super) fn append_line(file: &Path, line: &str) -> std::io::Result<()> {
    let mut text = std::fs::read_to_string(file).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    std::fs::write(file, text)
}

pub(super) fn remove_line(file: &Path, line: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let kept: String = text
        .lines()
        .filter(|l| *l != line)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(file, kept)
}
