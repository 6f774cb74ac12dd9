//! Passthrough of an OpenAI-compatible upstream stream: complete events are relayed as
//! soon as they arrive (a half-received event is never sent), and a stream that ends
//! without `[DONE]` is closed with an error event and `[DONE]`, so clients never hang
//! on a truncated answer. A native Responses stream (`native_responses`) ends with its
//! `response.completed` / `.incomplete` / `.failed` or `error` event instead, and a cut one
//! with a Responses `error` event.

use super::fake::error_frames;
use crate::error::GatewayError;
use crate::sse::{self, SseItem, SseParser};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Debug, Default)]
pub struct Relay {
    parser: SseParser,
    done: bool,
    /// Assistant text seen so far (choice 0), for the request log.
    pub content: String,
    pub events: usize,
    /// The `usage` object, when the upstream sent one.
    pub usage: Option<Value>,
    /// Bytes of generated text of every choice — content, reasoning, tool-call arguments —
    /// for a token estimate when no usage comes.
    pub generated: usize,
    /// Why the stream ended early, if it did.
    pub error: Option<String>,
    /// The stream is the Responses API's, not Chat Completions'.
    responses: bool,
}

impl Relay {
    pub fn new() -> Self {
        Self::default()
    }

    /// A relay of a native Responses API stream.
    pub fn responses() -> Self {
        Relay {
            responses: true,
            ..Self::default()
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds upstream bytes; returns the bytes to send to the client now.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let items = self.parser.push(bytes);
        self.emit(items)
    }

    /// The upstream body ended (`error` is set when it broke). Returns the last bytes.
    pub fn finish(&mut self, error: Option<GatewayError>) -> Vec<u8> {
        // An event cut off mid-way is dropped unless it is still whole JSON or [DONE]:
        // half a JSON object would make clients fail on a parse error instead of our error.
        let items = self
            .parser
            .finish()
            .into_iter()
            .filter(|item| match item {
                SseItem::Event { data, .. } => {
                    data.trim() == sse::encode::DONE
                        || serde_json::from_slice::<Value>(data.as_bytes()).is_ok()
                }
                SseItem::Comment(_) => true,
            })
            .collect();
        let mut out = self.emit(items);
        let mut error = error;
        if !self.done && self.responses {
            let error = error.take().unwrap_or_else(|| {
                GatewayError::UpstreamMalformed(
                    "the upstream stream ended before response.completed".to_string(),
                )
            });
            let body = error.to_body();
            let frame = serde_json::json!({ "type": "error", "code": body["error"]["code"],
                "message": body["error"]["message"], "param": null });
            out.extend_from_slice(b"event: error\n");
            out.extend_from_slice(&sse::json_data(&frame));
            self.error = Some(error.to_string());
            self.done = true;
        }
        if !self.done {
            let error = error.unwrap_or_else(|| {
                GatewayError::UpstreamMalformed(
                    "the upstream stream ended before [DONE]".to_string(),
                )
            });
            out.extend_from_slice(&error_frames(&error));
            self.error = Some(error.to_string());
            self.done = true;
        }
        out
    }

    fn emit(&mut self, items: Vec<SseItem>) -> Vec<u8> {
        let mut out = Vec::new();
        for item in items {
            if self.done {
                break;
            }
            match item {
                SseItem::Comment(text) => out.extend_from_slice(&sse::comment(&text)),
                SseItem::Event { event, id, data } => {
                    self.events += 1;
                    if data.trim() == sse::encode::DONE {
                        self.done = true;
                        out.extend_from_slice(&sse::done());
                        continue;
                    }
                    if self.responses {
                        out.extend_from_slice(&sse::encode::event(
                            event.as_deref(),
                            id.as_deref(),
                            &data,
                        ));
                        self.observe_responses(&data);
                        continue;
                    }
                    let upstream_error = self.observe(&data);
                    out.extend_from_slice(&sse::encode::event(
                        event.as_deref(),
                        id.as_deref(),
                        &data,
                    ));
                    if let Some(message) = upstream_error {
                        // The upstream's own error event ends the stream: one error, then [DONE].
                        self.error = Some(message);
                        self.done = true;
                        out.extend_from_slice(&sse::done());
                    }
                }
            }
        }
        out
    }

    /// A Responses event: text and usage for the log; a terminal event ends the stream.
    fn observe_responses(&mut self, data: &str) {
        let Ok(event) = serde_json::from_slice::<Value>(data.as_bytes()) else {
            return;
        };
        match event["type"].as_str() {
            Some("response.output_text.delta") => {
                if let Some(delta) = event["delta"].as_str() {
                    self.generated += delta.len();
                    super::keep_for_log(&mut self.content, delta);
                }
            }
            Some(
                "response.function_call_arguments.delta"
                | "response.reasoning_text.delta"
                | "response.reasoning_summary_text.delta"
                | "response.custom_tool_call_input.delta",
            ) => {
                self.generated += event["delta"].as_str().map_or(0, str::len);
            }
            Some("response.completed" | "response.incomplete") => {
                let usage = &event["response"]["usage"];
                if usage.is_object() {
                    self.usage = Some(serde_json::json!({
                        "prompt_tokens": usage["input_tokens"],
                        "completion_tokens": usage["output_tokens"],
                        "total_tokens": usage["total_tokens"],
                    }));
                }
                self.done = true;
            }
            Some("response.failed") => {
                let message = event
                    .pointer("/response/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream response failed");
                self.error = Some(format!("upstream response failed: {message}"));
                self.done = true;
            }
            Some("error") => {
                let message = event["message"]
                    .as_str()
                    .unwrap_or("the upstream sent an error");
                self.error = Some(format!("upstream error event: {message}"));
                self.done = true;
            }
            _ => {}
        }
    }

    /// Notes content and usage; returns the message when the event is an error object.
    fn observe(&mut self, data: &str) -> Option<String> {
        // Read through a view of just these members (no tree of every value); an event
        // whose members have unusual types is looked at as a whole `Value`.
        match serde_json::from_slice::<ChunkView>(data.as_bytes()) {
            Ok(chunk) => self.observe_view(chunk),
            Err(_) => self.observe_value(data),
        }
    }

    fn observe_view(&mut self, chunk: ChunkView<'_>) -> Option<String> {
        if let Some(error) = chunk.error {
            let message = error
                .message
                .0
                .as_deref()
                .unwrap_or("the upstream sent an error event");
            return Some(format!("upstream error event: {message}"));
        }
        let choices = chunk.choices.unwrap_or_default();
        if let Some(text) = choices
            .first()
            .and_then(|c| c.delta.as_ref())
            .and_then(|d| d.content.0.as_deref())
        {
            super::keep_for_log(&mut self.content, text);
        }
        for delta in choices.iter().filter_map(|c| c.delta.as_ref()) {
            for text in [&delta.content, &delta.reasoning_content, &delta.reasoning] {
                self.generated += text.0.as_deref().map_or(0, str::len);
            }
            for call in delta.tool_calls.iter().flatten() {
                self.generated += call
                    .function
                    .as_ref()
                    .and_then(|f| f.arguments.0.as_deref())
                    .map_or(0, str::len);
            }
        }
        if let Some(usage) = chunk.usage.filter(Value::is_object) {
            self.usage = Some(usage);
        }
        None
    }

    fn observe_value(&mut self, data: &str) -> Option<String> {
        let Ok(chunk) = serde_json::from_slice::<Value>(data.as_bytes()) else {
            return None;
        };
        if let Some(error) = chunk.get("error").filter(|e| e.is_object()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the upstream sent an error event");
            return Some(format!("upstream error event: {message}"));
        }
        if let Some(text) = chunk
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            super::keep_for_log(&mut self.content, text);
        }
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            for field in ["content", "reasoning_content", "reasoning"] {
                self.generated += delta[field].as_str().map_or(0, str::len);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                self.generated += call["function"]["arguments"].as_str().map_or(0, str::len);
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        None
    }
}

/// The members of a `chat.completion.chunk` the relay looks at; the rest is skipped unread.
#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(default, borrow)]
    error: Option<ErrorView<'a>>,
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceView<'a>>>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct ErrorView<'a> {
    #[serde(default, borrow)]
    message: AnyText<'a>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaView<'a>>,
}

#[derive(Deserialize)]
struct DeltaView<'a> {
    #[serde(default, borrow)]
    content: AnyText<'a>,
    #[serde(default, borrow)]
    reasoning_content: AnyText<'a>,
    #[serde(default, borrow)]
    reasoning: AnyText<'a>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<CallView<'a>>>,
}

#[derive(Deserialize)]
struct CallView<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionView<'a>>,
}

#[derive(Deserialize)]
struct FunctionView<'a> {
    #[serde(default, borrow)]
    arguments: AnyText<'a>,
}

/// Any JSON value, kept only when it is a string (borrowed when it holds no escapes).
#[derive(Default)]
struct AnyText<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for AnyText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Text<'a> {
            type Value = AnyText<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(AnyText(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AnyText(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(AnyText(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyText(None))
            }
        }
        deserializer.deserialize_any(Text(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_responses_streams_end_with_their_own_events() {
        let mut relay = Relay::responses();
        let out = relay.push(b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":2,\"output_tokens\":1,\"total_tokens\":3}}}\n\n");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("event: response.output_text.delta\n"));
        assert!(text.contains("event: response.completed\n"));
        assert!(relay.is_done());
        assert_eq!(relay.content, "Hi");
        assert_eq!(relay.usage.as_ref().unwrap()["total_tokens"], 3);
        assert!(
            relay.finish(None).is_empty(),
            "no [DONE] after a finished Responses stream"
        );

        let mut cut = Relay::responses();
        cut.push(b"data: {\"type\":\"response.output_text.delta\",\"delta\":\"pa\"}\n\n");
        let tail = String::from_utf8(cut.finish(None)).unwrap();
        assert!(tail.starts_with("event: error\ndata: {"), "{tail}");
        assert!(tail.contains("response.completed"));
        assert!(!tail.contains("[DONE]"));
    }

    #[test]
    fn the_member_view_reads_events_as_the_whole_value_does() {
        let events = [
            r#"{"choices":[{"index":0,"delta":{"content":"He said \"hi\"\n","role":"assistant"}}],"id":"x","extra":{"a":[1,2,{"b":null}]}}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"think","tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}},{"delta":{"content":"second"}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
            r#"{"choices":null,"usage":null}"#,
            r#"{"choices":[{"delta":null}],"usage":5}"#,
            r#"{"choices":[{"delta":{"content":7,"reasoning":["x"],"tool_calls":[{"function":null}]}}]}"#,
            r#"{"error":{"message":"quota exceeded","code":429}}"#,
            r#"{"error":{"code":500}}"#,
            r#"{"error":"a plain string is not an error object","choices":[{"delta":{"content":"ok"}}]}"#,
            r#"{"choices":"not a list"}"#,
            r#"{"choices":[{"delta":{"content":"dup"}}],"choices":[{"delta":{"content":"last"}}]}"#,
            r#"not json"#,
        ];
        for event in events {
            let (mut view, mut value) = (Relay::new(), Relay::new());
            let by_view = view.observe(event);
            let by_value = value.observe_value(event);
            assert_eq!(by_view, by_value, "{event}");
            assert_eq!(view.content, value.content, "{event}");
            assert_eq!(view.generated, value.generated, "{event}");
            assert_eq!(view.usage, value.usage, "{event}");
        }
    }

    #[test]
    fn generated_text_of_every_kind_is_counted() {
        let mut relay = Relay::new();
        relay.push(b"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"think\"}}]}\n\n");
        relay.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\",\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}},{\"index\":1,\"delta\":{\"content\":\"Yo!\"}}]}\n\n");
        assert_eq!(
            relay.generated,
            "think".len() + "Hi".len() + "{\"a\":1}".len() + "Yo!".len()
        );
        assert_eq!(relay.content, "Hi");
        let mut responses = Relay::responses();
        responses.push(b"data: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{}\"}\n\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"ok\"}\n\n");
        assert_eq!(responses.generated, 4);
    }

    #[test]
    fn relays_complete_events_only() {
        let mut relay = Relay::new();
        let out =
            relay.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"he\"}}]}\n\ndata: {\"choi");
        assert_eq!(
            out,
            b"data: {\"choices\":[{\"delta\":{\"content\":\"he\"}}]}\n\n"
        );
        let out = relay.push(b"ces\":[{\"delta\":{\"content\":\"llo\"}}],\"usage\":{\"total_tokens\":2}}\r\n\r\n: keep\n\ndata: [DONE]\n\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"choices\":[{\"delta\":{\"content\":\"llo\"}}],\"usage\":{\"total_tokens\":2}}\n\n: keep\n\ndata: [DONE]\n\n"
        );
        assert!(relay.is_done());
        assert_eq!(relay.content, "hello");
        assert_eq!(relay.usage.as_ref().unwrap()["total_tokens"], 2);
        assert!(relay.finish(None).is_empty());
    }

    #[test]
    fn cut_stream_ends_with_error_and_done() {
        let mut relay = Relay::new();
        relay.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"par");
        let tail = String::from_utf8(relay.finish(None)).unwrap();
        assert!(
            !tail.contains("{\"par"),
            "half an event is never relayed: {tail}"
        );
        assert!(tail.starts_with("data: {\"error\""), "{tail}");
        assert!(tail.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn unterminated_but_whole_last_event_is_kept() {
        let mut relay = Relay::new();
        relay.push(b"data: {\"choices\":[]}\n\ndata: [DONE]");
        assert_eq!(relay.finish(None), b"data: [DONE]\n\n");
    }

    #[test]
    fn an_upstream_error_event_ends_the_stream_once() {
        let mut relay = Relay::new();
        let out = relay.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\n");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("data: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n"),
            "{text}"
        );
        assert!(relay.is_done());
        assert!(relay.finish(None).is_empty(), "no second error event");
        assert!(relay.error.as_deref().unwrap().contains("boom"));
    }

    #[test]
    fn upstream_error_is_reported() {
        let mut relay = Relay::new();
        let tail = relay.finish(Some(GatewayError::UpstreamTimeout { after_ms: 1 }));
        assert!(String::from_utf8(tail)
            .unwrap()
            .contains("upstream_timeout"));
    }
}
