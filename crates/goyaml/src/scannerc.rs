//! Reader and scanner: a line-by-line port of go-yaml v3's `readerc.go` and `scannerc.go`
//! (including its comment scanner), so that tokens, marks and, above all, the placement of
//! comments are exactly what sops 3.11 sees. The whole input is decoded up front into a UTF-8
//! buffer; reads past its end yield NUL, which is the stream terminator, as in go-yaml.
//!
//! Where go-yaml reads one character at a time, the runs of characters it would read without
//! deciding anything (the rest of a line, a plain or quoted scalar up to the next blank, break
//! or indicator, indentation) are read at once ([`find_byte`]), with the same effect on marks;
//! and scalar texts that are verbatim copies of the input are kept as spans of it ([`Text`]),
//! to be copied once, into the tree.

use crate::yamlprivateh::{
    at, count_chars, find_byte, is_alpha_at, is_blank_at, is_blankz_at, is_break_at, is_breakz_at,
    width, STOP_FLOW, STOP_LINE, STOP_PLAIN, STOP_QUOTED,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// Character index.
    pub index: i64,
    /// 0-based line.
    pub line: i64,
    /// 0-based column in characters.
    pub column: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    None,
    StreamStart,
    StreamEnd,
    VersionDirective,
    TagDirective,
    DocumentStart,
    DocumentEnd,
    BlockSequenceStart,
    BlockMappingStart,
    BlockEnd,
    FlowSequenceStart,
    FlowSequenceEnd,
    FlowMappingStart,
    FlowMappingEnd,
    BlockEntry,
    FlowEntry,
    Key,
    Value,
    Alias,
    Anchor,
    Tag,
    Scalar,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScalarStyle {
    #[default]
    Any,
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

/// The text of a scalar or of an anchor name: a span of the input when it is a verbatim copy
/// of it, or an owned string.
#[derive(Clone, Debug)]
pub enum Text {
    Span(usize, usize),
    Owned(String),
}

impl Default for Text {
    fn default() -> Self {
        Text::Span(0, 0)
    }
}

impl Text {
    #[inline]
    pub fn is_empty(&self) -> bool {
        match self {
            Text::Span(a, b) => a >= b,
            Text::Owned(s) => s.is_empty(),
        }
    }

    /// The text, given the input it was scanned from.
    #[inline]
    pub fn get<'a>(&'a self, src: &'a str) -> &'a str {
        match self {
            Text::Span(a, b) => src.get(*a..*b).unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }
}

#[inline]
pub(crate) fn bytes_to_string(b: Vec<u8>) -> String {
    if b.is_empty() {
        return String::new();
    }
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A contiguous span of the input (`start == end` when empty).
#[derive(Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

/// Text being scanned: a span of the input as long as it is a verbatim copy, then bytes.
#[derive(Default)]
struct TextBuf {
    span: Span,
    owned: Option<Vec<u8>>,
}

impl TextBuf {
    /// Append `buf[a..b]`.
    #[inline]
    fn run(&mut self, buf: &[u8], a: usize, b: usize) {
        if a >= b {
            return;
        }
        match &mut self.owned {
            Some(v) => v.extend_from_slice(&buf[a..b]),
            None if self.span.is_empty() => self.span = Span { start: a, end: b },
            None if self.span.end == a => self.span.end = b,
            None => {
                let mut v = buf[self.span.start..self.span.end].to_vec();
                v.extend_from_slice(&buf[a..b]);
                self.owned = Some(v);
            }
        }
    }

    /// Append bytes that are not (or not known to be) the next ones of the input.
    #[inline]
    fn push(&mut self, buf: &[u8], bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.owned {
            Some(v) => v.extend_from_slice(bytes),
            None => {
                let mut v = buf[self.span.start..self.span.end].to_vec();
                v.extend_from_slice(bytes);
                self.owned = Some(v);
            }
        }
    }

    #[inline]
    fn finish(self) -> Text {
        match self.owned {
            Some(v) => Text::Owned(bytes_to_string(v)),
            None if self.span.is_empty() => Text::default(),
            None => Text::Span(self.span.start, self.span.end),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Token {
    pub typ: TokenType,
    pub start_mark: Mark,
    pub end_mark: Mark,
    /// Scalar value or anchor/alias name.
    pub value: Text,
    /// Tag or tag directive parts.
    pub tag: Option<Box<TagParts>>,
    pub style: ScalarStyle,
    pub major: i8,
    pub minor: i8,
}

/// The parts of a tag or of a tag directive (rare, so kept out of line).
#[derive(Clone, Debug, Default)]
pub struct TagParts {
    /// Tag or tag directive handle.
    pub handle: Vec<u8>,
    /// Tag suffix.
    pub suffix: Vec<u8>,
    /// Tag directive prefix.
    pub prefix: Vec<u8>,
}

impl Token {
    fn new(typ: TokenType, start_mark: Mark, end_mark: Mark) -> Token {
        Token {
            typ,
            start_mark,
            end_mark,
            value: Text::default(),
            tag: None,
            style: ScalarStyle::Any,
            major: 0,
            minor: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct SimpleKey {
    possible: bool,
    required: bool,
    token_number: usize,
    mark: Mark,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Comment {
    pub scan_mark: Mark,
    pub token_mark: Mark,
    pub start_mark: Mark,
    pub end_mark: Mark,
    pub head: Vec<u8>,
    pub line: Vec<u8>,
    pub foot: Vec<u8>,
}

/// A scanner, reader or parser error (value-free: only static texts and positions).
#[derive(Clone, Debug)]
pub struct SyntaxError {
    pub context: &'static str,
    pub context_mark: Mark,
    pub problem: &'static str,
    pub problem_mark: Mark,
}

pub(crate) type Res<T> = Result<T, SyntaxError>;

const MAX_FLOW_LEVEL: i64 = 10000;
const MAX_INDENTS: usize = 10000;

/// The parser state shared by the scanner ([`scanner`](self)) and the event parser
/// ([`super::parser`]), like go-yaml's `yaml_parser_t`.
pub struct Parser {
    /// The decoded input.
    pub(crate) buf: String,
    pub(crate) pos: usize,
    pub(crate) mark: Mark,
    pub(crate) newlines: i64,

    // Comments
    pub(crate) head_comment: Vec<u8>,
    pub(crate) line_comment: Vec<u8>,
    pub(crate) foot_comment: Vec<u8>,
    pub(crate) stem_comment: Option<Vec<u8>>,
    pub(crate) comments: Vec<Comment>,
    pub(crate) comments_head: usize,

    // Scanner
    stream_start_produced: bool,
    pub(crate) stream_end_produced: bool,
    flow_level: i64,
    pub(crate) tokens: Vec<Token>,
    pub(crate) tokens_head: usize,
    pub(crate) tokens_parsed: usize,
    pub(crate) token_available: bool,
    /// How many tokens were ever queued (go-yaml's `len(parser.tokens) > 1` checks).
    tokens_ever: usize,
    indent: i64,
    indents: Vec<i64>,
    simple_key_allowed: bool,
    simple_keys: Vec<SimpleKey>,
    /// go-yaml's `simple_keys_by_tok` map (a handful of entries at most).
    simple_keys_by_tok: Vec<(usize, usize)>,
}

impl Parser {
    pub fn new(buf: String) -> Parser {
        Parser {
            buf,
            pos: 0,
            mark: Mark::default(),
            newlines: 0,
            head_comment: Vec::new(),
            line_comment: Vec::new(),
            foot_comment: Vec::new(),
            stem_comment: None,
            comments: Vec::new(),
            comments_head: 0,
            stream_start_produced: false,
            stream_end_produced: false,
            flow_level: 0,
            tokens: Vec::with_capacity(32),
            tokens_head: 0,
            tokens_parsed: 0,
            token_available: false,
            tokens_ever: 0,
            indent: 0,
            indents: Vec::with_capacity(16),
            simple_key_allowed: false,
            simple_keys: Vec::with_capacity(16),
            simple_keys_by_tok: Vec::with_capacity(8),
        }
    }

    fn by_tok_get(&self, tok: usize) -> Option<usize> {
        self.simple_keys_by_tok
            .iter()
            .find(|(t, _)| *t == tok)
            .map(|&(_, i)| i)
    }

    fn by_tok_remove(&mut self, tok: usize) {
        self.simple_keys_by_tok.retain(|(t, _)| *t != tok);
    }

    // ---------------------------------------------------------------- buffer helpers

    #[inline]
    fn c(&self, k: usize) -> u8 {
        at(self.buf.as_bytes(), self.pos + k)
    }
    #[inline]
    fn is_blank(&self, k: usize) -> bool {
        is_blank_at(self.buf.as_bytes(), self.pos + k)
    }
    #[inline]
    fn is_break(&self, k: usize) -> bool {
        is_break_at(self.buf.as_bytes(), self.pos + k)
    }
    #[inline]
    fn is_breakz(&self, k: usize) -> bool {
        is_breakz_at(self.buf.as_bytes(), self.pos + k)
    }
    #[inline]
    fn is_blankz(&self, k: usize) -> bool {
        is_blankz_at(self.buf.as_bytes(), self.pos + k)
    }
    #[inline]
    fn is_z(&self, k: usize) -> bool {
        self.c(k) == 0
    }
    #[inline]
    fn is_alpha(&self, k: usize) -> bool {
        is_alpha_at(self.buf.as_bytes(), self.pos + k)
    }
    #[inline]
    fn is_digit(&self, k: usize) -> bool {
        self.c(k).is_ascii_digit()
    }
    #[inline]
    fn is_hex(&self, k: usize) -> bool {
        self.c(k).is_ascii_hexdigit()
    }
    fn as_hex(&self, k: usize) -> u32 {
        let c = self.c(k);
        match c {
            b'A'..=b'F' => (c - b'A') as u32 + 10,
            b'a'..=b'f' => (c - b'a') as u32 + 10,
            _ => c.wrapping_sub(b'0') as u32,
        }
    }
    fn is_bom(&self) -> bool {
        self.c(0) == 0xEF && self.c(1) == 0xBB && self.c(2) == 0xBF
    }
    fn is_crlf(&self) -> bool {
        self.c(0) == b'\r' && self.c(1) == b'\n'
    }

    #[inline]
    fn skip(&mut self) {
        if !self.is_blank(0) {
            self.newlines = 0;
        }
        self.mark.index += 1;
        self.mark.column += 1;
        if self.pos < self.buf.len() {
            self.pos += width(self.buf.as_bytes()[self.pos]);
        }
    }

    fn skip_line(&mut self) {
        if self.is_crlf() {
            self.mark.index += 2;
            self.mark.column = 0;
            self.mark.line += 1;
            self.pos += 2;
            self.newlines += 1;
        } else if self.is_break(0) {
            self.mark.index += 1;
            self.mark.column = 0;
            self.mark.line += 1;
            self.pos += width(self.c(0));
            self.newlines += 1;
        }
    }

    fn read(&mut self, s: &mut Vec<u8>) {
        if !self.is_blank(0) {
            self.newlines = 0;
        }
        if self.pos < self.buf.len() {
            let w = width(self.buf.as_bytes()[self.pos]);
            let end = (self.pos + w).min(self.buf.len());
            s.extend_from_slice(&self.buf.as_bytes()[self.pos..end]);
            self.pos = end;
        }
        self.mark.index += 1;
        self.mark.column += 1;
    }

    /// `read` every character of `buf[pos..end]` at once (`end` on a character boundary).
    /// `blank_free`: the run is known to hold no blank.
    fn read_run(&mut self, s: &mut Vec<u8>, end: usize, blank_free: bool) {
        let run = &self.buf.as_bytes()[self.pos..end];
        if blank_free || run.iter().any(|&c| c != b' ' && c != b'\t') {
            self.newlines = 0;
        }
        let chars = count_chars(run);
        s.extend_from_slice(run);
        self.pos = end;
        self.mark.index += chars;
        self.mark.column += chars;
    }

    /// `read` into a `TextBuf`.
    #[inline]
    fn read_text(&mut self, t: &mut TextBuf) {
        let start = self.pos;
        self.skip();
        t.run(self.buf.as_bytes(), start, self.pos);
    }

    /// `read_run` into a `TextBuf`, for a run without blanks.
    #[inline]
    fn read_run_text(&mut self, t: &mut TextBuf, end: usize) {
        let chars = count_chars(&self.buf.as_bytes()[self.pos..end]);
        t.run(self.buf.as_bytes(), self.pos, end);
        self.newlines = 0;
        self.pos = end;
        self.mark.index += chars;
        self.mark.column += chars;
    }

    /// `read` `n` single-byte blanks into a span of whitespace.
    fn read_blanks(&mut self, ws: &mut Span, n: usize) {
        if ws.is_empty() {
            ws.start = self.pos;
        }
        self.skip_blanks(n);
        ws.end = self.pos;
    }

    /// `skip` `n` characters known to be single-byte blanks.
    #[inline]
    fn skip_blanks(&mut self, n: usize) {
        self.pos += n;
        self.mark.index += n as i64;
        self.mark.column += n as i64;
    }

    /// How many spaces start at the current position.
    #[inline]
    fn spaces(&self) -> usize {
        self.buf.as_bytes()[self.pos.min(self.buf.len())..]
            .iter()
            .take_while(|&&c| c == b' ')
            .count()
    }

    /// The end of the current line: the position of the next break or of the end of the input.
    fn line_end(&self) -> usize {
        let b = self.buf.as_bytes();
        let mut i = self.pos;
        loop {
            i = find_byte::<STOP_LINE>(b, i);
            match b.get(i) {
                Some(0xC2 | 0xE2) if !is_break_at(b, i) => i += 1,
                _ => return i,
            }
        }
    }

    /// The end of the run of characters a plain scalar reads one by one without further checks:
    /// no blank, break, `: `, or flow indicator inside flow collections.
    fn plain_run_end(&self) -> usize {
        let b = self.buf.as_bytes();
        let flow = self.flow_level > 0;
        let mut i = self.pos;
        loop {
            i = if flow {
                find_byte::<STOP_FLOW>(b, i)
            } else {
                find_byte::<STOP_PLAIN>(b, i)
            };
            match b.get(i) {
                Some(b':') if !is_blankz_at(b, i + 1) => i += 1,
                Some(0xC2 | 0xE2) if !is_break_at(b, i) => i += 1,
                _ => return i,
            }
        }
    }

    /// The end of the run of characters a quoted scalar copies as they are: no blank, break,
    /// quote or backslash.
    fn quoted_run_end(&self) -> usize {
        let b = self.buf.as_bytes();
        let mut i = self.pos;
        loop {
            i = find_byte::<STOP_QUOTED>(b, i);
            match b.get(i) {
                Some(0xC2 | 0xE2) if !is_break_at(b, i) => i += 1,
                _ => return i,
            }
        }
    }

    fn read_line(&mut self, s: &mut Vec<u8>) {
        let b = self.read_break();
        s.extend_from_slice(b);
    }

    /// go-yaml's `read_line`: consume a line break and give what it reads as (`\n`, or the line
    /// or paragraph separator); nothing when not at a line break.
    #[inline]
    fn read_break(&mut self) -> &'static [u8] {
        const LS: &[u8] = "\u{2028}".as_bytes();
        const PS: &[u8] = "\u{2029}".as_bytes();
        let (c0, c1, c2) = (self.c(0), self.c(1), self.c(2));
        let b: &'static [u8] = if c0 == b'\r' && c1 == b'\n' {
            self.pos += 2;
            self.mark.index += 1;
            b"\n"
        } else if c0 == b'\r' || c0 == b'\n' {
            self.pos += 1;
            b"\n"
        } else if c0 == 0xC2 && c1 == 0x85 {
            self.pos += 2;
            b"\n"
        } else if c0 == 0xE2 && c1 == 0x80 && (c2 == 0xA8 || c2 == 0xA9) {
            self.pos += 3;
            if c2 == 0xA8 {
                LS
            } else {
                PS
            }
        } else {
            return b"";
        };
        self.mark.index += 1;
        self.mark.column = 0;
        self.mark.line += 1;
        self.newlines += 1;
        b
    }

    fn scanner_error(
        &self,
        context: &'static str,
        context_mark: Mark,
        problem: &'static str,
    ) -> SyntaxError {
        SyntaxError {
            context,
            context_mark,
            problem,
            problem_mark: self.mark,
        }
    }

    // ---------------------------------------------------------------- token queue

    #[inline]
    pub(crate) fn insert_token(&mut self, pos: Option<usize>, token: Token) {
        // Drop consumed tokens now and then, keeping the last two (the comment logic looks at them).
        if self.tokens_head > 16 && self.tokens_head + 2 >= self.tokens.len() {
            let drop = self.tokens_head.min(self.tokens.len().saturating_sub(2));
            self.tokens.drain(..drop);
            self.tokens_head -= drop;
        }
        self.tokens_ever += 1;
        match pos {
            None => self.tokens.push(token),
            Some(p) => {
                let idx = (self.tokens_head + p).min(self.tokens.len());
                self.tokens.insert(idx, token);
            }
        }
    }

    fn last_token(&self) -> Option<&Token> {
        self.tokens.last()
    }

    /// Ensure the token queue holds a token that can be handed to the parser.
    pub(crate) fn fetch_more_tokens(&mut self) -> Res<()> {
        loop {
            if self.tokens_head + 2 < self.tokens.len() {
                match self.by_tok_get(self.tokens_parsed) {
                    None => break,
                    Some(idx) => {
                        let mut sk = self.simple_keys.get(idx).copied().unwrap_or_default();
                        let valid = self.simple_key_is_valid(&mut sk)?;
                        if let Some(slot) = self.simple_keys.get_mut(idx) {
                            *slot = sk;
                        }
                        if !valid {
                            break;
                        }
                    }
                }
            }
            self.fetch_next_token()?;
        }
        self.token_available = true;
        Ok(())
    }

    fn fetch_next_token(&mut self) -> Res<()> {
        if !self.stream_start_produced {
            self.fetch_stream_start();
            return Ok(());
        }
        let scan_mark = self.mark;
        self.scan_to_next_token()?;
        self.unroll_indent(self.mark.column, scan_mark);

        if self.is_z(0) {
            return self.fetch_stream_end();
        }
        if self.mark.column == 0 && self.c(0) == b'%' {
            return self.fetch_directive();
        }
        let (c0, c1, c2) = (self.c(0), self.c(1), self.c(2));
        if self.mark.column == 0 && c0 == b'-' && c1 == b'-' && c2 == b'-' && self.is_blankz(3) {
            return self.fetch_document_indicator(TokenType::DocumentStart);
        }
        if self.mark.column == 0 && c0 == b'.' && c1 == b'.' && c2 == b'.' && self.is_blankz(3) {
            return self.fetch_document_indicator(TokenType::DocumentEnd);
        }

        let mut comment_mark = self.mark;
        if !self.tokens.is_empty()
            && ((self.flow_level == 0 && c0 == b':') || (self.flow_level > 0 && c0 == b','))
        {
            // Associate any following comments with the prior token.
            if let Some(t) = self.last_token() {
                comment_mark = t.start_mark;
            }
        }

        self.fetch_token_body()?;

        if self
            .last_token()
            .map(|t| t.typ == TokenType::BlockEntry)
            .unwrap_or(false)
        {
            // Sequence indicators alone have no line comments. It becomes
            // a head comment for whatever follows.
            return Ok(());
        }
        self.scan_line_comment(comment_mark)
    }

    fn fetch_token_body(&mut self) -> Res<()> {
        let c = self.c(0);
        match c {
            b'[' => return self.fetch_flow_collection_start(TokenType::FlowSequenceStart),
            b'{' => return self.fetch_flow_collection_start(TokenType::FlowMappingStart),
            b']' => return self.fetch_flow_collection_end(TokenType::FlowSequenceEnd),
            b'}' => return self.fetch_flow_collection_end(TokenType::FlowMappingEnd),
            b',' => return self.fetch_flow_entry(),
            _ => {}
        }
        if c == b'-' && self.is_blankz(1) {
            return self.fetch_block_entry();
        }
        if c == b'?' && (self.flow_level > 0 || self.is_blankz(1)) {
            return self.fetch_key();
        }
        if c == b':' && (self.flow_level > 0 || self.is_blankz(1)) {
            return self.fetch_value();
        }
        match c {
            b'*' => return self.fetch_anchor(TokenType::Alias),
            b'&' => return self.fetch_anchor(TokenType::Anchor),
            b'!' => return self.fetch_tag(),
            b'|' if self.flow_level == 0 => return self.fetch_block_scalar(true),
            b'>' if self.flow_level == 0 => return self.fetch_block_scalar(false),
            b'\'' => return self.fetch_flow_scalar(true),
            b'"' => return self.fetch_flow_scalar(false),
            _ => {}
        }
        let starts_plain = !(self.is_blankz(0)
            || matches!(
                c,
                b'-' | b'?'
                    | b':'
                    | b','
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'#'
                    | b'&'
                    | b'*'
                    | b'!'
                    | b'|'
                    | b'>'
                    | b'\''
                    | b'"'
                    | b'%'
                    | b'@'
                    | b'`'
            ))
            || (c == b'-' && !self.is_blank(1))
            || (self.flow_level == 0 && (c == b'?' || c == b':') && !self.is_blankz(1));
        if starts_plain {
            return self.fetch_plain_scalar();
        }
        Err(self.scanner_error(
            "while scanning for the next token",
            self.mark,
            "found character that cannot start any token",
        ))
    }

    fn simple_key_is_valid(&mut self, sk: &mut SimpleKey) -> Res<bool> {
        if !sk.possible {
            return Ok(false);
        }
        if sk.mark.line < self.mark.line || sk.mark.index + 1024 < self.mark.index {
            if sk.required {
                return Err(self.scanner_error(
                    "while scanning a simple key",
                    sk.mark,
                    "could not find expected ':'",
                ));
            }
            sk.possible = false;
            return Ok(false);
        }
        Ok(true)
    }

    fn save_simple_key(&mut self) -> Res<()> {
        let required = self.flow_level == 0 && self.indent == self.mark.column;
        if self.simple_key_allowed {
            let sk = SimpleKey {
                possible: true,
                required,
                token_number: self.tokens_parsed + (self.tokens.len() - self.tokens_head),
                mark: self.mark,
            };
            self.remove_simple_key()?;
            if let Some(last) = self.simple_keys.last_mut() {
                *last = sk;
            }
            let idx = self.simple_keys.len().saturating_sub(1);
            self.by_tok_remove(sk.token_number);
            self.simple_keys_by_tok.push((sk.token_number, idx));
        }
        Ok(())
    }

    fn remove_simple_key(&mut self) -> Res<()> {
        let Some(i) = self.simple_keys.len().checked_sub(1) else {
            return Ok(());
        };
        let sk = self.simple_keys[i];
        if sk.possible {
            if sk.required {
                return Err(self.scanner_error(
                    "while scanning a simple key",
                    sk.mark,
                    "could not find expected ':'",
                ));
            }
            self.simple_keys[i].possible = false;
            self.by_tok_remove(sk.token_number);
        }
        Ok(())
    }

    fn increase_flow_level(&mut self) -> Res<()> {
        self.simple_keys.push(SimpleKey {
            possible: false,
            required: false,
            token_number: self.tokens_parsed + (self.tokens.len() - self.tokens_head),
            mark: self.mark,
        });
        self.flow_level += 1;
        if self.flow_level > MAX_FLOW_LEVEL {
            let m = self.simple_keys.last().map(|k| k.mark).unwrap_or(self.mark);
            return Err(self.scanner_error(
                "while increasing flow level",
                m,
                "exceeded max depth of 10000",
            ));
        }
        Ok(())
    }

    fn decrease_flow_level(&mut self) {
        if self.flow_level > 0 {
            self.flow_level -= 1;
            if let Some(last) = self.simple_keys.pop() {
                self.by_tok_remove(last.token_number);
            }
        }
    }

    fn roll_indent(
        &mut self,
        column: i64,
        number: Option<usize>,
        typ: TokenType,
        mark: Mark,
    ) -> Res<()> {
        if self.flow_level > 0 {
            return Ok(());
        }
        if self.indent < column {
            self.indents.push(self.indent);
            self.indent = column;
            if self.indents.len() > MAX_INDENTS {
                let m = self.simple_keys.last().map(|k| k.mark).unwrap_or(self.mark);
                return Err(self.scanner_error(
                    "while increasing indent level",
                    m,
                    "exceeded max depth of 10000",
                ));
            }
            let token = Token::new(typ, mark, mark);
            let pos = number.map(|n| n.saturating_sub(self.tokens_parsed));
            self.insert_token(pos, token);
        }
        Ok(())
    }

    fn unroll_indent(&mut self, column: i64, scan_mark: Mark) {
        if self.flow_level > 0 {
            return;
        }
        let mut block_mark = scan_mark;
        block_mark.index -= 1;
        while self.indent > column {
            // Reposition the end token before potential following foot comments of parent
            // blocks: search backwards for recent comments at the indent of the ending block.
            let mut stop_index = block_mark.index;
            for comment in self.comments.iter().rev() {
                if comment.end_mark.index < stop_index {
                    break;
                }
                if comment.start_mark.column == self.indent + 1 {
                    block_mark = comment.start_mark;
                }
                stop_index = comment.scan_mark.index;
            }
            self.insert_token(
                None,
                Token::new(TokenType::BlockEnd, block_mark, block_mark),
            );
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    fn fetch_stream_start(&mut self) {
        self.indent = -1;
        self.simple_keys.push(SimpleKey::default());
        self.simple_keys_by_tok.clear();
        self.simple_key_allowed = true;
        self.stream_start_produced = true;
        self.insert_token(
            None,
            Token::new(TokenType::StreamStart, self.mark, self.mark),
        );
    }

    fn fetch_stream_end(&mut self) -> Res<()> {
        if self.mark.column != 0 {
            self.mark.column = 0;
            self.mark.line += 1;
        }
        self.unroll_indent(-1, self.mark);
        self.remove_simple_key()?;
        self.simple_key_allowed = false;
        self.insert_token(None, Token::new(TokenType::StreamEnd, self.mark, self.mark));
        Ok(())
    }

    fn fetch_directive(&mut self) -> Res<()> {
        self.unroll_indent(-1, self.mark);
        self.remove_simple_key()?;
        self.simple_key_allowed = false;
        let token = self.scan_directive()?;
        self.insert_token(None, token);
        Ok(())
    }

    fn fetch_document_indicator(&mut self, typ: TokenType) -> Res<()> {
        self.unroll_indent(-1, self.mark);
        self.remove_simple_key()?;
        self.simple_key_allowed = false;
        let start_mark = self.mark;
        self.skip();
        self.skip();
        self.skip();
        let end_mark = self.mark;
        self.insert_token(None, Token::new(typ, start_mark, end_mark));
        Ok(())
    }

    fn fetch_flow_collection_start(&mut self, typ: TokenType) -> Res<()> {
        self.save_simple_key()?;
        self.increase_flow_level()?;
        self.simple_key_allowed = true;
        let start_mark = self.mark;
        self.skip();
        let end_mark = self.mark;
        self.insert_token(None, Token::new(typ, start_mark, end_mark));
        Ok(())
    }

    fn fetch_flow_collection_end(&mut self, typ: TokenType) -> Res<()> {
        self.remove_simple_key()?;
        self.decrease_flow_level();
        self.simple_key_allowed = false;
        let start_mark = self.mark;
        self.skip();
        let end_mark = self.mark;
        self.insert_token(None, Token::new(typ, start_mark, end_mark));
        Ok(())
    }

    fn fetch_flow_entry(&mut self) -> Res<()> {
        self.remove_simple_key()?;
        self.simple_key_allowed = true;
        let start_mark = self.mark;
        self.skip();
        let end_mark = self.mark;
        self.insert_token(None, Token::new(TokenType::FlowEntry, start_mark, end_mark));
        Ok(())
    }

    fn fetch_block_entry(&mut self) -> Res<()> {
        if self.flow_level == 0 {
            if !self.simple_key_allowed {
                return Err(self.scanner_error(
                    "",
                    self.mark,
                    "block sequence entries are not allowed in this context",
                ));
            }
            self.roll_indent(
                self.mark.column,
                None,
                TokenType::BlockSequenceStart,
                self.mark,
            )?;
        }
        self.remove_simple_key()?;
        self.simple_key_allowed = true;
        let start_mark = self.mark;
        self.skip();
        let end_mark = self.mark;
        self.insert_token(
            None,
            Token::new(TokenType::BlockEntry, start_mark, end_mark),
        );
        Ok(())
    }

    fn fetch_key(&mut self) -> Res<()> {
        if self.flow_level == 0 {
            if !self.simple_key_allowed {
                return Err(self.scanner_error(
                    "",
                    self.mark,
                    "mapping keys are not allowed in this context",
                ));
            }
            self.roll_indent(
                self.mark.column,
                None,
                TokenType::BlockMappingStart,
                self.mark,
            )?;
        }
        self.remove_simple_key()?;
        self.simple_key_allowed = self.flow_level == 0;
        let start_mark = self.mark;
        self.skip();
        let end_mark = self.mark;
        self.insert_token(None, Token::new(TokenType::Key, start_mark, end_mark));
        Ok(())
    }

    fn fetch_value(&mut self) -> Res<()> {
        let idx = self.simple_keys.len().saturating_sub(1);
        let mut sk = self.simple_keys.get(idx).copied().unwrap_or_default();
        let valid = self.simple_key_is_valid(&mut sk)?;
        if let Some(slot) = self.simple_keys.get_mut(idx) {
            *slot = sk;
        }
        if valid {
            let token = Token::new(TokenType::Key, sk.mark, sk.mark);
            self.insert_token(
                Some(sk.token_number.saturating_sub(self.tokens_parsed)),
                token,
            );
            self.roll_indent(
                sk.mark.column,
                Some(sk.token_number),
                TokenType::BlockMappingStart,
                sk.mark,
            )?;
            if let Some(slot) = self.simple_keys.get_mut(idx) {
                slot.possible = false;
            }
            self.by_tok_remove(sk.token_number);
            self.simple_key_allowed = false;
        } else {
            if self.flow_level == 0 {
                if !self.simple_key_allowed {
                    return Err(self.scanner_error(
                        "",
                        self.mark,
                        "mapping values are not allowed in this context",
                    ));
                }
                self.roll_indent(
                    self.mark.column,
                    None,
                    TokenType::BlockMappingStart,
                    self.mark,
                )?;
            }
            self.simple_key_allowed = self.flow_level == 0;
        }
        let start_mark = self.mark;
        self.skip();
        let end_mark = self.mark;
        self.insert_token(None, Token::new(TokenType::Value, start_mark, end_mark));
        Ok(())
    }

    fn fetch_anchor(&mut self, typ: TokenType) -> Res<()> {
        self.save_simple_key()?;
        self.simple_key_allowed = false;
        let token = self.scan_anchor(typ)?;
        self.insert_token(None, token);
        Ok(())
    }

    fn fetch_tag(&mut self) -> Res<()> {
        self.save_simple_key()?;
        self.simple_key_allowed = false;
        let token = self.scan_tag()?;
        self.insert_token(None, token);
        Ok(())
    }

    fn fetch_block_scalar(&mut self, literal: bool) -> Res<()> {
        self.remove_simple_key()?;
        self.simple_key_allowed = true;
        let token = self.scan_block_scalar(literal)?;
        self.insert_token(None, token);
        Ok(())
    }

    fn fetch_flow_scalar(&mut self, single: bool) -> Res<()> {
        self.save_simple_key()?;
        self.simple_key_allowed = false;
        let token = self.scan_flow_scalar(single)?;
        self.insert_token(None, token);
        Ok(())
    }

    fn fetch_plain_scalar(&mut self) -> Res<()> {
        self.save_simple_key()?;
        self.simple_key_allowed = false;
        let token = self.scan_plain_scalar()?;
        self.insert_token(None, token);
        Ok(())
    }

    /// Eat whitespaces and comments until the next token is found.
    fn scan_to_next_token(&mut self) -> Res<()> {
        let scan_mark = self.mark;
        loop {
            if self.mark.column == 0 && self.is_bom() {
                self.skip();
            }
            loop {
                let n = self.spaces();
                if n > 0 {
                    self.skip_blanks(n);
                } else if (self.flow_level > 0 || !self.simple_key_allowed) && self.c(0) == b'\t' {
                    self.skip();
                } else {
                    break;
                }
            }

            // A line comment under a sequence entry that looks more like a header of the
            // following content (`- # comment` then nested data) becomes a head comment.
            if !self.comments.is_empty() && self.tokens_ever > 1 && self.tokens.len() > 1 {
                let n = self.tokens.len();
                let (ta, tb) = (self.tokens[n - 2].typ, self.tokens[n - 1].typ);
                let not_break = !self.is_break(0);
                let mark_line = self.mark.line;
                let mark = self.mark;
                if let Some(comment) = self.comments.last_mut() {
                    if ta == TokenType::BlockSequenceStart
                        && tb == TokenType::BlockEntry
                        && !comment.line.is_empty()
                        && not_break
                    {
                        comment.head = std::mem::take(&mut comment.line);
                        if comment.start_mark.line == mark_line - 1 {
                            comment.token_mark = mark;
                        }
                    }
                }
            }

            if self.c(0) == b'#' {
                self.scan_comments(scan_mark)?;
            }

            if self.is_break(0) {
                self.skip_line();
                if self.flow_level == 0 {
                    self.simple_key_allowed = true;
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    fn scan_directive(&mut self) -> Res<Token> {
        let start_mark = self.mark;
        self.skip();
        let name = self.scan_directive_name(start_mark)?;
        let mut token;
        if name == b"YAML" {
            let (major, minor) = self.scan_version_directive_value(start_mark)?;
            token = Token::new(TokenType::VersionDirective, start_mark, self.mark);
            token.major = major;
            token.minor = minor;
        } else if name == b"TAG" {
            let (handle, prefix) = self.scan_tag_directive_value(start_mark)?;
            token = Token::new(TokenType::TagDirective, start_mark, self.mark);
            token.tag = Some(Box::new(TagParts {
                handle,
                prefix,
                ..Default::default()
            }));
        } else {
            return Err(self.scanner_error(
                "while scanning a directive",
                start_mark,
                "found unknown directive name",
            ));
        }
        while self.is_blank(0) {
            self.skip();
        }
        if self.c(0) == b'#' {
            while !self.is_breakz(0) {
                self.skip();
            }
        }
        if !self.is_breakz(0) {
            return Err(self.scanner_error(
                "while scanning a directive",
                start_mark,
                "did not find expected comment or line break",
            ));
        }
        if self.is_break(0) {
            self.skip_line();
        }
        Ok(token)
    }

    fn scan_directive_name(&mut self, start_mark: Mark) -> Res<Vec<u8>> {
        let mut s = Vec::new();
        while self.is_alpha(0) {
            self.read(&mut s);
        }
        if s.is_empty() {
            return Err(self.scanner_error(
                "while scanning a directive",
                start_mark,
                "could not find expected directive name",
            ));
        }
        if !self.is_blankz(0) {
            return Err(self.scanner_error(
                "while scanning a directive",
                start_mark,
                "found unexpected non-alphabetical character",
            ));
        }
        Ok(s)
    }

    fn scan_version_directive_value(&mut self, start_mark: Mark) -> Res<(i8, i8)> {
        while self.is_blank(0) {
            self.skip();
        }
        let major = self.scan_version_directive_number(start_mark)?;
        if self.c(0) != b'.' {
            return Err(self.scanner_error(
                "while scanning a %YAML directive",
                start_mark,
                "did not find expected digit or '.' character",
            ));
        }
        self.skip();
        let minor = self.scan_version_directive_number(start_mark)?;
        Ok((major, minor))
    }

    fn scan_version_directive_number(&mut self, start_mark: Mark) -> Res<i8> {
        let mut value: i8 = 0;
        let mut length = 0;
        while self.is_digit(0) {
            length += 1;
            if length > 2 {
                return Err(self.scanner_error(
                    "while scanning a %YAML directive",
                    start_mark,
                    "found extremely long version number",
                ));
            }
            value = value * 10 + (self.c(0) - b'0') as i8;
            self.skip();
        }
        if length == 0 {
            return Err(self.scanner_error(
                "while scanning a %YAML directive",
                start_mark,
                "did not find expected version number",
            ));
        }
        Ok(value)
    }

    fn scan_tag_directive_value(&mut self, start_mark: Mark) -> Res<(Vec<u8>, Vec<u8>)> {
        while self.is_blank(0) {
            self.skip();
        }
        let handle = self.scan_tag_handle(true, start_mark)?;
        if !self.is_blank(0) {
            return Err(self.scanner_error(
                "while scanning a %TAG directive",
                start_mark,
                "did not find expected whitespace",
            ));
        }
        while self.is_blank(0) {
            self.skip();
        }
        let prefix = self.scan_tag_uri(true, &[], start_mark)?;
        if !self.is_blankz(0) {
            return Err(self.scanner_error(
                "while scanning a %TAG directive",
                start_mark,
                "did not find expected whitespace or line break",
            ));
        }
        Ok((handle, prefix))
    }

    fn scan_anchor(&mut self, typ: TokenType) -> Res<Token> {
        let mut s = TextBuf::default();
        let start_mark = self.mark;
        self.skip();
        while self.is_alpha(0) {
            self.read_text(&mut s);
        }
        let end_mark = self.mark;
        let c = self.c(0);
        let s = s.finish();
        if s.is_empty()
            || !(self.is_blankz(0)
                || matches!(c, b'?' | b':' | b',' | b']' | b'}' | b'%' | b'@' | b'`'))
        {
            let context = if typ == TokenType::Anchor {
                "while scanning an anchor"
            } else {
                "while scanning an alias"
            };
            return Err(self.scanner_error(
                context,
                start_mark,
                "did not find expected alphabetic or numeric character",
            ));
        }
        let mut token = Token::new(typ, start_mark, end_mark);
        token.value = s;
        Ok(token)
    }

    fn scan_tag(&mut self) -> Res<Token> {
        let start_mark = self.mark;
        let mut handle;
        let suffix;
        if self.c(1) == b'<' {
            handle = Vec::new();
            self.skip();
            self.skip();
            suffix = self.scan_tag_uri(false, &[], start_mark)?;
            if self.c(0) != b'>' {
                return Err(self.scanner_error(
                    "while scanning a tag",
                    start_mark,
                    "did not find the expected '>'",
                ));
            }
            self.skip();
        } else {
            handle = self.scan_tag_handle(false, start_mark)?;
            if handle.len() > 1 && handle[0] == b'!' && handle[handle.len() - 1] == b'!' {
                suffix = self.scan_tag_uri(false, &[], start_mark)?;
            } else {
                let mut suf = self.scan_tag_uri(false, &handle, start_mark)?;
                handle = vec![b'!'];
                if suf.is_empty() {
                    std::mem::swap(&mut handle, &mut suf);
                }
                suffix = suf;
            }
        }
        if !self.is_blankz(0) {
            return Err(self.scanner_error(
                "while scanning a tag",
                start_mark,
                "did not find expected whitespace or line break",
            ));
        }
        let mut token = Token::new(TokenType::Tag, start_mark, self.mark);
        token.tag = Some(Box::new(TagParts {
            handle,
            suffix,
            ..Default::default()
        }));
        Ok(token)
    }

    fn scan_tag_handle(&mut self, directive: bool, start_mark: Mark) -> Res<Vec<u8>> {
        let context = if directive {
            "while parsing a %TAG directive"
        } else {
            "while parsing a tag"
        };
        if self.c(0) != b'!' {
            return Err(self.scanner_error(context, start_mark, "did not find expected '!'"));
        }
        let mut s = Vec::new();
        self.read(&mut s);
        while self.is_alpha(0) {
            self.read(&mut s);
        }
        if self.c(0) == b'!' {
            self.read(&mut s);
        } else if directive && s != b"!" {
            return Err(self.scanner_error(context, start_mark, "did not find expected '!'"));
        }
        Ok(s)
    }

    fn scan_tag_uri(&mut self, directive: bool, head: &[u8], start_mark: Mark) -> Res<Vec<u8>> {
        let mut s = Vec::new();
        let mut has_tag = !head.is_empty();
        if head.len() > 1 {
            s.extend_from_slice(&head[1..]);
        }
        loop {
            let c = self.c(0);
            let ok = self.is_alpha(0)
                || matches!(
                    c,
                    b';' | b'/'
                        | b'?'
                        | b':'
                        | b'@'
                        | b'&'
                        | b'='
                        | b'+'
                        | b'$'
                        | b','
                        | b'.'
                        | b'!'
                        | b'~'
                        | b'*'
                        | b'\''
                        | b'('
                        | b')'
                        | b'['
                        | b']'
                        | b'%'
                );
            if !ok {
                break;
            }
            if c == b'%' {
                self.scan_uri_escapes(directive, start_mark, &mut s)?;
            } else {
                self.read(&mut s);
            }
            has_tag = true;
        }
        if !has_tag {
            let context = if directive {
                "while parsing a %TAG directive"
            } else {
                "while parsing a tag"
            };
            return Err(self.scanner_error(context, start_mark, "did not find expected tag URI"));
        }
        Ok(s)
    }

    fn scan_uri_escapes(&mut self, directive: bool, start_mark: Mark, s: &mut Vec<u8>) -> Res<()> {
        let context = if directive {
            "while parsing a %TAG directive"
        } else {
            "while parsing a tag"
        };
        let mut w: usize = 1024;
        while w > 0 {
            if !(self.c(0) == b'%' && self.is_hex(1) && self.is_hex(2)) {
                return Err(self.scanner_error(
                    context,
                    start_mark,
                    "did not find URI escaped octet",
                ));
            }
            let octet = ((self.as_hex(1) << 4) + self.as_hex(2)) as u8;
            if w == 1024 {
                w = if octet & 0x80 == 0 {
                    1
                } else if octet & 0xE0 == 0xC0 {
                    2
                } else if octet & 0xF0 == 0xE0 {
                    3
                } else if octet & 0xF8 == 0xF0 {
                    4
                } else {
                    0
                };
                if w == 0 {
                    return Err(self.scanner_error(
                        context,
                        start_mark,
                        "found an incorrect leading UTF-8 octet",
                    ));
                }
            } else if octet & 0xC0 != 0x80 {
                return Err(self.scanner_error(
                    context,
                    start_mark,
                    "found an incorrect trailing UTF-8 octet",
                ));
            }
            s.push(octet);
            self.skip();
            self.skip();
            self.skip();
            w -= 1;
        }
        Ok(())
    }

    fn scan_block_scalar(&mut self, literal: bool) -> Res<Token> {
        let start_mark = self.mark;
        self.skip();

        let mut chomping = 0i32;
        let mut increment = 0i64;
        if self.c(0) == b'+' || self.c(0) == b'-' {
            chomping = if self.c(0) == b'+' { 1 } else { -1 };
            self.skip();
            if self.is_digit(0) {
                if self.c(0) == b'0' {
                    return Err(self.scanner_error(
                        "while scanning a block scalar",
                        start_mark,
                        "found an indentation indicator equal to 0",
                    ));
                }
                increment = (self.c(0) - b'0') as i64;
                self.skip();
            }
        } else if self.is_digit(0) {
            if self.c(0) == b'0' {
                return Err(self.scanner_error(
                    "while scanning a block scalar",
                    start_mark,
                    "found an indentation indicator equal to 0",
                ));
            }
            increment = (self.c(0) - b'0') as i64;
            self.skip();
            if self.c(0) == b'+' || self.c(0) == b'-' {
                chomping = if self.c(0) == b'+' { 1 } else { -1 };
                self.skip();
            }
        }

        while self.is_blank(0) {
            self.skip();
        }
        if self.c(0) == b'#' {
            self.scan_line_comment(start_mark)?;
            while !self.is_breakz(0) {
                self.skip();
            }
        }
        if !self.is_breakz(0) {
            return Err(self.scanner_error(
                "while scanning a block scalar",
                start_mark,
                "did not find expected comment or line break",
            ));
        }
        if self.is_break(0) {
            self.skip_line();
        }

        let mut end_mark = self.mark;
        let mut indent: i64 = 0;
        if increment > 0 {
            indent = if self.indent >= 0 {
                self.indent + increment
            } else {
                increment
            };
        }

        let mut s = Vec::new();
        // (a single line break: `read_break` never appends to a non-empty one)
        let mut leading_break: &'static [u8] = b"";
        let mut trailing_breaks = Vec::new();
        self.scan_block_scalar_breaks(
            &mut indent,
            &mut trailing_breaks,
            start_mark,
            &mut end_mark,
        )?;

        let mut leading_blank = false;
        while self.mark.column == indent && !self.is_z(0) {
            let trailing_blank = self.is_blank(0);
            if !literal
                && !leading_blank
                && !trailing_blank
                && leading_break.first() == Some(&b'\n')
            {
                if trailing_breaks.is_empty() {
                    s.push(b' ');
                }
            } else {
                s.extend_from_slice(leading_break);
            }
            s.extend_from_slice(&trailing_breaks);
            trailing_breaks.clear();

            leading_blank = self.is_blank(0);

            let end = self.line_end();
            self.read_run(&mut s, end, false);
            leading_break = self.read_break();
            self.scan_block_scalar_breaks(
                &mut indent,
                &mut trailing_breaks,
                start_mark,
                &mut end_mark,
            )?;
        }

        if chomping != -1 {
            s.extend_from_slice(leading_break);
        }
        if chomping == 1 {
            s.extend_from_slice(&trailing_breaks);
        }

        let mut token = Token::new(TokenType::Scalar, start_mark, end_mark);
        token.value = Text::Owned(bytes_to_string(s));
        token.style = if literal {
            ScalarStyle::Literal
        } else {
            ScalarStyle::Folded
        };
        Ok(token)
    }

    fn scan_block_scalar_breaks(
        &mut self,
        indent: &mut i64,
        breaks: &mut Vec<u8>,
        start_mark: Mark,
        end_mark: &mut Mark,
    ) -> Res<()> {
        *end_mark = self.mark;
        let mut max_indent = 0;
        loop {
            let mut n = self.spaces();
            if *indent != 0 {
                n = n.min((*indent - self.mark.column).max(0) as usize);
            }
            self.skip_blanks(n);
            if self.mark.column > max_indent {
                max_indent = self.mark.column;
            }
            if (*indent == 0 || self.mark.column < *indent) && self.c(0) == b'\t' {
                return Err(self.scanner_error(
                    "while scanning a block scalar",
                    start_mark,
                    "found a tab character where an indentation space is expected",
                ));
            }
            if !self.is_break(0) {
                break;
            }
            self.read_line(breaks);
            *end_mark = self.mark;
        }
        if *indent == 0 {
            *indent = max_indent;
            if *indent < self.indent + 1 {
                *indent = self.indent + 1;
            }
            if *indent < 1 {
                *indent = 1;
            }
        }
        Ok(())
    }

    fn scan_flow_scalar(&mut self, single: bool) -> Res<Token> {
        let start_mark = self.mark;
        self.skip();

        let mut s = TextBuf::default();
        // (a single line break: `read_break` never appends to a non-empty one)
        let mut leading_break: &'static [u8] = b"";
        let mut trailing_breaks = Vec::new();
        let mut whitespaces = Span::default();
        loop {
            let (c0, c1, c2) = (self.c(0), self.c(1), self.c(2));
            if self.mark.column == 0
                && ((c0 == b'-' && c1 == b'-' && c2 == b'-')
                    || (c0 == b'.' && c1 == b'.' && c2 == b'.'))
                && self.is_blankz(3)
            {
                return Err(self.scanner_error(
                    "while scanning a quoted scalar",
                    start_mark,
                    "found unexpected document indicator",
                ));
            }
            if self.is_z(0) {
                return Err(self.scanner_error(
                    "while scanning a quoted scalar",
                    start_mark,
                    "found unexpected end of stream",
                ));
            }

            let mut leading_blanks = false;
            while !self.is_blankz(0) {
                let c = self.c(0);
                if single && c == b'\'' && self.c(1) == b'\'' {
                    s.push(self.buf.as_bytes(), b"'");
                    self.skip();
                    self.skip();
                } else if (single && c == b'\'') || (!single && c == b'"') {
                    break;
                } else if !single && c == b'\\' && self.is_break(1) {
                    self.skip();
                    self.skip_line();
                    leading_blanks = true;
                    break;
                } else if !single && c == b'\\' {
                    let mut code_length = 0usize;
                    let escaped: &[u8] = match self.c(1) {
                        b'0' => &[0],
                        b'a' => &[0x07],
                        b'b' => &[0x08],
                        b't' | b'\t' => &[0x09],
                        b'n' => &[0x0A],
                        b'v' => &[0x0B],
                        b'f' => &[0x0C],
                        b'r' => &[0x0D],
                        b'e' => &[0x1B],
                        b' ' => &[0x20],
                        b'"' => b"\"",
                        b'\'' => b"'",
                        b'\\' => b"\\",
                        b'N' => &[0xC2, 0x85],
                        b'_' => &[0xC2, 0xA0],
                        b'L' => &[0xE2, 0x80, 0xA8],
                        b'P' => &[0xE2, 0x80, 0xA9],
                        b'x' => {
                            code_length = 2;
                            &[]
                        }
                        b'u' => {
                            code_length = 4;
                            &[]
                        }
                        b'U' => {
                            code_length = 8;
                            &[]
                        }
                        _ => {
                            return Err(self.scanner_error(
                                "while parsing a quoted scalar",
                                start_mark,
                                "found unknown escape character",
                            ))
                        }
                    };
                    s.push(self.buf.as_bytes(), escaped);
                    self.skip();
                    self.skip();
                    if code_length > 0 {
                        let mut value: u32 = 0;
                        for k in 0..code_length {
                            if !self.is_hex(k) {
                                return Err(self.scanner_error(
                                    "while parsing a quoted scalar",
                                    start_mark,
                                    "did not find expected hexdecimal number",
                                ));
                            }
                            value = (value << 4) + self.as_hex(k);
                        }
                        match char::from_u32(value) {
                            Some(ch) => {
                                let mut tmp = [0u8; 4];
                                s.push(self.buf.as_bytes(), ch.encode_utf8(&mut tmp).as_bytes());
                            }
                            None => {
                                return Err(self.scanner_error(
                                    "while parsing a quoted scalar",
                                    start_mark,
                                    "found invalid Unicode character escape code",
                                ))
                            }
                        }
                        for _ in 0..code_length {
                            self.skip();
                        }
                    }
                } else {
                    let end = self.quoted_run_end();
                    if end > self.pos {
                        self.read_run_text(&mut s, end);
                    } else {
                        self.read_text(&mut s);
                    }
                }
            }

            if single {
                if self.c(0) == b'\'' {
                    break;
                }
            } else if self.c(0) == b'"' {
                break;
            }

            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    let n = self.spaces().max(1);
                    if !leading_blanks {
                        self.read_blanks(&mut whitespaces, n);
                    } else {
                        self.skip_blanks(n);
                    }
                } else if !leading_blanks {
                    whitespaces = Span::default();
                    leading_break = self.read_break();
                    leading_blanks = true;
                } else {
                    self.read_line(&mut trailing_breaks);
                }
            }

            if leading_blanks {
                let buf = self.buf.as_bytes();
                if leading_break.first() == Some(&b'\n') {
                    if trailing_breaks.is_empty() {
                        s.push(buf, b" ");
                    } else {
                        s.push(buf, &trailing_breaks);
                    }
                } else {
                    s.push(buf, leading_break);
                    s.push(buf, &trailing_breaks);
                }
                trailing_breaks.clear();
                leading_break = b"";
            } else {
                s.run(self.buf.as_bytes(), whitespaces.start, whitespaces.end);
                whitespaces = Span::default();
            }
        }

        self.skip();
        let end_mark = self.mark;
        let mut token = Token::new(TokenType::Scalar, start_mark, end_mark);
        token.value = s.finish();
        token.style = if single {
            ScalarStyle::SingleQuoted
        } else {
            ScalarStyle::DoubleQuoted
        };
        Ok(token)
    }

    fn scan_plain_scalar(&mut self) -> Res<Token> {
        let mut s = TextBuf::default();
        // (a single line break: `read_break` never appends to a non-empty one)
        let mut leading_break: &'static [u8] = b"";
        let mut trailing_breaks = Vec::new();
        let mut whitespaces = Span::default();
        let mut leading_blanks = false;
        let indent = self.indent + 1;

        let start_mark = self.mark;
        let mut end_mark = self.mark;

        loop {
            let (c0, c1, c2) = (self.c(0), self.c(1), self.c(2));
            if self.mark.column == 0
                && ((c0 == b'-' && c1 == b'-' && c2 == b'-')
                    || (c0 == b'.' && c1 == b'.' && c2 == b'.'))
                && self.is_blankz(3)
            {
                break;
            }
            if self.c(0) == b'#' {
                break;
            }

            while !self.is_blankz(0) {
                let c = self.c(0);
                if (c == b':' && self.is_blankz(1))
                    || (self.flow_level > 0 && matches!(c, b',' | b'?' | b'[' | b']' | b'{' | b'}'))
                {
                    break;
                }
                if leading_blanks || !whitespaces.is_empty() {
                    let buf = self.buf.as_bytes();
                    if leading_blanks {
                        if leading_break.first() == Some(&b'\n') {
                            if trailing_breaks.is_empty() {
                                s.push(buf, b" ");
                            } else {
                                s.push(buf, &trailing_breaks);
                            }
                        } else {
                            s.push(buf, leading_break);
                            s.push(buf, &trailing_breaks);
                        }
                        trailing_breaks.clear();
                        leading_break = b"";
                        leading_blanks = false;
                    } else {
                        s.run(buf, whitespaces.start, whitespaces.end);
                        whitespaces = Span::default();
                    }
                }
                let end = self.plain_run_end();
                if end > self.pos {
                    self.read_run_text(&mut s, end);
                } else {
                    self.read_text(&mut s);
                }
                end_mark = self.mark;
            }

            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }

            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    if leading_blanks && self.mark.column < indent && self.c(0) == b'\t' {
                        return Err(self.scanner_error(
                            "while scanning a plain scalar",
                            start_mark,
                            "found a tab character that violates indentation",
                        ));
                    }
                    let n = self.spaces().max(1);
                    if !leading_blanks {
                        self.read_blanks(&mut whitespaces, n);
                    } else {
                        self.skip_blanks(n);
                    }
                } else if !leading_blanks {
                    whitespaces = Span::default();
                    leading_break = self.read_break();
                    leading_blanks = true;
                } else {
                    self.read_line(&mut trailing_breaks);
                }
            }

            if self.flow_level == 0 && self.mark.column < indent {
                break;
            }
        }

        let mut token = Token::new(TokenType::Scalar, start_mark, end_mark);
        token.value = s.finish();
        token.style = ScalarStyle::Plain;
        if leading_blanks {
            self.simple_key_allowed = true;
        }
        Ok(token)
    }

    fn scan_line_comment(&mut self, token_mark: Mark) -> Res<()> {
        if self.newlines > 0 {
            return Ok(());
        }
        let mut start_mark = Mark::default();
        let mut text = Vec::new();
        let mut peek = 0usize;
        while peek < 512 {
            if self.is_blank(peek) {
                peek += 1;
                continue;
            }
            if self.c(peek) == b'#' {
                let seen = self.mark.index + peek as i64;
                loop {
                    if self.is_breakz(0) {
                        if self.mark.index >= seen {
                            break;
                        }
                        self.skip_line();
                    } else if self.mark.index >= seen {
                        if text.is_empty() {
                            start_mark = self.mark;
                        }
                        let end = self.line_end();
                        self.read_run(&mut text, end, false);
                    } else {
                        self.skip();
                    }
                }
            }
            break;
        }
        if !text.is_empty() {
            self.comments.push(Comment {
                token_mark,
                start_mark,
                line: text,
                ..Default::default()
            });
        }
        Ok(())
    }

    fn scan_comments(&mut self, mut scan_mark: Mark) -> Res<()> {
        let mut token = match self.tokens.last() {
            Some(t) => (t.typ, t.start_mark),
            None => (TokenType::None, Mark::default()),
        };
        if token.0 == TokenType::FlowEntry && self.tokens.len() > 1 {
            let t = &self.tokens[self.tokens.len() - 2];
            token = (t.typ, t.start_mark);
        }
        let (token_typ, mut token_mark) = token;
        let mut start_mark = Mark::default();
        let mut next_indent = self.indent.max(0);

        let mut recent_empty = false;
        let mut first_empty = self.newlines <= 1;

        let mut line = self.mark.line;
        let mut column = self.mark.column;

        let mut text: Vec<u8> = Vec::new();

        let mut foot_line = -1;
        if scan_mark.line > 0 {
            foot_line = self.mark.line - self.newlines + 1;
            if self.newlines == 0 && self.mark.column > 1 {
                foot_line += 1;
            }
        }

        let mut peek = 0usize;
        while peek < 512 {
            column += 1;
            if self.is_blank(peek) {
                peek += 1;
                continue;
            }
            let c = self.c(peek);
            let close_flow = self.flow_level > 0 && (c == b']' || c == b'}');
            if close_flow || self.is_breakz(peek) {
                // Got line break or terminator.
                if close_flow || !recent_empty {
                    if close_flow
                        || (first_empty
                            && ((start_mark.line == foot_line && token_typ != TokenType::Value)
                                || start_mark.column - 1 < next_indent))
                    {
                        // This is the first empty line and there were no empty lines before,
                        // so this initial part of the comment is a foot of the prior token
                        // instead of being a head for the following one. Split it up.
                        if !text.is_empty() {
                            if start_mark.column - 1 < next_indent {
                                // If dedented it's unrelated to the prior token.
                                token_mark = start_mark;
                            }
                            let end = Mark {
                                index: self.mark.index + peek as i64,
                                line,
                                column,
                            };
                            self.comments.push(Comment {
                                scan_mark,
                                token_mark,
                                start_mark,
                                end_mark: end,
                                foot: std::mem::take(&mut text),
                                ..Default::default()
                            });
                            scan_mark = end;
                            token_mark = scan_mark;
                        }
                    } else if !text.is_empty() && self.c(peek) != 0 {
                        text.push(b'\n');
                    }
                }
                if !self.is_break(peek) {
                    break;
                }
                first_empty = false;
                recent_empty = true;
                column = 0;
                line += 1;
                peek += 1;
                continue;
            }

            if !text.is_empty()
                && (close_flow || (column - 1 < next_indent && column != start_mark.column))
            {
                // The comment at the different indentation is a foot of the
                // preceding data rather than a head of the upcoming one.
                let end = Mark {
                    index: self.mark.index + peek as i64,
                    line,
                    column,
                };
                self.comments.push(Comment {
                    scan_mark,
                    token_mark,
                    start_mark,
                    end_mark: end,
                    foot: std::mem::take(&mut text),
                    ..Default::default()
                });
                scan_mark = end;
                token_mark = scan_mark;
            }

            if self.c(peek) != b'#' {
                break;
            }

            if text.is_empty() {
                start_mark = Mark {
                    index: self.mark.index + peek as i64,
                    line,
                    column,
                };
            } else {
                text.push(b'\n');
            }

            recent_empty = false;

            // Consume until after the consumed comment line.
            let seen = self.mark.index + peek as i64;
            loop {
                if self.is_breakz(0) {
                    if self.mark.index >= seen {
                        break;
                    }
                    self.skip_line();
                } else if self.mark.index >= seen {
                    let end = self.line_end();
                    self.read_run(&mut text, end, false);
                } else {
                    self.skip();
                }
            }

            peek = 0;
            column = 0;
            line = self.mark.line;
            next_indent = self.indent.max(0);
            // go-yaml's `for ...; peek++` post statement runs after `peek = 0` too.
            peek += 1;
        }

        if !text.is_empty() {
            self.comments.push(Comment {
                scan_mark,
                token_mark: start_mark,
                start_mark,
                end_mark: Mark {
                    index: self.mark.index + peek as i64 - 1,
                    line,
                    column,
                },
                head: text,
                ..Default::default()
            });
        }
        Ok(())
    }
}
