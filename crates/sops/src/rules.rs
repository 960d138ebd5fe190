//! Which values get encrypted: the six crypt rules of sops (SOPS-FORMAT.md 3) and the comment
//! stack that the comment regexes look at.
//!
//! Exactly one rule is active per file; it is stored in the metadata and re-applied when
//! decrypting, so reader and writer agree on what is ciphertext.

use regex::Regex;

/// The active crypt rule. Regexes are compiled once per document.
#[derive(Clone)]
pub enum CryptRule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
    UnencryptedCommentRegex(Regex),
    EncryptedCommentRegex(Regex),
}

/// The metadata keys of the rules, in the order sops 3.11 writes them.
pub const RULE_KEYS: [&str; 6] = [
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("cannot use more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex, encrypted_comment_regex, or unencrypted_comment_regex")]
    MoreThanOne,
    #[error("{field}: invalid regular expression: {reason}")]
    BadRegex { field: &'static str, reason: String },
    #[error("unknown crypt rule {0}")]
    Unknown(String),
}

/// Compiles a rule regex through a small process-wide cache: every decryption reads the rule from
/// the file's metadata, and compiling `^(data|stringData)$` each time cost more than the AES work
/// of a typical Secret. `Regex` clones share the compiled program.
fn compiled(pattern: &str) -> Result<Regex, regex::Error> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(re) = cache.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Regex::new(pattern)?;
    if let Ok(mut c) = cache.lock() {
        // Bounded: a process that sees many distinct patterns just recompiles.
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(pattern.to_string(), re.clone());
    }
    Ok(re)
}

impl Default for CryptRule {
    fn default() -> Self {
        CryptRule::UnencryptedSuffix("_unencrypted".into())
    }
}

impl std::fmt::Debug for CryptRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key(), self.source())
    }
}

impl PartialEq for CryptRule {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key() && self.source() == other.source()
    }
}

impl CryptRule {
    /// Builds the rule from `(metadata key, value)`; the key must be one of [`RULE_KEYS`].
    pub fn from_key(key: &str, value: &str) -> Result<CryptRule, RuleError> {
        let re = |field: &'static str| {
            compiled(value).map_err(|e| RuleError::BadRegex {
                field,
                reason: e.to_string(),
            })
        };
        Ok(match key {
            "unencrypted_suffix" => CryptRule::UnencryptedSuffix(value.into()),
            "encrypted_suffix" => CryptRule::EncryptedSuffix(value.into()),
            "unencrypted_regex" => CryptRule::UnencryptedRegex(re("unencrypted_regex")?),
            "encrypted_regex" => CryptRule::EncryptedRegex(re("encrypted_regex")?),
            "unencrypted_comment_regex" => {
                CryptRule::UnencryptedCommentRegex(re("unencrypted_comment_regex")?)
            }
            "encrypted_comment_regex" => {
                CryptRule::EncryptedCommentRegex(re("encrypted_comment_regex")?)
            }
            other => return Err(RuleError::Unknown(other.to_string())),
        })
    }

    /// Picks the single rule among `(key, value)` candidates whose value is non-empty.
    /// None given means the default `unencrypted_suffix: _unencrypted`.
    pub fn select<'a>(
        candidates: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<CryptRule, RuleError> {
        let mut chosen = None;
        for (k, v) in candidates {
            if v.is_empty() {
                continue;
            }
            if chosen.is_some() {
                return Err(RuleError::MoreThanOne);
            }
            chosen = Some(CryptRule::from_key(k, v)?);
        }
        Ok(chosen.unwrap_or_default())
    }

    pub fn key(&self) -> &'static str {
        match self {
            CryptRule::UnencryptedSuffix(_) => RULE_KEYS[0],
            CryptRule::EncryptedSuffix(_) => RULE_KEYS[1],
            CryptRule::UnencryptedRegex(_) => RULE_KEYS[2],
            CryptRule::EncryptedRegex(_) => RULE_KEYS[3],
            CryptRule::UnencryptedCommentRegex(_) => RULE_KEYS[4],
            CryptRule::EncryptedCommentRegex(_) => RULE_KEYS[5],
        }
    }

    pub fn source(&self) -> &str {
        match self {
            CryptRule::UnencryptedSuffix(s) | CryptRule::EncryptedSuffix(s) => s,
            CryptRule::UnencryptedRegex(r)
            | CryptRule::EncryptedRegex(r)
            | CryptRule::UnencryptedCommentRegex(r)
            | CryptRule::EncryptedCommentRegex(r) => r.as_str(),
        }
    }

    pub fn uses_comments(&self) -> bool {
        matches!(
            self,
            CryptRule::UnencryptedCommentRegex(_) | CryptRule::EncryptedCommentRegex(_)
        )
    }

    /// Whether one path key "matches" for the key-based rules (suffix/regex). The walk counts the
    /// matching keys on the current path, so the decision per leaf is O(1).
    pub fn key_matches(&self, key: &str) -> bool {
        match self {
            CryptRule::UnencryptedSuffix(s) | CryptRule::EncryptedSuffix(s) => key.ends_with(s),
            CryptRule::UnencryptedRegex(r) | CryptRule::EncryptedRegex(r) => r.is_match(key),
            CryptRule::UnencryptedCommentRegex(_) | CryptRule::EncryptedCommentRegex(_) => false,
        }
    }

    /// sops' `shouldBeEncrypted`: `matching_keys` is how many keys on the path match
    /// [`Self::key_matches`]; `comments` is the comment stack (one list per nesting level).
    pub fn should_encrypt(
        &self,
        matching_keys: usize,
        comments: &[Vec<String>],
        is_comment: bool,
    ) -> bool {
        match self {
            CryptRule::UnencryptedSuffix(_) | CryptRule::UnencryptedRegex(_) => matching_keys == 0,
            CryptRule::EncryptedSuffix(_) | CryptRule::EncryptedRegex(_) => matching_keys > 0,
            CryptRule::UnencryptedCommentRegex(r) => {
                !comments.iter().flatten().any(|c| r.is_match(c))
            }
            CryptRule::EncryptedCommentRegex(r) => {
                // The marker comment itself stays clear: skip the last comment of the innermost
                // level when the leaf being decided is that comment.
                let last_level = comments.len().saturating_sub(1);
                comments.iter().enumerate().any(|(i, level)| {
                    level.iter().enumerate().any(|(j, c)| {
                        let is_self = is_comment && i == last_level && j + 1 == level.len();
                        !is_self && r.is_match(c)
                    })
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_enforces_one_rule_and_defaults() {
        assert_eq!(CryptRule::select([]).unwrap(), CryptRule::default());
        let r =
            CryptRule::select([("encrypted_regex", "^data$"), ("encrypted_suffix", "")]).unwrap();
        assert_eq!(r.key(), "encrypted_regex");
        assert_eq!(
            CryptRule::select([("encrypted_regex", "a"), ("encrypted_suffix", "b")]).unwrap_err(),
            RuleError::MoreThanOne
        );
        assert!(matches!(
            CryptRule::select([("encrypted_regex", "(")]).unwrap_err(),
            RuleError::BadRegex {
                field: "encrypted_regex",
                ..
            }
        ));
    }

    #[test]
    fn regex_is_a_search_not_a_full_match() {
        let r = CryptRule::from_key("encrypted_regex", "data").unwrap();
        assert!(r.key_matches("stringData") || r.key_matches("mydata"));
        assert!(r.key_matches("mydata"));
    }

    #[test]
    fn comment_rules_follow_the_stack() {
        let r = CryptRule::from_key("encrypted_comment_regex", "sops:enc").unwrap();
        let stack = vec![vec![" sops:enc".to_string()]];
        assert!(r.should_encrypt(0, &stack, false));
        // The marker comment itself is not encrypted...
        assert!(!r.should_encrypt(0, &stack, true));
        // ...but a later comment of the same run is.
        let stack = vec![vec![" sops:enc".to_string(), " next".to_string()]];
        assert!(r.should_encrypt(0, &stack, true));
        let u = CryptRule::from_key("unencrypted_comment_regex", "sops:enc").unwrap();
        assert!(!u.should_encrypt(0, &[vec![" sops:enc".into()]], false));
        assert!(u.should_encrypt(0, &[vec![], vec![]], false));
    }
}
