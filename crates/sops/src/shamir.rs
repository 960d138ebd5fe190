//! Shamir secret sharing over GF(2^8) as sops uses it for key groups (SOPS-FORMAT.md 5.4).
//!
//! One share per group; a share is the 32 y-values followed by its x coordinate (1, 2, 3, … in
//! group order). The field uses the AES polynomial x^8+x^4+x^3+x+1.

use rand::RngCore;
use zeroize::Zeroizing;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    #[error("shamir threshold must be at least 2")]
    ThresholdTooSmall,
    #[error("shamir threshold {threshold} is larger than the number of key groups ({parts})")]
    ThresholdTooLarge { threshold: usize, parts: usize },
    #[error("at most 255 key groups are supported")]
    TooManyParts,
    #[error("less than two shares cannot rebuild the data key")]
    TooFewShares,
    #[error("shares are malformed (different lengths or duplicate x coordinates)")]
    Malformed,
}

fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let carry = a & 0x80;
        a <<= 1;
        if carry != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

fn gf_inv(a: u8) -> u8 {
    // a^254 = a^-1 in GF(2^8); a = 0 maps to 0 and never occurs for distinct x coordinates.
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e != 0 {
        if e & 1 != 0 {
            result = gf_mul(result, base);
        }
        base = gf_mul(base, base);
        e >>= 1;
    }
    result
}

/// Splits `secret` into `parts` shares, any `threshold` of which rebuild it.
pub fn split(
    secret: &[u8],
    parts: usize,
    threshold: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if threshold < 2 {
        return Err(ShamirError::ThresholdTooSmall);
    }
    if parts > 255 {
        return Err(ShamirError::TooManyParts);
    }
    if threshold > parts {
        return Err(ShamirError::ThresholdTooLarge { threshold, parts });
    }
    let mut out: Vec<Zeroizing<Vec<u8>>> = (0..parts)
        .map(|i| {
            let mut s = Zeroizing::new(vec![0u8; secret.len() + 1]);
            s[secret.len()] = (i + 1) as u8;
            s
        })
        .collect();
    let mut coeffs = Zeroizing::new(vec![0u8; threshold]);
    for (idx, &byte) in secret.iter().enumerate() {
        coeffs[0] = byte;
        rand::rngs::OsRng.fill_bytes(&mut coeffs[1..]);
        for (i, share) in out.iter_mut().enumerate() {
            let x = (i + 1) as u8;
            // Horner's rule from the highest coefficient down.
            let y = coeffs.iter().rev().fold(0u8, |acc, &c| gf_mul(acc, x) ^ c);
            share[idx] = y;
        }
    }
    Ok(out)
}

/// Rebuilds the secret from shares by Lagrange interpolation at x = 0.
pub fn combine(shares: &[Zeroizing<Vec<u8>>]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if shares.len() < 2 {
        return Err(ShamirError::TooFewShares);
    }
    let len = shares[0].len();
    if len < 2 || shares.iter().any(|s| s.len() != len) {
        return Err(ShamirError::Malformed);
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if *x == 0 || xs[..i].contains(x) {
            return Err(ShamirError::Malformed);
        }
    }
    let mut secret = Zeroizing::new(vec![0u8; len - 1]);
    for (idx, out) in secret.iter_mut().enumerate() {
        let mut acc = 0u8;
        for (i, share) in shares.iter().enumerate() {
            // Lagrange basis at 0: prod_{j != i} x_j / (x_j - x_i); subtraction is XOR here.
            let mut basis = 1u8;
            for (j, &xj) in xs.iter().enumerate() {
                if i != j {
                    basis = gf_mul(basis, gf_mul(xj, gf_inv(xj ^ xs[i])));
                }
            }
            acc ^= gf_mul(share[idx], basis);
        }
        *out = acc;
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gf_arithmetic() {
        assert_eq!(gf_mul(0x57, 0x83), 0xc1); // FIPS-197 example
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1);
        }
    }

    #[test]
    fn split_and_combine_any_threshold_subset() {
        let secret: Vec<u8> = (0..32).collect();
        let shares = split(&secret, 4, 3).unwrap();
        assert!(shares.iter().all(|s| s.len() == 33));
        assert_eq!(
            shares.iter().map(|s| s[32]).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        for subset in [[0, 1, 2], [1, 2, 3], [0, 2, 3], [3, 0, 1]] {
            let picked: Vec<_> = subset.iter().map(|&i| shares[i].clone()).collect();
            assert_eq!(&*combine(&picked).unwrap(), &secret);
        }
        // Two shares of a threshold-3 split give garbage, not the secret.
        assert_ne!(&*combine(&shares[..2]).unwrap(), &secret);
    }

    #[test]
    fn constraints() {
        assert_eq!(
            split(b"k", 2, 1).unwrap_err(),
            ShamirError::ThresholdTooSmall
        );
        assert!(matches!(
            split(b"k", 2, 3),
            Err(ShamirError::ThresholdTooLarge { .. })
        ));
        assert_eq!(combine(&[]).unwrap_err(), ShamirError::TooFewShares);
        let s = split(b"key", 2, 2).unwrap();
        assert_eq!(
            combine(&[s[0].clone(), s[0].clone()]).unwrap_err(),
            ShamirError::Malformed
        );
    }
}
