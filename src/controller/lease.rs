//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder writes.
//!
//! Written here rather than taken from a crate because the one promise that matters is ours to
//! keep: *a replica stops writing before its Lease can expire.* Every successful write of the
//! Lease opens the write gate until `start + duration - grace`, measured on this process's
//! monotonic clock from before the request was sent, so a replica whose renewals stop (a
//! partition, a stalled API server) closes its own gate while the Lease is still its own, and a
//! standby takes over only once the Lease has expired as *it* observes it (the holder and
//! renew time unchanged for a whole duration on its clock, as client-go does): the two never
//! write at once, whatever their clocks say.
//!
//! Exclusion comes from the API server: every take-over and renewal is a replace carrying the
//! `resourceVersion` read, so of two racers one gets 409 and stays a standby. One [`Elector`]
//! holds one Lease; sharding apps across replicas is one Elector per shard's Lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::gate::WriteGate;

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    grace: Duration,
    gate: Arc<WriteGate>,
    /// The other holder's (holder, renewTime) and when this replica first saw it.
    observed: tokio::sync::Mutex<Option<(String, Instant)>>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
        grace: Duration,
        gate: Arc<WriteGate>,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            grace,
            gate,
            observed: tokio::sync::Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How long to wait between tries while a standby, and between renewals while leading.
    fn period(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(500))
    }

    /// Waits until this replica holds the Lease (the gate is then open).
    pub async fn acquire(&self) {
        loop {
            match self.try_once().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "leading");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "lease: could not read or write")
                }
            }
            tokio::time::sleep(self.period()).await;
        }
    }

    /// Keeps the Lease, renewing it; returns once it is lost (the gate is closed by then).
    pub async fn hold(&self) {
        loop {
            tokio::time::sleep(self.period()).await;
            let budget = self.duration.saturating_sub(self.grace);
            match tokio::time::timeout(budget, self.try_once()).await {
                Ok(Ok(true)) => continue,
                Ok(Ok(false)) => {
                    tracing::warn!(lease = %self.name, "lease taken by another replica");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.name, error = %e, "lease: renewal failed")
                }
                Err(_) => tracing::warn!(lease = %self.name, "lease: renewal timed out"),
            }
            if !self.gate.is_open() {
                tracing::warn!(lease = %self.name, "lease not renewed in time");
                break;
            }
        }
        self.gate.close();
    }

    /// Gives the Lease up (a clean shutdown), so a standby takes over at once.
    pub async fn release(&self) {
        self.gate.close();
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                spec.renew_time = Some(now());
                let _ = self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await;
            }
        }
    }

    /// One try: create, renew or take over. `Ok(true)`: this replica holds the Lease now.
    async fn try_once(&self) -> Result<bool, kube::Error> {
        let started = Instant::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.won(started);
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !mine {
            if let Some(h) = &holder {
                let seen = format!(
                    "{h}@{}",
                    spec.renew_time
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default()
                );
                let theirs = Duration::from_secs(
                    u64::try_from(spec.lease_duration_seconds.unwrap_or(seconds)).unwrap_or(0),
                );
                let mut observed = self.observed.lock().await;
                match observed.as_ref() {
                    Some((s, at)) if *s == seen => {
                        if at.elapsed() < theirs {
                            return Ok(false);
                        }
                    }
                    _ => {
                        *observed = Some((seen, Instant::now()));
                        return Ok(false);
                    }
                }
                tracing::info!(lease = %self.name, previous = %h, "lease expired; taking it over");
            }
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(seconds);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.won(started);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn won(&self, started: Instant) {
        self.gate
            .open_until(started + self.duration.saturating_sub(self.grace));
    }
}
