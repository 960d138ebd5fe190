//! The audit trail that `GET /v1/events` serves: who did what to which app, secret and keys, and
//! the commit or pull request it produced. Never a value: events carry names only.
//!
//! Git history is the audit trail of every change; this log is its index for dashboards, plus the
//! events that produce no commit (a reveal, a refused token). It is an append-only JSON-lines
//! file under the data directory, loaded at start-up and appended to (and flushed) as events
//! happen.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Increasing from 1 over the life of the log.
    #[serde(default)]
    pub id: u64,
    /// RFC 3339, UTC.
    #[serde(default)]
    pub time: String,
    /// `admin`, `tenant:<tenant>/<key id>`, `config`, `reconciler`, `anonymous`.
    pub actor: String,
    /// `app.created`, `secret.updated`, `secret.revealed`, `auth.refused`, ...
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// An external secrets provider (`openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// How many keys (external secrets: materialised or written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_count: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// A short, value-free explanation (why a token was refused, why a write failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Event {
    pub fn new(actor: &str, action: &str) -> Event {
        Event {
            actor: actor.to_owned(),
            action: action.to_owned(),
            ..Event::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("event log {path}: {message}")]
pub struct AuditError {
    pub path: String,
    pub message: String,
}

/// The log: in memory for queries, on disk for restarts.
pub struct EventLog {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

struct Inner {
    events: Vec<Event>,
    file: Option<std::fs::File>,
}

impl EventLog {
    /// A log that lives in memory only (tests, `reconcile --once`).
    pub fn in_memory() -> EventLog {
        EventLog {
            path: None,
            inner: Mutex::new(Inner {
                events: Vec::new(),
                file: None,
            }),
        }
    }

    /// Opens (or creates, mode 0600) the log at `path` and loads it. A torn last line, from a
    /// crash in the middle of an append, is skipped.
    pub fn open(path: &Path) -> Result<EventLog, AuditError> {
        let err = |e: std::io::Error| AuditError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut events = Vec::new();
        if let Ok(f) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(f).lines() {
                let line = line.map_err(err)?;
                if let Ok(e) = serde_json::from_str::<Event>(&line) {
                    events.push(e);
                }
            }
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        Ok(EventLog {
            path: Some(path.to_path_buf()),
            inner: Mutex::new(Inner {
                events,
                file: Some(file),
            }),
        })
    }

    /// Stamps `event` with the next id and the time, and appends it. A failed disk write is
    /// logged and the event kept in memory: the change it records is in Git already.
    pub fn record(&self, mut event: Event) -> Event {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        event.id = inner.events.last().map_or(1, |e| e.id + 1);
        event.time = now_rfc3339();
        if let Some(f) = inner.file.as_mut() {
            let line = serde_json::to_string(&event).unwrap_or_default();
            if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                tracing::error!(path = ?self.path, error = %e, "could not append to the event log");
            }
        }
        inner.events.push(event.clone());
        event
    }

    /// Events, oldest first, that match `filter`, after id `after`, at most `limit` (the newest).
    pub fn list(&self, after: u64, limit: usize, filter: &dyn Fn(&Event) -> bool) -> Vec<Event> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Event> = inner
            .events
            .iter()
            .filter(|e| e.id > after && filter(e))
            .cloned()
            .collect();
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        out
    }
}

/// The current UTC time in RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    crate::sops::scalar::DateTime::now_utc().rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::open(&path).unwrap();
        let mut e = Event::new("admin", "secret.updated");
        e.app = Some("shop".into());
        e.keys = vec!["password".into()];
        assert_eq!(log.record(e.clone()).id, 1);
        assert_eq!(log.record(Event::new("admin", "app.created")).id, 2);
        drop(log);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"actor\":\"x\",\"act")
            .unwrap();
        let log = EventLog::open(&path).unwrap();
        let all = log.list(0, 100, &|_| true);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].keys, ["password"]);
        assert_eq!(log.list(1, 100, &|_| true).len(), 1);
        assert_eq!(log.list(0, 1, &|_| true)[0].id, 2);
        assert_eq!(
            log.list(0, 100, &|e| e.app.as_deref() == Some("shop"))
                .len(),
            1
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
