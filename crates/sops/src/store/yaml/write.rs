//! Writing branches the way sops 3.11 does: the tree is turned into go-yaml nodes like sops'
//! `appendTreeBranch`/`appendSequence` (comments become head comments of the next key or item,
//! trailing ones foot comments of the last), scalars get the style `Node.Encode` would give them,
//! and the resulting event stream goes through go-yaml's emitter ([`goyaml::emitterc`]).
//!
//! Events are made one at a time from the tree (the emitter looks one event ahead) and their
//! scalars borrow the tree's strings.

use std::borrow::Cow;

use base64::Engine as _;
use goyaml::emitterc::{analyze_scalar, select_style, Analysis, Event as Ev, EventType as Et};
use goyaml::resolve;
use goyaml::scannerc::ScalarStyle;

use crate::value::{Map, MapItem, Value};

// ------------------------------------------------------------------------------------------
// Tree -> events (sops `appendTreeBranch` + go-yaml `encoder.node`)

const MERGE_LONG: &str = "tag:yaml.org,2002:merge";
const BINARY_LONG: &str = "tag:yaml.org,2002:binary";

/// go-yaml `encodeBase64`: lines of 70 characters, each ending in a newline when there are
/// several.
fn encode_base64(data: &[u8]) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    const LINE: usize = 70;
    if enc.len() < LINE {
        return enc;
    }
    let mut out = String::with_capacity(enc.len() + enc.len() / LINE + 1);
    for chunk in enc.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// The style `Node.Encode` requests for a string.
fn string_style(s: &str) -> ScalarStyle {
    if s.contains('\n') {
        ScalarStyle::Literal
    } else if !resolve::string_needs_quotes(s) {
        ScalarStyle::Plain
    } else {
        ScalarStyle::DoubleQuoted
    }
}

/// The scalar node `Node.Encode(v)` produces: value, explicit long tag, style, and the
/// analysis of the value.
fn encode_scalar(v: &Value) -> (Cow<'_, str>, &'static str, ScalarStyle, Analysis) {
    let owned = |s: String| (Cow::Owned(s), "", ScalarStyle::Plain);
    let (text, tag, requested) = match v {
        Value::Null => (Cow::Borrowed("null"), "", ScalarStyle::Plain),
        Value::Bool(b) => (
            Cow::Borrowed(if *b { "true" } else { "false" }),
            "",
            ScalarStyle::Plain,
        ),
        Value::Int(i) => owned(i.to_string()),
        Value::Uint(u) => owned(u.to_string()),
        Value::Float(f) => owned(resolve::format_float(*f)),
        Value::Time(t) => (Cow::Borrowed(t.0.as_str()), "", ScalarStyle::Plain),
        Value::Str(s) | Value::Comment(s) => return encode_str(s),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => return encode_str(s),
            Err(_) => {
                let s = encode_base64(b);
                let style = if s.contains('\n') {
                    ScalarStyle::Literal
                } else {
                    ScalarStyle::Plain
                };
                (Cow::Owned(s), BINARY_LONG, style)
            }
        },
        // Collections never get here.
        Value::Map(_) | Value::Seq(_) => (Cow::Borrowed("null"), "", ScalarStyle::Plain),
    };
    encode_text(text, tag, requested)
}

/// `encode_scalar` for a string.
fn encode_str(s: &str) -> (Cow<'_, str>, &'static str, ScalarStyle, Analysis) {
    encode_text(Cow::Borrowed(s), "", string_style(s))
}

fn encode_text<'a>(
    text: Cow<'a, str>,
    tag: &'static str,
    requested: ScalarStyle,
) -> (Cow<'a, str>, &'static str, ScalarStyle, Analysis) {
    // First pass: go-yaml emits the value as a document root and parses it back.
    let a = analyze_scalar(text.as_bytes());
    let has_tag = !tag.is_empty();
    let mut style1 = select_style(requested, &a, text.is_empty(), has_tag, !has_tag, 0, false);
    if style1 == ScalarStyle::Literal && text.starts_with('\t') {
        // go-yaml cannot read back a literal block whose first line starts with a tab, so
        // `Node.Encode` fails, sops ignores the error and writes `null` (losing the value).
        // Deliberate divergence: keep the value, double-quoted.
        style1 = ScalarStyle::DoubleQuoted;
    }
    // Reparse: a plain `<<` gets the merge tag, which the encoder then keeps.
    let final_tag = if has_tag {
        tag
    } else if style1 == ScalarStyle::Plain && text == "<<" {
        MERGE_LONG
    } else {
        ""
    };
    (text, final_tag, style1, a)
}

fn scalar_event<'a>(
    encoded: (Cow<'a, str>, &'static str, ScalarStyle, Analysis),
    head: Option<String>,
    foot: Option<String>,
) -> Ev<'a> {
    let (text, tag, style, analysis) = encoded;
    let mut ev = Ev::new(Et::Scalar);
    ev.implicit = tag.is_empty();
    ev.quoted_implicit = tag.is_empty();
    ev.tag = tag;
    ev.value = text;
    ev.analysis = analysis;
    ev.style = style;
    ev.head = head.unwrap_or_default();
    ev.foot = foot.unwrap_or_default();
    ev
}

/// sops: `"#" + strings.Join(comments, "\n#")`.
fn make_comment(comments: &[&str]) -> Option<String> {
    if comments.is_empty() {
        return None;
    }
    let mut s = String::from("#");
    s.push_str(&comments.join("\n#"));
    Some(s)
}

fn combine_head(extra: Option<String>, own: Option<String>) -> String {
    match (extra, own) {
        (Some(mut e), Some(o)) => {
            e.push('\n');
            e.push_str(&o);
            e
        }
        (Some(e), None) => e,
        (None, Some(o)) => o,
        (None, None) => String::new(),
    }
}

/// Work items for the event source (an explicit stack instead of recursion); each one gives
/// exactly one event.
enum Work<'a> {
    /// A document's branch.
    Branch(&'a Map),
    /// A value with extra head/foot comments (sops `treeValueToNode` followed by
    /// `addCommentsHead`/`addCommentsFoot`, then go-yaml `encoder.node`).
    Value(&'a Value, Option<String>, Option<String>),
    /// An encrypted comment in a list: a plain list item (sops quirk, #811).
    Str(&'a str, Option<String>, Option<String>),
    /// A mapping key with its head comment.
    Key(&'a str, Option<String>),
    /// An event without content or comments.
    Bare(Et),
    /// The end of a mapping, with its tail comment (the foot of its last key) and foot comment.
    MappingEnd(String, String),
    /// The end of a sequence, with its foot comment.
    SequenceEnd(String),
}

impl Work<'_> {
    fn set_foot(&mut self, f: Option<String>) {
        if let Work::Value(_, _, foot) | Work::Str(_, _, foot) = self {
            *foot = f;
        }
    }
}

/// The events of a stream of branches, produced one at a time.
struct Events<'a> {
    work: Vec<Work<'a>>,
    /// Scratch list of pending comments.
    comments: Vec<&'a str>,
}

impl<'a> Events<'a> {
    fn new(branches: &'a [Map]) -> Self {
        let mut work = Vec::with_capacity(32);
        work.push(Work::Bare(Et::StreamEnd));
        for branch in branches.iter().rev() {
            work.push(Work::Bare(Et::DocumentEnd));
            work.push(Work::Branch(branch));
            work.push(Work::Bare(Et::DocumentStart));
        }
        work.push(Work::Bare(Et::StreamStart));
        Events {
            work,
            comments: Vec::new(),
        }
    }

    /// The mapping start event; the keys, values and end event go on the work stack.
    fn mapping(&mut self, m: &'a Map, extra_head: Option<String>, foot: Option<String>) -> Ev<'a> {
        self.comments.clear();
        let mut beginning = true;
        let mut own_head = None;
        let base = self.work.len();
        for item in &m.items {
            match item {
                MapItem::Comment(c) => self.comments.push(c),
                MapItem::Pair(k, v) => {
                    if beginning {
                        own_head = make_comment(&self.comments);
                        self.comments.clear();
                        beginning = false;
                    }
                    let key_head = make_comment(&self.comments);
                    self.comments.clear();
                    self.work.push(Work::Key(k, key_head));
                    self.work.push(Work::Value(v, None, None));
                }
            }
        }
        let mut last_key_foot = None;
        if !self.comments.is_empty() {
            if beginning {
                own_head = make_comment(&self.comments);
            } else {
                last_key_foot = make_comment(&self.comments);
            }
        }
        self.work.push(Work::MappingEnd(
            last_key_foot.unwrap_or_default(),
            foot.unwrap_or_default(),
        ));
        self.work[base..].reverse();
        let mut start = Ev::new(Et::MappingStart);
        start.head = combine_head(extra_head, own_head);
        start
    }

    /// The sequence start event; the items and end event go on the work stack.
    fn sequence(
        &mut self,
        items: &'a [Value],
        extra_head: Option<String>,
        foot: Option<String>,
    ) -> Ev<'a> {
        self.comments.clear();
        let mut beginning = true;
        let mut own_head = None;
        let base = self.work.len();
        for item in items {
            match item {
                Value::Comment(c) if !c.starts_with("ENC[") => self.comments.push(c),
                other => {
                    if beginning {
                        own_head = make_comment(&self.comments);
                        self.comments.clear();
                        beginning = false;
                    }
                    let head = make_comment(&self.comments);
                    self.comments.clear();
                    self.work.push(match other {
                        Value::Comment(c) => Work::Str(c, head, None),
                        v => Work::Value(v, head, None),
                    });
                }
            }
        }
        if !self.comments.is_empty() {
            if beginning {
                own_head = make_comment(&self.comments);
            } else if let Some(last) = self.work.last_mut() {
                last.set_foot(make_comment(&self.comments));
            }
        }
        self.work.push(Work::SequenceEnd(foot.unwrap_or_default()));
        self.work[base..].reverse();
        let mut start = Ev::new(Et::SequenceStart);
        start.head = combine_head(extra_head, own_head);
        start
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Ev<'a>;

    fn next(&mut self) -> Option<Ev<'a>> {
        Some(match self.work.pop()? {
            Work::Bare(typ) => Ev::new(typ),
            Work::MappingEnd(tail, foot) => {
                let mut ev = Ev::new(Et::MappingEnd);
                ev.tail = tail;
                ev.foot = foot;
                ev
            }
            Work::SequenceEnd(foot) => {
                let mut ev = Ev::new(Et::SequenceEnd);
                ev.foot = foot;
                ev
            }
            Work::Branch(m) => self.mapping(m, None, None),
            Work::Value(v, head, foot) => match v {
                Value::Map(m) => self.mapping(m, head, foot),
                Value::Seq(s) => self.sequence(s, head, foot),
                other => scalar_event(encode_scalar(other), head, foot),
            },
            Work::Str(s, head, foot) => scalar_event(encode_str(s), head, foot),
            Work::Key(k, head) => scalar_event(encode_str(k), head, None),
        })
    }
}

/// Emit branches as YAML documents, the way sops 3.11 writes them.
pub fn emit_documents(branches: &[Map], indent: usize) -> String {
    let indent = if indent == 0 {
        4
    } else {
        indent.min(1000) as i64
    };
    let out = goyaml::emitterc::emit(Events::new(branches), indent);
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}
