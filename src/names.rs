//! Name rules for everything that becomes a Kubernetes name, a file name or a repository name.
//!
//! Names are checked once, at the edge (config, CLI, API), and every error names the field it
//! came from, so `apps[1].secrets[0].namespaces[2]` points the user at the line to fix.

/// A name that broke a rule: which field, what value, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?} {problem}")]
pub struct NameError {
    pub field: String,
    pub value: String,
    pub problem: &'static str,
}

/// A DNS-1123 label: 1 to 63 lowercase letters, digits and `-`, starting and ending with a
/// letter or digit. Namespaces, Secret names, app, environment and cluster names all follow it,
/// which also rules out `/`, `..` and upper case everywhere they end up in a path.
pub fn validate_label(field: &str, value: &str) -> Result<(), NameError> {
    let bad = |problem| NameError {
        field: field.to_string(),
        value: value.to_string(),
        problem,
    };
    if value.is_empty() || value.len() > 63 {
        return Err(bad("must be 1 to 63 characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad(
            "may contain only lowercase letters, digits and '-' (no '/', '.', '_' or upper case)",
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(bad("must start and end with a letter or digit"));
    }
    Ok(())
}

/// A key of a Secret's `data`: what Kubernetes accepts (`[-._a-zA-Z0-9]+`, at most 253
/// characters), minus `.` and `..`, which would be read as paths when mounted.
pub fn validate_data_key(field: &str, value: &str) -> Result<(), NameError> {
    let bad = |problem| NameError {
        field: field.to_string(),
        value: value.to_string(),
        problem,
    };
    if value.is_empty() || value.len() > 253 {
        return Err(bad("must be 1 to 253 characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(bad(
            "may contain only letters, digits, '-', '_' and '.' (Kubernetes Secret data keys)",
        ));
    }
    if value == "." || value == ".." {
        return Err(bad("must not be '.' or '..'"));
    }
    Ok(())
}

/// A Git branch name, by the rules of `git check-ref-format --branch` that matter here.
pub fn validate_branch(field: &str, value: &str) -> Result<(), NameError> {
    let bad = |problem| NameError {
        field: field.to_string(),
        value: value.to_string(),
        problem,
    };
    if value.is_empty() || value.len() > 255 {
        return Err(bad("must be 1 to 255 characters"));
    }
    if value.starts_with('-') || value.starts_with('/') || value.ends_with('/') {
        return Err(bad("must not start with '-' or '/', nor end with '/'"));
    }
    if value.ends_with('.') || value.ends_with(".lock") {
        return Err(bad("must not end with '.' or '.lock'"));
    }
    if value.contains("..") || value.contains("//") || value.contains("@{") {
        return Err(bad("must not contain '..', '//' or '@{'"));
    }
    if value
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || b"~^:?*[\\".contains(&b))
    {
        return Err(bad(
            "must not contain spaces, control characters or any of ~^:?*[\\",
        ));
    }
    if value.split('/').any(|c| c.starts_with('.')) {
        return Err(bad("no path component may start with '.'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "billing-prod", "x1", &"a".repeat(63)] {
            assert!(validate_label("f", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Billing",
            "a/b",
            "..",
            "a.b",
            "-a",
            "a-",
            "a_b",
            &"a".repeat(64),
        ] {
            let err = validate_label("apps[0].name", bad).unwrap_err();
            assert!(err.to_string().starts_with("apps[0].name: "), "{err}");
        }
    }

    #[test]
    fn data_keys() {
        for ok in ["password", "tls.crt", ".dockerconfigjson", "A_B-c"] {
            assert!(validate_data_key("k", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"a".repeat(254)] {
            assert!(validate_data_key("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn branches() {
        for ok in ["main", "release/v1.2", "feature-x"] {
            assert!(validate_branch("b", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a:b", "a/", "/a", "a.lock", "a/.b", "a@{1}", "a~1",
        ] {
            assert!(validate_branch("b", bad).is_err(), "{bad}");
        }
    }
}
