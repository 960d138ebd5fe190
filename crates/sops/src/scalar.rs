//! Typed plaintext: how a scalar becomes the bytes that AES and the MAC see, and back
//! (SOPS-FORMAT.md 2.4), plus the Go time and float text forms that sops relies on.
//!
//! sops encrypts a text rendering of each typed value and records the type in `type:`. The
//! renderings are Go's (`strconv.Itoa`, `FormatFloat(v, 'f', -1, 64)`, `True`/`False`,
//! `Time.MarshalText`), and the MAC hashes exactly the same bytes, so they must match to the byte.

use std::borrow::Cow;

pub use goyaml::strconv::{go_format_f, go_shortest_e};

use super::value::{Timestamp, Value};

/// The `type:` tag of an `ENC[...]` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TypeTag {
    Str,
    Int,
    Float,
    Bool,
    Time,
    Comment,
    Bytes,
}

impl TypeTag {
    pub fn as_str(self) -> &'static str {
        match self {
            TypeTag::Str => "str",
            TypeTag::Int => "int",
            TypeTag::Float => "float",
            TypeTag::Bool => "bool",
            TypeTag::Time => "time",
            TypeTag::Comment => "comment",
            TypeTag::Bytes => "bytes",
        }
    }

    pub fn parse(s: &str) -> Option<TypeTag> {
        Some(match s {
            "str" => TypeTag::Str,
            "int" => TypeTag::Int,
            "float" => TypeTag::Float,
            "bool" => TypeTag::Bool,
            "time" => TypeTag::Time,
            "comment" => TypeTag::Comment,
            "bytes" => TypeTag::Bytes,
            _ => return None,
        })
    }
}

/// Why a plaintext could not be turned back into its typed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScalarError {
    #[error("value of type {0} cannot be encrypted (sops: unknown type)")]
    Unsupported(&'static str),
    #[error("decrypted {0} value does not parse as that type")]
    BadPlaintext(&'static str),
}

/// A leaf's plaintext bytes and its type tag.
pub type Plaintext<'a> = (Cow<'a, [u8]>, TypeTag);

/// The plaintext bytes and type tag of a leaf, exactly as sops' `Cipher.Encrypt`/`ToBytes` render it.
/// Returns `None` for values that have no leaf bytes (null, maps, sequences).
pub fn plaintext(v: &Value) -> Result<Option<Plaintext<'_>>, ScalarError> {
    Ok(Some(match v {
        Value::Str(s) => (Cow::Borrowed(s.as_bytes()), TypeTag::Str),
        Value::Bytes(b) => (Cow::Borrowed(b.as_slice()), TypeTag::Str),
        Value::Int(i) => (Cow::Owned(i.to_string().into_bytes()), TypeTag::Int),
        Value::Float(f) => (Cow::Owned(go_format_f(*f).into_bytes()), TypeTag::Float),
        Value::Bool(b) => (
            Cow::Borrowed(if *b { b"True" as &[u8] } else { b"False" }),
            TypeTag::Bool,
        ),
        Value::Time(t) if !offset_in_range(&t.0) => {
            // Go's Time.MarshalText refuses these, so sops cannot encrypt them either.
            return Err(ScalarError::Unsupported(
                "time with a zone offset of 24 hours or more",
            ));
        }
        Value::Time(t) => (Cow::Borrowed(t.0.as_bytes()), TypeTag::Time),
        Value::Comment(c) => (Cow::Borrowed(c.as_bytes()), TypeTag::Comment),
        Value::Uint(_) => return Err(ScalarError::Unsupported("uint64")),
        Value::Null | Value::Map(_) | Value::Seq(_) => return Ok(None),
    }))
}

/// Whether a timestamp's `±hh:mm` zone offset (if any) is below 24 hours.
fn offset_in_range(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 6 || b[b.len() - 3] != b':' || !matches!(b[b.len() - 6], b'+' | b'-') {
        return true;
    }
    text[b.len() - 5..b.len() - 3]
        .parse::<u32>()
        .is_ok_and(|h| h < 24)
}

/// Turns decrypted bytes back into a typed value, with Go's parsers' acceptance rules.
pub fn from_plaintext(bytes: Vec<u8>, tag: TypeTag) -> Result<Value, ScalarError> {
    let text = || std::str::from_utf8(&bytes).map_err(|_| ScalarError::BadPlaintext(tag.as_str()));
    Ok(match tag {
        TypeTag::Str | TypeTag::Bytes => match String::from_utf8(bytes) {
            Ok(s) => Value::Str(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        },
        TypeTag::Comment => Value::Comment(String::from_utf8_lossy(&bytes).into_owned()),
        TypeTag::Int => Value::Int(parse_go_int(text()?).ok_or(ScalarError::BadPlaintext("int"))?),
        TypeTag::Float => {
            Value::Float(parse_go_float(text()?).ok_or(ScalarError::BadPlaintext("float"))?)
        }
        TypeTag::Bool => Value::Bool(match text()? {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return Err(ScalarError::BadPlaintext("bool")),
        }),
        TypeTag::Time => Value::Time(Timestamp(
            parse_rfc3339(text()?)
                .ok_or(ScalarError::BadPlaintext("time"))?
                .marshal_text(),
        )),
    })
}

/// Go `strconv.Atoi`: optional sign, decimal digits, no underscores.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go `strconv.ParseFloat(s, 64)` for the forms sops writes (decimal, exponent, `+Inf`, `NaN`).
fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ if s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => s.parse().ok(),
    }
}

/// A parsed RFC 3339 instant, kept in its own offset like Go's `time.Time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
    /// Offset from UTC in seconds (0 prints as `Z`).
    pub offset: i32,
}

impl DateTime {
    /// Now, in UTC, to the second (sops' `lastmodified`).
    pub fn now_utc() -> DateTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        DateTime::from_unix(secs)
    }

    pub fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            nanos: 0,
            offset: 0,
        }
    }

    fn write_date_time(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
    }

    fn write_offset(&self, out: &mut String) {
        use std::fmt::Write;
        if self.offset == 0 {
            out.push('Z');
        } else {
            let sign = if self.offset < 0 { '-' } else { '+' };
            let abs = self.offset.unsigned_abs();
            let _ = write!(out, "{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60);
        }
    }

    /// Go `t.Format(time.RFC3339)`: seconds precision, the fraction dropped.
    pub fn rfc3339(&self) -> String {
        let mut s = String::with_capacity(25);
        self.write_date_time(&mut s);
        self.write_offset(&mut s);
        s
    }

    /// Go `Time.MarshalText` (RFC3339Nano): the fraction only if non-zero, trailing zeros dropped.
    pub fn marshal_text(&self) -> String {
        let mut s = String::with_capacity(35);
        self.write_date_time(&mut s);
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        self.write_offset(&mut s);
        s
    }
}

/// Go `time.Parse(time.RFC3339, s)`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm)`.
pub fn parse_rfc3339(s: &str) -> Option<DateTime> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter()
            .try_fold(0u32, |acc, d| Some(acc * 10 + u32::from(d - b'0')))
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)? as i32, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        for (k, d) in b[start..end].iter().take(9).enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - k as u32);
        }
        i = end;
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = (h * 3600 + m * 60) as i32;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        nanos,
        offset,
    })
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_renders_like_go() {
        let p = |v: Value| {
            let (b, t) = plaintext(&v).unwrap().unwrap();
            (String::from_utf8(b.into_owned()).unwrap(), t)
        };
        assert_eq!(p(Value::Bool(true)), ("True".into(), TypeTag::Bool));
        assert_eq!(p(Value::Bool(false)), ("False".into(), TypeTag::Bool));
        assert_eq!(p(Value::Int(-7)), ("-7".into(), TypeTag::Int));
        assert_eq!(p(Value::Float(1.0)), ("1".into(), TypeTag::Float));
        assert!(plaintext(&Value::Null).unwrap().is_none());
        assert_eq!(
            plaintext(&Value::Uint(u64::MAX)).unwrap_err(),
            ScalarError::Unsupported("uint64")
        );
        let t = |s: &str| plaintext(&Value::Time(Timestamp(s.into()))).map(|p| p.is_some());
        assert_eq!(t("2024-01-01T10:00:00+23:59"), Ok(true));
        assert_eq!(t("2024-01-01T10:00:00Z"), Ok(true));
        assert!(t("2024-01-01T10:00:00+25:00").is_err());
    }

    #[test]
    fn from_plaintext_accepts_go_forms() {
        assert_eq!(
            from_plaintext(b"True".to_vec(), TypeTag::Bool),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            from_plaintext(b"t".to_vec(), TypeTag::Bool),
            Ok(Value::Bool(true))
        );
        assert!(from_plaintext(b"yes".to_vec(), TypeTag::Bool).is_err());
        assert_eq!(
            from_plaintext(b"+5".to_vec(), TypeTag::Int),
            Ok(Value::Int(5))
        );
        assert!(from_plaintext(b"1_0".to_vec(), TypeTag::Int).is_err());
        assert!(matches!(
            from_plaintext(b"+Inf".to_vec(), TypeTag::Float),
            Ok(Value::Float(f)) if f.is_infinite()
        ));
        assert_eq!(
            from_plaintext(vec![0xff, 0x00], TypeTag::Str),
            Ok(Value::Bytes(vec![0xff, 0]))
        );
        assert_eq!(
            from_plaintext(b"2001-12-14T21:59:43.10-05:00".to_vec(), TypeTag::Time),
            Ok(Value::Time(Timestamp("2001-12-14T21:59:43.1-05:00".into())))
        );
    }

    #[test]
    fn rfc3339_canonicalises_like_go() {
        let t = parse_rfc3339("2026-11-23T06:25:27.5+00:00").unwrap();
        assert_eq!(t.rfc3339(), "2026-11-23T06:25:27Z");
        assert_eq!(t.marshal_text(), "2026-11-23T06:25:27.5Z");
        let t = parse_rfc3339("2026-11-23T06:25:27+02:00").unwrap();
        assert_eq!(t.rfc3339(), "2026-11-23T06:25:27+02:00");
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-23T06:25:27",
            "2026-11-23T06:25:27.Z",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn unix_to_civil() {
        assert_eq!(DateTime::from_unix(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            DateTime::from_unix(1_795_415_127).rfc3339(),
            "2026-11-23T06:25:27Z"
        );
        assert_eq!(
            DateTime::from_unix(951_782_400).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
    }
}
