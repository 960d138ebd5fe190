//! Go's `strconv` float formatting, which go-yaml (and sops) use for every float they write:
//! shortest round-trip digits with ties broken to even, in the `'f'` and `'e'` forms.

/// Go's shortest round-trip digits of a finite `f` > 0 and its decimal exponent (value =
/// d.ddd × 10^exp). Rust's `{:e}` gives the same digits except when two candidates of the
/// shortest length are equally close to the exact value: Go rounds half to even there, Rust may
/// pick the other one (`-630942462437.40625` is `…4062` in Go, `…4063` in Rust).
pub fn go_shortest(f: f64) -> (String, i64) {
    let e = format!("{f:e}");
    let Some((mant, exp)) = e.split_once('e') else {
        return (e, 0);
    };
    let mut exp: i64 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    // Ties need at least as many digits as the exact value has bits: only long outputs.
    if digits.len() >= 15 {
        if let Some((d, e)) = closest_digits(f, digits.len()) {
            digits = d;
            exp = e;
        }
    }
    (digits, exp)
}

/// Rust's `{:e}` form (`-1.5e-7`, `1e21`) with Go's digits (see [`go_shortest`]).
pub fn go_shortest_e(f: f64) -> String {
    if !f.is_finite() || f == 0.0 {
        return format!("{f:e}");
    }
    let (digits, exp) = go_shortest(f.abs());
    let sign = if f < 0.0 { "-" } else { "" };
    match digits.len() {
        0 | 1 => format!("{sign}{digits}e{exp}"),
        _ => format!("{sign}{}.{}e{exp}", &digits[..1], &digits[1..]),
    }
}

/// Go `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, never an exponent.
pub fn go_format_f(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, exp) = go_shortest(v.abs());
    let mut out = String::new();
    if v < 0.0 {
        out.push('-');
    }
    let nd = digits.len() as i64;
    let dp = exp + 1;
    if dp <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-dp) as usize));
        out.push_str(&digits);
    } else if dp >= nd {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (dp - nd) as usize));
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

/// The exact decimal expansion of a finite positive double: (significant digits, position of
/// the decimal point relative to the first digit), value = 0.d1d2... * 10^point.
pub(crate) fn exact_decimal(f: f64) -> (Vec<u8>, i64) {
    let bits = f.to_bits();
    let exp_bits = ((bits >> 52) & 0x7FF) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp_bits - 1075)
    };
    // Big number in base 1e9, little endian.
    let mut n: Vec<u64> = vec![
        m % 1_000_000_000,
        (m / 1_000_000_000) % 1_000_000_000,
        m / 1_000_000_000_000_000_000,
    ];
    let mul = |n: &mut Vec<u64>, k: u64| {
        let mut carry = 0u64;
        for limb in n.iter_mut() {
            let v = *limb * k + carry;
            *limb = v % 1_000_000_000;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            n.push(carry % 1_000_000_000);
            carry /= 1_000_000_000;
        }
    };
    let (times, factor) = if e >= 0 { (e, 2u64) } else { (-e, 5u64) };
    let mut left = times;
    while left > 0 {
        let step = left.min(12);
        mul(&mut n, factor.pow(step as u32));
        left -= step;
    }
    while n.len() > 1 && *n.last().unwrap_or(&1) == 0 {
        n.pop();
    }
    let mut text = String::new();
    for (i, limb) in n.iter().rev().enumerate() {
        if i == 0 {
            text.push_str(&limb.to_string());
        } else {
            text.push_str(&format!("{limb:09}"));
        }
    }
    let digits: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
    let int_len = digits.len() as i64;
    let point = if e >= 0 { int_len } else { int_len + e };
    (digits, point)
}

/// The `n`-digit decimal nearest to `f` (ties to even), as (digits, exponent of the first
/// digit), if it reads back as `f`.
pub(crate) fn closest_digits(f: f64, n: usize) -> Option<(String, i64)> {
    let (d, point) = exact_decimal(f);
    let first = d.iter().position(|&x| x != 0)?;
    let d = &d[first..];
    let point = point - first as i64;
    let mut out: Vec<u8> = d.iter().take(n).copied().collect();
    let mut point = point;
    if d.len() > n {
        let rest = &d[n..];
        let round_up = match rest[0] {
            6..=9 => true,
            5 => {
                rest[1..].iter().any(|&x| x != 0) || out.last().map(|x| x % 2 == 1).unwrap_or(false)
            }
            _ => false,
        };
        if round_up {
            let mut i = out.len();
            loop {
                if i == 0 {
                    out.insert(0, 1);
                    out.pop();
                    point += 1;
                    break;
                }
                i -= 1;
                if out[i] == 9 {
                    out[i] = 0;
                } else {
                    out[i] += 1;
                    break;
                }
            }
        }
    }
    while out.len() > 1 && out.last() == Some(&0) {
        out.pop();
    }
    let digits: String = out.iter().map(|x| (b'0' + x) as char).collect();
    let candidate = format!("0.{digits}e{point}");
    match candidate.parse::<f64>() {
        Ok(v) if v == f => Some((digits, point - 1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_formatted_like_go_strconv() {
        for (v, want) in [
            (1.0, "1"),
            (1e3, "1000"),
            (1e-7, "0.0000001"),
            (-0.0, "-0"),
            (2.5, "2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (1.2345678901234568e29, "123456789012345680000000000000"),
        ] {
            assert_eq!(go_format_f(v), want);
            assert_eq!(go_shortest_e(v), format!("{v:e}"), "{v}");
        }
        assert_eq!(go_format_f(1.5e300).len(), 301);
        // A tie between two shortest candidates: Go rounds half to even, Rust does not.
        assert_eq!(
            go_format_f("-630942462437.40625".parse().unwrap()),
            "-630942462437.4062"
        );
        assert_eq!(
            go_shortest_e("-630942462437.40625".parse().unwrap()),
            "-6.309424624374062e11"
        );
        assert_eq!(go_format_f(-0.0), "-0");
    }
}
