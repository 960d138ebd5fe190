//! The JSON store (SOPS-FORMAT.md 7.2): a hand-written parser that keeps key order and duplicate
//! keys, and an emitter that reproduces Go's `json.Marshal` + `json.Indent` output byte for byte.
//!
//! Parsing follows sops 3.11: the top level must be an object, every number becomes a
//! [`Value::Float`] (Go decodes JSON numbers as `float64`), strings are unescaped like Go's decoder
//! (invalid UTF-8 bytes and lone surrogates become U+FFFD). Stricter than sops on one point: content
//! after the top-level object is an error (sops ignores it for plain files and rejects it for
//! encrypted ones).
//!
//! Emitting: one TAB per level by default, `"key": value`, `{}`/`[]` for empties, Go's string
//! escaping (HTML-safe `\u003c` `\u003e` `\u0026`, `\u2028`/`\u2029`, `\b` `\f` `\n` `\r` `\t`,
//! other control bytes `\u00XX`, each invalid UTF-8 byte of a [`Value::Bytes`] as `\ufffd`) and Go's
//! float formatting, then a single trailing newline. Comments are dropped (JSON has none).
//!
//! Error messages never contain document text (values may be secrets): only a position and a reason.

use std::fmt::Write as _;

use thiserror::Error;

use crate::value::{Map, MapItem, Value};

/// Maximum nesting depth of objects/arrays accepted by [`parse`] (the top-level object is level 1).
pub const MAX_DEPTH: usize = 1000;

/// Why a JSON document could not be parsed. Never carries document content.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsonError {
    /// The first token is not `{` (sops: `Expected JSON object start, got ...`).
    #[error("Expected JSON object start, got {found} instead")]
    NotAnObject { found: &'static str },
    /// The input ended in the middle of the document (or was empty).
    #[error("unexpected end of JSON input")]
    UnexpectedEof,
    /// A syntax error at a position (1-based line, 1-based byte column).
    #[error("invalid JSON at line {line}, column {column}: {reason}")]
    Syntax {
        line: usize,
        column: usize,
        reason: &'static str,
    },
    /// A number literal too large for a float64 (Go: `cannot unmarshal number ... into float64`).
    #[error("JSON number out of float64 range at line {line}, column {column}")]
    NumberOutOfRange { line: usize, column: usize },
    /// More than [`MAX_DEPTH`] nested objects/arrays.
    #[error("JSON nesting exceeds the maximum depth of {max} at line {line}, column {column}")]
    TooDeep {
        max: usize,
        line: usize,
        column: usize,
    },
    /// Non-whitespace content after the top-level object.
    #[error("unexpected content after the top-level JSON object at line {line}, column {column}")]
    TrailingContent { line: usize, column: usize },
}

/// Parses a JSON document whose top level is an object into a branch.
pub fn parse(input: &[u8]) -> Result<Map, JsonError> {
    let mut p = Parser { input, pos: 0 };
    p.skip_ws();
    let Some(first) = p.peek() else {
        return Err(JsonError::UnexpectedEof);
    };
    if first != b'{' {
        let found = match first {
            b'[' => "delimiter [",
            b'"' => "a string",
            b'-' | b'0'..=b'9' => "a number",
            b't' | b'f' => "a bool",
            b'n' => "null",
            _ => return Err(p.syntax("invalid character looking for beginning of value")),
        };
        return Err(JsonError::NotAnObject { found });
    }
    p.pos += 1;
    let map = p.top_object()?;
    p.skip_ws();
    if p.pos < input.len() {
        let (line, column) = p.line_col(p.pos);
        return Err(JsonError::TrailingContent { line, column });
    }
    Ok(map)
}

/// Emits a branch as sops 3.11 does: Go `json.Marshal` then `json.Indent` with `indent` (`None` =
/// one TAB per level, `Some(n)` = `n` spaces), plus a trailing newline.
///
/// Non-finite floats (possible only for values that came from YAML) make Go's encoder fail; this
/// function stays infallible and writes them as the JSON strings `"NaN"`, `"+Inf"`, `"-Inf"`
/// (the same text sops uses for them inside `ENC[...]`).
pub fn emit(branch: &Map, indent: Option<usize>) -> String {
    let unit = match indent {
        None => "\t".to_string(),
        Some(n) => " ".repeat(n),
    };
    let mut e = Emitter {
        out: String::new(),
        unit,
    };
    e.map(branch, 0);
    e.out.push('\n');
    e.out
}

// ---------------------------------------------------------------------------------------------
// Parser

/// An open container while parsing: an object (with the key of the member being read) or an array.
enum Frame {
    Obj(Map, String),
    Arr(Vec<Value>),
}

impl Frame {
    fn push(&mut self, value: Value) {
        match self {
            Frame::Obj(map, key) => map.items.push(MapItem::Pair(std::mem::take(key), value)),
            Frame::Arr(seq) => seq.push(value),
        }
    }
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn line_col(&self, pos: usize) -> (usize, usize) {
        let pos = pos.min(self.input.len());
        let before = &self.input[..pos];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        (line, pos - line_start + 1)
    }

    /// A syntax error at the current position (or EOF if the input is exhausted).
    fn syntax(&self, reason: &'static str) -> JsonError {
        if self.pos >= self.input.len() {
            return JsonError::UnexpectedEof;
        }
        let (line, column) = self.line_col(self.pos);
        JsonError::Syntax {
            line,
            column,
            reason,
        }
    }

    fn expect_byte(&mut self, b: u8, reason: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(reason))
        }
    }

    fn too_deep(&self) -> JsonError {
        let (line, column) = self.line_col(self.pos.saturating_sub(1));
        JsonError::TooDeep {
            max: MAX_DEPTH,
            line,
            column,
        }
    }

    /// Parses the members of the top-level object whose `{` has been consumed. Iterative (an
    /// explicit stack instead of recursion) so that deep input cannot exhaust the call stack.
    fn top_object(&mut self) -> Result<Map, JsonError> {
        let mut stack: Vec<Frame> = vec![Frame::Obj(Map::new(), String::new())];
        let mut just_opened = true;
        loop {
            self.skip_ws();
            let (is_obj, close) = match stack.last() {
                Some(Frame::Obj(..)) => (true, b'}'),
                _ => (false, b']'),
            };
            let closing = if just_opened {
                self.peek() == Some(close)
            } else {
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        false
                    }
                    Some(b) if b == close => true,
                    _ if is_obj => {
                        return Err(self.syntax("expected ',' or '}' after object member"))
                    }
                    _ => return Err(self.syntax("expected ',' or ']' after array element")),
                }
            };
            if closing {
                self.pos += 1;
                let done = match stack.pop() {
                    Some(Frame::Obj(map, _)) => Value::Map(map),
                    Some(Frame::Arr(seq)) => Value::Seq(seq),
                    None => return Err(self.syntax("unbalanced delimiters")),
                };
                match stack.last_mut() {
                    None => {
                        return match done {
                            Value::Map(map) => Ok(map),
                            _ => Err(self.syntax("unbalanced delimiters")),
                        }
                    }
                    Some(frame) => frame.push(done),
                }
                just_opened = false;
                continue;
            }
            // An element follows: for an object, first its key and the colon.
            if let Some(Frame::Obj(_, key)) = stack.last_mut() {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.syntax("expected a string object key"));
                }
                self.pos += 1;
                *key = self.string()?;
                self.skip_ws();
                self.expect_byte(b':', "expected ':' after object key")?;
            }
            self.skip_ws();
            let value = match self.peek() {
                None => return Err(JsonError::UnexpectedEof),
                Some(open @ (b'{' | b'[')) => {
                    if stack.len() >= MAX_DEPTH {
                        self.pos += 1;
                        return Err(self.too_deep());
                    }
                    self.pos += 1;
                    stack.push(if open == b'{' {
                        Frame::Obj(Map::new(), String::new())
                    } else {
                        Frame::Arr(Vec::new())
                    });
                    just_opened = true;
                    continue;
                }
                Some(b'"') => {
                    self.pos += 1;
                    Value::Str(self.string()?)
                }
                Some(b't') => self.literal(b"true", Value::Bool(true))?,
                Some(b'f') => self.literal(b"false", Value::Bool(false))?,
                Some(b'n') => self.literal(b"null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => {
                    return Err(self.syntax("invalid character looking for beginning of value"))
                }
            };
            if let Some(frame) = stack.last_mut() {
                frame.push(value);
            }
            just_opened = false;
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, JsonError> {
        for &b in word {
            if self.peek() != Some(b) {
                return Err(self.syntax("invalid character in literal"));
            }
            self.pos += 1;
        }
        Ok(value)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, decoded as float64.
    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.syntax("invalid character in numeric literal")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.syntax("expected digit after decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.syntax("expected digit in exponent"));
            }
        }
        // The literal is pure ASCII by construction.
        let text = std::str::from_utf8(&self.input[start..self.pos]).unwrap_or("");
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => {
                let (line, column) = self.line_col(start);
                Err(JsonError::NumberOutOfRange { line, column })
            }
        }
    }

    /// Reads four hex digits at `at`, if present.
    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.input.get(at..at + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + (d as char).to_digit(16)?;
        }
        Some(v)
    }

    /// Parses a string body whose opening `"` has been consumed, unescaping like Go's decoder.
    fn string(&mut self) -> Result<String, JsonError> {
        let mut out = String::new();
        loop {
            // A run of bytes needing no unescaping.
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            push_go_lossy(&mut out, &self.input[run_start..self.pos]);
            match self.peek() {
                None => return Err(JsonError::UnexpectedEof),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(esc) = self.peek() else {
                        return Err(JsonError::UnexpectedEof);
                    };
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => self.unicode_escape(&mut out)?,
                        _ => {
                            self.pos -= 1;
                            return Err(self.syntax("invalid escape in string literal"));
                        }
                    }
                }
                Some(_) => return Err(self.syntax("invalid control character in string literal")),
            }
        }
    }

    /// After `\u`: four hex digits, with Go's surrogate-pair handling (an unpaired surrogate
    /// becomes U+FFFD; the following escape, if not its pair, is read on its own).
    fn unicode_escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let Some(r) = self.hex4(self.pos) else {
            if self.input.len() < self.pos + 4
                && self.input[self.pos..].iter().all(|b| b.is_ascii_hexdigit())
            {
                return Err(JsonError::UnexpectedEof);
            }
            return Err(self.syntax("invalid \\u escape in string literal"));
        };
        self.pos += 4;
        if (0xD800..0xE000).contains(&r) {
            if (0xD800..0xDC00).contains(&r)
                && self.input.get(self.pos) == Some(&b'\\')
                && self.input.get(self.pos + 1) == Some(&b'u')
            {
                if let Some(r2) = self.hex4(self.pos + 2) {
                    if (0xDC00..0xE000).contains(&r2) {
                        let c = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00);
                        out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                        self.pos += 6;
                        return Ok(());
                    }
                }
            }
            out.push('\u{FFFD}');
        } else {
            out.push(char::from_u32(r).unwrap_or('\u{FFFD}'));
        }
        Ok(())
    }
}

/// Appends `bytes` as UTF-8, replacing each byte that does not start a valid UTF-8 sequence with
/// U+FFFD (Go's per-byte `utf8.DecodeRune` semantics, unlike Rust's `from_utf8_lossy`).
fn push_go_lossy(out: &mut String, mut bytes: &[u8]) {
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return;
            }
            Err(e) => {
                let good = e.valid_up_to();
                // Valid by construction.
                out.push_str(std::str::from_utf8(&bytes[..good]).unwrap_or(""));
                out.push('\u{FFFD}');
                bytes = &bytes[good + 1..];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Emitter

struct Emitter {
    out: String,
    unit: String,
}

impl Emitter {
    fn newline(&mut self, depth: usize) {
        self.out.push('\n');
        for _ in 0..depth {
            self.out.push_str(&self.unit);
        }
    }

    fn map(&mut self, map: &Map, depth: usize) {
        self.out.push('{');
        let mut empty = true;
        for item in &map.items {
            let MapItem::Pair(key, value) = item else {
                continue;
            };
            if matches!(value, Value::Comment(_)) {
                continue;
            }
            if !empty {
                self.out.push(',');
            }
            empty = false;
            self.newline(depth + 1);
            write_json_str(&mut self.out, key);
            self.out.push_str(": ");
            self.value(value, depth + 1);
        }
        if !empty {
            self.newline(depth);
        }
        self.out.push('}');
    }

    fn seq(&mut self, seq: &[Value], depth: usize) {
        self.out.push('[');
        let mut empty = true;
        for value in seq {
            if matches!(value, Value::Comment(_)) {
                continue;
            }
            if !empty {
                self.out.push(',');
            }
            empty = false;
            self.newline(depth + 1);
            self.value(value, depth + 1);
        }
        if !empty {
            self.newline(depth);
        }
        self.out.push(']');
    }

    fn value(&mut self, value: &Value, depth: usize) {
        match value {
            Value::Null => self.out.push_str("null"),
            Value::Bool(true) => self.out.push_str("true"),
            Value::Bool(false) => self.out.push_str("false"),
            Value::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            Value::Uint(u) => {
                let _ = write!(self.out, "{u}");
            }
            Value::Float(f) => write_go_float(&mut self.out, *f),
            Value::Str(s) => write_json_str(&mut self.out, s),
            Value::Bytes(b) => write_json_bytes(&mut self.out, b),
            Value::Time(t) => write_json_str(&mut self.out, &t.0),
            Value::Map(m) => self.map(m, depth),
            Value::Seq(s) => self.seq(s, depth),
            // Comments are never emitted in JSON; callers skip them before reaching here.
            Value::Comment(_) => self.out.push_str("null"),
        }
    }
}

/// Go `encoding/json` float64 encoding (non-finite values as strings, see [`emit`]).
fn write_go_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("\"NaN\"");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "\"+Inf\"" } else { "\"-Inf\"" });
        return;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust `{:e}` gives the shortest round-trip digits: `1e21`, `1.5e-7`. Go writes the
        // exponent with a sign and at least two digits, then trims `e-0X` back to `e-X`.
        let s = crate::scalar::go_shortest_e(f);
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        out.push_str(mantissa);
        out.push('e');
        match exp.strip_prefix('-') {
            Some(digits) => {
                out.push('-');
                out.push_str(digits);
            }
            None => {
                out.push('+');
                if exp.len() < 2 {
                    out.push('0');
                }
                out.push_str(exp);
            }
        }
    } else {
        out.push_str(&crate::scalar::go_format_f(f));
    }
}

/// Writes a JSON string literal with Go's `json.Marshal` escaping (HTML-safe).
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s);
    out.push('"');
}

/// Like [`write_json_str`] for bytes that are not valid UTF-8: each invalid byte becomes `\ufffd`.
fn write_json_bytes(out: &mut String, mut bytes: &[u8]) {
    out.push('"');
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                escape_into(out, s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                escape_into(out, std::str::from_utf8(&bytes[..good]).unwrap_or(""));
                out.push_str("\\ufffd");
                bytes = &bytes[good + 1..];
            }
        }
    }
    out.push('"');
}

fn escape_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{2028}' => Some("\\u2028"),
            '\u{2029}' => Some("\\u2029"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xF) as usize] as char);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Timestamp;
    use std::path::PathBuf;

    fn vectors() -> PathBuf {
        crate::testdata::shared_dir().join("sops-vectors")
    }

    fn files(dir: &str, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(vectors().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| pred(p.file_name().unwrap().to_str().unwrap()))
            .collect();
        v.sort();
        v
    }

    fn emit1(m: &Map) -> String {
        emit(m, None)
    }

    fn one(key: &str, v: Value) -> Map {
        Map::from_pairs([(key, v)])
    }

    #[test]
    fn vectors_round_trip_byte_for_byte() {
        let mut n = 0;
        for dir in ["encrypted", "decrypted"] {
            for path in files(dir, |n| n.ends_with(".json") || n == "binary-basic.enc.bin") {
                let bytes = std::fs::read(&path).unwrap();
                let map = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let out = emit(&map, None);
                assert_eq!(out.as_bytes(), &bytes[..], "{}", path.display());
                n += 1;
            }
        }
        assert!(n >= 9, "only {n} vector files found");
    }

    #[test]
    fn inputs_normalise_like_sops() {
        for path in files("inputs", |n| n.starts_with("json-") && n.ends_with(".json")) {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            let expected =
                std::fs::read_to_string(vectors().join(format!("decrypted/{stem}.dec.json")))
                    .unwrap();
            let map = parse(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(emit(&map, None), expected, "{}", path.display());
        }
    }

    #[test]
    fn space_indent() {
        let m = parse(br#"{"a":{"b":[1,{}]},"c":[]}"#).unwrap();
        assert_eq!(
            emit(&m, Some(2)),
            "{\n  \"a\": {\n    \"b\": [\n      1,\n      {}\n    ]\n  },\n  \"c\": []\n}\n"
        );
        assert_eq!(
            emit(&m, Some(0)),
            "{\n\"a\": {\n\"b\": [\n1,\n{}\n]\n},\n\"c\": []\n}\n"
        );
        assert_eq!(emit(&Map::new(), None), "{}\n");
    }

    #[test]
    fn numbers_like_go() {
        let cases: &[(&str, &str)] = &[
            ("1e3", "1000"),
            ("1.0", "1"),
            ("1e-7", "1e-7"),
            ("1.5e-7", "1.5e-7"),
            ("0.000001", "0.000001"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("1.5e300", "1.5e+300"),
            ("-1.234e-10", "-1.234e-10"),
            ("-0", "-0"),
            ("0", "0"),
            ("-0.0", "-0"),
            ("3.14", "3.14"),
            ("12345678901234567890", "12345678901234567000"),
            ("1e-400", "0"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("123456789e-15", "1.23456789e-7"),
        ];
        for (input, want) in cases {
            let m = parse(format!("{{\"n\": {input}}}").as_bytes()).unwrap();
            assert!(matches!(m.get("n"), Some(Value::Float(_))), "{input}");
            assert_eq!(emit1(&m), format!("{{\n\t\"n\": {want}\n}}\n"), "{input}");
        }
        let m = Map::from_pairs([
            ("i", Value::Int(-42)),
            ("u", Value::Uint(u64::MAX)),
            ("nan", Value::Float(f64::NAN)),
            ("inf", Value::Float(f64::INFINITY)),
            ("ninf", Value::Float(f64::NEG_INFINITY)),
        ]);
        assert_eq!(
            emit1(&m),
            "{\n\t\"i\": -42,\n\t\"u\": 18446744073709551615,\n\t\"nan\": \"NaN\",\n\t\"inf\": \"+Inf\",\n\t\"ninf\": \"-Inf\"\n}\n"
        );
    }

    #[test]
    fn bad_numbers() {
        for bad in [
            "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x1F", "NaN", "Infinity", "1.e3", "--1",
        ] {
            assert!(
                parse(format!("{{\"n\": {bad}}}").as_bytes()).is_err(),
                "{bad}"
            );
        }
        assert!(matches!(
            parse(b"{\"n\": 1e400}"),
            Err(JsonError::NumberOutOfRange { line: 1, column: 7 })
        ));
        assert!(matches!(
            parse(b"{\"n\": -1e400}"),
            Err(JsonError::NumberOutOfRange { .. })
        ));
    }

    #[test]
    fn string_escapes_parse() {
        let m = parse(
            br#"{"s": "a\"b\\c\/d\be\ff\ng\rh\ti\u0041\u00e9\u2603\ud83d\ude00", "lone": "\ud800x\udc00", "hh": "\ud800\ud83d\ude00", "hu": "\ud800\u0041", "nul": "\u0000"}"#,
        )
        .unwrap();
        assert_eq!(
            m.get("s").unwrap().as_str().unwrap(),
            "a\"b\\c/d\u{8}e\u{c}f\ng\rh\tiA\u{e9}\u{2603}\u{1F600}"
        );
        assert_eq!(
            m.get("lone").unwrap().as_str().unwrap(),
            "\u{FFFD}x\u{FFFD}"
        );
        assert_eq!(m.get("hh").unwrap().as_str().unwrap(), "\u{FFFD}\u{1F600}");
        assert_eq!(m.get("hu").unwrap().as_str().unwrap(), "\u{FFFD}A");
        assert_eq!(m.get("nul").unwrap().as_str().unwrap(), "\0");
    }

    #[test]
    fn invalid_utf8_in_input_becomes_replacement_per_byte() {
        // E2 82 is a truncated 3-byte sequence: Go gives two U+FFFD, Rust's lossy would give one.
        let m = parse(b"{\"k\xff\": \"a\xe2\x82b\xc3\xa9\"}").unwrap();
        let (k, v) = m.pairs().next().unwrap();
        assert_eq!(k, "k\u{FFFD}");
        assert_eq!(v.as_str().unwrap(), "a\u{FFFD}\u{FFFD}b\u{e9}");
        // Invalid UTF-8 outside strings is a syntax error.
        assert!(parse(b"{\"a\": 1}\xff").is_err());
        assert!(parse(b"\xef\xbb\xbf{}").is_err());
    }

    #[test]
    fn string_escapes_emit_like_go() {
        let s = "q\"b\\s/ \u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f} <>& \u{2028}\u{2029} é☃😀";
        let m = one("k<&>", Value::str(s));
        assert_eq!(
            emit1(&m),
            "{\n\t\"k\\u003c\\u0026\\u003e\": \"q\\\"b\\\\s/ \\b\\f\\n\\r\\t\\u0001\\u001f\u{7f} \\u003c\\u003e\\u0026 \\u2028\\u2029 é☃😀\"\n}\n"
        );
        // Round trip through the parser.
        assert_eq!(parse(emit1(&m).as_bytes()).unwrap(), m);
    }

    #[test]
    fn bytes_emit_replacement_escape_per_invalid_byte() {
        let m = one("b", Value::Bytes(b"a\xe2\x82<\xff\xc3\xa9\n".to_vec()));
        assert_eq!(
            emit1(&m),
            "{\n\t\"b\": \"a\\ufffd\\ufffd\\u003c\\ufffdé\\n\"\n}\n"
        );
    }

    #[test]
    fn other_values_and_comments() {
        let m = Map {
            items: vec![
                MapItem::Comment(" dropped".into()),
                MapItem::Pair(
                    "t".into(),
                    Value::Time(Timestamp("2024-01-01T00:00:00Z".into())),
                ),
                MapItem::Pair(
                    "l".into(),
                    Value::Seq(vec![
                        Value::Comment("c".into()),
                        Value::Null,
                        Value::Comment("c".into()),
                        Value::Bool(true),
                    ]),
                ),
                MapItem::Pair(
                    "only_comments".into(),
                    Value::Seq(vec![Value::Comment("x".into())]),
                ),
                MapItem::Pair(
                    "m".into(),
                    Value::Map(Map {
                        items: vec![MapItem::Comment("x".into())],
                    }),
                ),
            ],
        };
        assert_eq!(
            emit1(&m),
            "{\n\t\"t\": \"2024-01-01T00:00:00Z\",\n\t\"l\": [\n\t\tnull,\n\t\ttrue\n\t],\n\t\"only_comments\": [],\n\t\"m\": {}\n}\n"
        );
    }

    #[test]
    fn duplicates_and_order_kept() {
        let m = parse(br#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        let keys: Vec<&str> = m.pairs().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b", "a", "b"]);
        assert_eq!(emit1(&m), "{\n\t\"b\": 1,\n\t\"a\": 2,\n\t\"b\": 3\n}\n");
    }

    #[test]
    fn literals_and_whitespace() {
        let m = parse(b" \r\n\t{ \"a\" : [ true , false , null ] , \"b\":{ } }\n\n ").unwrap();
        assert_eq!(
            m.get("a"),
            Some(&Value::Seq(vec![
                Value::Bool(true),
                Value::Bool(false),
                Value::Null
            ]))
        );
        assert_eq!(m.get("b"), Some(&Value::Map(Map::new())));
    }

    #[test]
    fn errors_never_echo_content() {
        let secret = "hunter2";
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"   ".to_vec(),
            format!("\"{secret}\"").into_bytes(),
            format!("[\"{secret}\"]").into_bytes(),
            b"42".to_vec(),
            b"true".to_vec(),
            b"null".to_vec(),
            secret.as_bytes().to_vec(),
            format!("{{\"a\": \"{secret}\"}} {secret}").into_bytes(),
            format!("{{\"a\": {secret}}}").into_bytes(),
            format!("{{\"a\": \"{secret}").into_bytes(),
            format!("{{\"a\": \"{secret}\n\"}}").into_bytes(),
            format!("{{\"a\": \"\\x{secret}\"}}").into_bytes(),
            format!("{{\"a\": \"\\u{secret}\"}}").into_bytes(),
            format!("{{{secret}: 1}}").into_bytes(),
            format!("{{\"{secret}\" 1}}").into_bytes(),
            format!("{{\"a\": 1 \"{secret}\": 2}}").into_bytes(),
            format!("{{\"a\": [1 \"{secret}\"]}}").into_bytes(),
            b"{\"a\": 1,}".to_vec(),
            b"{\"a\": [1,]}".to_vec(),
            b"{\"a\": tru}".to_vec(),
            b"{\"a\": 1".to_vec(),
            b"{\"a\": [".to_vec(),
            b"{\"a\": \"\\ud83".to_vec(),
        ];
        for c in cases {
            let err = parse(&c).expect_err(&String::from_utf8_lossy(&c));
            let msg = err.to_string();
            assert!(!msg.contains(secret), "{msg}");
            assert!(!msg.contains("hunter"), "{msg}");
        }
        assert_eq!(
            parse(b"[1]").unwrap_err().to_string(),
            "Expected JSON object start, got delimiter [ instead"
        );
        assert_eq!(parse(b"").unwrap_err(), JsonError::UnexpectedEof);
        assert_eq!(parse(b"{\"a\": 1").unwrap_err(), JsonError::UnexpectedEof);
        assert_eq!(
            parse(b"{\n  \"a\": 1,\n  \"b\" 2}").unwrap_err(),
            JsonError::Syntax {
                line: 3,
                column: 7,
                reason: "expected ':' after object key"
            }
        );
        assert_eq!(
            parse(b"{} x").unwrap_err(),
            JsonError::TrailingContent { line: 1, column: 4 }
        );
        assert!(parse(b"{}{}").is_err());
    }

    #[test]
    fn nesting_depth_is_capped() {
        let ok = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        let m = parse(ok.as_bytes()).unwrap();
        let out = emit(&m, Some(0));
        assert_eq!(parse(out.as_bytes()).unwrap(), m);
        let deep = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(JsonError::TooDeep { .. })
        ));
        let huge = format!("{{\"a\":{}", "{\"a\":".repeat(100_000));
        assert!(matches!(
            parse(huge.as_bytes()),
            Err(JsonError::TooDeep { .. })
        ));
    }

    #[test]
    fn no_panic_on_truncations_of_vectors() {
        let bytes = std::fs::read(vectors().join("encrypted/json-basic.enc.json")).unwrap();
        for end in (0..bytes.len()).step_by(7) {
            let _ = parse(&bytes[..end]);
        }
        for b in 0..=255u8 {
            let _ = parse(&[b'{', b'"', b'\\', b]);
            let _ = parse(&[b'{', b'"', b'a', b'"', b':', b]);
            let _ = parse(&[b]);
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = parse(&bytes);
                let mut wrapped = b"{\"k\": ".to_vec();
                wrapped.extend_from_slice(&bytes);
                let _ = parse(&wrapped);
            }

            #[test]
            fn strings_round_trip(k in any::<String>(), v in any::<String>()) {
                let m = Map::from_pairs([(k, Value::Str(v))]);
                prop_assert_eq!(parse(emit(&m, None).as_bytes()).unwrap(), m);
            }

            #[test]
            fn finite_floats_round_trip(bits in any::<u64>()) {
                let f = f64::from_bits(bits);
                prop_assume!(f.is_finite());
                let m = Map::from_pairs([("f", Value::Float(f))]);
                let back = parse(emit(&m, Some(1)).as_bytes()).unwrap();
                match back.get("f") {
                    Some(Value::Float(g)) => prop_assert_eq!(g.to_bits(), f.to_bits()),
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }
}
