//! Generate rules: what a generated key holds (random text, a UUID, a token, a private key in
//! PEM, a self-signed TLS pair), parsed from `{"kind": ...}` and made from an [`EntropyRng`].
//! Generating is pure given the generator and the time; an RSA key takes long by nature, so
//! callers run [`Generate::make`] off the async workers.

use std::time::{Duration, SystemTime};

use rand::RngCore;
use serde_json::{json, Value as Json};

use crate::fields::{invalid, kind, Fields, Invalid};
use crate::model::SecretValue;
use crate::random::EntropyRng;

/// The longest random string or token a rule may ask for.
pub const MAX_LENGTH: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsaFormat {
    Pkcs1,
    Pkcs8,
}

/// One key's generate rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generate {
    /// `[A-Za-z0-9]{length}`, after `idPrefix` when given (a key id such as `crewai-oidc-…`).
    Alphanumeric {
        length: usize,
        id_prefix: Option<String>,
    },
    /// Lower-case hex digits.
    Hex {
        length: usize,
        id_prefix: Option<String>,
    },
    /// `bytes` random bytes, standard base64 with padding.
    Base64 { bytes: usize },
    /// A random (version 4) UUID.
    Uuid { id_prefix: Option<String> },
    /// `prefix` + `length` base62 characters (`sk_…`).
    Token { prefix: String, length: usize },
    Rsa {
        bits: usize,
        format: RsaFormat,
        public_key: Option<String>,
    },
    /// A PKCS#8 PEM private key.
    Ed25519 { public_key: Option<String> },
    /// A PKCS#8 PEM private key on P-256.
    EcdsaP256 { public_key: Option<String> },
    /// `tls.crt` and `tls.key`: a self-signed certificate (ECDSA P-256, SHA-256) for
    /// `commonName` and `dnsNames`, valid `days` from when it is made.
    SelfSignedTls {
        common_name: String,
        dns_names: Vec<String>,
        days: u32,
    },
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl Generate {
    /// The keys this rule fills when it sits under `key`.
    pub fn fills(&self, key: &str) -> Vec<String> {
        match self {
            Generate::Rsa { public_key, .. }
            | Generate::Ed25519 { public_key }
            | Generate::EcdsaP256 { public_key } => std::iter::once(key.to_owned())
                .chain(public_key.clone())
                .collect(),
            Generate::SelfSignedTls { .. } => vec!["tls.crt".into(), "tls.key".into()],
            _ => vec![key.to_owned()],
        }
    }

    /// Whether making it takes long enough to keep off the async workers.
    pub fn is_slow(&self) -> bool {
        matches!(self, Generate::Rsa { .. })
    }

    /// Parses `{"kind": ...}` under `field` (`generate.password`); errors name the field.
    pub fn from_json(field: &str, v: &Json) -> Result<Generate, Invalid> {
        let mut f = Fields::of(field, v)?;
        let kind_s = f.str("kind")?;
        let at = |k: &str| format!("{field}.{k}");
        let rule = match kind_s.as_str() {
            "alphanumeric" => Generate::Alphanumeric {
                length: number(&mut f, field, "length", 1, MAX_LENGTH, None)?,
                id_prefix: prefix(&mut f, field, "idPrefix")?,
            },
            "hex" => Generate::Hex {
                length: number(&mut f, field, "length", 1, MAX_LENGTH, None)?,
                id_prefix: prefix(&mut f, field, "idPrefix")?,
            },
            "base64" => Generate::Base64 {
                bytes: number(&mut f, field, "bytes", 1, MAX_LENGTH, None)?,
            },
            "uuid" => Generate::Uuid {
                id_prefix: prefix(&mut f, field, "idPrefix")?,
            },
            "token" => Generate::Token {
                prefix: prefix(&mut f, field, "prefix")?.unwrap_or_default(),
                length: number(&mut f, field, "length", 1, MAX_LENGTH, None)?,
            },
            "rsa" => {
                let bits = number(&mut f, field, "bits", 0, 4096, Some(2048))?;
                if ![2048, 3072, 4096].contains(&bits) {
                    return Err(invalid(at("bits"), "must be 2048, 3072 or 4096"));
                }
                let format = match f.opt_str("format")?.as_deref() {
                    None | Some("pkcs1") => RsaFormat::Pkcs1,
                    Some("pkcs8") => RsaFormat::Pkcs8,
                    Some(_) => return Err(invalid(at("format"), "must be pkcs1 or pkcs8")),
                };
                Generate::Rsa {
                    bits,
                    format,
                    public_key: public_key(&mut f, field)?,
                }
            }
            "ed25519" => Generate::Ed25519 {
                public_key: public_key(&mut f, field)?,
            },
            "ecdsa-p256" => Generate::EcdsaP256 {
                public_key: public_key(&mut f, field)?,
            },
            "self-signed-tls" => {
                let key = field.strip_prefix("generate.").unwrap_or(field);
                if key != "tls.crt" {
                    return Err(invalid(
                        field,
                        "a self-signed-tls rule fills tls.crt and tls.key: put it under generate.\"tls.crt\"",
                    ));
                }
                let common_name = f.str("commonName")?;
                if common_name.len() > 64 {
                    return Err(invalid(at("commonName"), "is longer than 64 characters"));
                }
                let mut dns_names = Vec::new();
                match f.get("dnsNames") {
                    None => {}
                    Some(Json::Array(items)) => {
                        for (i, item) in items.iter().enumerate() {
                            let Json::String(n) = item else {
                                return Err(invalid(
                                    format!("{field}.dnsNames[{i}]"),
                                    format!("must be a string, not {}", kind(item)),
                                ));
                            };
                            if !is_dns_name(n) {
                                return Err(invalid(
                                    format!("{field}.dnsNames[{i}]"),
                                    format!("{n:?} is not a DNS name"),
                                ));
                            }
                            dns_names.push(n.clone());
                        }
                    }
                    Some(other) => {
                        return Err(invalid(
                            at("dnsNames"),
                            format!("must be a list, not {}", kind(other)),
                        ))
                    }
                }
                Generate::SelfSignedTls {
                    common_name,
                    dns_names,
                    days: number(&mut f, field, "days", 1, 36_500, Some(365))? as u32,
                }
            }
            other => {
                return Err(invalid(
                    at("kind"),
                    format!(
                        "{other:?} is not a kind (alphanumeric, hex, base64, uuid, token, rsa, ed25519, ecdsa-p256, self-signed-tls)"
                    ),
                ))
            }
        };
        f.finish()?;
        Ok(rule)
    }

    /// The rule as JSON (the annotation's and a body's form).
    pub fn to_json(&self) -> Json {
        let mut j = match self {
            Generate::Alphanumeric { length, id_prefix } => {
                with_prefix(json!({"kind": "alphanumeric", "length": length}), id_prefix)
            }
            Generate::Hex { length, id_prefix } => {
                with_prefix(json!({"kind": "hex", "length": length}), id_prefix)
            }
            Generate::Base64 { bytes } => json!({"kind": "base64", "bytes": bytes}),
            Generate::Uuid { id_prefix } => with_prefix(json!({"kind": "uuid"}), id_prefix),
            Generate::Token { prefix, length } => {
                json!({"kind": "token", "prefix": prefix, "length": length})
            }
            Generate::Rsa { bits, format, .. } => json!({
                "kind": "rsa",
                "bits": bits,
                "format": match format { RsaFormat::Pkcs1 => "pkcs1", RsaFormat::Pkcs8 => "pkcs8" },
            }),
            Generate::Ed25519 { .. } => json!({"kind": "ed25519"}),
            Generate::EcdsaP256 { .. } => json!({"kind": "ecdsa-p256"}),
            Generate::SelfSignedTls {
                common_name,
                dns_names,
                days,
            } => json!({
                "kind": "self-signed-tls",
                "commonName": common_name,
                "dnsNames": dns_names,
                "days": days,
            }),
        };
        if let Generate::Rsa {
            public_key: Some(p),
            ..
        }
        | Generate::Ed25519 {
            public_key: Some(p),
        }
        | Generate::EcdsaP256 {
            public_key: Some(p),
        } = self
        {
            j["publicKey"] = json!(p);
        }
        j
    }

    /// Makes the values of the keys this rule fills under `key` ([`Generate::fills`]).
    pub fn make(
        &self,
        key: &str,
        rng: &mut EntropyRng,
        now: SystemTime,
    ) -> Result<Vec<(String, SecretValue)>, GenerateError> {
        let one = |v: String| Ok(vec![(key.to_owned(), SecretValue::new(v.into_bytes()))]);
        match self {
            Generate::Alphanumeric { length, id_prefix } => one(format!(
                "{}{}",
                id_prefix.as_deref().unwrap_or(""),
                pick(rng, ALNUM, *length)
            )),
            Generate::Hex { length, id_prefix } => {
                let mut b = vec![0u8; length.div_ceil(2)];
                rng.fill_bytes(&mut b);
                let mut h = hex::encode(&b);
                h.truncate(*length);
                one(format!("{}{h}", id_prefix.as_deref().unwrap_or("")))
            }
            Generate::Base64 { bytes } => {
                use base64::Engine;
                let mut b = zeroize::Zeroizing::new(vec![0u8; *bytes]);
                rng.fill_bytes(&mut b);
                one(base64::engine::general_purpose::STANDARD.encode(&*b))
            }
            Generate::Uuid { id_prefix } => {
                let mut b = [0u8; 16];
                rng.fill_bytes(&mut b);
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                let h = hex::encode(b);
                one(format!(
                    "{}{}-{}-{}-{}-{}",
                    id_prefix.as_deref().unwrap_or(""),
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                ))
            }
            Generate::Token { prefix, length } => {
                one(format!("{prefix}{}", pick(rng, ALNUM, *length)))
            }
            Generate::Rsa {
                bits,
                format,
                public_key,
            } => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
                let k = rsa::RsaPrivateKey::new(rng, *bits).map_err(GenerateError::rsa)?;
                let pem = match format {
                    RsaFormat::Pkcs1 => {
                        k.to_pkcs1_pem(LineEnding::LF).map_err(GenerateError::pem)?
                    }
                    RsaFormat::Pkcs8 => {
                        k.to_pkcs8_pem(LineEnding::LF).map_err(GenerateError::pem)?
                    }
                };
                let public = public_key
                    .as_ref()
                    .map(|_| k.to_public_key().to_public_key_pem(LineEnding::LF))
                    .transpose()
                    .map_err(GenerateError::pem)?;
                Ok(pair(key, pem.as_bytes(), public_key, public))
            }
            Generate::Ed25519 { public_key } => {
                use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
                use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, KeypairBytes};
                let sk = ed25519_dalek::SigningKey::generate(rng);
                // PKCS#8 v1 (no public key inside), the form `openssl genpkey` writes.
                let pem = KeypairBytes {
                    secret_key: sk.to_bytes(),
                    public_key: None,
                }
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(GenerateError::pem)?;
                let public = public_key
                    .as_ref()
                    .map(|_| sk.verifying_key().to_public_key_pem(LineEnding::LF))
                    .transpose()
                    .map_err(GenerateError::pem)?;
                Ok(pair(key, pem.as_bytes(), public_key, public))
            }
            Generate::EcdsaP256 { public_key } => {
                use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
                let sk = p256::SecretKey::random(rng);
                let pem = sk
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(GenerateError::pem)?;
                let public = public_key
                    .as_ref()
                    .map(|_| sk.public_key().to_public_key_pem(LineEnding::LF))
                    .transpose()
                    .map_err(GenerateError::pem)?;
                Ok(pair(key, pem.as_bytes(), public_key, public))
            }
            Generate::SelfSignedTls {
                common_name,
                dns_names,
                days,
            } => {
                let (crt, k) = self_signed(rng, now, common_name, dns_names, *days)?;
                Ok(vec![
                    ("tls.crt".into(), SecretValue::new(crt.into_bytes())),
                    ("tls.key".into(), SecretValue::new(k.as_bytes().to_vec())),
                ])
            }
        }
    }
}

/// Why a value could not be made (never a value: the libraries' own errors are about sizes
/// and encodings).
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("generating the RSA key failed: {0}")]
    Rsa(String),
    #[error("encoding the key failed: {0}")]
    Encoding(String),
    #[error("building the certificate failed: {0}")]
    Certificate(String),
}

impl GenerateError {
    fn rsa(e: impl std::fmt::Display) -> GenerateError {
        GenerateError::Rsa(e.to_string())
    }
    fn pem(e: impl std::fmt::Display) -> GenerateError {
        GenerateError::Encoding(e.to_string())
    }
    fn cert(e: impl std::fmt::Display) -> GenerateError {
        GenerateError::Certificate(e.to_string())
    }
}

fn pair(
    key: &str,
    private: &[u8],
    public_key: &Option<String>,
    public: Option<String>,
) -> Vec<(String, SecretValue)> {
    let mut out = vec![(key.to_owned(), SecretValue::new(private.to_vec()))];
    if let (Some(k), Some(p)) = (public_key, public) {
        out.push((k.clone(), SecretValue::new(p.into_bytes())));
    }
    out
}

/// `n` characters drawn uniformly from `alphabet` (rejection sampling: no modulo bias).
fn pick(rng: &mut EntropyRng, alphabet: &[u8], n: usize) -> String {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill_bytes(&mut buf);
        for &b in &buf {
            if (b as usize) < limit && out.len() < n {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

fn self_signed(
    rng: &mut EntropyRng,
    now: SystemTime,
    common_name: &str,
    dns_names: &[String],
    days: u32,
) -> Result<(String, zeroize::Zeroizing<String>), GenerateError> {
    use std::str::FromStr;

    use p256::ecdsa::{DerSignature, SigningKey};
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::asn1::Ia5String;
    use x509_cert::der::EncodePem;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::{Time, Validity};

    let secret = p256::SecretKey::random(rng);
    let signer = SigningKey::from(&secret);
    let spki_der = secret
        .public_key()
        .to_public_key_der()
        .map_err(GenerateError::pem)?;
    let spki =
        SubjectPublicKeyInfoOwned::try_from(spki_der.as_bytes()).map_err(GenerateError::cert)?;
    let mut serial = [0u8; 16];
    rng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // a positive serial of at most 16 bytes
    serial[0] |= 0x01;
    let start = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(GenerateError::cert)?;
    let start = Duration::from_secs(start.as_secs());
    let end = start + Duration::from_secs(u64::from(days) * 86_400);
    // RFC 5280: dates through 2049 are UTCTime, later ones GeneralizedTime.
    let time = |d: Duration| -> Result<Time, GenerateError> {
        if d.as_secs() < 2_524_608_000 {
            x509_cert::der::asn1::UtcTime::from_unix_duration(d).map(Time::UtcTime)
        } else {
            x509_cert::der::asn1::GeneralizedTime::from_unix_duration(d).map(Time::GeneralTime)
        }
        .map_err(GenerateError::cert)
    };
    let validity = Validity {
        not_before: time(start)?,
        not_after: time(end)?,
    };
    let cn = common_name
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('+', "\\+");
    let subject = Name::from_str(&format!("CN={cn}")).map_err(GenerateError::cert)?;
    let mut builder = CertificateBuilder::new(
        // A leaf profile: basicConstraints CA:FALSE, digitalSignature, key identifiers.
        Profile::Leaf {
            issuer: subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        SerialNumber::new(&serial).map_err(GenerateError::cert)?,
        validity,
        subject,
        spki,
        &signer,
    )
    .map_err(GenerateError::cert)?;
    builder
        .add_extension(&ExtendedKeyUsage(vec![
            x509_cert::der::oid::db::rfc5280::ID_KP_SERVER_AUTH,
            x509_cert::der::oid::db::rfc5280::ID_KP_CLIENT_AUTH,
        ]))
        .map_err(GenerateError::cert)?;
    if !dns_names.is_empty() {
        let names = dns_names
            .iter()
            .map(|n| Ia5String::new(n).map(GeneralName::DnsName))
            .collect::<Result<Vec<_>, _>>()
            .map_err(GenerateError::cert)?;
        builder
            .add_extension(&SubjectAltName(names))
            .map_err(GenerateError::cert)?;
    }
    let cert = builder
        .build::<DerSignature>()
        .map_err(GenerateError::cert)?;
    let crt = cert.to_pem(LineEnding::LF).map_err(GenerateError::pem)?;
    let key = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(GenerateError::pem)?;
    Ok((crt, zeroize::Zeroizing::new(key.to_string())))
}

fn is_dns_name(n: &str) -> bool {
    let n = n.strip_prefix("*.").unwrap_or(n);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn number(
    f: &mut Fields<'_>,
    field: &str,
    key: &'static str,
    min: u64,
    max: u64,
    default: Option<usize>,
) -> Result<usize, Invalid> {
    let at = format!("{field}.{key}");
    match f.get(key) {
        None => default.ok_or_else(|| invalid(at, "is required")),
        Some(Json::Number(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Ok(v as usize),
            _ => Err(invalid(
                at,
                format!("must be a whole number from {min} to {max}"),
            )),
        },
        Some(other) => Err(invalid(
            at,
            format!("must be a number, not {}", kind(other)),
        )),
    }
}

fn prefix(f: &mut Fields<'_>, field: &str, key: &'static str) -> Result<Option<String>, Invalid> {
    let p = f.opt_str(key)?;
    if let Some(p) = &p {
        if p.len() > 64 || !p.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                format!("{field}.{key}"),
                "must be at most 64 printable ASCII characters",
            ));
        }
    }
    Ok(p)
}

fn public_key(f: &mut Fields<'_>, field: &str) -> Result<Option<String>, Invalid> {
    let p = f.opt_str("publicKey")?;
    if let Some(p) = &p {
        crate::names::validate_data_key(&format!("{field}.publicKey"), p)?;
        if Some(p.as_str()) == field.strip_prefix("generate.") {
            return Err(invalid(
                format!("{field}.publicKey"),
                "must name another key than the private key's",
            ));
        }
    }
    Ok(p)
}

fn with_prefix(mut j: Json, p: &Option<String>) -> Json {
    if let Some(p) = p {
        j["idPrefix"] = json!(p);
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Entropy;

    fn rule(v: Json) -> Generate {
        Generate::from_json("generate.k", &v).unwrap()
    }

    fn text(rule: &Generate, e: &Entropy) -> String {
        let v = rule
            .make("k", &mut e.rng(), SystemTime::UNIX_EPOCH)
            .unwrap();
        String::from_utf8(v[0].1.expose().to_vec()).unwrap()
    }

    #[test]
    fn random_text_has_its_alphabet_length_and_prefix_and_a_seed_repeats_it() {
        let e = Entropy::seeded(1);
        let a = text(&rule(json!({"kind": "alphanumeric", "length": 64})), &e);
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        let h = text(&rule(json!({"kind": "hex", "length": 63})), &e);
        assert_eq!(h.len(), 63);
        assert!(h
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let t = text(
            &rule(json!({"kind": "token", "prefix": "sk_", "length": 40})),
            &e,
        );
        assert!(t.starts_with("sk_") && t.len() == 43);
        let u = text(
            &rule(json!({"kind": "uuid", "idPrefix": "crewai-oidc-"})),
            &e,
        );
        let u = u.strip_prefix("crewai-oidc-").unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!("89ab".contains(&u[19..20]));
        let b = text(&rule(json!({"kind": "base64", "bytes": 32})), &e);
        use base64::Engine;
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&b)
                .unwrap()
                .len(),
            32
        );
        let again = Entropy::seeded(1);
        assert_eq!(
            text(&rule(json!({"kind": "alphanumeric", "length": 64})), &again),
            a
        );
    }

    #[test]
    fn rules_round_trip_and_their_errors_name_the_field() {
        for v in [
            json!({"kind": "alphanumeric", "length": 8, "idPrefix": "x-"}),
            json!({"kind": "token", "prefix": "sk_", "length": 8}),
            json!({"kind": "rsa", "bits": 3072, "format": "pkcs8", "publicKey": "pub"}),
            json!({"kind": "ed25519"}),
            json!({"kind": "self-signed-tls", "commonName": "a", "dnsNames": ["a.example"], "days": 30}),
        ] {
            let field = if v["kind"] == "self-signed-tls" {
                "generate.tls.crt"
            } else {
                "generate.k"
            };
            let r = Generate::from_json(field, &v).unwrap();
            assert_eq!(Generate::from_json(field, &r.to_json()).unwrap(), r);
        }
        let err = |v: Json| Generate::from_json("generate.k", &v).unwrap_err();
        assert_eq!(
            err(json!({"kind": "rsa", "bits": 1024})).field,
            "generate.k.bits"
        );
        assert_eq!(
            err(json!({"kind": "hex", "length": 0})).field,
            "generate.k.length"
        );
        assert_eq!(err(json!({"kind": "hex"})).field, "generate.k.length");
        assert_eq!(err(json!({"kind": "dice"})).field, "generate.k.kind");
        assert_eq!(
            err(json!({"kind": "uuid", "len": 3})).field,
            "generate.k.len"
        );
        assert_eq!(
            err(json!({"kind": "self-signed-tls", "commonName": "a"})).field,
            "generate.k"
        );
        let e = Generate::from_json(
            "generate.tls.crt",
            &json!({"kind": "self-signed-tls", "commonName": "a", "dnsNames": ["bad name"]}),
        )
        .unwrap_err();
        assert_eq!(e.field, "generate.tls.crt.dnsNames[0]");
    }

    #[test]
    fn keys_fill_their_companions() {
        let e = Entropy::seeded(2);
        let r = rule(json!({"kind": "ecdsa-p256", "publicKey": "k.pub"}));
        assert_eq!(r.fills("k"), ["k", "k.pub"]);
        let v = r.make("k", &mut e.rng(), SystemTime::now()).unwrap();
        assert!(std::str::from_utf8(v[0].1.expose())
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(std::str::from_utf8(v[1].1.expose())
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let ed = rule(json!({"kind": "ed25519"}))
            .make("k", &mut e.rng(), SystemTime::now())
            .unwrap();
        assert!(std::str::from_utf8(ed[0].1.expose())
            .unwrap()
            .contains("BEGIN PRIVATE KEY"));
        let tls = Generate::from_json(
            "generate.tls.crt",
            &json!({"kind": "self-signed-tls", "commonName": "shop", "dnsNames": ["shop.example"]}),
        )
        .unwrap();
        let v = tls
            .make("tls.crt", &mut e.rng(), SystemTime::now())
            .unwrap();
        assert_eq!(
            v.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["tls.crt", "tls.key"]
        );
        assert!(std::str::from_utf8(v[0].1.expose())
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----\n"));
    }
}
