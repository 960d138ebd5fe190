//! Validate rules: what a key's value must be (a kind of PEM, a URL of a shape, a pattern, a
//! length, JSON, base64). A refusal says what is wrong and never quotes the value.

use serde_json::{json, Value as Json};

use crate::fields::{invalid, kind, Fields, Invalid};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemKind {
    RsaPrivateKeyPkcs1,
    PrivateKey,
    Certificate,
    CertificateChain,
}

impl PemKind {
    fn as_str(self) -> &'static str {
        match self {
            PemKind::RsaPrivateKeyPkcs1 => "rsa-private-key-pkcs1",
            PemKind::PrivateKey => "private-key",
            PemKind::Certificate => "certificate",
            PemKind::CertificateChain => "certificate-chain",
        }
    }
}

/// The shape a URL must have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlRule {
    pub scheme: Option<String>,
    /// `true`: a user name and a password are required; `false`: neither may be there.
    pub userinfo: Option<bool>,
    pub path_suffix: Option<String>,
}

/// One key's rules; every one given must hold.
#[derive(Clone, Debug)]
pub struct Check {
    pub pem: Option<PemKind>,
    pub url: Option<UrlRule>,
    pub pattern: Option<regex::Regex>,
    pub min_length: Option<usize>,
    pub json: bool,
    pub base64: bool,
}

impl PartialEq for Check {
    fn eq(&self, o: &Check) -> bool {
        self.pem == o.pem
            && self.url == o.url
            && self.pattern.as_ref().map(regex::Regex::as_str)
                == o.pattern.as_ref().map(regex::Regex::as_str)
            && self.min_length == o.min_length
            && self.json == o.json
            && self.base64 == o.base64
    }
}

impl Check {
    pub fn from_json(field: &str, v: &Json) -> Result<Check, Invalid> {
        let mut f = Fields::of(field, v)?;
        let at = |k: &str| format!("{field}.{k}");
        let pem =
            match f.opt_str("pem")?.as_deref() {
                None => None,
                Some("rsa-private-key-pkcs1") => Some(PemKind::RsaPrivateKeyPkcs1),
                Some("private-key") => Some(PemKind::PrivateKey),
                Some("certificate") => Some(PemKind::Certificate),
                Some("certificate-chain") => Some(PemKind::CertificateChain),
                Some(_) => return Err(invalid(
                    at("pem"),
                    "must be rsa-private-key-pkcs1, private-key, certificate or certificate-chain",
                )),
            };
        let url = match f.get("url") {
            None => None,
            Some(v) => {
                let mut u = Fields::of(&at("url"), v)?;
                let scheme = u.opt_str("scheme")?;
                let userinfo = match u.get("userinfo") {
                    None => None,
                    Some(Json::Bool(b)) => Some(*b),
                    Some(o) => {
                        return Err(invalid(
                            format!("{field}.url.userinfo"),
                            format!("must be true or false, not {}", kind(o)),
                        ))
                    }
                };
                let path_suffix = u.opt_str("pathSuffix")?;
                u.finish()?;
                Some(UrlRule {
                    scheme,
                    userinfo,
                    path_suffix,
                })
            }
        };
        let pattern = match f.opt_str("pattern")? {
            None => None,
            Some(p) => Some(
                regex::RegexBuilder::new(&p)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        invalid(at("pattern"), format!("is not a regular expression: {e}"))
                    })?,
            ),
        };
        let min_length = match f.get("minLength") {
            None => None,
            Some(Json::Number(n)) => Some(
                n.as_u64()
                    .filter(|n| *n <= 1 << 20)
                    .ok_or_else(|| invalid(at("minLength"), "must be a whole number"))?
                    as usize,
            ),
            Some(o) => {
                return Err(invalid(
                    at("minLength"),
                    format!("must be a number, not {}", kind(o)),
                ))
            }
        };
        let flag = |f: &mut Fields<'_>, k: &'static str| -> Result<bool, Invalid> {
            match f.get(k) {
                None => Ok(false),
                Some(Json::Bool(b)) => Ok(*b),
                Some(o) => Err(invalid(
                    format!("{field}.{k}"),
                    format!("must be true or false, not {}", kind(o)),
                )),
            }
        };
        let json_ = flag(&mut f, "json")?;
        let base64 = flag(&mut f, "base64")?;
        f.finish()?;
        let c = Check {
            pem,
            url,
            pattern,
            min_length,
            json: json_,
            base64,
        };
        if c.to_json().as_object().is_some_and(|m| m.is_empty()) {
            return Err(invalid(
                field,
                "needs a rule: pem, url, pattern, minLength, json or base64",
            ));
        }
        Ok(c)
    }

    pub fn to_json(&self) -> Json {
        let mut j = serde_json::Map::new();
        if let Some(p) = self.pem {
            j.insert("pem".into(), json!(p.as_str()));
        }
        if let Some(u) = &self.url {
            let mut m = serde_json::Map::new();
            if let Some(s) = &u.scheme {
                m.insert("scheme".into(), json!(s));
            }
            if let Some(b) = u.userinfo {
                m.insert("userinfo".into(), json!(b));
            }
            if let Some(s) = &u.path_suffix {
                m.insert("pathSuffix".into(), json!(s));
            }
            j.insert("url".into(), Json::Object(m));
        }
        if let Some(p) = &self.pattern {
            j.insert("pattern".into(), json!(p.as_str()));
        }
        if let Some(n) = self.min_length {
            j.insert("minLength".into(), json!(n));
        }
        if self.json {
            j.insert("json".into(), json!(true));
        }
        if self.base64 {
            j.insert("base64".into(), json!(true));
        }
        Json::Object(j)
    }

    /// Whether `value` passes; the refusal's reason never quotes it.
    pub fn check(&self, value: &[u8]) -> Result<(), String> {
        if let Some(n) = self.min_length {
            let len = std::str::from_utf8(value).map_or(value.len(), |s| s.chars().count());
            if len < n {
                return Err(format!("is shorter than {n} characters"));
            }
        }
        if self.json && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_err() {
            return Err("is not JSON".into());
        }
        if self.base64 {
            use base64::Engine;
            if base64::engine::general_purpose::STANDARD
                .decode(value)
                .is_err()
            {
                return Err("is not base64 (standard alphabet, padded)".into());
            }
        }
        let text = || std::str::from_utf8(value).map_err(|_| "is not UTF-8 text".to_string());
        if let Some(p) = &self.pattern {
            if !p.is_match(text()?) {
                return Err(format!("does not match the pattern {:?}", p.as_str()));
            }
        }
        if let Some(u) = &self.url {
            check_url(u, text()?)?;
        }
        if let Some(kind) = self.pem {
            check_pem(kind, text()?)?;
        }
        Ok(())
    }
}

fn check_url(rule: &UrlRule, text: &str) -> Result<(), String> {
    let u = url::Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
    if let Some(s) = &rule.scheme {
        if u.scheme() != s {
            return Err(format!("is not a {s}:// URL"));
        }
    }
    match rule.userinfo {
        Some(true) if u.username().is_empty() || u.password().is_none() => {
            return Err("needs a user name and a password (user:password@host)".into())
        }
        Some(false) if !u.username().is_empty() || u.password().is_some() => {
            return Err("must not hold a user name or a password".into())
        }
        _ => {}
    }
    if let Some(suffix) = &rule.path_suffix {
        if !u.path().ends_with(suffix.as_str()) {
            return Err(format!("its path does not end with {suffix:?}"));
        }
    }
    Ok(())
}

/// The PEM blocks of `text`: (label, DER), or why it is not PEM.
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let label_end = after[11..]
            .find("-----")
            .ok_or("holds a broken PEM header")?;
        let label = &after[11..11 + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = after
            .find(&end_marker)
            .ok_or("holds a PEM block with no end")?;
        let block = &after[..end + end_marker.len()];
        let (l, der) = pem_rfc7468::decode_vec(block.as_bytes())
            .map_err(|_| format!("holds a PEM block ({label}) that does not decode"))?;
        out.push((l.to_owned(), der));
        rest = &after[end + end_marker.len()..];
    }
    if out.is_empty() {
        return Err("is not PEM".into());
    }
    Ok(out)
}

fn check_pem(kind: PemKind, text: &str) -> Result<(), String> {
    use x509_cert::der::Decode;
    let blocks = pem_blocks(text).map_err(|e| match kind {
        PemKind::RsaPrivateKeyPkcs1 => "not a PKCS#1 RSA private key".to_string(),
        _ => e,
    })?;
    let cert = |der: &[u8]| x509_cert::Certificate::from_der(der).is_ok();
    match kind {
        PemKind::RsaPrivateKeyPkcs1 => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            match blocks.as_slice() {
                [(l, der)]
                    if l == "RSA PRIVATE KEY"
                        && rsa::RsaPrivateKey::from_pkcs1_der(der).is_ok() =>
                {
                    Ok(())
                }
                _ => Err("not a PKCS#1 RSA private key".into()),
            }
        }
        PemKind::PrivateKey => {
            let ok = match blocks.as_slice() {
                [(l, der)] => match l.as_str() {
                    "RSA PRIVATE KEY" => {
                        use rsa::pkcs1::DecodeRsaPrivateKey;
                        rsa::RsaPrivateKey::from_pkcs1_der(der).is_ok()
                    }
                    "PRIVATE KEY" => pkcs8::PrivateKeyInfo::try_from(der.as_slice()).is_ok(),
                    "EC PRIVATE KEY" => sec1::EcPrivateKey::try_from(der.as_slice()).is_ok(),
                    _ => false,
                },
                _ => false,
            };
            let openssh = text
                .trim_start()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
                && ssh_key::PrivateKey::from_openssh(text).is_ok();
            if ok || openssh {
                Ok(())
            } else {
                Err("not a PEM private key (PKCS#1, PKCS#8, SEC1 or OpenSSH)".into())
            }
        }
        PemKind::Certificate => match blocks.as_slice() {
            [(l, der)] if l == "CERTIFICATE" && cert(der) => Ok(()),
            [_] => Err("not an X.509 certificate".into()),
            _ => Err("holds more than one PEM block; one certificate is expected".into()),
        },
        PemKind::CertificateChain => {
            for (i, (l, der)) in blocks.iter().enumerate() {
                if l != "CERTIFICATE" || !cert(der) {
                    return Err(format!(
                        "block {} of the chain is not an X.509 certificate",
                        i + 1
                    ));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Entropy;
    use crate::recipe::Generate;
    use std::time::SystemTime;

    fn check(v: Json) -> Check {
        Check::from_json("validate.k", &v).unwrap()
    }

    fn made(rule: Json, key: &str) -> Vec<String> {
        Generate::from_json(&format!("generate.{key}"), &rule)
            .unwrap()
            .make(key, &mut Entropy::seeded(3).rng(), SystemTime::now())
            .unwrap()
            .into_iter()
            .map(|(_, v)| String::from_utf8(v.expose().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn pem_rules_accept_their_kind_and_refuse_others() {
        let pkcs1 = made(json!({"kind": "rsa", "bits": 2048}), "k").remove(0);
        let pkcs8 = made(json!({"kind": "rsa", "bits": 2048, "format": "pkcs8"}), "k").remove(0);
        let ec = made(json!({"kind": "ecdsa-p256"}), "k").remove(0);
        let tls = made(
            json!({"kind": "self-signed-tls", "commonName": "a"}),
            "tls.crt",
        );
        let rsa1 = check(json!({"pem": "rsa-private-key-pkcs1"}));
        assert!(rsa1.check(pkcs1.as_bytes()).is_ok());
        assert_eq!(
            rsa1.check(pkcs8.as_bytes()).unwrap_err(),
            "not a PKCS#1 RSA private key"
        );
        assert_eq!(
            rsa1.check(b"hunter2").unwrap_err(),
            "not a PKCS#1 RSA private key"
        );
        let any = check(json!({"pem": "private-key"}));
        for k in [&pkcs1, &pkcs8, &ec, &tls[1]] {
            assert!(any.check(k.as_bytes()).is_ok());
        }
        assert!(any.check(tls[0].as_bytes()).is_err());
        let one = check(json!({"pem": "certificate"}));
        assert!(one.check(tls[0].as_bytes()).is_ok());
        assert!(one.check(tls[1].as_bytes()).is_err());
        let two = format!("{}{}", tls[0], tls[0]);
        assert!(one.check(two.as_bytes()).is_err());
        let chain = check(json!({"pem": "certificate-chain"}));
        assert!(chain.check(two.as_bytes()).is_ok());
        let broken = tls[0].replace("MII", "MIX");
        assert!(chain.check(broken.as_bytes()).is_err());
    }

    #[test]
    fn url_rules_check_scheme_userinfo_and_path() {
        let c =
            check(json!({"url": {"scheme": "https", "userinfo": true, "pathSuffix": "/simple/"}}));
        assert!(c.check(b"https://u:p%40ss@pypi.example/simple/").is_ok());
        assert!(c
            .check(b"http://u:p@pypi.example/simple/")
            .unwrap_err()
            .contains("https"));
        assert!(c
            .check(b"https://pypi.example/simple/")
            .unwrap_err()
            .contains("password"));
        assert!(c
            .check(b"https://u:p@pypi.example/other")
            .unwrap_err()
            .contains("/simple/"));
        let e = c.check(b"not a url with s3cret").unwrap_err();
        assert!(!e.contains("s3cret"));
    }

    #[test]
    fn text_rules_and_their_parse_errors() {
        assert!(check(json!({"pattern": "^sk_[a-z]+$"}))
            .check(b"sk_abc")
            .is_ok());
        assert!(check(json!({"pattern": "^sk_"})).check(b"pk_abc").is_err());
        assert!(check(json!({"minLength": 4}))
            .check("ééé".as_bytes())
            .is_err());
        assert!(check(json!({"minLength": 3}))
            .check("ééé".as_bytes())
            .is_ok());
        assert!(check(json!({"json": true})).check(br#"{"a": 1}"#).is_ok());
        assert!(check(json!({"json": true})).check(b"{a").is_err());
        assert!(check(json!({"base64": true})).check(b"aGk=").is_ok());
        assert!(check(json!({"base64": true})).check(b"a?k=").is_err());
        let err = |v: Json| Check::from_json("validate.k", &v).unwrap_err().field;
        assert_eq!(err(json!({})), "validate.k");
        assert_eq!(err(json!({"pattern": "("})), "validate.k.pattern");
        assert_eq!(err(json!({"pem": "x"})), "validate.k.pem");
        assert_eq!(err(json!({"url": {"port": 1}})), "validate.k.url.port");
        let c = check(json!({"minLength": 8, "pattern": "x"}));
        assert_eq!(Check::from_json("v", &c.to_json()).unwrap(), c);
    }
}
