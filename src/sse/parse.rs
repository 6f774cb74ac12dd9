//! Incremental SSE parser (WHATWG event-stream rules): feed bytes in any chunking,
//! get complete events out. Lines are split on CRLF, LF or CR; UTF-8 split across
//! chunks is reassembled before decoding.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event {
        event: Option<String>,
        id: Option<String>,
        data: String,
    },
    Comment(String),
}

#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// A CR ended the last chunk; an LF at the start of the next one belongs to it.
    pending_cr: bool,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut items = Vec::new();
        let mut rest = chunk;
        if self.pending_cr {
            self.pending_cr = false;
            if rest.first() == Some(&b'\n') {
                rest = &rest[1..];
            }
        }
        let mut start = 0;
        let mut i = 0;
        while i < rest.len() {
            let b = rest[i];
            if b == b'\n' || b == b'\r' {
                self.buffer.extend_from_slice(&rest[start..i]);
                let line = std::mem::take(&mut self.buffer);
                self.handle_line(&line, &mut items);
                if b == b'\r' {
                    if i + 1 < rest.len() {
                        if rest[i + 1] == b'\n' {
                            i += 1;
                        }
                    } else {
                        self.pending_cr = true;
                    }
                }
                start = i + 1;
            }
            i += 1;
        }
        self.buffer.extend_from_slice(&rest[start..]);
        items
    }

    /// Ends the input: an unterminated last event is still delivered, because many
    /// servers close the connection right after the last `data:` line.
    pub fn finish(&mut self) -> Vec<SseItem> {
        let mut items = Vec::new();
        if !self.buffer.is_empty() {
            let line = std::mem::take(&mut self.buffer);
            self.handle_line(&line, &mut items);
        }
        self.dispatch(&mut items);
        items
    }

    fn handle_line(&mut self, line: &[u8], items: &mut Vec<SseItem>) {
        if line.is_empty() {
            self.dispatch(items);
            return;
        }
        let line = String::from_utf8_lossy(line);
        if let Some(comment) = line.strip_prefix(':') {
            items.push(SseItem::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_string(),
            ));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
    }

    fn dispatch(&mut self, items: &mut Vec<SseItem>) {
        let event = self.event.take();
        let id = self.id.take();
        if let Some(data) = self.data.take() {
            items.push(SseItem::Event { event, id, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(d: &str) -> SseItem {
        SseItem::Event {
            event: None,
            id: None,
            data: d.into(),
        }
    }

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseItem> {
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        for chunk in input.chunks(piece) {
            items.extend(parser.push(chunk));
        }
        items.extend(parser.finish());
        items
    }

    #[test]
    fn every_chunking_gives_the_same_events() {
        let input = "data: {\"a\":\"héllo 🌍\"}\r\n\r\n: ping\n\nevent: result\nid: 3\ndata: x\ndata: y\n\ndata: [DONE]\r\r".as_bytes();
        let want = vec![
            data("{\"a\":\"héllo 🌍\"}"),
            SseItem::Comment("ping".into()),
            SseItem::Event {
                event: Some("result".into()),
                id: Some("3".into()),
                data: "x\ny".into(),
            },
            data("[DONE]"),
        ];
        for piece in 1..=input.len() {
            assert_eq!(parse_in_pieces(input, piece), want, "piece size {piece}");
        }
    }

    #[test]
    fn unterminated_last_event_is_delivered_on_finish() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: last").is_empty());
        assert_eq!(parser.finish(), vec![data("last")]);
    }

    #[test]
    fn fields_without_space_and_unknown_fields() {
        let items = parse_in_pieces(b"data:x\nretry: 5\nfoo\n\n", 100);
        assert_eq!(items, vec![data("x")]);
    }

    #[test]
    fn event_without_data_is_dropped() {
        assert!(parse_in_pieces(b"event: ping\n\n", 100).is_empty());
    }
}
