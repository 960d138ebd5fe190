//! The write gate: whether this process may write to the repositories now. The embedded default
//! is always open; in controller mode the leader's lease opens it until a moment before the lease
//! could expire, and a renewal moves that moment on. A replica whose renewals stopped therefore
//! stops writing on its own clock, before another replica can take the lease over.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct WriteGate {
    /// `None`: always open (no lease). `Some(t)`: open until `t`.
    until: Mutex<Option<Option<Instant>>>,
}

impl WriteGate {
    /// A gate that stays open (the embedded default).
    pub fn open() -> WriteGate {
        WriteGate::default()
    }

    /// A gate that is closed until a lease opens it.
    pub fn closed() -> WriteGate {
        WriteGate {
            until: Mutex::new(Some(None)),
        }
    }

    /// Opens the gate until `deadline` (a lease was won or renewed).
    pub fn open_until(&self, deadline: Instant) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Some(deadline));
    }

    /// Closes the gate now (the lease was lost or released).
    pub fn close(&self) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = Some(None);
    }

    pub fn is_open(&self) -> bool {
        match *self.until.lock().unwrap_or_else(|p| p.into_inner()) {
            None => true,
            Some(Some(t)) => Instant::now() < t,
            Some(None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lease_gate_opens_until_its_deadline_and_closes() {
        assert!(WriteGate::open().is_open());
        let g = WriteGate::closed();
        assert!(!g.is_open());
        g.open_until(Instant::now() + Duration::from_secs(60));
        assert!(g.is_open());
        g.open_until(Instant::now() - Duration::from_millis(1));
        assert!(!g.is_open());
        g.open_until(Instant::now() + Duration::from_secs(60));
        g.close();
        assert!(!g.is_open());
    }
}
