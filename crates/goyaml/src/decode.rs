//! Composition of parser events into a node tree: the parser half of go-yaml v3's `decode.go`,
//! comments included (go-yaml's foot-comment shuffling between keys and values), with anchors
//! resolved to node indices and a nesting limit. Deciding what the nodes mean (scalar decoding,
//! duplicate keys, merges, alias expansion) is the caller's business.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::parserc::{CollectionStyle, Event, EventParser, EventType};
use crate::resolve::{self, Resolved};
use crate::scannerc::{bytes_to_string, Mark, ScalarStyle, SyntaxError, Text};
use crate::Error;

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

impl Node {
    /// How go-yaml's `resolve` typed this untagged plain scalar while composing (`None` for
    /// anything else), so that decoding need not resolve it again.
    #[inline]
    pub fn resolved(&self) -> Option<&Resolved> {
        self.resolved.as_ref()
    }
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
    pub fn head_comment(&self) -> &str {
        self.comment(HEAD)
    }
    #[inline]
    pub fn line_comment(&self) -> &str {
        self.comment(LINE)
    }
    #[inline]
    pub fn foot_comment(&self) -> &str {
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

fn syntax_error(e: &SyntaxError) -> Error {
    let (line, column) = pos(e.problem_mark);
    let mut reason = e.problem.to_string();
    if !e.context.is_empty() {
        let (cl, cc) = pos(e.context_mark);
        reason = format!("{reason} ({} at line {cl}, column {cc})", e.context);
    }
    Error::Syntax {
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
    fn peek(&mut self) -> Result<EventType, Error> {
        if self.event.is_none() {
            match self.ep.parse_into(&mut self.event) {
                Ok(true) => {}
                Ok(false) => {
                    let (line, column) = pos(self.ep.p.mark);
                    return Err(Error::Syntax {
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
    fn take_peeked(&mut self) -> Result<Event, Error> {
        match self.event.take() {
            Some(ev) => Ok(ev),
            None => Err(Error::Syntax {
                line: 0,
                column: 0,
                reason: "unexpected end of events".into(),
            }),
        }
    }

    fn take(&mut self, typ: EventType) -> Result<Event, Error> {
        let t = self.peek()?;
        let ev = self.event.take();
        match ev {
            Some(ev) if t == typ => Ok(ev),
            Some(ev) => {
                let (line, column) = pos(ev.start_mark);
                Err(Error::Syntax {
                    line,
                    column,
                    reason: "unexpected event".into(),
                })
            }
            None => Err(Error::Syntax {
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

    fn init(&mut self) -> Result<(), Error> {
        if !self.started {
            self.take(EventType::StreamStart)?;
            self.started = true;
        }
        Ok(())
    }

    /// go-yaml `parser.parse()` at the stream level: the next document node, or `None` at the
    /// end of the stream. Written with an explicit stack instead of recursion, so deep input
    /// cannot exhaust the call stack.
    fn next_document(&mut self) -> Result<Option<usize>, Error> {
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
                    if block && !self.nodes[n].foot_comment().is_empty() && len > 1 {
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
            if block && !self.nodes[k].foot_comment().is_empty() && len > 2 {
                // Must be a foot comment for the prior value when being dedented.
                let prior = self.nodes[n].content[len - 3];
                let foot = self.nodes[k].take_comment(FOOT);
                self.nodes[prior].set_comment(FOOT, foot);
            }
        } else {
            let k = self.nodes[n].content[len - 2];
            let v = self.nodes[n].content[len - 1];
            if self.nodes[k].foot_comment().is_empty() && !self.nodes[v].foot_comment().is_empty() {
                let foot = self.nodes[v].take_comment(FOOT);
                self.nodes[k].set_comment(FOOT, foot);
            }
        }
    }

    fn unexpected(&self) -> Error {
        let (line, column) = self
            .event
            .as_ref()
            .map(|e| pos(e.start_mark))
            .unwrap_or_else(|| pos(self.ep.p.mark));
        Error::Syntax {
            line,
            column,
            reason: "unexpected event".into(),
        }
    }

    fn enter(&mut self, ev_mark: Mark) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let (line, column) = pos(ev_mark);
            return Err(Error::TooDeep {
                line,
                column,
                limit: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn alias(&mut self) -> Result<usize, Error> {
        let mut ev = self.take_peeked()?;
        let name_text = std::mem::take(&mut ev.anchor);
        let name = name_text.get(&self.ep.p.buf).to_string();
        let n = self.new_node(Kind::Alias, "", &mut ev, name_text);
        match self.anchors.get(&name) {
            Some(&target) => self.nodes[n].alias = Some(target),
            None => {
                let (line, column) = pos(ev.start_mark);
                return Err(Error::UnknownAnchor { line, column, name });
            }
        }
        Ok(n)
    }

    fn scalar(&mut self) -> Result<usize, Error> {
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

/// A composed stream: every document's node tree, in one arena, and the decoded input the
/// nodes' texts point into. Anchors live for the whole stream, as in go-yaml's decoder, so an
/// alias may point into an earlier document.
pub struct Stream {
    nodes: Vec<Node>,
    src: String,
    documents: Vec<usize>,
}

impl Stream {
    /// Every node of every document; [`Node::content`] and [`Node::alias`] index into it.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The decoded input (UTF-8): [`Text::get`] on a node's value reads from it.
    pub fn src(&self) -> &str {
        &self.src
    }

    /// The document nodes, in order.
    pub fn documents(&self) -> &[usize] {
        &self.documents
    }
}

/// Read and compose every document of `input` (UTF-8, or UTF-16 with a BOM). Input without
/// any document (empty, blanks or comments only) gives a stream without documents.
pub fn compose(input: &[u8]) -> Result<Stream, Error> {
    let buf = crate::readerc::decode_input(input).map_err(|e| Error::Encoding {
        line: e.line,
        column: e.column,
        reason: e.problem,
    })?;
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
    let mut documents = Vec::new();
    while let Some(doc) = c.next_document()? {
        documents.push(doc);
    }
    Ok(Stream {
        nodes: c.nodes,
        src: c.ep.p.buf,
        documents,
    })
}
