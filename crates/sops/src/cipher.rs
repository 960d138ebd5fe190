//! AES-256-GCM value encryption and the `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` string
//! (SOPS-FORMAT.md 2.1–2.3).
//!
//! sops uses a 32-byte IV, so GCM derives its counter block with GHASH (the non-96-bit IV case);
//! `AesGcm<Aes256, U32>` does exactly that. Readers accept the other common IV lengths too.

use aes::Aes256;
use aes_gcm::aead::consts::{U12, U16, U32};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::AesGcm;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

use super::scalar::TypeTag;

pub const IV_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// The 32-byte per-file data key. Not `Debug`, zeroised on drop.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn generate() -> DataKey {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        DataKey(k)
    }

    pub fn from_slice(b: &[u8]) -> Option<DataKey> {
        let arr: [u8; 32] = b.try_into().ok()?;
        Some(DataKey(Zeroizing::new(arr)))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why an `ENC[...]` value could not be decrypted. Never carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("input string does not match sops' data format (ENC[AES256_GCM,...])")]
    NotEncrypted,
    #[error("error base64-decoding {0}")]
    Base64(&'static str),
    #[error("unknown datatype in type: tag")]
    UnknownType,
    #[error("unsupported IV length {0} bytes")]
    IvLength(usize),
    #[error("tag must be 16 bytes")]
    TagLength,
    #[error("could not decrypt with AES_GCM: message authentication failed")]
    Authentication,
}

/// The parts of an `ENC[...]` string, base64-decoded.
pub struct EncValue {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: [u8; TAG_LEN],
    pub typ: TypeTag,
}

impl EncValue {
    /// Parses like sops' `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`: anchored at the
    /// start only, greedy groups (so each separator is the last one that still lets the rest match).
    pub fn parse(s: &str) -> Result<EncValue, CipherError> {
        let rest = s
            .strip_prefix("ENC[AES256_GCM,data:")
            .ok_or(CipherError::NotEncrypted)?;
        let close = rest.rfind(']').ok_or(CipherError::NotEncrypted)?;
        let body = &rest[..close];
        let (body, typ) = split_last(body, ",type:")?;
        let (body, tag) = split_last(body, ",tag:")?;
        let (data, iv) = split_last(body, ",iv:")?;
        if data.is_empty() {
            return Err(CipherError::NotEncrypted);
        }
        let typ = TypeTag::parse(typ).ok_or(CipherError::UnknownType)?;
        let dec = |what, s: &str| B64.decode(s).map_err(|_| CipherError::Base64(what));
        let tag: [u8; TAG_LEN] = dec("tag", tag)?
            .try_into()
            .map_err(|_| CipherError::TagLength)?;
        Ok(EncValue {
            data: dec("data", data)?,
            iv: dec("iv", iv)?,
            tag,
            typ,
        })
    }
}

fn split_last<'a>(s: &'a str, sep: &str) -> Result<(&'a str, &'a str), CipherError> {
    let at = s.rfind(sep).ok_or(CipherError::NotEncrypted)?;
    let (head, tail) = (&s[..at], &s[at + sep.len()..]);
    if head.is_empty() || tail.is_empty() {
        return Err(CipherError::NotEncrypted);
    }
    Ok((head, tail))
}

/// The AES key schedule for one data key, built once per document.
pub struct ValueCipher {
    gcm32: AesGcm<Aes256, U32>,
    key: DataKey,
}

impl ValueCipher {
    pub fn new(key: &DataKey) -> ValueCipher {
        ValueCipher {
            gcm32: AesGcm::new(key.as_bytes().into()),
            key: key.clone(),
        }
    }

    pub fn data_key(&self) -> &DataKey {
        &self.key
    }

    /// Encrypts `plaintext` with the given 32-byte IV and AAD into an `ENC[...]` string.
    pub fn encrypt(&self, iv: &[u8; IV_LEN], plaintext: &[u8], aad: &[u8], typ: TypeTag) -> String {
        let mut buf = Zeroizing::new(plaintext.to_vec());
        // Encryption in place cannot fail for in-memory buffers below GCM's 64 GiB limit.
        let tag = self
            .gcm32
            .encrypt_in_place_detached(iv.into(), aad, &mut buf)
            .unwrap_or_default();
        let mut out = String::with_capacity(60 + plaintext.len() * 4 / 3 + 70);
        out.push_str("ENC[AES256_GCM,data:");
        B64.encode_string(&*buf, &mut out);
        out.push_str(",iv:");
        B64.encode_string(iv, &mut out);
        out.push_str(",tag:");
        B64.encode_string(tag, &mut out);
        out.push_str(",type:");
        out.push_str(typ.as_str());
        out.push(']');
        out
    }

    /// Decrypts a parsed value; the plaintext comes back in a buffer that zeroises on drop.
    pub fn decrypt(&self, enc: &EncValue, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        let mut buf = Zeroizing::new(enc.data.clone());
        let tag = (&enc.tag).into();
        let res =
            match enc.iv.len() {
                32 => self.gcm32.decrypt_in_place_detached(
                    enc.iv.as_slice().into(),
                    aad,
                    &mut buf,
                    tag,
                ),
                12 => AesGcm::<Aes256, U12>::new(self.key.as_bytes().into())
                    .decrypt_in_place_detached(enc.iv.as_slice().into(), aad, &mut buf, tag),
                16 => AesGcm::<Aes256, U16>::new(self.key.as_bytes().into())
                    .decrypt_in_place_detached(enc.iv.as_slice().into(), aad, &mut buf, tag),
                n => return Err(CipherError::IvLength(n)),
            };
        match res {
            Ok(()) => Ok(buf),
            Err(_) => {
                buf.zeroize();
                Err(CipherError::Authentication)
            }
        }
    }
}

/// A fresh random IV (thread-local CSPRNG, reseeded from the OS).
pub fn random_iv() -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    rand::thread_rng().fill_bytes(&mut iv);
    iv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::from_slice(&(0u8..32).collect::<Vec<_>>()).unwrap()
    }

    fn iv() -> [u8; 32] {
        let mut iv = [0u8; 32];
        for (i, b) in iv.iter_mut().enumerate() {
            *b = 0x20 + i as u8;
        }
        iv
    }

    #[test]
    fn worked_example_of_the_spec() {
        let c = ValueCipher::new(&key());
        let s = c.encrypt(&iv(), b"hunter2", b"stringData:password:", TypeTag::Str);
        assert_eq!(s, "ENC[AES256_GCM,data:f7SfPOh95A==,iv:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,tag:WBPE6k3mfjV0rMrvCs5GEw==,type:str]");
        let e = EncValue::parse(&s).unwrap();
        assert_eq!(
            &*c.decrypt(&e, b"stringData:password:").unwrap(),
            b"hunter2"
        );
        assert_eq!(
            c.decrypt(&e, b"stringData:other:").unwrap_err(),
            CipherError::Authentication
        );
    }

    #[test]
    fn parse_is_greedy_and_anchored_at_start() {
        let s = "ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]trailing";
        assert_eq!(EncValue::parse(s).unwrap().typ, TypeTag::Str);
        for bad in [
            "",
            "hunter2",
            "ENC[AES256_GCM,data:,iv:AAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]",
            "ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str",
            " ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]",
        ] {
            assert!(EncValue::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            EncValue::parse(
                "ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:xyz]"
            )
            .err(),
            Some(CipherError::UnknownType)
        );
    }

    #[test]
    fn aes_value_vectors_reencrypt_byte_for_byte() {
        let path = crate::testdata::shared_dir().join("sops-vectors/aes-value-vectors.json");
        let text = std::fs::read_to_string(path).unwrap();
        let re = regex::Regex::new(
            r#""plaintext": "((?:[^"\\]|\\.)*)",\s*"aad": "([^"]*)",\s*"type": "(\w+)",\s*"enc": "([^"]+)""#,
        )
        .unwrap();
        let c = ValueCipher::new(&key());
        let mut n = 0;
        for cap in re.captures_iter(&text) {
            let typ = TypeTag::parse(&cap[3]).unwrap();
            let plain = cap[1].replace("\\n", "\n");
            let got = c.encrypt(&iv(), plain.as_bytes(), cap[2].as_bytes(), typ);
            assert_eq!(got, &cap[4], "vector {}", &cap[2]);
            let back = c
                .decrypt(&EncValue::parse(&cap[4]).unwrap(), cap[2].as_bytes())
                .unwrap();
            assert_eq!(&*back, plain.as_bytes());
            n += 1;
        }
        assert!(n >= 6, "expected one vector per type tag, found {n}");
    }
}
