//! Composition of events into a node tree (go-yaml v3's `decode.go` parser half, comments
//! included) and conversion of that tree into sops branches the way sops 3.11's YAML store does
//! it (`appendYamlNodeToTreeBranch` / `nodeToTreeValue`), with go-yaml's decoding rules for
//! scalars, its duplicate-key, merge and aliasing checks, and a nesting limit.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use base64::Engine as _;

use super::parser::{CollectionStyle, Event, EventParser, EventType};
use super::resolve::{self, Resolved};
use super::scanner::{bytes_to_string, Mark, ScalarStyle, SyntaxError, Text};
use super::YamlError;
use crate::value::{Map, MapItem, Timestamp, Value};

/// Maximum nesting depth of collections (also after alias expansion).
pub const MAX_DEPTH: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Document,
    Sequence,
    Mapping,
    Scalar,
    Alias,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStyle {
    pub tagged: bool,
    pub double_quoted: bool,
    pub single_quoted: bool,
    pub literal: bool,
    pub folded: bool,
    pub flow: bool,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    pub style: NodeStyle,
    /// Short tag (`!!str`, `!!int`, `!custom`...).
    pub tag: Cow<'static, str>,
    /// The scalar text, or the anchor name of an alias.
    pub value: Text,
    pub alias: Option<usize>,
    pub content: Vec<usize>,
    /// Head, line and foot comments (`None` when all three are empty).
    comments: Option<Box<[String; 3]>>,
    /// 1-based.
    pub line: usize,
    pub column: usize,
    /// The untagged plain-scalar resolution computed while composing (reused when decoding).
    resolved: Option<Resolved>,
}

const HEAD: usize = 0;
const LINE: usize = 1;
const FOOT: usize = 2;

impl Node {
    #[inline]
    fn comment(&self, which: usize) -> &str {
        self.comments
            .as_ref()
            .map(|c| c[which].as_str())
            .unwrap_or("")
    }
    #[inline]
    pub fn head(&self) -> &str {
        self.comment(HEAD)
    }
    #[inline]
    pub fn line(&self) -> &str {
        self.comment(LINE)
    }
    #[inline]
    pub fn foot(&self) -> &str {
        self.comment(FOOT)
    }
    /// Replace a comment (even by an empty one).
    #[inline]
    fn set_comment(&mut self, which: usize, text: String) {
        match self.comments.as_mut() {
            Some(c) => c[which] = text,
            None if text.is_empty() => {}
            None => {
                let mut c: Box<[String; 3]> = Box::default();
                c[which] = text;
                self.comments = Some(c);
            }
        }
    }
    fn take_comment(&mut self, which: usize) -> String {
        self.comments
            .as_mut()
            .map(|c| std::mem::take(&mut c[which]))
            .unwrap_or_default()
    }
}

/// The line and foot comments of a collection end event.
fn end_comments(end: Event) -> (String, String) {
    match end.comments {
        Some(c) => (bytes_to_string(c.line), bytes_to_string(c.foot)),
        None => (String::new(), String::new()),
    }
}

#[inline]
fn pos(mark: Mark) -> (usize, usize) {
    (
        (mark.line.max(0) + 1) as usize,
        (mark.column.max(0) + 1) as usize,
    )
}

pub fn syntax_error(e: &SyntaxError) -> YamlError {
    let (line, column) = pos(e.problem_mark);
    let mut reason = e.problem.to_string();
    if !e.context.is_empty() {
        let (cl, cc) = pos(e.context_mark);
        reason = format!("{reason} ({} at line {cl}, column {cc})", e.context);
    }
    YamlError::Syntax {
        line,
        column,
        reason,
    }
}

/// Builds go-yaml `Node`s from events.
struct Composer {
    ep: EventParser,
    event: Option<Event>,
    nodes: Vec<Node>,
    anchors: HashMap<String, usize>,
    depth: usize,
    started: bool,
}

impl Composer {
    fn peek(&mut self) -> Result<EventType, YamlError> {
        if self.event.is_none() {
            match self.ep.parse_into(&mut self.event) {
                Ok(true) => {}
                Ok(false) => {
                    let (line, column) = pos(self.ep.p.mark);
                    return Err(YamlError::Syntax {
                        line,
                        column,
                        reason: "attempted to go past the end of stream".into(),
                    });
                }
                Err(e) => return Err(syntax_error(&e)),
            }
        }
        Ok(self
            .event
            .as_ref()
            .map(|e| e.typ)
            .unwrap_or(EventType::None))
    }

    /// The event `peek` returned the type of.
    #[inline]
    fn take_peeked(&mut self) -> Result<Event, YamlError> {
        match self.event.take() {
            Some(ev) => Ok(ev),
            None => Err(YamlError::Syntax {
                line: 0,
                column: 0,
                reason: "unexpected end of events".into(),
            }),
        }
    }

    fn take(&mut self, typ: EventType) -> Result<Event, YamlError> {
        let t = self.peek()?;
        let ev = self.event.take();
        match ev {
            Some(ev) if t == typ => Ok(ev),
            Some(ev) => {
                let (line, column) = pos(ev.start_mark);
                Err(YamlError::Syntax {
                    line,
                    column,
                    reason: "unexpected event".into(),
                })
            }
            None => Err(YamlError::Syntax {
                line: 0,
                column: 0,
                reason: "unexpected end of events".into(),
            }),
        }
    }

    fn new_node(
        &mut self,
        kind: Kind,
        default_tag: &'static str,
        ev: &mut Event,
        value: Text,
    ) -> usize {
        let raw_tag = bytes_to_string(std::mem::take(&mut ev.tag));
        let mut style = NodeStyle::default();
        let mut resolved = None;
        let tag: Cow<'static, str> = if !raw_tag.is_empty() && raw_tag != "!" {
            style.tagged = true;
            Cow::Owned(resolve::short_tag(&raw_tag))
        } else if !default_tag.is_empty() {
            Cow::Borrowed(default_tag)
        } else if kind == Kind::Scalar {
            // Plain scalars without a tag never fail to resolve.
            let (t, r) = resolve::resolve_untagged(value.get(&self.ep.p.buf));
            resolved = Some(r);
            Cow::Borrowed(t)
        } else {
            Cow::Borrowed("")
        };
        let (line, column) = pos(ev.start_mark);
        self.nodes.push(Node {
            kind,
            style,
            tag,
            value,
            alias: None,
            content: if kind == Kind::Mapping || kind == Kind::Sequence {
                Vec::with_capacity(8)
            } else {
                Vec::new()
            },
            comments: ev.comments.take().map(|c| {
                Box::new([
                    bytes_to_string(c.head),
                    bytes_to_string(c.line),
                    bytes_to_string(c.foot),
                ])
            }),
            line,
            column,
            resolved,
        });
        self.nodes.len() - 1
    }

    fn set_anchor(&mut self, n: usize, anchor: &Text) {
        if !anchor.is_empty() {
            let name = anchor.get(&self.ep.p.buf).to_string();
            self.anchors.insert(name, n);
        }
    }

    fn init(&mut self) -> Result<(), YamlError> {
        if !self.started {
            self.take(EventType::StreamStart)?;
            self.started = true;
        }
        Ok(())
    }

    /// go-yaml `parser.parse()` at the stream level: the next document node, or `None` at the
    /// end of the stream. Written with an explicit stack instead of recursion, so deep input
    /// cannot exhaust the call stack.
    fn next_document(&mut self) -> Result<Option<usize>, YamlError> {
        self.init()?;
        match self.peek()? {
            EventType::StreamEnd => return Ok(None),
            EventType::DocumentStart => {}
            _ => return Err(self.unexpected()),
        }
        let mut ev = self.take(EventType::DocumentStart)?;
        let doc = self.new_node(Kind::Document, "", &mut ev, Text::default());
        // Open collections: (node, is a block mapping).
        let mut stack: Vec<(usize, bool)> = Vec::with_capacity(16);
        let mut doc_has_child = false;
        loop {
            let top = stack.last().copied();
            let next = self.peek()?;
            let finished = match (top, next) {
                (None, _) if doc_has_child => {
                    if next == EventType::DocumentEnd {
                        if let Some(ev) = &self.event {
                            let foot = ev
                                .comments
                                .as_ref()
                                .map(|c| c.foot.clone())
                                .unwrap_or_default();
                            self.nodes[doc].set_comment(FOOT, bytes_to_string(foot));
                        }
                    }
                    self.take(EventType::DocumentEnd)?;
                    return Ok(Some(doc));
                }
                (Some((n, _)), EventType::SequenceEnd) if self.nodes[n].kind == Kind::Sequence => {
                    let end = self.take_peeked()?;
                    let (line, foot) = end_comments(end);
                    self.nodes[n].set_comment(LINE, line);
                    self.nodes[n].set_comment(FOOT, foot);
                    self.depth -= 1;
                    stack.pop();
                    Some(n)
                }
                (Some((n, block)), EventType::MappingEnd)
                    if self.nodes[n].kind == Kind::Mapping =>
                {
                    let end = self.take_peeked()?;
                    let (line, foot) = end_comments(end);
                    self.nodes[n].set_comment(LINE, line);
                    self.nodes[n].set_comment(FOOT, foot);
                    let len = self.nodes[n].content.len();
                    if block && !self.nodes[n].foot().is_empty() && len > 1 {
                        let last_key = self.nodes[n].content[len - 2];
                        let foot = self.nodes[n].take_comment(FOOT);
                        self.nodes[last_key].set_comment(FOOT, foot);
                    }
                    self.depth -= 1;
                    stack.pop();
                    Some(n)
                }
                (_, EventType::Scalar) => Some(self.scalar()?),
                (_, EventType::Alias) => Some(self.alias()?),
                (_, EventType::SequenceStart) => {
                    let mut ev = self.take_peeked()?;
                    self.enter(ev.start_mark)?;
                    let n =
                        self.new_node(Kind::Sequence, resolve::SEQ_TAG, &mut ev, Text::default());
                    if ev.collection_style == CollectionStyle::Flow {
                        self.nodes[n].style.flow = true;
                    }
                    self.set_anchor(n, &ev.anchor);
                    stack.push((n, false));
                    None
                }
                (_, EventType::MappingStart) => {
                    let mut ev = self.take_peeked()?;
                    self.enter(ev.start_mark)?;
                    let n =
                        self.new_node(Kind::Mapping, resolve::MAP_TAG, &mut ev, Text::default());
                    let block = ev.collection_style != CollectionStyle::Flow;
                    if !block {
                        self.nodes[n].style.flow = true;
                    }
                    self.set_anchor(n, &ev.anchor);
                    stack.push((n, block));
                    None
                }
                _ => return Err(self.unexpected()),
            };
            if let Some(child) = finished {
                match stack.last().copied() {
                    None => {
                        self.nodes[doc].content.push(child);
                        doc_has_child = true;
                    }
                    Some((parent, block)) => {
                        self.nodes[parent].content.push(child);
                        if self.nodes[parent].kind == Kind::Mapping {
                            self.after_mapping_child(parent, block);
                        }
                    }
                }
            }
        }
    }

    /// go-yaml's foot comment shuffling after each key and each value of a mapping.
    fn after_mapping_child(&mut self, n: usize, block: bool) {
        let len = self.nodes[n].content.len();
        if len % 2 == 1 {
            // a key
            let k = self.nodes[n].content[len - 1];
            if block && !self.nodes[k].foot().is_empty() && len > 2 {
                // Must be a foot comment for the prior value when being dedented.
                let prior = self.nodes[n].content[len - 3];
                let foot = self.nodes[k].take_comment(FOOT);
                self.nodes[prior].set_comment(FOOT, foot);
            }
        } else {
            let k = self.nodes[n].content[len - 2];
            let v = self.nodes[n].content[len - 1];
            if self.nodes[k].foot().is_empty() && !self.nodes[v].foot().is_empty() {
                let foot = self.nodes[v].take_comment(FOOT);
                self.nodes[k].set_comment(FOOT, foot);
            }
        }
    }

    fn unexpected(&self) -> YamlError {
        let (line, column) = self
            .event
            .as_ref()
            .map(|e| pos(e.start_mark))
            .unwrap_or_else(|| pos(self.ep.p.mark));
        YamlError::Syntax {
            line,
            column,
            reason: "unexpected event".into(),
        }
    }

    fn enter(&mut self, ev_mark: Mark) -> Result<(), YamlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let (line, column) = pos(ev_mark);
            return Err(YamlError::TooDeep {
                line,
                column,
                limit: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn alias(&mut self) -> Result<usize, YamlError> {
        let mut ev = self.take_peeked()?;
        let name_text = std::mem::take(&mut ev.anchor);
        let name = name_text.get(&self.ep.p.buf).to_string();
        let n = self.new_node(Kind::Alias, "", &mut ev, name_text);
        match self.anchors.get(&name) {
            Some(&target) => self.nodes[n].alias = Some(target),
            None => {
                let (line, column) = pos(ev.start_mark);
                return Err(YamlError::UnknownAnchor { line, column, name });
            }
        }
        Ok(n)
    }

    fn scalar(&mut self) -> Result<usize, YamlError> {
        let mut ev = self.take_peeked()?;
        let value = std::mem::take(&mut ev.value);
        let mut style = NodeStyle::default();
        match ev.scalar_style {
            ScalarStyle::DoubleQuoted => style.double_quoted = true,
            ScalarStyle::SingleQuoted => style.single_quoted = true,
            ScalarStyle::Literal => style.literal = true,
            ScalarStyle::Folded => style.folded = true,
            _ => {}
        }
        let plain = style == NodeStyle::default();
        let default_tag = if plain {
            if value.get(&self.ep.p.buf) == "<<" {
                resolve::MERGE_TAG
            } else {
                ""
            }
        } else {
            resolve::STR_TAG
        };
        let n = self.new_node(Kind::Scalar, default_tag, &mut ev, value);
        let node = &mut self.nodes[n];
        node.style.double_quoted = style.double_quoted;
        node.style.single_quoted = style.single_quoted;
        node.style.literal = style.literal;
        node.style.folded = style.folded;
        self.set_anchor(n, &ev.anchor);
        Ok(n)
    }
}

// ------------------------------------------------------------------------------------------
// Conversion to the sops tree

struct Converter<'a> {
    nodes: &'a [Node],
    /// The decoded input the nodes' texts point into.
    src: &'a str,
    decode_count: usize,
    alias_count: usize,
    alias_depth: usize,
    active_aliases: Vec<usize>,
    depth: usize,
}

fn allowed_alias_ratio(decode_count: usize) -> f64 {
    const LOW: usize = 400_000;
    const HIGH: usize = 4_000_000;
    if decode_count <= LOW {
        0.99
    } else if decode_count >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((decode_count - LOW) as f64 / (HIGH - LOW) as f64)
    }
}

#[inline]
fn comment_lines(comment: &str, mut push: impl FnMut(String)) {
    if comment.is_empty() {
        return;
    }
    for line in comment.split('\n') {
        if !line.is_empty() {
            // sops: commentLine[1:] (the line always starts with the '#').
            let text = line.strip_prefix('#').unwrap_or(line);
            push(text.to_string());
        }
    }
}

#[inline]
fn push_map_comments(comment: &str, branch: &mut Vec<MapItem>) {
    comment_lines(comment, |t| branch.push(MapItem::Comment(t)));
}

#[inline]
fn push_seq_comments(comment: &str, list: &mut Vec<Value>) {
    comment_lines(comment, |t| list.push(Value::Comment(t)));
}

fn base64_engine() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
    )
}

impl Converter<'_> {
    #[inline]
    fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    fn at(&self, i: usize) -> (usize, usize) {
        let n = self.node(i);
        (n.line, n.column)
    }

    /// go-yaml's per-node accounting against billion-laughs documents.
    #[inline]
    fn count(&mut self, i: usize) -> Result<(), YamlError> {
        self.decode_count += 1;
        if self.alias_depth > 0 {
            self.alias_count += 1;
        }
        if self.alias_count > 100
            && self.decode_count > 1000
            && self.alias_count as f64 / self.decode_count as f64
                > allowed_alias_ratio(self.decode_count)
        {
            let (line, column) = self.at(i);
            return Err(YamlError::ExcessiveAliasing { line, column });
        }
        Ok(())
    }

    fn enter(&mut self, i: usize) -> Result<(), YamlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let (line, column) = self.at(i);
            return Err(YamlError::TooDeep {
                line,
                column,
                limit: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn enter_alias(&mut self, i: usize) -> Result<usize, YamlError> {
        let n = self.node(i);
        let (line, column) = (n.line, n.column);
        if self.active_aliases.contains(&i) {
            return Err(YamlError::RecursiveAlias {
                line,
                column,
                name: n.value.get(self.src).to_string(),
            });
        }
        let Some(target) = n.alias else {
            return Err(YamlError::UnknownAnchor {
                line,
                column,
                name: n.value.get(self.src).to_string(),
            });
        };
        self.active_aliases.push(i);
        self.alias_depth += 1;
        Ok(target)
    }

    fn leave_alias(&mut self) {
        self.active_aliases.pop();
        self.alias_depth -= 1;
    }

    /// go-yaml's decoding of a scalar node into `interface{}`.
    #[inline]
    fn decode_scalar(&self, i: usize) -> Result<Value, YamlError> {
        let n = self.node(i);
        let is_str = n.tag == resolve::STR_TAG;
        if is_str {
            return Ok(Value::Str(n.value.get(self.src).to_string()));
        }
        let (tag, r) = match (&n.resolved, n.style.tagged) {
            (Some(r), false) => (n.tag.to_string(), r.clone()),
            _ => resolve::resolve(&n.tag, n.value.get(self.src)).map_err(|m| {
                YamlError::InvalidTaggedValue {
                    line: n.line,
                    column: n.column,
                    found: m.resolved,
                    tag: m.wanted,
                }
            })?,
        };
        if tag == resolve::BINARY_TAG {
            let cleaned: Vec<u8> = n
                .value
                .get(self.src)
                .bytes()
                .filter(|&c| c != b'\r' && c != b'\n')
                .collect();
            let data = base64_engine()
                .decode(&cleaned)
                .map_err(|_| YamlError::InvalidBinary {
                    line: n.line,
                    column: n.column,
                })?;
            return Ok(match String::from_utf8(data) {
                Ok(s) => Value::Str(s),
                Err(e) => Value::Bytes(e.into_bytes()),
            });
        }
        Ok(match r {
            Resolved::Null => Value::Null,
            Resolved::Bool(b) => Value::Bool(b),
            Resolved::Int(v) => Value::Int(v),
            Resolved::Uint(v) => Value::Uint(v),
            Resolved::Float(f) => Value::Float(f),
            Resolved::Time(t) => Value::Time(Timestamp(t)),
            Resolved::Str => Value::Str(n.value.get(self.src).to_string()),
        })
    }

    fn go_type_name(&self, i: usize) -> &'static str {
        let n = self.node(i);
        match n.kind {
            Kind::Mapping => {
                let all_str = n.content.iter().step_by(2).all(|&k| {
                    let kn = self.node(k);
                    let st = short_tag_of(self.nodes, self.src, k);
                    kn.kind == Kind::Scalar && (st == resolve::STR_TAG || st == resolve::MERGE_TAG)
                });
                if all_str {
                    "map[string]interface {}"
                } else {
                    "map[interface {}]interface {}"
                }
            }
            Kind::Sequence => "[]interface {}",
            _ => "<nil>",
        }
    }

    /// `key.Decode(&keyValue)` followed by sops' "string keys only" rule.
    fn decode_key(&mut self, i: usize) -> Result<String, YamlError> {
        self.count(i)?;
        let (line, column) = self.at(i);
        let n = self.node(i);
        match n.kind {
            Kind::Alias => {
                let target = self.enter_alias(i)?;
                let r = self.decode_key(target);
                self.leave_alias();
                r
            }
            Kind::Scalar => {
                let v = self.decode_scalar(i)?;
                let type_name = match v {
                    Value::Str(s) => return Ok(s),
                    Value::Bytes(_) => "string (not UTF-8)",
                    Value::Null => "<nil>",
                    Value::Bool(_) => "bool",
                    Value::Int(_) => "int",
                    Value::Uint(_) => "uint64",
                    Value::Float(_) => "float64",
                    Value::Time(_) => "time.Time",
                    _ => "<nil>",
                };
                Err(YamlError::NonStringKey {
                    line,
                    column,
                    type_name,
                })
            }
            _ => Err(YamlError::NonStringKey {
                line,
                column,
                type_name: self.go_type_name(i),
            }),
        }
    }

    /// go-yaml's uniqueness check (same kind and same raw value) and merge-value check.
    fn check_mapping(&self, i: usize) -> Result<(), YamlError> {
        let n = self.node(i);
        let small = n.content.len() <= 32;
        let mut seen: HashMap<(u8, &str), usize> = if small {
            HashMap::new()
        } else {
            HashMap::with_capacity(n.content.len() / 2)
        };
        for (idx, pair) in n.content.chunks(2).enumerate() {
            let k = self.node(pair[0]);
            let kind = k.kind as u8;
            let key_text = k.value.get(self.src);
            let first = if small {
                n.content
                    .chunks(2)
                    .take(idx)
                    .map(|p| self.node(p[0]))
                    .find(|o| o.kind as u8 == kind && o.value.get(self.src) == key_text)
                    .map(|o| o.line)
            } else {
                match seen.entry((kind, key_text)) {
                    Entry::Occupied(e) => Some(*e.get()),
                    Entry::Vacant(e) => {
                        e.insert(k.line);
                        None
                    }
                }
            };
            if let Some(first_line) = first {
                return Err(YamlError::DuplicateKey {
                    line: k.line,
                    column: k.column,
                    key: key_text.to_string(),
                    first_line,
                });
            }
            if is_merge(k, self.src) {
                if let Some(&v) = pair.get(1) {
                    self.check_merge_value(v)?;
                }
            }
        }
        Ok(())
    }

    fn check_merge_value(&self, v: usize) -> Result<(), YamlError> {
        let n = self.node(v);
        let bad = || YamlError::InvalidMerge {
            line: n.line,
            column: n.column,
        };
        let alias_ok = |a: &Node| match a.alias {
            Some(t) => self.node(t).kind == Kind::Mapping,
            None => true,
        };
        match n.kind {
            Kind::Mapping => Ok(()),
            Kind::Alias if alias_ok(n) => Ok(()),
            Kind::Sequence => {
                for &c in &n.content {
                    let cn = self.node(c);
                    let ok = match cn.kind {
                        Kind::Alias => alias_ok(cn),
                        Kind::Mapping => true,
                        _ => false,
                    };
                    if !ok {
                        return Err(YamlError::InvalidMerge {
                            line: cn.line,
                            column: cn.column,
                        });
                    }
                }
                Ok(())
            }
            _ => Err(bad()),
        }
    }

    /// sops `appendYamlNodeToTreeBranch` for a document node: the branch of one document.
    fn document_branch(&mut self, doc: usize) -> Result<Vec<MapItem>, YamlError> {
        let nodes = self.nodes;
        let n = &nodes[doc];
        let mut branch = Vec::new();
        push_map_comments(n.head(), &mut branch);
        push_map_comments(n.line(), &mut branch);
        for &c in &n.content {
            branch = self.root_into_branch(c, branch)?;
        }
        push_map_comments(n.foot(), &mut branch);
        Ok(branch)
    }

    /// `appendYamlNodeToTreeBranch(node, branch, false)` for the content of a document.
    fn root_into_branch(
        &mut self,
        i: usize,
        mut branch: Vec<MapItem>,
    ) -> Result<Vec<MapItem>, YamlError> {
        let nodes = self.nodes;
        let n = &nodes[i];
        match n.kind {
            Kind::Mapping => match self.convert(i, false, branch)? {
                Value::Map(m) => Ok(m.items),
                _ => Ok(Vec::new()),
            },
            Kind::Sequence => Err(YamlError::SequenceDocument {
                line: n.line,
                column: n.column,
            }),
            Kind::Scalar => {
                push_map_comments(n.head(), &mut branch);
                push_map_comments(n.line(), &mut branch);
                // An empty document with a document start marker results in null.
                if short_tag_of(nodes, self.src, i) == resolve::NULL_TAG {
                    return Ok(branch);
                }
                Err(YamlError::ScalarDocument {
                    line: n.line,
                    column: n.column,
                })
            }
            Kind::Alias => {
                push_map_comments(n.head(), &mut branch);
                push_map_comments(n.line(), &mut branch);
                let target = self.enter_alias(i)?;
                // (an anchored node is never itself an alias, so this recursion is one level)
                let r = if nodes[target].kind == Kind::Alias {
                    Ok(branch)
                } else {
                    self.root_into_branch(target, branch)
                };
                self.leave_alias();
                let mut branch = r?;
                push_map_comments(n.foot(), &mut branch);
                Ok(branch)
            }
            Kind::Document => Err(YamlError::Syntax {
                line: n.line,
                column: n.column,
                reason: "nested document".into(),
            }),
        }
    }

    /// Start converting node `i` (sops `nodeToTreeValue(i, handled)`): a finished value for
    /// scalars, or a new frame on `stack` for collections. `initial` seeds a mapping's items.
    fn open(
        &mut self,
        i: usize,
        handled: bool,
        initial: Vec<MapItem>,
        from_alias: bool,
        stack: &mut Vec<Frame>,
    ) -> Result<Option<Value>, YamlError> {
        let nodes = self.nodes;
        let n = &nodes[i];
        match n.kind {
            Kind::Scalar => {
                self.count(i)?;
                let v = self.decode_scalar(i);
                if from_alias {
                    self.leave_alias();
                }
                v.map(Some)
            }
            Kind::Alias => {
                self.count(i)?;
                let target = self.enter_alias(i)?;
                if nodes[target].kind == Kind::Alias {
                    // (cannot happen: anchors are never placed on aliases)
                    self.leave_alias();
                    return Ok(Some(Value::Null));
                }
                self.open(target, false, initial, true, stack)
            }
            Kind::Sequence => {
                self.count(i)?;
                self.enter(i)?;
                let mut items = Vec::with_capacity(n.content.len());
                if !handled {
                    push_seq_comments(n.head(), &mut items);
                    push_seq_comments(n.line(), &mut items);
                }
                stack.push(Frame::Seq(SeqFrame {
                    node: i,
                    items,
                    next: 0,
                    handled,
                    from_alias,
                }));
                Ok(None)
            }
            Kind::Mapping => {
                let mut items = initial;
                items.reserve(n.content.len() / 2);
                if !handled {
                    push_map_comments(n.head(), &mut items);
                    push_map_comments(n.line(), &mut items);
                }
                self.count(i)?;
                self.enter(i)?;
                self.check_mapping(i)?;
                stack.push(Frame::Map(MapFrame {
                    node: i,
                    items,
                    next: 0,
                    handled,
                    from_alias,
                    pending: None,
                }));
                Ok(None)
            }
            Kind::Document => Err(YamlError::Syntax {
                line: n.line,
                column: n.column,
                reason: "nested document".into(),
            }),
        }
    }

    /// Convert node `i` to a value with an explicit stack (no recursion on nesting).
    fn convert(
        &mut self,
        i: usize,
        handled: bool,
        initial: Vec<MapItem>,
    ) -> Result<Value, YamlError> {
        let nodes = self.nodes;
        let mut stack: Vec<Frame> = Vec::with_capacity(16);
        if let Some(v) = self.open(i, handled, initial, false, &mut stack)? {
            return Ok(v);
        }
        loop {
            // Advance the innermost frame until it needs a child value or is finished.
            let mut child: Option<(usize, bool)> = None;
            let mut finished: Option<Value> = None;
            match stack.last_mut() {
                None => return Ok(Value::Null),
                Some(Frame::Map(f)) => {
                    let n = &nodes[f.node];
                    if let Some(pair) = n.content.chunks(2).nth(f.next) {
                        if let [k, v] = *pair {
                            let (kn, vn) = (&nodes[k], &nodes[v]);
                            push_map_comments(kn.head(), &mut f.items);
                            push_map_comments(kn.line(), &mut f.items);
                            let handle = vn.kind == Kind::Scalar || vn.kind == Kind::Alias;
                            if handle {
                                push_map_comments(vn.head(), &mut f.items);
                                push_map_comments(vn.line(), &mut f.items);
                            }
                            f.next += 1;
                            if vn.kind == Kind::Scalar {
                                // The common case, without the detour through `open`: key,
                                // value and their comments in go-yaml's order.
                                let key = self.decode_key(k)?;
                                self.count(v)?;
                                let value = self.decode_scalar(v)?;
                                f.items.push(MapItem::Pair(key, value));
                                push_map_comments(vn.foot(), &mut f.items);
                                push_map_comments(kn.foot(), &mut f.items);
                                continue;
                            }
                            f.pending = Some((String::new(), k, v, handle));
                            child = Some((v, handle));
                        } else {
                            f.next += 1;
                        }
                    } else {
                        if !f.handled {
                            push_map_comments(n.foot(), &mut f.items);
                        }
                        finished = Some(Value::Map(Map {
                            items: std::mem::take(&mut f.items),
                        }));
                    }
                }
                Some(Frame::Seq(f)) => {
                    let n = &nodes[f.node];
                    if let Some(&item) = n.content.get(f.next) {
                        let itn = &nodes[item];
                        push_seq_comments(itn.head(), &mut f.items);
                        push_seq_comments(itn.line(), &mut f.items);
                        f.next += 1;
                        if itn.kind == Kind::Scalar {
                            self.count(item)?;
                            let value = self.decode_scalar(item)?;
                            f.items.push(value);
                            push_seq_comments(itn.foot(), &mut f.items);
                            continue;
                        }
                        child = Some((item, true));
                    } else {
                        if !f.handled {
                            push_seq_comments(n.foot(), &mut f.items);
                        }
                        finished = Some(Value::Seq(std::mem::take(&mut f.items)));
                    }
                }
            }
            let value = if let Some((c, handle)) = child {
                // The key of a pending pair is decoded before its value (go-yaml order).
                if let Some(Frame::Map(f)) = stack.last() {
                    if let Some((_, k, _, _)) = f.pending {
                        let key = self.decode_key(k)?;
                        if let Some(Frame::Map(f)) = stack.last_mut() {
                            if let Some(p) = f.pending.as_mut() {
                                p.0 = key;
                            }
                        }
                    }
                }
                match self.open(c, handle, Vec::new(), false, &mut stack)? {
                    Some(v) => v,
                    None => continue,
                }
            } else if let Some(v) = finished {
                let frame = stack.pop();
                self.depth -= 1;
                let from_alias = match &frame {
                    Some(Frame::Map(f)) => f.from_alias,
                    Some(Frame::Seq(f)) => f.from_alias,
                    None => false,
                };
                if from_alias {
                    self.leave_alias();
                }
                if stack.is_empty() {
                    return Ok(v);
                }
                v
            } else {
                continue;
            };
            // Deliver a finished child value to its parent frame.
            match stack.last_mut() {
                Some(Frame::Map(f)) => {
                    if let Some((key, k, v, handle)) = f.pending.take() {
                        f.items.push(MapItem::Pair(key, value));
                        if handle {
                            push_map_comments(nodes[v].foot(), &mut f.items);
                        }
                        push_map_comments(nodes[k].foot(), &mut f.items);
                    }
                }
                Some(Frame::Seq(f)) => {
                    f.items.push(value);
                    if let Some(&item) = nodes[f.node].content.get(f.next.wrapping_sub(1)) {
                        push_seq_comments(nodes[item].foot(), &mut f.items);
                    }
                }
                None => return Ok(value),
            }
        }
    }
}

/// A mapping being converted: the items so far, the next pair, and the pair whose value is
/// being converted (key text, key node, value node, value comments handled here).
struct MapFrame {
    node: usize,
    items: Vec<MapItem>,
    next: usize,
    handled: bool,
    from_alias: bool,
    pending: Option<(String, usize, usize, bool)>,
}

struct SeqFrame {
    node: usize,
    items: Vec<Value>,
    next: usize,
    handled: bool,
    from_alias: bool,
}

enum Frame {
    Map(MapFrame),
    Seq(SeqFrame),
}

fn is_merge(n: &Node, src: &str) -> bool {
    n.kind == Kind::Scalar
        && n.value.get(src) == "<<"
        && (n.tag.is_empty() || n.tag == "!" || n.tag == resolve::MERGE_TAG)
}

/// go-yaml `Node.ShortTag()`.
fn short_tag_of(nodes: &[Node], src: &str, i: usize) -> String {
    let n = &nodes[i];
    let indicated_string = n.kind == Kind::Scalar
        && (n.tag == resolve::STR_TAG
            || ((n.tag.is_empty() || n.tag == "!")
                && (n.style.double_quoted
                    || n.style.single_quoted
                    || n.style.literal
                    || n.style.folded)));
    if indicated_string {
        return resolve::STR_TAG.into();
    }
    if n.tag.is_empty() || n.tag == "!" {
        return match n.kind {
            Kind::Mapping => resolve::MAP_TAG.into(),
            Kind::Sequence => resolve::SEQ_TAG.into(),
            Kind::Alias => match n.alias {
                Some(t) if t != i => short_tag_of(nodes, src, t),
                _ => String::new(),
            },
            Kind::Scalar => resolve::resolve_tag(n.value.get(src)).into(),
            Kind::Document => String::new(),
        };
    }
    n.tag.to_string()
}

/// Parse every document of the stream into sops branches.
pub fn parse_documents(buf: String) -> Result<Vec<Map>, YamlError> {
    // (typical input has a node per 20 to 100 bytes)
    let nodes = Vec::with_capacity(buf.len() / 20 + 16);
    let mut c = Composer {
        ep: EventParser::new(buf),
        event: None,
        nodes,
        anchors: HashMap::new(),
        depth: 0,
        started: false,
    };
    // Compose every document first (anchors live for the whole stream in go-yaml's decoder),
    // then convert each one.
    let mut docs = Vec::new();
    while let Some(doc) = c.next_document()? {
        docs.push(doc);
    }
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let mut conv = Converter {
            nodes: &c.nodes,
            src: &c.ep.p.buf,
            decode_count: 0,
            alias_count: 0,
            alias_depth: 0,
            active_aliases: Vec::new(),
            depth: 0,
        };
        let branch = conv.document_branch(doc)?;
        out.push(Map { items: branch });
    }
    Ok(out)
}
