//! Compact JWS tokens (JWT) for deployment credentials: minting and verifying with HS256, EdDSA
//! (Ed25519) or ES256 (P-256), and the JSON Web Key Set that publishes the public keys.
//!
//! Verification is pinned: the key is found by the header's `kid`, and the header's `alg` must be
//! that key's own algorithm. So `alg: none`, an HS256 token "signed" with a public key, or any
//! other algorithm swap fails before a signature is looked at. Errors say what failed in general
//! terms and never carry the token.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use sha2::Sha256;
use zeroize::Zeroizing;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// HMAC-SHA256 with a shared secret: whoever verifies can also mint.
    HS256,
    /// Ed25519 signatures; the public key is published in the JWKS.
    EdDSA,
    /// ECDSA on P-256 with SHA-256; the public key is published in the JWKS.
    ES256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
        }
    }

    pub fn parse(text: &str) -> Option<Algorithm> {
        match text {
            "HS256" => Some(Algorithm::HS256),
            "EdDSA" => Some(Algorithm::EdDSA),
            "ES256" => Some(Algorithm::ES256),
            _ => None,
        }
    }
}

/// Why a token was not accepted. The texts are general on purpose: they go back to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature is not valid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was not issued by this server")]
    Issuer,
    #[error("the token has been revoked")]
    Revoked,
}

/// The claims of a deployment token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The deployment id (a UUID).
    pub sub: String,
    pub env_id: String,
    pub cluster_id: String,
    pub iss: String,
    /// Unique per token: what revocation names.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// A key that signs tokens. The secret half never leaves this type except through
/// [`SigningKey::secret_bytes`], for sealwright's encrypted state.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    material: Material,
}

#[derive(Clone)]
enum Material {
    Hs256(Zeroizing<Vec<u8>>),
    EdDsa(Box<ed25519_dalek::SigningKey>),
    Es256(Box<p256::ecdsa::SigningKey>),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} {})", self.alg().as_str(), self.kid)
    }
}

impl SigningKey {
    /// A new random key with the given id.
    pub fn generate(alg: Algorithm, kid: &str) -> SigningKey {
        use rand::RngCore;
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        // A P-256 scalar must be below the group order; a random one is, but for a 2^-128 chance.
        loop {
            if let Ok(k) = SigningKey::from_secret(alg, kid, seed.as_ref()) {
                return k;
            }
            rand::rngs::OsRng.fill_bytes(seed.as_mut());
        }
    }

    /// Rebuilds a key from its 32 secret bytes (as kept in the encrypted state).
    pub fn from_secret(alg: Algorithm, kid: &str, secret: &[u8]) -> Result<SigningKey, String> {
        let material = match alg {
            Algorithm::HS256 => {
                if secret.len() < 32 {
                    return Err("an HS256 key needs at least 32 bytes".into());
                }
                Material::Hs256(Zeroizing::new(secret.to_vec()))
            }
            Algorithm::EdDSA => {
                let bytes: [u8; 32] = secret
                    .try_into()
                    .map_err(|_| "an EdDSA key is 32 bytes".to_owned())?;
                Material::EdDsa(Box::new(ed25519_dalek::SigningKey::from_bytes(&bytes)))
            }
            Algorithm::ES256 => Material::Es256(Box::new(
                p256::ecdsa::SigningKey::from_slice(secret)
                    .map_err(|_| "not a P-256 private key".to_owned())?,
            )),
        };
        Ok(SigningKey {
            kid: kid.to_owned(),
            material,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        match self.material {
            Material::Hs256(_) => Algorithm::HS256,
            Material::EdDsa(_) => Algorithm::EdDSA,
            Material::Es256(_) => Algorithm::ES256,
        }
    }

    /// The secret bytes, for sealwright's state (encrypted to the operator key there).
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        match &self.material {
            Material::Hs256(s) => s.clone(),
            Material::EdDsa(k) => Zeroizing::new(k.to_bytes().to_vec()),
            Material::Es256(k) => Zeroizing::new(k.to_bytes().to_vec()),
        }
    }

    /// What verifies this key's tokens.
    pub fn verifying_key(&self) -> VerifyingKey {
        let material = match &self.material {
            Material::Hs256(s) => Public::Hs256(s.clone()),
            Material::EdDsa(k) => Public::EdDsa(k.verifying_key()),
            Material::Es256(k) => Public::Es256(*k.verifying_key()),
        };
        VerifyingKey {
            kid: self.kid.clone(),
            material,
        }
    }

    /// `header.claims.signature`.
    pub fn mint(&self, claims: &Claims) -> String {
        let header = json!({"alg": self.alg().as_str(), "typ": "JWT", "kid": self.kid});
        let mut token = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(serde_json::to_vec(claims).unwrap_or_default())
        );
        let signature = match &self.material {
            Material::Hs256(s) => hmac_sha256(s, token.as_bytes()),
            Material::EdDsa(k) => {
                use ed25519_dalek::Signer;
                k.sign(token.as_bytes()).to_bytes().to_vec()
            }
            Material::Es256(k) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = k.sign(token.as_bytes());
                sig.to_bytes().to_vec()
            }
        };
        token.push('.');
        token.push_str(&B64.encode(signature));
        token
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this never fails; an empty tag would match nothing.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// What checks a token's signature: the public key, or the shared secret for HS256.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    material: Public,
}

#[derive(Clone)]
enum Public {
    Hs256(Zeroizing<Vec<u8>>),
    EdDsa(ed25519_dalek::VerifyingKey),
    Es256(p256::ecdsa::VerifyingKey),
}

impl VerifyingKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        match self.material {
            Public::Hs256(_) => Algorithm::HS256,
            Public::EdDsa(_) => Algorithm::EdDSA,
            Public::Es256(_) => Algorithm::ES256,
        }
    }

    /// The key as a JWK (RFC 7517/8037); `None` for HS256, whose key is secret.
    pub fn jwk(&self) -> Option<Json> {
        match &self.material {
            Public::Hs256(_) => None,
            Public::EdDsa(k) => Some(json!({
                "kty": "OKP", "crv": "Ed25519", "x": B64.encode(k.as_bytes()),
                "kid": self.kid, "alg": "EdDSA", "use": "sig",
            })),
            Public::Es256(k) => {
                let point = k.to_encoded_point(false);
                let (x, y) = (point.x()?, point.y()?);
                Some(json!({
                    "kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y),
                    "kid": self.kid, "alg": "ES256", "use": "sig",
                }))
            }
        }
    }

    fn check(&self, signed: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Public::Hs256(s) => {
                let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(s) else {
                    return false;
                };
                mac.update(signed);
                mac.verify_slice(signature).is_ok()
            }
            Public::EdDsa(k) => {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
                    return false;
                };
                k.verify_strict(signed, &sig).is_ok()
            }
            Public::Es256(k) => {
                use p256::ecdsa::signature::Verifier;
                let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                k.verify(signed, &sig).is_ok()
            }
        }
    }
}

/// The keys a server accepts tokens from, by `kid`, and what else a token must satisfy.
#[derive(Clone)]
pub struct Verifier {
    keys: BTreeMap<String, VerifyingKey>,
    issuer: String,
    /// Allowed clock skew for `exp` and `iat`, in seconds.
    leeway: i64,
}

impl Verifier {
    pub fn new(issuer: &str, leeway_secs: i64) -> Verifier {
        Verifier {
            keys: BTreeMap::new(),
            issuer: issuer.to_owned(),
            leeway: leeway_secs,
        }
    }

    pub fn add(&mut self, key: VerifyingKey) {
        self.keys.insert(key.kid.clone(), key);
    }

    pub fn remove(&mut self, kid: &str) {
        self.keys.remove(kid);
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The JSON Web Key Set of the public keys (HS256 keys are never in it).
    pub fn jwks(&self) -> Json {
        json!({"keys": self.keys.values().filter_map(VerifyingKey::jwk).collect::<Vec<_>>()})
    }

    /// The claims of a valid token at time `now` (Unix seconds). Revocation is the caller's.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        // Tokens are small; a huge header is an attack on the decoder, not a token.
        if token.len() > 8 * 1024 {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Json = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        let alg = header["alg"].as_str().ok_or(TokenError::Malformed)?;
        let kid = header["kid"].as_str().ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(kid).ok_or(TokenError::UnknownKey)?;
        // Pinned: the key decides the algorithm, never the token.
        if Algorithm::parse(alg) != Some(key.alg()) {
            return Err(TokenError::Algorithm);
        }
        let signature = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let signed_len = h.len() + 1 + c.len();
        if !key.check(&token.as_bytes()[..signed_len], &signature) {
            return Err(TokenError::Signature);
        }
        let claims: Claims = B64
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer);
        }
        if now > claims.exp + self.leeway {
            return Err(TokenError::Expired);
        }
        if claims.iat > now + self.leeway {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// The `kid` and `alg` of a token's header, unchecked: only for a token that has just verified.
pub fn header_key(token: &str) -> Option<(String, Algorithm)> {
    let h = token.split('.').next()?;
    let header: Json = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
    Some((
        header["kid"].as_str()?.to_owned(),
        Algorithm::parse(header["alg"].as_str()?)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "5f0c6a3e-8d7b-4c1a-9e2f-0123456789ab".into(),
            env_id: "production".into(),
            cluster_id: "eu-1".into(),
            iss: "sealwright".into(),
            jti: "j-1".into(),
            iat: 1000,
            exp,
        }
    }

    fn verifier(keys: &[&SigningKey]) -> Verifier {
        let mut v = Verifier::new("sealwright", 30);
        for k in keys {
            v.add(k.verifying_key());
        }
        v
    }

    #[test]
    fn every_algorithm_round_trips_and_survives_a_reload() {
        for alg in [Algorithm::HS256, Algorithm::EdDSA, Algorithm::ES256] {
            let key = SigningKey::generate(alg, &format!("k-{}", alg.as_str()));
            let token = key.mint(&claims(5000));
            assert_eq!(verifier(&[&key]).verify(&token, 2000), Ok(claims(5000)));
            let again = SigningKey::from_secret(alg, key.kid(), &key.secret_bytes()).unwrap();
            assert_eq!(again.mint(&claims(5000)).len(), token.len());
            assert_eq!(verifier(&[&again]).verify(&token, 2000), Ok(claims(5000)));
            let header: Json =
                serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap())
                    .unwrap();
            assert_eq!(header["alg"], json!(alg.as_str()));
            assert_eq!(header["kid"], json!(key.kid()));
        }
    }

    #[test]
    fn expiry_issuer_and_clock_skew() {
        let key = SigningKey::generate(Algorithm::EdDSA, "k");
        let v = verifier(&[&key]);
        let token = key.mint(&claims(5000));
        assert!(v.verify(&token, 5029).is_ok(), "within the leeway");
        assert_eq!(v.verify(&token, 5031), Err(TokenError::Expired));
        assert_eq!(v.verify(&token, 900), Err(TokenError::NotYetValid));
        let mut other = claims(5000);
        other.iss = "someone-else".into();
        assert_eq!(v.verify(&key.mint(&other), 2000), Err(TokenError::Issuer));
    }

    /// A token whose header and claims are chosen by an attacker, "signed" with `sig`.
    fn forged(header: Json, c: &Claims, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            B64.encode(header.to_string()),
            B64.encode(serde_json::to_vec(c).unwrap()),
            B64.encode(sig)
        )
    }

    #[test]
    fn forged_none_swapped_and_wrong_key_tokens_are_refused() {
        let ed = SigningKey::generate(Algorithm::EdDSA, "ed");
        let hs = SigningKey::generate(Algorithm::HS256, "hs");
        let v = verifier(&[&ed, &hs]);
        let c = claims(5000);
        // alg none, with and without a signature.
        for sig in [&b""[..], b"x"] {
            let t = forged(json!({"alg": "none", "kid": "ed"}), &c, sig);
            assert_eq!(v.verify(&t, 2000), Err(TokenError::Algorithm));
        }
        // HS256 keyed with the Ed25519 *public* key, claiming the Ed25519 kid: the classic
        // confusion. The kid's key is EdDSA, so the HS256 header is refused outright.
        let public = ed.verifying_key().jwk().unwrap()["x"]
            .as_str()
            .unwrap()
            .to_owned();
        let unsigned = forged(json!({"alg": "HS256", "kid": "ed"}), &c, b"");
        let signed = unsigned.trim_end_matches('.').to_owned();
        let t = format!(
            "{signed}.{}",
            B64.encode(hmac_sha256(public.as_bytes(), signed.as_bytes()))
        );
        assert_eq!(v.verify(&t, 2000), Err(TokenError::Algorithm));
        // A changed claim breaks the signature.
        let good = ed.mint(&c);
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut more = c.clone();
        more.env_id = "staging".into();
        parts[1] = B64.encode(serde_json::to_vec(&more).unwrap());
        assert_eq!(v.verify(&parts.join("."), 2000), Err(TokenError::Signature));
        // Signed by a key that is not ours, under one of our kids.
        let stranger = SigningKey::generate(Algorithm::EdDSA, "ed");
        assert_eq!(
            v.verify(&stranger.mint(&c), 2000),
            Err(TokenError::Signature)
        );
        let stranger = SigningKey::generate(Algorithm::EdDSA, "other");
        assert_eq!(
            v.verify(&stranger.mint(&c), 2000),
            Err(TokenError::UnknownKey)
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"x".repeat(9000)] {
            assert!(v.verify(junk, 2000).is_err(), "{junk:.20}");
        }
    }

    #[test]
    fn the_jwks_publishes_only_public_keys() {
        let ed = SigningKey::generate(Algorithm::EdDSA, "ed");
        let es = SigningKey::generate(Algorithm::ES256, "es");
        let hs = SigningKey::generate(Algorithm::HS256, "hs");
        let jwks = verifier(&[&ed, &es, &hs]).jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "{jwks}");
        let text = jwks.to_string();
        for k in [&ed, &es, &hs] {
            assert!(!text.contains(&B64.encode(k.secret_bytes().as_slice())));
        }
        let es_jwk = keys.iter().find(|k| k["kid"] == json!("es")).unwrap();
        assert_eq!(es_jwk["crv"], json!("P-256"));
        assert_eq!(B64.decode(es_jwk["x"].as_str().unwrap()).unwrap().len(), 32);
        assert_eq!(B64.decode(es_jwk["y"].as_str().unwrap()).unwrap().len(), 32);
    }
}
