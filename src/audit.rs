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
    /// How many occurrences this event stands for (`auth.refused`: refusals from one address
    /// since its last event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
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

/// How many of the newest events are kept in memory; older ones are read from the file.
pub const MEMORY_WINDOW: usize = 10_000;

/// The log: its newest events in memory for queries, all of them on disk for restarts.
pub struct EventLog {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

struct Inner {
    /// The newest events, at most [`MEMORY_WINDOW`] of them, oldest first.
    events: std::collections::VecDeque<Event>,
    /// The id the next event gets: one past the highest ever written, so ids are never reused.
    next_id: u64,
    file: Option<std::fs::File>,
}

impl EventLog {
    /// A log that lives in memory only (tests, `reconcile --once`).
    pub fn in_memory() -> EventLog {
        EventLog {
            path: None,
            inner: Mutex::new(Inner {
                events: Default::default(),
                next_id: 1,
                file: None,
            }),
        }
    }

    /// Opens (or creates, mode 0600) the log at `path` and loads its newest events. A torn last
    /// line, from a crash in the middle of an append, is cut off (and logged), so the next event
    /// starts on a line of its own; ids go on from the highest the file holds.
    pub fn open(path: &Path) -> Result<EventLog, AuditError> {
        let err = |e: std::io::Error| AuditError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut events = std::collections::VecDeque::new();
        let mut next_id = 1;
        // Where the last complete event ends: anything after it is a torn append.
        let mut good_end: u64 = 0;
        let mut len: u64 = 0;
        if let Ok(f) = std::fs::File::open(path) {
            let mut reader = std::io::BufReader::new(f);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line).map_err(err)?;
                if n == 0 {
                    break;
                }
                len += n as u64;
                let complete = line.last() == Some(&b'\n');
                match serde_json::from_slice::<Event>(&line) {
                    Ok(e) if complete => {
                        next_id = next_id.max(e.id + 1);
                        good_end = len;
                        events.push_back(e);
                        if events.len() > MEMORY_WINDOW {
                            events.pop_front();
                        }
                    }
                    // A damaged line in the middle stays (it is history); only the tail is cut.
                    _ if complete => good_end = len,
                    _ => {}
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
        if good_end < len {
            tracing::warn!(path = %path.display(), bytes = len - good_end, "the event log ends in a torn line (a crash during an append); cut back to the last complete event");
            file.set_len(good_end).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        Ok(EventLog {
            path: Some(path.to_path_buf()),
            inner: Mutex::new(Inner {
                events,
                next_id,
                file: Some(file),
            }),
        })
    }

    /// Stamps `event` with the next id and the time, and appends it. A failed disk write is
    /// logged and the event kept in memory: the change it records is in Git already.
    pub fn record(&self, mut event: Event) -> Event {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        event.id = inner.next_id;
        inner.next_id += 1;
        event.time = now_rfc3339();
        if let Some(f) = inner.file.as_mut() {
            let line = serde_json::to_string(&event).unwrap_or_default();
            if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                tracing::error!(path = ?self.path, error = %e, "could not append to the event log");
            }
        }
        inner.events.push_back(event.clone());
        if inner.events.len() > MEMORY_WINDOW {
            inner.events.pop_front();
        }
        event
    }

    /// Events, oldest first, that match `filter`, after id `after`, at most `limit` (the newest).
    /// Events older than the memory window are read from the file.
    pub fn list(&self, after: u64, limit: usize, filter: &dyn Fn(&Event) -> bool) -> Vec<Event> {
        let (oldest_in_memory, mut out): (u64, Vec<Event>) = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            (
                inner.events.front().map_or(inner.next_id, |e| e.id),
                inner
                    .events
                    .iter()
                    .filter(|e| e.id > after && filter(e))
                    .cloned()
                    .collect(),
            )
        };
        if out.len() < limit && after + 1 < oldest_in_memory {
            if let Some(path) = &self.path {
                let older =
                    Self::read_range(path, after, oldest_in_memory, limit - out.len(), filter);
                out.splice(0..0, older);
            }
        }
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        out
    }

    /// The newest `limit` events of the file with `after < id < before` that match `filter`.
    fn read_range(
        path: &Path,
        after: u64,
        before: u64,
        limit: usize,
        filter: &dyn Fn(&Event) -> bool,
    ) -> Vec<Event> {
        let Ok(f) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let mut out = std::collections::VecDeque::new();
        for line in std::io::BufReader::new(f).lines() {
            let Ok(line) = line else { break };
            let Ok(e) = serde_json::from_str::<Event>(&line) else {
                continue;
            };
            if e.id >= before {
                break;
            }
            if e.id > after && filter(&e) {
                out.push_back(e);
                if out.len() > limit {
                    out.pop_front();
                }
            }
        }
        out.into()
    }
}

/// The current UTC time in RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    sops::scalar::DateTime::now_utc().rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_holds_a_window_and_older_events_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::open(&path).unwrap();
        let total = MEMORY_WINDOW as u64 + 50;
        for i in 0..total {
            let mut e = Event::new("admin", "x");
            e.app = Some(if i % 2 == 0 { "even" } else { "odd" }.into());
            log.record(e);
        }
        assert_eq!(
            log.inner.lock().unwrap().events.len(),
            MEMORY_WINDOW,
            "memory is bounded"
        );
        // Older events come from the file, newer ones from memory, in one answer.
        let all = log.list(0, usize::MAX, &|_| true);
        assert_eq!(
            all.iter().map(|e| e.id).collect::<Vec<_>>(),
            (1..=total).collect::<Vec<_>>()
        );
        let old = log.list(10, 10, &|e| e.id <= 30 && e.app.as_deref() == Some("even"));
        assert_eq!(
            old.iter().map(|e| e.id).collect::<Vec<_>>(),
            (11..=29).step_by(2).collect::<Vec<_>>()
        );
        let last = log.list(total - 3, 10, &|_| true);
        assert_eq!(last.len(), 3);
        drop(log);
        let log = EventLog::open(&path).unwrap();
        assert_eq!(log.record(Event::new("a", "b")).id, total + 1, "ids go on");
    }

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
        // The torn tail is gone, and the next event starts a line of its own with a new id.
        assert_eq!(log.record(Event::new("admin", "after.crash")).id, 3);
        drop(log);
        let log = EventLog::open(&path).unwrap();
        let all = log.list(0, 100, &|_| true);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].action, "after.crash");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("\"act\n") && !text.contains("{\"actor\":\"x\""),
            "{text}"
        );
        let all = &all[..2];
        assert_eq!(all[0].keys, ["password"]);
        assert_eq!(log.list(1, 100, &|_| true).len(), 2);
        assert_eq!(log.list(0, 1, &|_| true)[0].id, 3);
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
