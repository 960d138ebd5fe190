//! How deployment credentials are minted: on or off, the URL deployments call back, and per
//! cluster the refresh interval, the token lifetime and the signing algorithm.

use std::collections::BTreeMap;
use std::time::Duration;

use super::jwt::Algorithm;

/// How long Flux may take to apply a commit: the GitRepository's poll interval in the embedded
/// templates (`flux-gitrepository.yaml.j2`); a Kustomization follows its source at once.
pub const FLUX_LATENCY: Duration = Duration::from_secs(60);

/// The timing and algorithm of one cluster's tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterCredentials {
    /// How often a token is minted again (default 20m).
    pub refresh_interval: Duration,
    /// How long a token is valid (default 1h); longer than the interval, so a token is replaced
    /// before it expires.
    pub token_duration: Duration,
    pub algorithm: Algorithm,
}

impl Default for ClusterCredentials {
    fn default() -> Self {
        ClusterCredentials {
            refresh_interval: Duration::from_secs(20 * 60),
            token_duration: Duration::from_secs(60 * 60),
            algorithm: Algorithm::HS256,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSettings {
    /// Off: nothing is minted, and every credentials file is removed by the next round.
    pub enabled: bool,
    /// The API's URL as deployments reach it: the `api_url` key, and the tokens' issuer.
    pub api_url: String,
    pub defaults: ClusterCredentials,
    /// Overrides by cluster id.
    pub clusters: BTreeMap<String, ClusterCredentials>,
}

impl Default for CredentialSettings {
    fn default() -> Self {
        CredentialSettings {
            enabled: true,
            api_url: "http://127.0.0.1:8080".into(),
            defaults: ClusterCredentials::default(),
            clusters: BTreeMap::new(),
        }
    }
}

/// A setting that cannot work, naming the values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SettingsError {
    pub field: String,
    pub reason: String,
}

impl CredentialSettings {
    /// The settings of the cluster a deployment runs on.
    pub fn for_cluster(&self, cluster_id: &str) -> &ClusterCredentials {
        self.clusters.get(cluster_id).unwrap_or(&self.defaults)
    }

    /// Every algorithm some cluster signs with.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut out: Vec<Algorithm> = std::iter::once(self.defaults.algorithm)
            .chain(self.clusters.values().map(|c| c.algorithm))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The longest token lifetime: how long a retired signing key must keep verifying.
    pub fn longest_duration(&self) -> Duration {
        self.clusters
            .values()
            .map(|c| c.token_duration)
            .fold(self.defaults.token_duration, Duration::max)
    }

    /// The shortest refresh interval: how often the refresh timer looks for due tokens.
    pub fn shortest_interval(&self) -> Duration {
        self.clusters
            .values()
            .map(|c| c.refresh_interval)
            .fold(self.defaults.refresh_interval, Duration::min)
    }

    /// Refuses a token lifetime not longer than its refresh interval (a token would expire
    /// before its successor is minted), and returns warnings for thin margins: after a refresh,
    /// Flux (and, for pull-request delivery, a review taking `review_latency`) must deliver the
    /// new token before the old one expires, with a refresh interval to spare for one failed
    /// round.
    pub fn check(&self, review_latency: Duration) -> Result<Vec<String>, SettingsError> {
        let mut warnings = Vec::new();
        let all = std::iter::once(("deployment_credentials".to_owned(), &self.defaults)).chain(
            self.clusters
                .iter()
                .map(|(id, c)| (format!("deployment_credentials.clusters.{id}"), c)),
        );
        for (at, c) in all {
            let (interval, duration) = (c.refresh_interval, c.token_duration);
            let shown = |d: Duration| humantime::format_duration(d).to_string();
            if interval.is_zero() {
                return Err(SettingsError {
                    field: format!("{at}.refreshInterval"),
                    reason: "must be longer than zero".into(),
                });
            }
            if duration <= interval {
                return Err(SettingsError {
                    field: format!("{at}.tokenDuration"),
                    reason: format!(
                        "tokenDuration ({}) must be longer than refreshInterval ({}): a token would expire before the next one is minted",
                        shown(duration),
                        shown(interval)
                    ),
                });
            }
            let margin = duration.saturating_sub(interval + FLUX_LATENCY);
            if margin < interval {
                warnings.push(format!(
                    "{at}: tokenDuration ({}) leaves {} after refreshInterval ({}) and Flux's {} to apply the commit, less than one refresh interval: one failed round lets tokens expire",
                    shown(duration), shown(margin), shown(interval), shown(FLUX_LATENCY)
                ));
            }
            let reviewed = duration.saturating_sub(interval + FLUX_LATENCY + review_latency);
            if !review_latency.is_zero() && reviewed < interval {
                warnings.push(format!(
                    "{at}: with pull-request delivery, tokenDuration ({}) leaves {} once a review of {} is counted, less than refreshInterval ({}): apps reviewed by pull request may run on expired tokens",
                    shown(duration), shown(reviewed), shown(review_latency), shown(interval)
                ));
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mins(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn defaults_pass_and_bad_durations_name_both_values() {
        let s = CredentialSettings::default();
        assert_eq!(s.check(Duration::ZERO).unwrap(), Vec::<String>::new());
        let mut bad = s.clone();
        bad.clusters.insert(
            "east".into(),
            ClusterCredentials {
                refresh_interval: mins(30),
                token_duration: mins(30),
                algorithm: Algorithm::EdDSA,
            },
        );
        let e = bad.check(Duration::ZERO).unwrap_err();
        assert_eq!(
            e.field,
            "deployment_credentials.clusters.east.tokenDuration"
        );
        assert!(e.reason.contains("(30m)") && e.reason.contains("refreshInterval (30m)"));
        assert_eq!(bad.algorithms(), vec![Algorithm::HS256, Algorithm::EdDSA]);
        assert_eq!(bad.for_cluster("east").algorithm, Algorithm::EdDSA);
        assert_eq!(bad.for_cluster("west").algorithm, Algorithm::HS256);
    }

    #[test]
    fn thin_margins_warn() {
        let mut s = CredentialSettings::default();
        s.defaults.token_duration = mins(35);
        let w = s.check(Duration::ZERO).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("tokenDuration (35m)") && w[0].contains("leaves 14m"),
            "{w:?}"
        );
        let s = CredentialSettings::default();
        let w = s.check(mins(30)).unwrap();
        assert_eq!(w.len(), 1, "a 30m review eats the margin: {w:?}");
        assert!(w[0].contains("pull-request"), "{w:?}");
    }
}
