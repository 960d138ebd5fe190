//! The reader: go-yaml v3's `readerc.go`. The whole input (UTF-8, or UTF-16 with a BOM) is
//! decoded up front into a validated UTF-8 buffer, refusing the characters go-yaml refuses.

/// A reader error: problem text and the character offset where it happened.
pub struct ReaderError {
    pub problem: &'static str,
    pub line: usize,
    pub column: usize,
}

fn allowed_char(v: u32) -> bool {
    matches!(v, 0x09 | 0x0A | 0x0D | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

fn position_of(text: &[u8], byte_offset: usize) -> (usize, usize) {
    let upto = &text[..byte_offset.min(text.len())];
    let line = upto.iter().filter(|&&c| c == b'\n').count();
    let line_start = upto
        .iter()
        .rposition(|&c| c == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let column = String::from_utf8_lossy(&upto[line_start..]).chars().count();
    (line + 1, column + 1)
}

/// Is every byte printable ASCII, a tab or a line break? (Checked in blocks, without
/// short-circuiting inside a block, so that it vectorises.)
fn printable_ascii(b: &[u8]) -> bool {
    b.chunks(64).all(|block| {
        block.iter().fold(true, |ok, &c| {
            ok & ((0x20..=0x7E).contains(&c) | (c == b'\t') | (c == b'\n') | (c == b'\r'))
        })
    })
}

/// Decode the input (UTF-8, or UTF-16 with a BOM) into a validated UTF-8 buffer, dropping a
/// leading BOM, and refusing the characters go-yaml's reader refuses.
pub fn decode_input(input: &[u8]) -> Result<String, ReaderError> {
    if input.len() >= 2 && (input[..2] == [0xFF, 0xFE] || input[..2] == [0xFE, 0xFF]) {
        let le = input[0] == 0xFF;
        let body = &input[2..];
        let mut out = String::with_capacity(body.len());
        let mut i = 0;
        let unit = |i: usize| -> u32 {
            let (a, b) = (body[i] as u32, body[i + 1] as u32);
            if le {
                a | (b << 8)
            } else {
                (a << 8) | b
            }
        };
        let err = |problem: &'static str, out: &String| {
            let (line, column) = position_of(out.as_bytes(), out.len());
            ReaderError {
                problem,
                line,
                column,
            }
        };
        while i < body.len() {
            if i + 1 >= body.len() {
                return Err(err("incomplete UTF-16 character", &out));
            }
            let v = unit(i);
            if v & 0xFC00 == 0xDC00 {
                return Err(err("unexpected low surrogate area", &out));
            }
            let value = if v & 0xFC00 == 0xD800 {
                if i + 3 >= body.len() {
                    return Err(err("incomplete UTF-16 surrogate pair", &out));
                }
                let v2 = unit(i + 2);
                if v2 & 0xFC00 != 0xDC00 {
                    return Err(err("expected low surrogate area", &out));
                }
                i += 4;
                0x10000 + ((v & 0x3FF) << 10) + (v2 & 0x3FF)
            } else {
                i += 2;
                v
            };
            if !allowed_char(value) {
                return Err(err("control characters are not allowed", &out));
            }
            match char::from_u32(value) {
                Some(ch) => out.push(ch),
                None => return Err(err("invalid Unicode character", &out)),
            }
        }
        return Ok(out);
    }
    let body = input.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(input);
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = position_of(body, e.valid_up_to());
            return Err(ReaderError {
                problem: "invalid UTF-8 octet sequence",
                line,
                column,
            });
        }
    };
    // Fast path for the common all-printable-ASCII input.
    if !printable_ascii(body) {
        for (off, ch) in text.char_indices() {
            if !allowed_char(ch as u32) {
                let (line, column) = position_of(body, off);
                return Err(ReaderError {
                    problem: "control characters are not allowed",
                    line,
                    column,
                });
            }
        }
    }
    Ok(text.to_string())
}
