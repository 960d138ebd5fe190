//! Reading go-yaml nodes into sops branches the way sops 3.11's YAML store does it
//! (`appendYamlNodeToTreeBranch` / `nodeToTreeValue`), with go-yaml's decoding rules for scalars,
//! its duplicate-key, merge and aliasing checks, and a nesting limit after alias expansion.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use base64::Engine as _;
use goyaml::decode::{Kind, Node, Stream, MAX_DEPTH};
use goyaml::resolve::{self, Resolved};

use super::YamlError;
use crate::value::{Map, MapItem, Timestamp, Value};

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
        let (tag, r) = match (n.resolved(), n.style.tagged) {
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
        push_map_comments(n.head_comment(), &mut branch);
        push_map_comments(n.line_comment(), &mut branch);
        for &c in &n.content {
            branch = self.root_into_branch(c, branch)?;
        }
        push_map_comments(n.foot_comment(), &mut branch);
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
                push_map_comments(n.head_comment(), &mut branch);
                push_map_comments(n.line_comment(), &mut branch);
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
                push_map_comments(n.head_comment(), &mut branch);
                push_map_comments(n.line_comment(), &mut branch);
                let target = self.enter_alias(i)?;
                // (an anchored node is never itself an alias, so this recursion is one level)
                let r = if nodes[target].kind == Kind::Alias {
                    Ok(branch)
                } else {
                    self.root_into_branch(target, branch)
                };
                self.leave_alias();
                let mut branch = r?;
                push_map_comments(n.foot_comment(), &mut branch);
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
                    push_seq_comments(n.head_comment(), &mut items);
                    push_seq_comments(n.line_comment(), &mut items);
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
                    push_map_comments(n.head_comment(), &mut items);
                    push_map_comments(n.line_comment(), &mut items);
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
                            push_map_comments(kn.head_comment(), &mut f.items);
                            push_map_comments(kn.line_comment(), &mut f.items);
                            let handle = vn.kind == Kind::Scalar || vn.kind == Kind::Alias;
                            if handle {
                                push_map_comments(vn.head_comment(), &mut f.items);
                                push_map_comments(vn.line_comment(), &mut f.items);
                            }
                            f.next += 1;
                            if vn.kind == Kind::Scalar {
                                // The common case, without the detour through `open`: key,
                                // value and their comments in go-yaml's order.
                                let key = self.decode_key(k)?;
                                self.count(v)?;
                                let value = self.decode_scalar(v)?;
                                f.items.push(MapItem::Pair(key, value));
                                push_map_comments(vn.foot_comment(), &mut f.items);
                                push_map_comments(kn.foot_comment(), &mut f.items);
                                continue;
                            }
                            f.pending = Some((String::new(), k, v, handle));
                            child = Some((v, handle));
                        } else {
                            f.next += 1;
                        }
                    } else {
                        if !f.handled {
                            push_map_comments(n.foot_comment(), &mut f.items);
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
                        push_seq_comments(itn.head_comment(), &mut f.items);
                        push_seq_comments(itn.line_comment(), &mut f.items);
                        f.next += 1;
                        if itn.kind == Kind::Scalar {
                            self.count(item)?;
                            let value = self.decode_scalar(item)?;
                            f.items.push(value);
                            push_seq_comments(itn.foot_comment(), &mut f.items);
                            continue;
                        }
                        child = Some((item, true));
                    } else {
                        if !f.handled {
                            push_seq_comments(n.foot_comment(), &mut f.items);
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
                            push_map_comments(nodes[v].foot_comment(), &mut f.items);
                        }
                        push_map_comments(nodes[k].foot_comment(), &mut f.items);
                    }
                }
                Some(Frame::Seq(f)) => {
                    f.items.push(value);
                    if let Some(&item) = nodes[f.node].content.get(f.next.wrapping_sub(1)) {
                        push_seq_comments(nodes[item].foot_comment(), &mut f.items);
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

/// Every document of a composed stream as a sops branch.
pub fn branches(stream: &Stream) -> Result<Vec<Map>, YamlError> {
    let mut out = Vec::with_capacity(stream.documents().len());
    for &doc in stream.documents() {
        let mut conv = Converter {
            nodes: stream.nodes(),
            src: stream.src(),
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
