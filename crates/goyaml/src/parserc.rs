//! Event parser: a port of go-yaml v3's `parserc.go` (the libyaml grammar plus go-yaml's
//! comment bookkeeping: head/line/foot comments attached to events, stem comments).

use crate::scannerc::{Mark, Parser, Res, ScalarStyle, SyntaxError, Text, TokenType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    None,
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias,
    Scalar,
    SequenceStart,
    SequenceEnd,
    MappingStart,
    MappingEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectionStyle {
    Any,
    Block,
    Flow,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub typ: EventType,
    pub start_mark: Mark,
    pub anchor: Text,
    pub tag: Vec<u8>,
    pub value: Text,
    pub implicit: bool,
    pub scalar_style: ScalarStyle,
    pub collection_style: CollectionStyle,
    /// Head, line and foot comments (`None` when all three are empty).
    pub comments: Option<Box<Comments>>,
}

#[derive(Clone, Debug, Default)]
pub struct Comments {
    pub head: Vec<u8>,
    pub line: Vec<u8>,
    pub foot: Vec<u8>,
}

impl Comments {
    /// The comments, or `None` when they are all empty.
    #[inline]
    pub fn boxed(head: Vec<u8>, line: Vec<u8>, foot: Vec<u8>) -> Option<Box<Comments>> {
        if head.is_empty() && line.is_empty() && foot.is_empty() {
            None
        } else {
            Some(Box::new(Comments { head, line, foot }))
        }
    }
}

impl Event {
    /// (go-yaml's events also carry an end mark, which nothing here uses.)
    fn new(typ: EventType, start_mark: Mark, _end_mark: Mark) -> Event {
        Event {
            typ,
            start_mark,
            anchor: Text::default(),
            tag: Vec::new(),
            value: Text::default(),
            implicit: false,
            scalar_style: ScalarStyle::Any,
            collection_style: CollectionStyle::Any,
            comments: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    StreamStart,
    ImplicitDocumentStart,
    DocumentStart,
    DocumentContent,
    DocumentEnd,
    BlockNode,
    BlockSequenceFirstEntry,
    BlockSequenceEntry,
    IndentlessSequenceEntry,
    BlockMappingFirstKey,
    BlockMappingKey,
    BlockMappingValue,
    FlowSequenceFirstEntry,
    FlowSequenceEntry,
    FlowSequenceEntryMappingKey,
    FlowSequenceEntryMappingValue,
    FlowSequenceEntryMappingEnd,
    FlowMappingFirstKey,
    FlowMappingKey,
    FlowMappingValue,
    FlowMappingEmptyValue,
    End,
}

/// The event parser wrapping the scanner state.
pub struct EventParser {
    pub p: Parser,
    state: State,
    states: Vec<State>,
    marks: Vec<Mark>,
    tag_directives: Vec<(Vec<u8>, Vec<u8>)>,
}

fn parser_error(problem: &'static str, problem_mark: Mark) -> SyntaxError {
    SyntaxError {
        context: "",
        context_mark: Mark::default(),
        problem,
        problem_mark,
    }
}

fn parser_error_context(
    context: &'static str,
    context_mark: Mark,
    problem: &'static str,
    problem_mark: Mark,
) -> SyntaxError {
    SyntaxError {
        context,
        context_mark,
        problem,
        problem_mark,
    }
}

impl EventParser {
    pub fn new(buf: String) -> EventParser {
        EventParser {
            p: Parser::new(buf),
            state: State::StreamStart,
            states: Vec::with_capacity(16),
            marks: Vec::with_capacity(16),
            tag_directives: Vec::with_capacity(2),
        }
    }

    /// Make sure a token is available, fold the pending comments into the parser, and return
    /// the index of the head token.
    fn peek_token(&mut self) -> Res<usize> {
        if !self.p.token_available {
            self.p.fetch_more_tokens()?;
        }
        let idx = self.p.tokens_head;
        if idx >= self.p.tokens.len() {
            // Cannot happen: fetch_more_tokens always queues a token (at least STREAM-END).
            return Err(parser_error("unexpected end of token stream", self.p.mark));
        }
        self.unfold_comments(idx);
        Ok(idx)
    }

    #[inline]
    fn tok_typ(&self, idx: usize) -> TokenType {
        self.p.tokens[idx].typ
    }

    fn unfold_comments(&mut self, idx: usize) {
        let token_typ = self.p.tokens[idx].typ;
        let token_index = self.p.tokens[idx].start_mark.index;
        let p = &mut self.p;
        while p.comments_head < p.comments.len()
            && token_index >= p.comments[p.comments_head].token_mark.index
        {
            let comment = &mut p.comments[p.comments_head];
            if !comment.head.is_empty() {
                if token_typ == TokenType::BlockEnd {
                    // No heads on ends, so keep comment.head for a follow up token.
                    break;
                }
                if !p.head_comment.is_empty() {
                    p.head_comment.push(b'\n');
                }
                p.head_comment.extend_from_slice(&comment.head);
            }
            if !comment.foot.is_empty() {
                if !p.foot_comment.is_empty() {
                    p.foot_comment.push(b'\n');
                }
                p.foot_comment.extend_from_slice(&comment.foot);
            }
            if !comment.line.is_empty() {
                if !p.line_comment.is_empty() {
                    p.line_comment.push(b'\n');
                }
                p.line_comment.extend_from_slice(&comment.line);
            }
            *comment = Default::default();
            p.comments_head += 1;
        }
        if p.comments_head == p.comments.len() && p.comments_head > 0 {
            // Everything was consumed; go-yaml keeps zeroed entries, which stop every backward
            // scan exactly like an empty list does.
            p.comments.clear();
            p.comments_head = 0;
        }
    }

    #[inline]
    fn skip_token(&mut self) {
        self.p.token_available = false;
        self.p.tokens_parsed += 1;
        if let Some(t) = self.p.tokens.get(self.p.tokens_head) {
            self.p.stream_end_produced = t.typ == TokenType::StreamEnd;
        }
        self.p.tokens_head += 1;
    }

    #[inline]
    fn set_event_comments(&mut self, event: &mut Event) {
        event.comments = Comments::boxed(
            std::mem::take(&mut self.p.head_comment),
            std::mem::take(&mut self.p.line_comment),
            std::mem::take(&mut self.p.foot_comment),
        );
        self.p.stem_comment = None;
    }

    #[inline]
    fn pop_state(&mut self) -> State {
        self.states.pop().unwrap_or(State::End)
    }

    /// The next event, or `None` after the stream end.
    /// Put the next event in `slot`; `false` after the stream end. (Writing the event in place
    /// rather than returning it saves copies of it.)
    pub fn parse_into(&mut self, slot: &mut Option<Event>) -> Res<bool> {
        if self.p.stream_end_produced || self.state == State::End {
            return Ok(false);
        }
        *slot = Some(self.state_machine()?);
        Ok(true)
    }

    fn state_machine(&mut self) -> Res<Event> {
        match self.state {
            State::StreamStart => self.parse_stream_start(),
            State::ImplicitDocumentStart => self.parse_document_start(true),
            State::DocumentStart => self.parse_document_start(false),
            State::DocumentContent => self.parse_document_content(),
            State::DocumentEnd => self.parse_document_end(),
            State::BlockNode => self.parse_node(true, false),
            State::BlockSequenceFirstEntry => self.parse_block_sequence_entry(true),
            State::BlockSequenceEntry => self.parse_block_sequence_entry(false),
            State::IndentlessSequenceEntry => self.parse_indentless_sequence_entry(),
            State::BlockMappingFirstKey => self.parse_block_mapping_key(true),
            State::BlockMappingKey => self.parse_block_mapping_key(false),
            State::BlockMappingValue => self.parse_block_mapping_value(),
            State::FlowSequenceFirstEntry => self.parse_flow_sequence_entry(true),
            State::FlowSequenceEntry => self.parse_flow_sequence_entry(false),
            State::FlowSequenceEntryMappingKey => self.parse_flow_sequence_entry_mapping_key(),
            State::FlowSequenceEntryMappingValue => self.parse_flow_sequence_entry_mapping_value(),
            State::FlowSequenceEntryMappingEnd => self.parse_flow_sequence_entry_mapping_end(),
            State::FlowMappingFirstKey => self.parse_flow_mapping_key(true),
            State::FlowMappingKey => self.parse_flow_mapping_key(false),
            State::FlowMappingValue => self.parse_flow_mapping_value(false),
            State::FlowMappingEmptyValue => self.parse_flow_mapping_value(true),
            State::End => Err(parser_error("unexpected end of stream", self.p.mark)),
        }
    }

    fn parse_stream_start(&mut self) -> Res<Event> {
        let t = self.peek_token()?;
        let tok = &self.p.tokens[t];
        if tok.typ != TokenType::StreamStart {
            return Err(parser_error(
                "did not find expected <stream-start>",
                tok.start_mark,
            ));
        }
        let ev = Event::new(EventType::StreamStart, tok.start_mark, tok.end_mark);
        self.state = State::ImplicitDocumentStart;
        self.skip_token();
        Ok(ev)
    }

    fn parse_document_start(&mut self, implicit: bool) -> Res<Event> {
        let mut t = self.peek_token()?;
        if !implicit {
            while self.tok_typ(t) == TokenType::DocumentEnd {
                self.skip_token();
                t = self.peek_token()?;
            }
        }
        let typ = self.tok_typ(t);
        if implicit
            && typ != TokenType::VersionDirective
            && typ != TokenType::TagDirective
            && typ != TokenType::DocumentStart
            && typ != TokenType::StreamEnd
        {
            self.process_directives()?;
            self.states.push(State::DocumentEnd);
            self.state = State::BlockNode;

            let mut head_comment = Vec::new();
            let hc = &self.p.head_comment;
            if !hc.is_empty() {
                // Scan the header comment backwards, and if an empty line is found, break the
                // header so the part before the last empty line goes into the document header,
                // while the bottom of it goes into a follow up event.
                let mut i = hc.len() - 1;
                while i > 0 {
                    if hc[i] == b'\n' {
                        if i == hc.len() - 1 {
                            head_comment = hc[..i].to_vec();
                            self.p.head_comment = hc[i + 1..].to_vec();
                            break;
                        } else if hc[i - 1] == b'\n' {
                            head_comment = hc[..i - 1].to_vec();
                            self.p.head_comment = hc[i + 1..].to_vec();
                            break;
                        }
                    }
                    i -= 1;
                }
            }
            let tok = &self.p.tokens[t];
            let mut ev = Event::new(EventType::DocumentStart, tok.start_mark, tok.end_mark);
            ev.comments = Comments::boxed(head_comment, Vec::new(), Vec::new());
            ev.implicit = true;
            Ok(ev)
        } else if typ != TokenType::StreamEnd {
            let start_mark = self.p.tokens[t].start_mark;
            self.process_directives()?;
            let t = self.peek_token()?;
            let tok = &self.p.tokens[t];
            if tok.typ != TokenType::DocumentStart {
                return Err(parser_error(
                    "did not find expected <document start>",
                    tok.start_mark,
                ));
            }
            let ev = Event::new(EventType::DocumentStart, start_mark, tok.end_mark);
            self.states.push(State::DocumentEnd);
            self.state = State::DocumentContent;
            self.skip_token();
            Ok(ev)
        } else {
            self.state = State::End;
            let tok = &self.p.tokens[t];
            let ev = Event::new(EventType::StreamEnd, tok.start_mark, tok.end_mark);
            self.skip_token();
            Ok(ev)
        }
    }

    fn parse_document_content(&mut self) -> Res<Event> {
        let t = self.peek_token()?;
        let typ = self.tok_typ(t);
        if matches!(
            typ,
            TokenType::VersionDirective
                | TokenType::TagDirective
                | TokenType::DocumentStart
                | TokenType::DocumentEnd
                | TokenType::StreamEnd
        ) {
            self.state = self.pop_state();
            let mark = self.p.tokens[t].start_mark;
            return Ok(self.process_empty_scalar(mark));
        }
        self.parse_node(true, false)
    }

    fn parse_document_end(&mut self) -> Res<Event> {
        let t = self.peek_token()?;
        let tok = &self.p.tokens[t];
        let start_mark = tok.start_mark;
        let mut end_mark = tok.start_mark;
        let mut implicit = true;
        if tok.typ == TokenType::DocumentEnd {
            end_mark = tok.end_mark;
            self.skip_token();
            implicit = false;
        }
        self.tag_directives.clear();
        self.state = State::DocumentStart;
        let mut ev = Event::new(EventType::DocumentEnd, start_mark, end_mark);
        ev.implicit = implicit;
        self.set_event_comments(&mut ev);
        if let Some(c) = ev.comments.as_mut() {
            if !c.head.is_empty() && c.foot.is_empty() {
                c.foot = std::mem::take(&mut c.head);
            }
        }
        Ok(ev)
    }

    fn parse_node(&mut self, block: bool, indentless_sequence: bool) -> Res<Event> {
        let mut t = self.peek_token()?;
        if self.tok_typ(t) == TokenType::Alias {
            self.state = self.pop_state();
            let tok = &mut self.p.tokens[t];
            let mut ev = Event::new(EventType::Alias, tok.start_mark, tok.end_mark);
            ev.anchor = std::mem::take(&mut tok.value);
            self.set_event_comments(&mut ev);
            self.skip_token();
            return Ok(ev);
        }

        let mut start_mark = self.p.tokens[t].start_mark;
        let mut end_mark = self.p.tokens[t].start_mark;
        let mut tag_token = false;
        let mut tag_handle = Vec::new();
        let mut tag_suffix = Vec::new();
        let mut anchor = Text::default();
        let mut tag_mark = Mark::default();

        if self.tok_typ(t) == TokenType::Anchor {
            let tok = &mut self.p.tokens[t];
            anchor = std::mem::take(&mut tok.value);
            start_mark = tok.start_mark;
            end_mark = tok.end_mark;
            self.skip_token();
            t = self.peek_token()?;
            if self.tok_typ(t) == TokenType::Tag {
                let tok = &mut self.p.tokens[t];
                tag_token = true;
                let parts = tok.tag.take().unwrap_or_default();
                tag_handle = parts.handle;
                tag_suffix = parts.suffix;
                tag_mark = tok.start_mark;
                end_mark = tok.end_mark;
                self.skip_token();
                t = self.peek_token()?;
            }
        } else if self.tok_typ(t) == TokenType::Tag {
            let tok = &mut self.p.tokens[t];
            tag_token = true;
            let parts = tok.tag.take().unwrap_or_default();
            tag_handle = parts.handle;
            tag_suffix = parts.suffix;
            start_mark = tok.start_mark;
            tag_mark = tok.start_mark;
            end_mark = tok.end_mark;
            self.skip_token();
            t = self.peek_token()?;
            if self.tok_typ(t) == TokenType::Anchor {
                let tok = &mut self.p.tokens[t];
                anchor = std::mem::take(&mut tok.value);
                end_mark = tok.end_mark;
                self.skip_token();
                t = self.peek_token()?;
            }
        }

        let mut tag = Vec::new();
        if tag_token {
            if tag_handle.is_empty() {
                tag = tag_suffix;
            } else {
                for (handle, prefix) in &self.tag_directives {
                    if *handle == tag_handle {
                        tag = prefix.clone();
                        tag.extend_from_slice(&tag_suffix);
                        break;
                    }
                }
                if tag.is_empty() {
                    return Err(parser_error_context(
                        "while parsing a node",
                        start_mark,
                        "found undefined tag handle",
                        tag_mark,
                    ));
                }
            }
        }

        let implicit = tag.is_empty();
        let typ = self.tok_typ(t);
        if indentless_sequence && typ == TokenType::BlockEntry {
            end_mark = self.p.tokens[t].end_mark;
            self.state = State::IndentlessSequenceEntry;
            let mut ev = Event::new(EventType::SequenceStart, start_mark, end_mark);
            ev.anchor = anchor;
            ev.tag = tag;
            ev.implicit = implicit;
            ev.collection_style = CollectionStyle::Block;
            return Ok(ev);
        }
        if typ == TokenType::Scalar {
            let tok = &mut self.p.tokens[t];
            end_mark = tok.end_mark;
            let plain_implicit = (tag.is_empty() && tok.style == ScalarStyle::Plain) || tag == b"!";
            let value = std::mem::take(&mut tok.value);
            let style = tok.style;
            self.state = self.pop_state();
            let mut ev = Event::new(EventType::Scalar, start_mark, end_mark);
            ev.anchor = anchor;
            ev.tag = tag;
            ev.value = value;
            ev.implicit = plain_implicit;
            ev.scalar_style = style;
            self.set_event_comments(&mut ev);
            self.skip_token();
            return Ok(ev);
        }
        if typ == TokenType::FlowSequenceStart {
            end_mark = self.p.tokens[t].end_mark;
            self.state = State::FlowSequenceFirstEntry;
            let mut ev = Event::new(EventType::SequenceStart, start_mark, end_mark);
            ev.anchor = anchor;
            ev.tag = tag;
            ev.implicit = implicit;
            ev.collection_style = CollectionStyle::Flow;
            self.set_event_comments(&mut ev);
            return Ok(ev);
        }
        if typ == TokenType::FlowMappingStart {
            end_mark = self.p.tokens[t].end_mark;
            self.state = State::FlowMappingFirstKey;
            let mut ev = Event::new(EventType::MappingStart, start_mark, end_mark);
            ev.anchor = anchor;
            ev.tag = tag;
            ev.implicit = implicit;
            ev.collection_style = CollectionStyle::Flow;
            self.set_event_comments(&mut ev);
            return Ok(ev);
        }
        if block && typ == TokenType::BlockSequenceStart {
            end_mark = self.p.tokens[t].end_mark;
            self.state = State::BlockSequenceFirstEntry;
            let mut ev = Event::new(EventType::SequenceStart, start_mark, end_mark);
            ev.anchor = anchor;
            ev.tag = tag;
            ev.implicit = implicit;
            ev.collection_style = CollectionStyle::Block;
            if let Some(stem) = self.p.stem_comment.take() {
                ev.comments = Comments::boxed(stem, Vec::new(), Vec::new());
            }
            return Ok(ev);
        }
        if block && typ == TokenType::BlockMappingStart {
            end_mark = self.p.tokens[t].end_mark;
            self.state = State::BlockMappingFirstKey;
            let mut ev = Event::new(EventType::MappingStart, start_mark, end_mark);
            ev.anchor = anchor;
            ev.tag = tag;
            ev.implicit = implicit;
            ev.collection_style = CollectionStyle::Block;
            if let Some(stem) = self.p.stem_comment.take() {
                ev.comments = Comments::boxed(stem, Vec::new(), Vec::new());
            }
            return Ok(ev);
        }
        if !anchor.is_empty() || !tag.is_empty() {
            self.state = self.pop_state();
            let mut ev = Event::new(EventType::Scalar, start_mark, end_mark);
            ev.anchor = anchor;
            ev.tag = tag;
            ev.implicit = implicit;
            ev.scalar_style = ScalarStyle::Plain;
            return Ok(ev);
        }
        let context = if block {
            "while parsing a block node"
        } else {
            "while parsing a flow node"
        };
        Err(parser_error_context(
            context,
            start_mark,
            "did not find expected node content",
            self.p.tokens[t].start_mark,
        ))
    }

    fn parse_block_sequence_entry(&mut self, first: bool) -> Res<Event> {
        if first {
            let t = self.peek_token()?;
            self.marks.push(self.p.tokens[t].start_mark);
            self.skip_token();
        }
        let t = self.peek_token()?;
        let typ = self.tok_typ(t);
        if typ == TokenType::BlockEntry {
            let mark = self.p.tokens[t].end_mark;
            let prior_head_len = self.p.head_comment.len();
            self.skip_token();
            self.split_stem_comment(prior_head_len)?;
            let t = self.peek_token()?;
            let typ = self.tok_typ(t);
            if typ != TokenType::BlockEntry && typ != TokenType::BlockEnd {
                self.states.push(State::BlockSequenceEntry);
                return self.parse_node(true, false);
            }
            self.state = State::BlockSequenceEntry;
            return Ok(self.process_empty_scalar(mark));
        }
        if typ == TokenType::BlockEnd {
            self.state = self.pop_state();
            self.marks.pop();
            let tok = &self.p.tokens[t];
            let ev = Event::new(EventType::SequenceEnd, tok.start_mark, tok.end_mark);
            self.skip_token();
            return Ok(ev);
        }
        let context_mark = self.marks.pop().unwrap_or_default();
        Err(parser_error_context(
            "while parsing a block collection",
            context_mark,
            "did not find expected '-' indicator",
            self.p.tokens[t].start_mark,
        ))
    }

    fn parse_indentless_sequence_entry(&mut self) -> Res<Event> {
        let t = self.peek_token()?;
        if self.tok_typ(t) == TokenType::BlockEntry {
            let mark = self.p.tokens[t].end_mark;
            let prior_head_len = self.p.head_comment.len();
            self.skip_token();
            self.split_stem_comment(prior_head_len)?;
            let t = self.peek_token()?;
            let typ = self.tok_typ(t);
            if typ != TokenType::BlockEntry
                && typ != TokenType::Key
                && typ != TokenType::Value
                && typ != TokenType::BlockEnd
            {
                self.states.push(State::IndentlessSequenceEntry);
                return self.parse_node(true, false);
            }
            self.state = State::IndentlessSequenceEntry;
            return Ok(self.process_empty_scalar(mark));
        }
        self.state = self.pop_state();
        let tok = &self.p.tokens[t];
        Ok(Event::new(
            EventType::SequenceEnd,
            tok.start_mark,
            tok.start_mark,
        ))
    }

    /// When a sequence or map is found under a sequence entry, the former head comment is
    /// assigned to the underlying sequence or map as a whole (the "stem" comment).
    fn split_stem_comment(&mut self, stem_len: usize) -> Res<()> {
        if stem_len == 0 {
            return Ok(());
        }
        let t = self.peek_token()?;
        let typ = self.tok_typ(t);
        if typ != TokenType::BlockSequenceStart && typ != TokenType::BlockMappingStart {
            return Ok(());
        }
        let hc = &self.p.head_comment;
        let stem = hc[..stem_len.min(hc.len())].to_vec();
        if hc.len() == stem_len {
            self.p.head_comment = Vec::new();
        } else {
            self.p.head_comment = hc
                .get(stem_len + 1..)
                .map(|s| s.to_vec())
                .unwrap_or_default();
        }
        self.p.stem_comment = Some(stem);
        Ok(())
    }

    fn parse_block_mapping_key(&mut self, first: bool) -> Res<Event> {
        if first {
            let t = self.peek_token()?;
            self.marks.push(self.p.tokens[t].start_mark);
            self.skip_token();
        }
        let t = self.peek_token()?;
        let typ = self.tok_typ(t);
        if typ == TokenType::Key {
            let mark = self.p.tokens[t].end_mark;
            self.skip_token();
            let t = self.peek_token()?;
            let typ = self.tok_typ(t);
            if typ != TokenType::Key && typ != TokenType::Value && typ != TokenType::BlockEnd {
                self.states.push(State::BlockMappingValue);
                return self.parse_node(true, true);
            }
            self.state = State::BlockMappingValue;
            return Ok(self.process_empty_scalar(mark));
        } else if typ == TokenType::BlockEnd {
            self.state = self.pop_state();
            self.marks.pop();
            let tok = &self.p.tokens[t];
            let mut ev = Event::new(EventType::MappingEnd, tok.start_mark, tok.end_mark);
            self.set_event_comments(&mut ev);
            self.skip_token();
            return Ok(ev);
        }
        let context_mark = self.marks.pop().unwrap_or_default();
        Err(parser_error_context(
            "while parsing a block mapping",
            context_mark,
            "did not find expected key",
            self.p.tokens[t].start_mark,
        ))
    }

    fn parse_block_mapping_value(&mut self) -> Res<Event> {
        let t = self.peek_token()?;
        if self.tok_typ(t) == TokenType::Value {
            let mark = self.p.tokens[t].end_mark;
            self.skip_token();
            let t = self.peek_token()?;
            let typ = self.tok_typ(t);
            if typ != TokenType::Key && typ != TokenType::Value && typ != TokenType::BlockEnd {
                self.states.push(State::BlockMappingKey);
                return self.parse_node(true, true);
            }
            self.state = State::BlockMappingKey;
            return Ok(self.process_empty_scalar(mark));
        }
        self.state = State::BlockMappingKey;
        let mark = self.p.tokens[t].start_mark;
        Ok(self.process_empty_scalar(mark))
    }

    fn parse_flow_sequence_entry(&mut self, first: bool) -> Res<Event> {
        if first {
            let t = self.peek_token()?;
            self.marks.push(self.p.tokens[t].start_mark);
            self.skip_token();
        }
        let mut t = self.peek_token()?;
        if self.tok_typ(t) != TokenType::FlowSequenceEnd {
            if !first {
                if self.tok_typ(t) == TokenType::FlowEntry {
                    self.skip_token();
                    t = self.peek_token()?;
                } else {
                    let context_mark = self.marks.pop().unwrap_or_default();
                    return Err(parser_error_context(
                        "while parsing a flow sequence",
                        context_mark,
                        "did not find expected ',' or ']'",
                        self.p.tokens[t].start_mark,
                    ));
                }
            }
            let typ = self.tok_typ(t);
            if typ == TokenType::Key {
                self.state = State::FlowSequenceEntryMappingKey;
                let tok = &self.p.tokens[t];
                let mut ev = Event::new(EventType::MappingStart, tok.start_mark, tok.end_mark);
                ev.implicit = true;
                ev.collection_style = CollectionStyle::Flow;
                self.skip_token();
                return Ok(ev);
            } else if typ != TokenType::FlowSequenceEnd {
                self.states.push(State::FlowSequenceEntry);
                return self.parse_node(false, false);
            }
        }
        self.state = self.pop_state();
        self.marks.pop();
        let tok = &self.p.tokens[t];
        let mut ev = Event::new(EventType::SequenceEnd, tok.start_mark, tok.end_mark);
        self.set_event_comments(&mut ev);
        self.skip_token();
        Ok(ev)
    }

    fn parse_flow_sequence_entry_mapping_key(&mut self) -> Res<Event> {
        let t = self.peek_token()?;
        let typ = self.tok_typ(t);
        if typ != TokenType::Value
            && typ != TokenType::FlowEntry
            && typ != TokenType::FlowSequenceEnd
        {
            self.states.push(State::FlowSequenceEntryMappingValue);
            return self.parse_node(false, false);
        }
        let mark = self.p.tokens[t].end_mark;
        self.skip_token();
        self.state = State::FlowSequenceEntryMappingValue;
        Ok(self.process_empty_scalar(mark))
    }

    fn parse_flow_sequence_entry_mapping_value(&mut self) -> Res<Event> {
        let mut t = self.peek_token()?;
        if self.tok_typ(t) == TokenType::Value {
            self.skip_token();
            t = self.peek_token()?;
            let typ = self.tok_typ(t);
            if typ != TokenType::FlowEntry && typ != TokenType::FlowSequenceEnd {
                self.states.push(State::FlowSequenceEntryMappingEnd);
                return self.parse_node(false, false);
            }
        }
        self.state = State::FlowSequenceEntryMappingEnd;
        let mark = self.p.tokens[t].start_mark;
        Ok(self.process_empty_scalar(mark))
    }

    fn parse_flow_sequence_entry_mapping_end(&mut self) -> Res<Event> {
        let t = self.peek_token()?;
        self.state = State::FlowSequenceEntry;
        let tok = &self.p.tokens[t];
        Ok(Event::new(
            EventType::MappingEnd,
            tok.start_mark,
            tok.start_mark,
        ))
    }

    fn parse_flow_mapping_key(&mut self, first: bool) -> Res<Event> {
        if first {
            let t = self.peek_token()?;
            self.marks.push(self.p.tokens[t].start_mark);
            self.skip_token();
        }
        let mut t = self.peek_token()?;
        if self.tok_typ(t) != TokenType::FlowMappingEnd {
            if !first {
                if self.tok_typ(t) == TokenType::FlowEntry {
                    self.skip_token();
                    t = self.peek_token()?;
                } else {
                    let context_mark = self.marks.pop().unwrap_or_default();
                    return Err(parser_error_context(
                        "while parsing a flow mapping",
                        context_mark,
                        "did not find expected ',' or '}'",
                        self.p.tokens[t].start_mark,
                    ));
                }
            }
            let typ = self.tok_typ(t);
            if typ == TokenType::Key {
                self.skip_token();
                t = self.peek_token()?;
                let typ = self.tok_typ(t);
                if typ != TokenType::Value
                    && typ != TokenType::FlowEntry
                    && typ != TokenType::FlowMappingEnd
                {
                    self.states.push(State::FlowMappingValue);
                    return self.parse_node(false, false);
                }
                self.state = State::FlowMappingValue;
                let mark = self.p.tokens[t].start_mark;
                return Ok(self.process_empty_scalar(mark));
            } else if typ != TokenType::FlowMappingEnd {
                self.states.push(State::FlowMappingEmptyValue);
                return self.parse_node(false, false);
            }
        }
        self.state = self.pop_state();
        self.marks.pop();
        let tok = &self.p.tokens[t];
        let mut ev = Event::new(EventType::MappingEnd, tok.start_mark, tok.end_mark);
        self.set_event_comments(&mut ev);
        self.skip_token();
        Ok(ev)
    }

    fn parse_flow_mapping_value(&mut self, empty: bool) -> Res<Event> {
        let mut t = self.peek_token()?;
        if empty {
            self.state = State::FlowMappingKey;
            let mark = self.p.tokens[t].start_mark;
            return Ok(self.process_empty_scalar(mark));
        }
        if self.tok_typ(t) == TokenType::Value {
            self.skip_token();
            t = self.peek_token()?;
            let typ = self.tok_typ(t);
            if typ != TokenType::FlowEntry && typ != TokenType::FlowMappingEnd {
                self.states.push(State::FlowMappingKey);
                return self.parse_node(false, false);
            }
        }
        self.state = State::FlowMappingKey;
        let mark = self.p.tokens[t].start_mark;
        Ok(self.process_empty_scalar(mark))
    }

    #[inline]
    fn process_empty_scalar(&mut self, mark: Mark) -> Event {
        let mut ev = Event::new(EventType::Scalar, mark, mark);
        ev.implicit = true;
        ev.scalar_style = ScalarStyle::Plain;
        ev
    }

    fn process_directives(&mut self) -> Res<()> {
        let mut has_version = false;
        let mut t = self.peek_token()?;
        loop {
            let typ = self.tok_typ(t);
            if typ == TokenType::VersionDirective {
                let tok = &self.p.tokens[t];
                if has_version {
                    return Err(parser_error(
                        "found duplicate %YAML directive",
                        tok.start_mark,
                    ));
                }
                if tok.major != 1 || tok.minor != 1 {
                    return Err(parser_error(
                        "found incompatible YAML document",
                        tok.start_mark,
                    ));
                }
                has_version = true;
            } else if typ == TokenType::TagDirective {
                let tok = &self.p.tokens[t];
                let (handle, prefix) = match &tok.tag {
                    Some(parts) => (parts.handle.clone(), parts.prefix.clone()),
                    None => (Vec::new(), Vec::new()),
                };
                if self.tag_directives.iter().any(|(h, _)| *h == handle) {
                    return Err(parser_error(
                        "found duplicate %TAG directive",
                        tok.start_mark,
                    ));
                }
                self.tag_directives.push((handle, prefix));
            } else {
                break;
            }
            self.skip_token();
            t = self.peek_token()?;
        }
        for (h, p) in [
            (&b"!"[..], &b"!"[..]),
            (&b"!!"[..], &b"tag:yaml.org,2002:"[..]),
        ] {
            if !self.tag_directives.iter().any(|(hh, _)| hh == h) {
                self.tag_directives.push((h.to_vec(), p.to_vec()));
            }
        }
        Ok(())
    }
}
