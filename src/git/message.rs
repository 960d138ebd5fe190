//! Commit messages and who signs commits. A message names what changed (app, secret, namespaces, the
//! data keys added, changed or removed) and never a value: the types here only ever receive names.
//! Every message ends with one `Sealwright-Change-Id:` trailer per change it carries, so a change can
//! be found in history, and counted there exactly once.

use std::fmt::Write as _;

use rand::RngCore;

use super::GitError;

pub const CHANGE_ID_TRAILER: &str = "Sealwright-Change-Id";

/// A name and an email for commit author or committer, checked once (no `<`, `>` or newlines, which
/// would corrupt the commit header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    name: String,
    email: String,
}

impl Identity {
    pub fn new(name: &str, email: &str) -> Result<Self, GitError> {
        for (field, value) in [("name", name), ("email", email)] {
            if value.trim().is_empty()
                || value
                    .chars()
                    .any(|c| matches!(c, '<' | '>' | '\n' | '\r' | '\0'))
            {
                return Err(GitError::BadIdentity {
                    field,
                    problem: "must be non-empty, without <, > or line breaks",
                });
            }
        }
        Ok(Self {
            name: name.to_owned(),
            email: email.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    pub(crate) fn signature(
        &self,
        unix_seconds: i64,
    ) -> Result<git2::Signature<'static>, GitError> {
        git2::Signature::new(&self.name, &self.email, &git2::Time::new(unix_seconds, 0))
            .map_err(|e| GitError::local("make a commit signature", e))
    }
}

/// An opaque id for one requested change (`sw-` and 32 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeId(String);

impl ChangeId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        let mut s = String::with_capacity(35);
        s.push_str("sw-");
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        Self(s)
    }

    /// Accepts ids of the form `sw-` + 1 to 64 of `[0-9a-z-]`; others come from outside and are refused.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("sw-")?;
        let ok = !rest.is_empty()
            && rest.len() <= 64
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-');
        ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ChangeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A commit message: a subject, body lines, and the change ids it carries as trailers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitMessage {
    subject: String,
    body: Vec<String>,
    change_ids: Vec<ChangeId>,
}

impl CommitMessage {
    /// A message with one fresh change id. Line breaks in the subject become spaces.
    pub fn new(subject: &str) -> Self {
        Self {
            subject: one_line(subject),
            body: Vec::new(),
            change_ids: vec![ChangeId::random()],
        }
    }

    /// Replaces the change ids (a caller that tracks its own ids, or coalesces several changes).
    pub fn with_change_ids(mut self, ids: Vec<ChangeId>) -> Self {
        self.change_ids = ids;
        self
    }

    pub fn line(mut self, line: &str) -> Self {
        self.body.push(one_line(line));
        self
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn change_ids(&self) -> &[ChangeId] {
        &self.change_ids
    }

    /// The message for one secret: which app and secret, in which namespaces, and the names of the
    /// data keys added, changed and removed.
    pub fn for_secret(change: &SecretChange<'_>) -> Self {
        let verb = match change.kind {
            SecretChangeKind::Created => "add",
            SecretChangeKind::Updated => "update",
            SecretChangeKind::Deleted => "remove",
        };
        let mut msg = Self::new(&format!(
            "{}: {verb} secret {} in {}",
            change.app,
            change.secret,
            join_or_none(change.namespaces)
        ));
        for (label, keys) in [
            ("added keys", change.added),
            ("changed keys", change.changed),
            ("removed keys", change.removed),
        ] {
            if !keys.is_empty() {
                msg = msg.line(&format!("{label}: {}", keys.join(", ")));
            }
        }
        msg
    }

    /// The full text: subject, blank line, body, blank line, trailers.
    pub fn render(&self) -> String {
        let mut out = self.subject.clone();
        out.push('\n');
        if !self.body.is_empty() {
            out.push('\n');
            for line in &self.body {
                out.push_str(line);
                out.push('\n');
            }
        }
        if !self.change_ids.is_empty() {
            out.push('\n');
            for id in &self.change_ids {
                let _ = writeln!(out, "{CHANGE_ID_TRAILER}: {id}");
            }
        }
        out
    }
}

/// What happened to one secret, by name only.
pub struct SecretChange<'a> {
    pub app: &'a str,
    pub secret: &'a str,
    pub namespaces: &'a [&'a str],
    pub kind: SecretChangeKind,
    pub added: &'a [&'a str],
    pub changed: &'a [&'a str],
    pub removed: &'a [&'a str],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretChangeKind {
    Created,
    Updated,
    Deleted,
}

/// The change ids in a commit message's trailers.
pub fn change_ids_in(message: &str) -> Vec<ChangeId> {
    message
        .lines()
        .filter_map(|l| l.strip_prefix(CHANGE_ID_TRAILER)?.strip_prefix(": "))
        .filter_map(|id| ChangeId::parse(id.trim()))
        .collect()
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn join_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "no namespace".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_message_names_everything_but_values() {
        let msg = CommitMessage::for_secret(&SecretChange {
            app: "shop",
            secret: "db",
            namespaces: &["shop-staging", "shop-prod"],
            kind: SecretChangeKind::Updated,
            added: &["PASSWORD"],
            changed: &["USER"],
            removed: &[],
        });
        let text = msg.render();
        let id = &msg.change_ids()[0];
        assert_eq!(
            text,
            format!(
                "shop: update secret db in shop-staging, shop-prod\n\nadded keys: PASSWORD\nchanged keys: USER\n\n{CHANGE_ID_TRAILER}: {id}\n"
            )
        );
        assert_eq!(change_ids_in(&text), vec![id.clone()]);
    }

    #[test]
    fn change_ids_are_unique_and_parsed_strictly() {
        let a = ChangeId::random();
        assert_ne!(a, ChangeId::random());
        assert_eq!(a.as_str().len(), 35);
        assert!(ChangeId::parse(a.as_str()).is_some());
        for bad in ["sw-", "xx-12", "sw-ABC", "sw-a b"] {
            assert!(ChangeId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn subjects_stay_on_one_line() {
        let m = CommitMessage::new("a\nb")
            .line("c\r\nd")
            .with_change_ids(vec![]);
        assert_eq!(m.render(), "a b\n\nc d\n");
    }

    #[test]
    fn identities_are_checked() {
        assert!(Identity::new("sealwright", "bot@example.com").is_ok());
        for (n, e) in [("", "a@b"), ("a<b", "a@b"), ("a", "x>y"), ("a\nb", "a@b")] {
            let err = Identity::new(n, e).unwrap_err().to_string();
            assert!(err.contains("name") || err.contains("email"), "{err}");
        }
    }
}
