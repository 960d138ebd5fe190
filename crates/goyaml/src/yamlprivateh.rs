//! Character classes shared by the scanner and the emitter (go-yaml's `yamlprivateh.go`), and
//! the byte-class tables behind the fast runs: where go-yaml reads one character at a time,
//! the runs it would read without deciding anything are found at once with [`find_byte`].

// Byte classes for the fast runs of the scanner and the emitter: the bytes that may end a run.
// `0xC2` and `0xE2` start the multi-byte line breaks (NEL, LS, PS), which callers check.

/// Scanner, to the end of a line: breaks and NUL.
pub(crate) const STOP_LINE: usize = 0;
/// Scanner, plain scalars: `STOP_LINE`, blanks and `:`.
pub(crate) const STOP_PLAIN: usize = 1;
/// Scanner, plain scalars in flow context: `STOP_PLAIN` and flow indicators.
pub(crate) const STOP_FLOW: usize = 2;
/// Scanner, quoted scalars: `STOP_LINE`, blanks, quotes and backslash.
pub(crate) const STOP_QUOTED: usize = 3;
/// Emitter, text to the end of a line: breaks.
pub(crate) const STOP_TEXT: usize = 4;
/// Emitter: `STOP_TEXT` and space.
pub(crate) const STOP_TEXT_SPACE: usize = 5;
/// Emitter: `STOP_TEXT_SPACE` and `'`.
pub(crate) const STOP_TEXT_QUOTE: usize = 6;
/// Emitter, scalar analysis: anything but printable ASCII that is not an indicator.
pub(crate) const STOP_ANALYSIS: usize = 7;

#[inline(always)]
const fn is_stop(class: usize, c: u8) -> bool {
    let text = (c == b'\r') | (c == b'\n') | (c == 0xC2) | (c == 0xE2);
    let line = text | (c == 0);
    let blank = (c == b' ') | (c == b'\t');
    let plain = line | blank | (c == b':');
    match class {
        STOP_LINE => line,
        STOP_PLAIN => plain,
        STOP_FLOW => {
            plain
                | (c == b',')
                | (c == b'?')
                | (c == b'[')
                | (c == b']')
                | (c == b'{')
                | (c == b'}')
        }
        STOP_QUOTED => line | blank | (c == b'\'') | (c == b'"') | (c == b'\\'),
        STOP_TEXT => text,
        STOP_TEXT_SPACE => text | (c == b' '),
        STOP_TEXT_QUOTE => text | (c == b' ') | (c == b'\''),
        _ => {
            (c < 0x21)
                | (c > 0x7E)
                | (c == b',')
                | (c == b'?')
                | (c == b'[')
                | (c == b']')
                | (c == b'{')
                | (c == b'}')
                | (c == b':')
                | (c == b'#')
        }
    }
}

const fn stop_tables() -> [[bool; 256]; 8] {
    let mut t = [[false; 256]; 8];
    let mut class = 0;
    while class < 8 {
        let mut c = 0;
        while c < 256 {
            t[class][c] = is_stop(class, c as u8);
            c += 1;
        }
        class += 1;
    }
    t
}

static STOP_TABLES: [[bool; 256]; 8] = stop_tables();

/// A superset of class `class` made of few comparisons (more than four make the compiler give
/// up on vectorising a block test), for a first test of 16 bytes at a time.
#[inline(always)]
const fn maybe_stop(class: usize, c: u8) -> bool {
    // Bytes below 0x0E hold NUL, tab, LF and CR; bytes from 0xC2 the multi-byte breaks.
    let text = (c < 0x0E) | (c >= 0xC2);
    match class {
        STOP_LINE | STOP_TEXT => text,
        STOP_TEXT_SPACE => text | (c == b' '),
        STOP_TEXT_QUOTE => text | (c == b' ') | (c == b'\''),
        STOP_PLAIN => (c < 0x21) | (c >= 0xC2) | (c == b':'),
        // below 0x28: blanks, `"` and `'` (and `!#$%&`)
        STOP_QUOTED => (c < 0x28) | (c >= 0xC2) | (c == b'\\'),
        // `[\]`; `{|}~` and up; `:;>?`
        STOP_FLOW => {
            (c < 0x21)
                | (c >= 0x7B)
                | (c.wrapping_sub(0x5B) < 3)
                | (c == b',')
                | ((c & 0xFA) == 0x3A)
        }
        _ => {
            (c < 0x21)
                | (c >= 0x7B)
                | (c.wrapping_sub(0x5B) < 3)
                | (c == b',')
                | ((c & 0xFA) == 0x3A)
                | (c == b'#')
        }
    }
}

/// The first position from `i` whose byte is in class `C` (or the end). The first bytes are
/// checked one by one with a table (most runs are short); after that, blocks of 16 bytes are
/// first tested with `maybe_stop`, which the compiler vectorises, and a block that may hold a
/// stop is checked byte by byte.
#[inline(always)]
pub(crate) fn find_byte<const C: usize>(b: &[u8], mut i: usize) -> usize {
    let table = &STOP_TABLES[C];
    loop {
        let end = (i + 16).min(b.len());
        while i < end {
            if table[b[i] as usize] {
                return i;
            }
            i += 1;
        }
        if i >= b.len() {
            return i;
        }
        while let Some(Ok(block)) = b.get(i..i + 16).map(<&[u8; 16]>::try_from) {
            let mut any = false;
            for &c in block {
                any |= maybe_stop(C, c);
            }
            if any {
                break;
            }
            i += 16;
        }
    }
}

/// The number of characters in a run of whole UTF-8 characters.
#[inline]
pub(crate) fn count_chars(run: &[u8]) -> i64 {
    if run.is_ascii() {
        return run.len() as i64;
    }
    run.iter().filter(|&&c| c & 0xC0 != 0x80).count() as i64
}

pub(crate) fn width(b: u8) -> usize {
    if b & 0x80 == 0x00 {
        1
    } else if b & 0xE0 == 0xC0 {
        2
    } else if b & 0xF0 == 0xE0 {
        3
    } else if b & 0xF8 == 0xF0 {
        4
    } else {
        // Never happens on the validated buffer; stepping one byte keeps every loop finite.
        1
    }
}

/// Character classes on a byte slice, reading NUL past the end.
#[inline]
pub(crate) fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}
#[inline]
pub(crate) fn is_alpha_at(b: &[u8], i: usize) -> bool {
    let c = at(b, i);
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}
#[inline]
pub(crate) fn is_blank_at(b: &[u8], i: usize) -> bool {
    let c = at(b, i);
    c == b' ' || c == b'\t'
}
#[inline]
pub(crate) fn is_break_at(b: &[u8], i: usize) -> bool {
    let c = at(b, i);
    c == b'\r'
        || c == b'\n'
        || (c == 0xC2 && at(b, i + 1) == 0x85)
        || (c == 0xE2 && at(b, i + 1) == 0x80 && (at(b, i + 2) == 0xA8 || at(b, i + 2) == 0xA9))
}
#[inline]
pub(crate) fn is_breakz_at(b: &[u8], i: usize) -> bool {
    at(b, i) == 0 || is_break_at(b, i)
}
#[inline]
pub(crate) fn is_blankz_at(b: &[u8], i: usize) -> bool {
    is_blank_at(b, i) || is_breakz_at(b, i)
}
pub(crate) fn is_space_at(b: &[u8], i: usize) -> bool {
    at(b, i) == b' '
}

/// go-yaml's `is_bom` ignores its index and looks at the start of the value, so a value that
/// starts with a BOM gets every character escaped.
pub(crate) fn is_bom(b: &[u8]) -> bool {
    at(b, 0) == 0xEF && at(b, 1) == 0xBB && at(b, 2) == 0xBF
}

pub(crate) fn is_printable_at(b: &[u8], i: usize) -> bool {
    let (c0, c1, c2) = (at(b, i), at(b, i + 1), at(b, i + 2));
    c0 == 0x0A
        || (0x20..=0x7E).contains(&c0)
        || (c0 == 0xC2 && c1 >= 0xA0)
        || (c0 > 0xC2 && c0 < 0xED)
        || (c0 == 0xED && c1 < 0xA0)
        || c0 == 0xEE
        || (c0 == 0xEF
            && !(c1 == 0xBB && c2 == 0xBF)
            && !(c1 == 0xBF && (c2 == 0xBE || c2 == 0xBF)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSES: [usize; 8] = [
        STOP_LINE,
        STOP_PLAIN,
        STOP_FLOW,
        STOP_QUOTED,
        STOP_TEXT,
        STOP_TEXT_SPACE,
        STOP_TEXT_QUOTE,
        STOP_ANALYSIS,
    ];

    #[test]
    fn block_filters_cover_their_classes() {
        for class in CLASSES {
            for c in 0..=255u8 {
                if is_stop(class, c) {
                    assert!(maybe_stop(class, c), "class {class}, byte {c:#x}");
                }
            }
        }
    }

    fn find_byte_of(class: usize, b: &[u8], i: usize) -> usize {
        match class {
            STOP_LINE => find_byte::<STOP_LINE>(b, i),
            STOP_PLAIN => find_byte::<STOP_PLAIN>(b, i),
            STOP_FLOW => find_byte::<STOP_FLOW>(b, i),
            STOP_QUOTED => find_byte::<STOP_QUOTED>(b, i),
            STOP_TEXT => find_byte::<STOP_TEXT>(b, i),
            STOP_TEXT_SPACE => find_byte::<STOP_TEXT_SPACE>(b, i),
            STOP_TEXT_QUOTE => find_byte::<STOP_TEXT_QUOTE>(b, i),
            _ => find_byte::<STOP_ANALYSIS>(b, i),
        }
    }

    #[test]
    fn find_byte_finds_the_first_stop() {
        // Mostly harmless bytes with a few of every kind, at every offset and length.
        const BYTES: &[u8] =
            b"aaaaaaaaaaaaaaaaaaaaZ09-+/=.\x00\t\n\r :#,?[]{}'\"\\!%&|>\xc2\xe2\x80\xa8\xc3\xa9";
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for n in 0..3000 {
            let len = n % 70;
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    BYTES[(x % BYTES.len() as u64) as usize]
                })
                .collect();
            for class in CLASSES {
                for start in 0..=len.min(20) {
                    let want = (start..len).find(|&i| is_stop(class, b[i])).unwrap_or(len);
                    assert_eq!(
                        find_byte_of(class, &b, start),
                        want,
                        "{class} {b:?} {start}"
                    );
                }
            }
        }
    }

    #[test]
    fn chars_are_counted() {
        for s in [
            "",
            "abc",
            "é",
            "a\u{2028}b",
            "\u{1F600}x",
            "ENC[AES256_GCM,data:x]",
        ] {
            assert_eq!(count_chars(s.as_bytes()), s.chars().count() as i64, "{s:?}");
        }
    }
}
