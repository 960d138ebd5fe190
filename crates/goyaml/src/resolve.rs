//! Scalar resolution exactly as go-yaml v3 `resolve()` does it, plus the Go number and time
//! formatting the encoder uses (`strconv.FormatFloat(f, 'g', -1, 64)`, `time.RFC3339Nano`).

/// Short tags (go-yaml's `!!x` constants).
pub const NULL_TAG: &str = "!!null";
pub const BOOL_TAG: &str = "!!bool";
pub const STR_TAG: &str = "!!str";
pub const INT_TAG: &str = "!!int";
pub const FLOAT_TAG: &str = "!!float";
pub const TIMESTAMP_TAG: &str = "!!timestamp";
pub const SEQ_TAG: &str = "!!seq";
pub const MAP_TAG: &str = "!!map";
pub const BINARY_TAG: &str = "!!binary";
pub const MERGE_TAG: &str = "!!merge";

const LONG_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// A resolved scalar (the Go value go-yaml would produce when decoding into `interface{}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A string; for `!!binary` the caller decodes it.
    Str,
    /// Canonical `time.Time.MarshalText` text.
    Time(String),
}

/// go-yaml `shortTag`.
pub fn short_tag(tag: &str) -> String {
    if let Some(rest) = tag.strip_prefix(LONG_TAG_PREFIX) {
        format!("!!{rest}")
    } else {
        tag.to_string()
    }
}

fn resolvable_tag(tag: &str) -> bool {
    matches!(
        tag,
        "" | STR_TAG | BOOL_TAG | INT_TAG | FLOAT_TAG | NULL_TAG | TIMESTAMP_TAG
    )
}

fn resolve_map(s: &str) -> Option<(&'static str, Resolved)> {
    Some(match s {
        "true" | "True" | "TRUE" => (BOOL_TAG, Resolved::Bool(true)),
        "false" | "False" | "FALSE" => (BOOL_TAG, Resolved::Bool(false)),
        "" | "~" | "null" | "Null" | "NULL" => (NULL_TAG, Resolved::Null),
        ".nan" | ".NaN" | ".NAN" => (FLOAT_TAG, Resolved::Float(f64::NAN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            (FLOAT_TAG, Resolved::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => (FLOAT_TAG, Resolved::Float(f64::NEG_INFINITY)),
        "<<" => (MERGE_TAG, Resolved::Str),
        _ => return None,
    })
}

fn hint(s: &str) -> u8 {
    match s.as_bytes().first() {
        None => b'N',
        Some(b'+') | Some(b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => 0,
    }
}

/// Why an explicitly tagged scalar could not be decoded (value-free).
#[derive(Debug, Clone, PartialEq)]
pub struct TagMismatch {
    pub resolved: &'static str,
    pub wanted: String,
}

/// go-yaml `resolve(tag, in)`: the resolved short tag and value. `tag` is a short tag ("" for
/// none). Tags that are not resolvable (custom tags, `!!binary`, `!!merge`, `!!map`...) give the
/// tag back with a string value.
pub fn resolve(tag: &str, input: &str) -> Result<(String, Resolved), TagMismatch> {
    if !resolvable_tag(tag) {
        return Ok((tag.to_string(), Resolved::Str));
    }
    let (rtag, out) = resolve_plain(tag, input);
    match tag {
        "" | STR_TAG | BINARY_TAG => Ok((rtag.to_string(), out)),
        t if t == rtag => Ok((rtag.to_string(), out)),
        FLOAT_TAG if rtag == INT_TAG => match out {
            Resolved::Int(i) => Ok((FLOAT_TAG.to_string(), Resolved::Float(i as f64))),
            _ => Err(TagMismatch {
                resolved: rtag,
                wanted: tag.to_string(),
            }),
        },
        _ => Err(TagMismatch {
            resolved: rtag,
            wanted: tag.to_string(),
        }),
    }
}

/// `resolve("", s)`: plain scalars without a tag always resolve.
pub fn resolve_untagged(input: &str) -> (&'static str, Resolved) {
    resolve_plain("", input)
}

/// The resolved tag of a plain scalar with no explicit tag (`resolve("", s)`'s tag).
pub fn resolve_tag(input: &str) -> &'static str {
    resolve_plain("", input).0
}

fn resolve_plain(tag: &str, input: &str) -> (&'static str, Resolved) {
    let h = hint(input);
    if h != 0 && tag != STR_TAG && tag != BINARY_TAG {
        if let Some(item) = resolve_map(input) {
            return item;
        }
        match h {
            b'.' => {
                if let Some(f) = go_parse_float(input) {
                    return (FLOAT_TAG, Resolved::Float(f));
                }
            }
            b'D' | b'S' => {
                if tag.is_empty() || tag == TIMESTAMP_TAG {
                    if let Some(t) = parse_timestamp(input) {
                        return (TIMESTAMP_TAG, Resolved::Time(t));
                    }
                }
                let owned;
                let plain: &str = if input.contains('_') {
                    owned = input.replace('_', "");
                    &owned
                } else {
                    input
                };
                if let Ok(i) = go_parse_int(plain, 0) {
                    return (INT_TAG, Resolved::Int(i));
                }
                if let Ok(u) = go_parse_uint(plain, 0) {
                    return (INT_TAG, Resolved::Uint(u));
                }
                if yaml_style_float(plain) {
                    if let Some(f) = go_parse_float(plain) {
                        return (FLOAT_TAG, Resolved::Float(f));
                    }
                }
                if let Some(rest) = plain.strip_prefix("0b") {
                    if let Ok(i) = go_parse_int(rest, 2) {
                        return (INT_TAG, Resolved::Int(i));
                    }
                    if let Ok(u) = go_parse_uint(rest, 2) {
                        return (INT_TAG, Resolved::Uint(u));
                    }
                } else if let Some(rest) = plain.strip_prefix("-0b") {
                    if let Ok(i) = go_parse_int(&format!("-{rest}"), 2) {
                        return (INT_TAG, Resolved::Int(i));
                    }
                }
                if let Some(rest) = plain.strip_prefix("0o") {
                    if let Ok(i) = go_parse_int(rest, 8) {
                        return (INT_TAG, Resolved::Int(i));
                    }
                    if let Ok(u) = go_parse_uint(rest, 8) {
                        return (INT_TAG, Resolved::Uint(u));
                    }
                } else if let Some(rest) = plain.strip_prefix("-0o") {
                    if let Ok(i) = go_parse_int(&format!("-{rest}"), 8) {
                        return (INT_TAG, Resolved::Int(i));
                    }
                }
            }
            _ => {}
        }
    }
    (STR_TAG, Resolved::Str)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go `strconv.ParseFloat(s, 64)` restricted to the decimal syntax go-yaml ever feeds it
/// (no underscores, no hex floats, no `inf`/`nan` words). Out of range is an error, like Go.
fn go_parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    // Only plain decimal syntax: [sign] digits [. digits] [e [sign] digits], at least one digit.
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut mant = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mant += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mant += 1;
        }
    }
    if mant == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    if f.is_infinite() {
        return None; // Go reports ErrRange
    }
    Some(f)
}

#[derive(Debug)]
pub enum IntErr {
    Syntax,
    Range,
}

/// Go `strconv.ParseUint(s, base, 64)` for base 0 (prefix detection), 2, 8 or 16 (no underscores).
pub fn go_parse_uint(s: &str, base: u32) -> Result<u64, IntErr> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(IntErr::Syntax);
    }
    let (base, digits) = if base == 0 {
        if b[0] == b'0' {
            if b.len() >= 3 && b[1].eq_ignore_ascii_case(&b'b') {
                (2, &b[2..])
            } else if b.len() >= 3 && b[1].eq_ignore_ascii_case(&b'o') {
                (8, &b[2..])
            } else if b.len() >= 3 && b[1].eq_ignore_ascii_case(&b'x') {
                (16, &b[2..])
            } else {
                (8, &b[1..])
            }
        } else {
            (10, b)
        }
    } else {
        (base, b)
    };
    let mut n: u64 = 0;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 10,
            b'A'..=b'Z' => (c - b'A') as u32 + 10,
            _ => return Err(IntErr::Syntax),
        };
        if d >= base {
            return Err(IntErr::Syntax);
        }
        n = match n
            .checked_mul(base as u64)
            .and_then(|n| n.checked_add(d as u64))
        {
            Some(n) => n,
            None => return Err(IntErr::Range),
        };
    }
    Ok(n)
}

/// Go `strconv.ParseInt(s, base, 64)`.
pub fn go_parse_int(s: &str, base: u32) -> Result<i64, IntErr> {
    if s.is_empty() {
        return Err(IntErr::Syntax);
    }
    let (neg, rest) = if let Some(r) = s.strip_prefix('+') {
        (false, r)
    } else if let Some(r) = s.strip_prefix('-') {
        (true, r)
    } else {
        (false, s)
    };
    let un = match go_parse_uint(rest, base) {
        Ok(u) => u,
        Err(IntErr::Range) => return Err(IntErr::Range),
        Err(e) => return Err(e),
    };
    let cutoff: u64 = 1 << 63;
    if !neg && un >= cutoff {
        return Err(IntErr::Range);
    }
    if neg && un > cutoff {
        return Err(IntErr::Range);
    }
    Ok(if neg {
        (un as i64).wrapping_neg()
    } else {
        un as i64
    })
}

// ------------------------------------------------------------------------------------------
// Timestamps

struct TimeParts {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    min: i64,
    sec: i64,
    nsec: i64,
    /// Offset in seconds east of UTC; `None` for UTC written as `Z` or no zone.
    offset: i64,
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Go `getnum`: one or two digits (exactly two when `fixed`).
fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let d0 = *s.first()?;
    if !d0.is_ascii_digit() {
        return None;
    }
    match s.get(1) {
        Some(d1) if d1.is_ascii_digit() => {
            Some(((d0 - b'0') as i64 * 10 + (d1 - b'0') as i64, &s[2..]))
        }
        _ => {
            if fixed {
                None
            } else {
                Some(((d0 - b'0') as i64, &s[1..]))
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Layout {
    /// `2006-1-2T15:4:5.999999999Z07:00` (`t` lower-case when the flag is set)
    Rfc3339(u8),
    /// `2006-1-2 15:4:5.999999999`
    Spaced,
    /// `2006-1-2`
    Date,
}

fn parse_layout(s: &[u8], layout: Layout) -> Option<TimeParts> {
    // year: 4 chars, all digits (the caller already checked `YYYY-`)
    if s.len() < 4 {
        return None;
    }
    let mut year = 0i64;
    for &c in &s[..4] {
        if !c.is_ascii_digit() {
            return None;
        }
        year = year * 10 + (c - b'0') as i64;
    }
    let mut v = &s[4..];
    v = v.strip_prefix(b"-")?;
    let (month, r) = getnum(v, false)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    v = r.strip_prefix(b"-")?;
    let (day, r) = getnum(v, false)?;
    v = r;
    let mut t = TimeParts {
        year,
        month,
        day,
        hour: 0,
        min: 0,
        sec: 0,
        nsec: 0,
        offset: 0,
    };
    let timed = match layout {
        Layout::Date => None,
        Layout::Spaced => Some((true, b' ')),
        Layout::Rfc3339(c) => Some((false, c)),
    };
    if let Some((is_spaced, sep)) = timed {
        if is_spaced {
            // A space in a Go layout matches one or more spaces (or the end of the input).
            if let Some(&c) = v.first() {
                if c != b' ' {
                    return None;
                }
            }
            while v.first() == Some(&b' ') {
                v = &v[1..];
            }
        } else {
            v = v.strip_prefix(&[sep])?;
        }
        let (hour, r) = getnum(v, false)?;
        if !(0..24).contains(&hour) {
            return None;
        }
        v = r.strip_prefix(b":")?;
        let (min, r) = getnum(v, false)?;
        if !(0..60).contains(&min) {
            return None;
        }
        v = r.strip_prefix(b":")?;
        let (sec, r) = getnum(v, false)?;
        if !(0..60).contains(&sec) {
            return None;
        }
        v = r;
        t.hour = hour;
        t.min = min;
        t.sec = sec;
        // .999999999: optional fraction introduced by '.' or ','
        if v.len() >= 2 && (v[0] == b'.' || v[0] == b',') && v[1].is_ascii_digit() {
            let mut i = 0;
            while i + 1 < v.len() && v[i + 1].is_ascii_digit() {
                i += 1;
            }
            let nbytes = (1 + i).min(10);
            let mut ns = 0i64;
            for &c in &v[1..nbytes] {
                ns = ns * 10 + (c - b'0') as i64;
            }
            for _ in 0..(10 - nbytes) {
                ns *= 10;
            }
            t.nsec = ns;
            v = &v[1 + i..];
        }
        if !is_spaced {
            // Z07:00
            if v.first() == Some(&b'Z') {
                v = &v[1..];
            } else {
                if v.len() < 6 || v[3] != b':' {
                    return None;
                }
                let sign = v[0];
                let (hr, _) = getnum(&v[1..3], true)?;
                let (mm, _) = getnum(&v[4..6], true)?;
                if hr > 24 || mm > 60 {
                    return None;
                }
                let mut off = (hr * 60 + mm) * 60;
                match sign {
                    b'+' => {}
                    b'-' => off = -off,
                    _ => return None,
                }
                t.offset = off;
                v = &v[6..];
            }
        }
    }
    if !v.is_empty() {
        return None;
    }
    if t.day < 1 || t.day > days_in(t.month, t.year) {
        return None;
    }
    Some(t)
}

/// go-yaml `parseTimestamp` followed by `Format(time.RFC3339Nano)` (which equals
/// `MarshalText` for the values this can produce).
pub fn parse_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i != 4 || i == b.len() || b[i] != b'-' {
        return None;
    }
    for layout in [
        Layout::Rfc3339(b'T'),
        Layout::Rfc3339(b't'),
        Layout::Spaced,
        Layout::Date,
    ] {
        if let Some(t) = parse_layout(b, layout) {
            return Some(format_rfc3339nano(&t));
        }
    }
    None
}

fn format_rfc3339nano(t: &TimeParts) -> String {
    let mut out = String::with_capacity(35);
    push_padded(&mut out, t.year, 4);
    out.push('-');
    push_padded(&mut out, t.month, 2);
    out.push('-');
    push_padded(&mut out, t.day, 2);
    out.push('T');
    push_padded(&mut out, t.hour, 2);
    out.push(':');
    push_padded(&mut out, t.min, 2);
    out.push(':');
    push_padded(&mut out, t.sec, 2);
    if t.nsec != 0 {
        let mut frac = String::with_capacity(9);
        push_padded(&mut frac, t.nsec, 9);
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if t.offset == 0 {
        out.push('Z');
    } else {
        let (sign, off) = if t.offset < 0 {
            ('-', -t.offset)
        } else {
            ('+', t.offset)
        };
        let mins = off / 60;
        out.push(sign);
        push_padded(&mut out, mins / 60, 2);
        out.push(':');
        push_padded(&mut out, mins % 60, 2);
    }
    out
}

/// `format!("{v:0width$}")`, without the formatting machinery for the usual non-negative values.
fn push_padded(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push_str(&format!("{v:0width$}"));
        return;
    }
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut rest = v as u64;
    loop {
        digits[n] = b'0' + (rest % 10) as u8;
        n += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for _ in n..width {
        out.push('0');
    }
    for &d in digits[..n].iter().rev() {
        out.push(d as char);
    }
}

// ------------------------------------------------------------------------------------------
// Formatting

/// Go `strconv.FormatFloat(f, 'g', -1, 64)` with go-yaml's `.inf`/`-.inf`/`.nan` spellings.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits, ties rounded half to even as Go does.
    let (digits, exp) = crate::strconv::go_shortest(f.abs());
    let nd = digits.len() as i64;
    let neg = f < 0.0;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        // %e with nd-1 fraction digits
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.abs();
        if a < 10 {
            out.push('0');
        }
        out.push_str(&a.to_string());
    } else {
        // %f with max(nd - dp, 0) fraction digits, dp = exp + 1
        let dp = exp + 1;
        if dp <= 0 {
            out.push_str("0.");
            for _ in 0..(-dp) {
                out.push('0');
            }
            out.push_str(&digits);
        } else if dp >= nd {
            out.push_str(&digits);
            for _ in 0..(dp - nd) {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..dp as usize]);
            out.push('.');
            out.push_str(&digits[dp as usize..]);
        }
    }
    out
}

/// go-yaml `isBase60Float`: `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
pub fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let c = b[0];
    if !(c == b'+' || c == b'-' || c.is_ascii_digit()) || !b.contains(&b':') {
        return false;
    }
    let mut i = 0;
    if b[i] == b'+' || b[i] == b'-' {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    // Positions reachable after one or more `:[0-5]?[0-9]` groups (an NFA walk, positions only grow).
    let mut reach = vec![false; b.len() + 1];
    let tail_ok = |p: usize| -> bool {
        let mut p = p;
        if p < b.len() && b[p] == b'.' {
            p += 1;
            while p < b.len() && (b[p].is_ascii_digit() || b[p] == b'_') {
                p += 1;
            }
        }
        p == b.len()
    };
    for p in i..=b.len() {
        if reach[p] && tail_ok(p) {
            return true;
        }
        let active = p == i || reach[p];
        if active && p < b.len() && b[p] == b':' {
            if p + 1 < b.len() && b[p + 1].is_ascii_digit() {
                reach[p + 2] = true;
            }
            if p + 2 < b.len() && (b'0'..=b'5').contains(&b[p + 1]) && b[p + 2].is_ascii_digit() {
                reach[p + 3] = true;
            }
        }
    }
    false
}

/// go-yaml `isOldBool` (YAML 1.1 booleans that are strings in 1.2 but get quoted on output).
pub fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// Does the string need quoting because plain it would read as another type? (go-yaml
/// `stringv`'s `canUsePlain` negated).
pub fn string_needs_quotes(s: &str) -> bool {
    resolve_tag(s) != STR_TAG || is_base60_float(s) || is_old_bool(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_numbers_are_formatted_like_format() {
        for v in [
            0i64,
            1,
            7,
            9,
            10,
            42,
            99,
            100,
            999,
            1000,
            2024,
            9999,
            10000,
            123_456_789,
            -1,
            -42,
        ] {
            for width in [0, 1, 2, 4, 9] {
                let mut out = String::from("x");
                push_padded(&mut out, v, width);
                assert_eq!(out, format!("x{v:0width$}"), "{v} {width}");
            }
        }
    }
}
