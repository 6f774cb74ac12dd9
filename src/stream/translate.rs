//! Native upstream streams turned into OpenAI chunk streams, event by event.

use super::fake::error_frames;
use super::relay::Relay;
use super::{Chunk, ChunkMeta, TextFrames};
use crate::error::GatewayError;
use crate::sse::{self, SseItem, SseParser};
use serde_json::Value;

/// Turns one provider's native stream events into OpenAI chunk objects.
pub trait EventTranslator {
    /// One upstream event (`event` is its SSE event name) → chunks; `Err` when the event
    /// reports an upstream error.
    fn event(&mut self, event: Option<&str>, data: &str) -> Result<Vec<Chunk>, GatewayError>;

    /// The bookkeeping the translator keeps its stream's state in.
    fn state(&self) -> &ChunkState;
    fn state_mut(&mut self) -> &mut ChunkState;

    /// The upstream stream ended normally → closing chunks (finish reason, usage);
    /// `Err` when it ended before the answer was complete.
    fn finish(&mut self) -> Result<Vec<Chunk>, GatewayError> {
        self.state_mut().close()
    }

    /// Text generated so far, for the request log.
    fn content(&self) -> &str {
        &self.state().content
    }

    /// The usage seen so far, in OpenAI's shape.
    fn usage(&self) -> Option<&Value> {
        self.state().usage.as_ref()
    }
}

/// Upstream bytes in, client SSE bytes out.
pub trait StreamAdapter {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8>;
    /// The upstream body ended (`error` when it broke); returns the closing bytes.
    fn finish(&mut self, error: Option<GatewayError>) -> Vec<u8>;
    /// True once the client stream is complete (`[DONE]` sent).
    fn is_done(&self) -> bool;
    fn content(&self) -> &str;
    fn usage(&self) -> Option<&Value>;
    /// The error the stream ended with, if it did.
    fn error(&self) -> Option<&str>;
    /// Bytes of text generated so far (content, reasoning, tool-call arguments), for a
    /// token estimate when no usage came.
    fn generated_bytes(&self) -> usize {
        self.content().len()
    }
    /// That error as the gateway error it was, when the adapter made it (a native error
    /// event), so a stream that fails at once keeps its status and code.
    fn failure(&self) -> Option<&GatewayError> {
        None
    }
}

impl StreamAdapter for Relay {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        Relay::push(self, bytes)
    }
    fn finish(&mut self, error: Option<GatewayError>) -> Vec<u8> {
        Relay::finish(self, error)
    }
    fn is_done(&self) -> bool {
        Relay::is_done(self)
    }
    fn content(&self) -> &str {
        &self.content
    }
    fn usage(&self) -> Option<&Value> {
        self.usage.as_ref()
    }
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    fn generated_bytes(&self) -> usize {
        self.generated
    }
}

/// SSE parsing plus a translator.
pub struct Translated {
    parser: SseParser,
    translator: Box<dyn EventTranslator>,
    done: bool,
    error: Option<String>,
    failure: Option<GatewayError>,
}

impl Translated {
    pub fn new(translator: Box<dyn EventTranslator>) -> Self {
        Translated {
            parser: SseParser::new(),
            translator,
            done: false,
            error: None,
            failure: None,
        }
    }

    fn translate(&mut self, items: Vec<SseItem>) -> Vec<u8> {
        let mut out = Vec::new();
        for item in items {
            if self.done {
                break;
            }
            let SseItem::Event { event, data, .. } = item else {
                continue;
            };
            if data.trim().is_empty() || data.trim() == sse::encode::DONE {
                continue;
            }
            match self.translator.event(event.as_deref(), &data) {
                Ok(chunks) => self.translator.state_mut().write(&chunks, &mut out),
                Err(error) => {
                    out.extend_from_slice(&error_frames(&error));
                    self.error = Some(error.to_string());
                    self.failure = Some(error);
                    self.done = true;
                }
            }
        }
        out
    }
}

impl StreamAdapter for Translated {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let items = self.parser.push(bytes);
        self.translate(items)
    }

    fn finish(&mut self, error: Option<GatewayError>) -> Vec<u8> {
        let items = self.parser.finish();
        let mut out = if error.is_none() {
            self.translate(items)
        } else {
            Vec::new()
        };
        if self.done {
            return out;
        }
        self.done = true;
        let result = match error {
            Some(error) => Err(error),
            None => self.translator.finish(),
        };
        match result {
            Ok(chunks) => {
                self.translator.state_mut().write(&chunks, &mut out);
                out.extend_from_slice(&sse::done());
            }
            Err(error) => {
                out.extend_from_slice(&error_frames(&error));
                self.error = Some(error.to_string());
            }
        }
        out
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn content(&self) -> &str {
        self.translator.content()
    }

    fn usage(&self) -> Option<&Value> {
        self.translator.usage()
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn failure(&self) -> Option<&GatewayError> {
        self.failure.as_ref()
    }
}

/// Bookkeeping every translator shares: the role chunk once per choice, tool-call
/// indexes, the finish reason and usage seen so far, and the text for the log.
#[derive(Debug)]
pub struct ChunkState {
    pub meta: ChunkMeta,
    pub started: Vec<u32>,
    pub tool_calls_per_choice: Vec<(u32, usize)>,
    pub finish_reasons: Vec<(u32, String)>,
    pub usage: Option<Value>,
    pub content: String,
    frames: TextFrames,
}

impl ChunkState {
    pub fn new(meta: ChunkMeta) -> Self {
        ChunkState {
            meta,
            started: Vec::new(),
            tool_calls_per_choice: Vec::new(),
            finish_reasons: Vec::new(),
            usage: None,
            content: String::new(),
            frames: TextFrames::default(),
        }
    }

    /// The chunks' frames, appended to `out`.
    pub fn write(&mut self, chunks: &[Chunk], out: &mut Vec<u8>) {
        for chunk in chunks {
            out.extend_from_slice(&self.frames.frame(&self.meta, chunk));
        }
    }

    /// A delta chunk of one choice.
    pub fn delta(&self, index: u32, delta: Value) -> Chunk {
        Chunk::Json(self.meta.delta(index, delta, None))
    }

    /// The role chunk, the first time a choice appears.
    pub fn start(&mut self, index: u32, out: &mut Vec<Chunk>) {
        if !self.started.contains(&index) {
            self.started.push(index);
            out.push(self.delta(
                index,
                serde_json::json!({ "role": "assistant", "content": "" }),
            ));
        }
    }

    /// Token log probabilities for what this event added to a choice: on its last delta
    /// in `out`, or on an empty delta of their own.
    pub fn logprobs(&mut self, index: u32, logprobs: Value, out: &mut Vec<Chunk>) {
        let last = out
            .iter_mut()
            .rev()
            .find(|chunk| chunk.index() == Some(u64::from(index)));
        if let Some(chunk) = last {
            // A text delta becomes a chunk object to carry them.
            let mut json = std::mem::replace(chunk, Chunk::Json(Value::Null)).into_json(&self.meta);
            if json["choices"][0]["logprobs"].is_null() {
                json["choices"][0]["logprobs"] = logprobs;
                *chunk = Chunk::Json(json);
                return;
            }
            *chunk = Chunk::Json(json);
        }
        self.start(index, out);
        let mut chunk = self.meta.delta(index, serde_json::json!({}), None);
        chunk["choices"][0]["logprobs"] = logprobs;
        out.push(Chunk::Json(chunk));
    }

    pub fn text(&mut self, index: u32, field: &'static str, text: &str, out: &mut Vec<Chunk>) {
        if text.is_empty() {
            return;
        }
        self.start(index, out);
        if index == 0 && field == "content" {
            super::keep_for_log(&mut self.content, text);
        }
        out.push(Chunk::Text {
            index,
            field,
            text: text.to_string(),
        });
    }

    /// The next tool-call index for a choice.
    pub fn next_tool_index(&mut self, choice: u32) -> usize {
        match self
            .tool_calls_per_choice
            .iter_mut()
            .find(|(c, _)| *c == choice)
        {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                self.tool_calls_per_choice.push((choice, 1));
                0
            }
        }
    }

    pub fn has_tool_calls(&self, choice: u32) -> bool {
        self.tool_calls_per_choice
            .iter()
            .any(|(c, n)| *c == choice && *n > 0)
    }

    pub fn set_finish(&mut self, index: u32, reason: String) {
        self.finish_reasons.retain(|(i, _)| *i != index);
        self.finish_reasons.push((index, reason));
    }

    /// Closing chunks: one finish chunk per choice, then usage if asked for.
    /// Fails when no choice finished, which means the stream was cut.
    pub fn close(&mut self) -> Result<Vec<Chunk>, GatewayError> {
        if self.finish_reasons.is_empty() {
            return Err(GatewayError::UpstreamMalformed(
                "the upstream stream ended before the answer was complete".into(),
            ));
        }
        let mut out = Vec::new();
        let mut reasons = std::mem::take(&mut self.finish_reasons);
        reasons.sort_unstable_by_key(|(i, _)| *i);
        for (index, reason) in reasons {
            self.start(index, &mut out);
            out.push(Chunk::Json(self.meta.delta(
                index,
                serde_json::json!({}),
                Some(&reason),
            )));
        }
        if self.meta.include_usage {
            out.push(Chunk::Json(
                self.meta
                    .usage_chunk(self.usage.clone().unwrap_or(Value::Null)),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A toy translator: each event's data is the text to emit; "END" finishes.
    struct Echo(ChunkState);

    impl EventTranslator for Echo {
        fn event(&mut self, event: Option<&str>, data: &str) -> Result<Vec<Chunk>, GatewayError> {
            if event == Some("error") {
                return Err(GatewayError::invalid(data.to_string()));
            }
            let mut out = Vec::new();
            if data == "END" {
                self.0.set_finish(0, "stop".into());
            } else {
                self.0.text(0, "content", data, &mut out);
            }
            Ok(out)
        }
        fn state(&self) -> &ChunkState {
            &self.0
        }
        fn state_mut(&mut self) -> &mut ChunkState {
            &mut self.0
        }
    }

    fn adapter(include_usage: bool) -> Translated {
        let mut state = ChunkState::new(ChunkMeta {
            id: "id".into(),
            created: 1,
            model: "m".into(),
            system_fingerprint: None,
            include_usage,
        });
        state.usage = Some(json!({"total_tokens": 3}));
        Translated::new(Box::new(Echo(state)))
    }

    fn data_events(bytes: &[u8]) -> Vec<String> {
        let mut parser = SseParser::new();
        parser
            .push(bytes)
            .into_iter()
            .filter_map(|i| match i {
                SseItem::Event { data, .. } => Some(data),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn translates_and_closes() {
        let mut a = adapter(true);
        let mut out = a.push(b"data: he");
        out.extend(a.push(b"llo\n\ndata: END\n\n"));
        out.extend(a.finish(None));
        let events = data_events(&out);
        assert_eq!(events.len(), 5, "{events:?}"); // role, text, finish, usage, DONE
        assert_eq!(events[4], "[DONE]");
        let finish: Value = serde_json::from_str(&events[2]).unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage: Value = serde_json::from_str(&events[3]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 3);
        assert_eq!(a.content(), "hello");
        assert!(a.is_done());
    }

    #[test]
    fn cut_stream_and_error_events() {
        let mut a = adapter(false);
        a.push(b"data: partial\n\n");
        let events = data_events(&a.finish(None));
        assert!(events[0].contains("\"error\""));
        assert_eq!(events[1], "[DONE]");
        assert!(a.error().is_some());

        let mut b = adapter(false);
        let events = data_events(&b.push(b"event: error\ndata: boom\n\ndata: ignored\n\n"));
        assert!(events[0].contains("boom"));
        assert_eq!(events.len(), 2);
        assert!(b.is_done());
        assert!(b.finish(None).is_empty());
    }
}
