//! A port of go-yaml v3 (`go.yaml.in/yaml/v3` v3.0.4): its reader, scanner (with the comment
//! scanner), event parser, node composer, plain-scalar resolver and emitter, line by line, so
//! that tokens, comment placement and output bytes are exactly go-yaml's. It exists so that
//! programs that must read and write YAML the way a Go tool does (sops, in this workspace) can
//! do it byte for byte.
//!
//! The files are named after go-yaml's own, to be read side by side with them:
//!
//! | here | go-yaml | what |
//! |---|---|---|
//! | [`readerc`] | `readerc.go` | input decoding (UTF-8, UTF-16 with a BOM), forbidden characters |
//! | [`scannerc`] | `scannerc.go`, `yamlh.go` | tokens, marks, comments |
//! | [`parserc`] | `parserc.go` | events, with head/line/foot/stem comments |
//! | [`decode`] | `decode.go` (parser half) | nodes, anchors, comment shuffling |
//! | [`resolve`] | `resolve.go` | plain-scalar typing, Go's timestamp and float formats |
//! | [`emitterc`] | `emitterc.go` | events to bytes, scalar styles, comments |
//! | [`strconv`] | Go's `strconv` | float formatting (shortest digits, ties to even) |
//! | `yamlprivateh` | `yamlprivateh.go` | character classes |
//!
//! What is not ported: go-yaml's reflection-based `Unmarshal`/`Marshal` (the caller decides what
//! nodes mean and which events to write) and its Go-specific options.
//!
//! Nothing here recurses on nesting: deep input cannot exhaust the stack, and nesting is
//! limited to [`decode::MAX_DEPTH`] levels. Error messages hold positions, static problem texts
//! and anchor names, never scalar values, so they are safe to log for input that holds secrets.
//!
//! ```
//! let stream = goyaml::decode::compose(b"a: 1 # one\n").unwrap();
//! let doc = &stream.nodes()[stream.documents()[0]];
//! let map = &stream.nodes()[doc.content[0]];
//! let (key, value) = (&stream.nodes()[map.content[0]], &stream.nodes()[map.content[1]]);
//! assert_eq!(key.value.get(stream.src()), "a");
//! // go-yaml gives a line comment to the value it follows.
//! assert_eq!(value.line_comment(), "# one");
//! ```

pub mod decode;
pub mod emitterc;
pub mod parserc;
pub mod readerc;
pub mod resolve;
pub mod scannerc;
pub mod strconv;
mod yamlprivateh;

/// Why a YAML input could not be composed. Line and column are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is not valid UTF-8/UTF-16 or contains characters YAML forbids.
    #[error("yaml: line {line}, column {column}: {reason}")]
    Encoding {
        line: usize,
        column: usize,
        reason: &'static str,
    },
    /// A scanner or parser error (go-yaml's problem text, plus its context).
    #[error("yaml: line {line}, column {column}: {reason}")]
    Syntax {
        line: usize,
        column: usize,
        reason: String,
    },
    /// An alias names an anchor that was not defined before it.
    #[error("yaml: line {line}, column {column}: unknown anchor {name:?} referenced")]
    UnknownAnchor {
        line: usize,
        column: usize,
        name: String,
    },
    /// Collections nested deeper than [`decode::MAX_DEPTH`].
    #[error("yaml: line {line}, column {column}: nesting deeper than {limit} levels")]
    TooDeep {
        line: usize,
        column: usize,
        limit: usize,
    },
}

/// The README's example, run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use crate::decode::{compose, Kind, Stream, MAX_DEPTH};
    use crate::emitterc::{emit, Event, EventType};
    use crate::scannerc::ScalarStyle;
    use crate::Error;

    /// The events go-yaml's encoder gives for a node (`encoder.node`, for the untagged scalars
    /// and block collections of these tests), comments included. (Recursive: test input is
    /// shallow.)
    fn node_events<'s>(s: &'s Stream, i: usize, out: &mut Vec<Event<'s>>) {
        let n = &s.nodes()[i];
        let mut ev = match n.kind {
            Kind::Mapping => Event::new(EventType::MappingStart),
            Kind::Sequence => Event::new(EventType::SequenceStart),
            _ => {
                let style = if n.style.double_quoted {
                    ScalarStyle::DoubleQuoted
                } else if n.style.literal {
                    ScalarStyle::Literal
                } else {
                    ScalarStyle::Plain
                };
                Event::scalar(Cow::Borrowed(n.value.get(s.src())), style)
            }
        };
        ev.head = n.head_comment().to_string();
        ev.line = n.line_comment().to_string();
        let foot = n.foot_comment().to_string();
        if ev.typ == EventType::Scalar {
            ev.foot = foot;
            out.push(ev);
            return;
        }
        let end = if ev.typ == EventType::MappingStart {
            EventType::MappingEnd
        } else {
            EventType::SequenceEnd
        };
        out.push(ev);
        for &c in &n.content {
            node_events(s, c, out);
        }
        let mut close = Event::new(end);
        close.foot = foot;
        out.push(close);
    }

    fn round_trip(input: &str, indent: i64) -> String {
        let s = compose(input.as_bytes()).unwrap();
        let mut evs = vec![Event::new(EventType::StreamStart)];
        for &doc in s.documents() {
            evs.push(Event::new(EventType::DocumentStart));
            node_events(&s, s.nodes()[doc].content[0], &mut evs);
            evs.push(Event::new(EventType::DocumentEnd));
        }
        evs.push(Event::new(EventType::StreamEnd));
        String::from_utf8(emit(evs.into_iter(), indent)).unwrap()
    }

    #[test]
    fn go_yaml_output_composes_and_emits_back_unchanged() {
        // Each of these is what go-yaml's encoder writes for its own node tree.
        for (doc, indent) in [
            ("a: 1\nb: two\n", 4),
            ("a:\n    b:\n        - x\n        - \"y\"\nc: d\n", 4),
            ("list:\n  - a\n  - b\n", 2),
            ("# head\na: 1 # line\nb: 2\n", 4),
            ("a: 1\n# foot of a\nb: 2\n", 4),
            ("text: |\n    two\n    lines\n", 4),
            ("a: 1\n---\nb: 2\n", 4),
        ] {
            assert_eq!(round_trip(doc, indent), doc, "{doc:?}");
        }
    }

    #[test]
    fn comments_are_attached_where_go_yaml_attaches_them() {
        let s = compose(b"# head\na: 1 # line\nb:\n  - x\n  # foot of x\n").unwrap();
        let n = s.nodes();
        let map = &n[n[s.documents()[0]].content[0]];
        let (a, one, b, list) = (
            &n[map.content[0]],
            &n[map.content[1]],
            &n[map.content[2]],
            &n[map.content[3]],
        );
        assert_eq!(a.head_comment(), "# head");
        assert_eq!(one.line_comment(), "# line");
        assert_eq!((b.value.get(s.src()), b.line, b.column), ("b", 3, 1));
        assert_eq!(n[list.content[0]].foot_comment(), "# foot of x");
    }

    #[test]
    fn aliases_point_at_their_anchor_even_in_an_earlier_document() {
        let s = compose(b"a: &x {k: v}\n---\nb: *x\n").unwrap();
        let n = s.nodes();
        let first = &n[n[s.documents()[0]].content[0]];
        let second = &n[n[s.documents()[1]].content[0]];
        let alias = &n[second.content[1]];
        assert_eq!(alias.kind, Kind::Alias);
        assert_eq!(alias.alias, Some(first.content[1]));
        assert!(n[first.content[1]].style.flow);
    }

    #[test]
    fn bad_input_is_refused_with_its_position_and_no_value() {
        let e = compose(b"a: *nowhere\n").err().unwrap();
        assert_eq!(
            e,
            Error::UnknownAnchor {
                line: 1,
                column: 4,
                name: "nowhere".into()
            }
        );
        match compose(b"a: 'secret-value\n").err().unwrap() {
            Error::Syntax { line, reason, .. } => {
                assert_eq!(line, 2);
                assert!(!reason.contains("secret-value"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            compose(deep.as_bytes()),
            Err(Error::TooDeep {
                limit: MAX_DEPTH,
                ..
            })
        ));
        assert!(matches!(
            compose(b"a: \x01\n"),
            Err(Error::Encoding { line: 1, .. })
        ));
        assert!(compose(b"# only a comment\n")
            .unwrap()
            .documents()
            .is_empty());
    }
}
