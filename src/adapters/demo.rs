//! The built-in demo upstream: no network, no key. It answers in OpenAI's wire format, the
//! way an OpenAI-compatible upstream would, so everything behind it — routing, retries,
//! fake streaming, heartbeats, the log — works as with a real provider:
//! - it echoes what it was asked (the last user message, the model, the parameters it
//!   honoured) after a short fixed preamble;
//! - it thinks first (`DEMO_THINK_MS`, default 1000), so heartbeats are visible;
//! - it streams natively when asked, a few words per chunk;
//! - given tools, it calls the first one with arguments made from its schema;
//! - it reports `usage`;
//! - `demo-error-<status>` (e.g. `demo-error-429`) answers that error.

use super::{CallContext, HttpRequest, Provider, ProviderSpec};
use crate::error::GatewayError;
use crate::openai::{ChatCompletion, ChatRequest, MessageContent};
use crate::stream::translate::EventTranslator;
use serde_json::{json, Map, Value};

pub struct Demo;

pub static SPEC: ProviderSpec = ProviderSpec {
    id: "demo",
    base_url_var: "DEMO_BASE_URL",
    default_base_url: "demo://local",
    env_prefix: "DEMO",
    default_patterns: &["demo", "demo-*"],
    default_models: &["demo-chat", "demo-error-429", "demo-error-500"],
    base_url_suffixes: &[],
    base_url_as_written: true,
    legacy_base_path: "",
    owned_by: "gateway-demo",
};

/// The URL of every demo request: nothing is fetched, the runtime answers it locally.
pub const DEMO_URL: &str = "demo://local/chat/completions";

const PREAMBLE: &str = "This is the gateway's built-in demo upstream: no model was called.";

/// Words per streamed chunk.
const WORDS_PER_CHUNK: usize = 3;

/// What the demo upstream answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// How long it thinks before the first byte.
    pub think_ms: u64,
    /// The body: one JSON document, or SSE frames sent `frame_delay_ms` apart.
    pub frames: Vec<Vec<u8>>,
    pub frame_delay_ms: u64,
    pub event_stream: bool,
}

/// The answer to a demo request body (a Chat Completions request).
pub fn answer(body: &[u8], think_ms: u64) -> DemoAnswer {
    let request = match ChatRequest::parse(body) {
        Ok(request) => request,
        Err(error) => return error_answer(error.status(), &error.to_string(), 0),
    };
    if let Some(status) = failing_status(&request.model) {
        return error_answer(
            status,
            &format!(
                "The demo model `{}` always fails with {status}.",
                request.model
            ),
            think_ms,
        );
    }
    let completion = completion(&request);
    if request.stream {
        let frames = stream_frames(&completion, request.include_usage);
        DemoAnswer {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            think_ms,
            frames,
            frame_delay_ms: 40,
            event_stream: true,
        }
    } else {
        DemoAnswer {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            think_ms,
            frames: vec![serde_json::to_vec(&completion).unwrap_or_default()],
            frame_delay_ms: 0,
            event_stream: false,
        }
    }
}

/// `demo-error-429` → 429; any 4xx/5xx status works.
fn failing_status(model: &str) -> Option<u16> {
    let model = model.rsplit('/').next().unwrap_or(model);
    let status: u16 = model.strip_prefix("demo-error-")?.parse().ok()?;
    (400..=599).contains(&status).then_some(status)
}

fn error_answer(status: u16, message: &str, think_ms: u64) -> DemoAnswer {
    let kind = match status {
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    if status == 429 {
        headers.push(("retry-after".into(), "1".into()));
    }
    let body = json!({ "error": { "message": message, "type": kind, "param": null, "code": format!("demo_{status}") } });
    DemoAnswer {
        status,
        headers,
        think_ms,
        frames: vec![body.to_string().into_bytes()],
        frame_delay_ms: 0,
        event_stream: false,
    }
}

/// The last user message's text.
fn last_user_text(request: &ChatRequest) -> String {
    let Ok(messages) = request.messages() else {
        return String::new();
    };
    messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .and_then(|m| m.content.as_ref())
        .map(MessageContent::text)
        .unwrap_or_default()
}

/// The sampling parameters the request set, as `name=value`.
fn honoured(request: &ChatRequest) -> Vec<String> {
    [
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "reasoning_effort",
        "response_format",
    ]
    .iter()
    .filter_map(|name| {
        let value = request.body.get(*name).filter(|v| !v.is_null())?;
        Some(format!("{name}={value}"))
    })
    .collect()
}

/// Arguments for a tool from its JSON Schema: every required property gets a value.
fn sample_arguments(parameters: Option<&Value>, asked: &str) -> Value {
    let mut args = Map::new();
    let Some(schema) = parameters else {
        return Value::Object(args);
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(properties) = schema["properties"].as_object() else {
        return Value::Object(args);
    };
    for (name, property) in properties {
        if !required.is_empty() && !required.contains(&name.as_str()) {
            continue;
        }
        let value = if let Some(first) = property["enum"].as_array().and_then(|e| e.first()) {
            first.clone()
        } else {
            match property["type"].as_str() {
                Some("integer") => json!(1),
                Some("number") => json!(1.5),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!(crate::error::excerpt(asked, 60)),
            }
        };
        args.insert(name.clone(), value);
    }
    Value::Object(args)
}

fn tokens(text: &str) -> u64 {
    crate::dialects::estimate_tokens(text.len())
}

/// The completion the demo upstream gives.
fn completion(request: &ChatRequest) -> ChatCompletion {
    let asked = last_user_text(request);
    let prompt_tokens = tokens(
        &request
            .body
            .get("messages")
            .map(Value::to_string)
            .unwrap_or_default(),
    );
    let tools = request.tools().unwrap_or_default();
    let tool_choice_none = request.body.get("tool_choice") == Some(&json!("none"));
    let (message, finish) = match tools.iter().find(|t| t.kind == "function") {
        Some(tool) if !tool_choice_none && !has_tool_result(request) => {
            let arguments = sample_arguments(tool.function.parameters.as_ref(), &asked);
            (
                json!({ "role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_demo_1", "type": "function",
                    "function": { "name": tool.function.name, "arguments": arguments.to_string() } }] }),
                "tool_calls",
            )
        }
        _ => {
            let params = honoured(request);
            let params = if params.is_empty() {
                "none".to_string()
            } else {
                params.join(", ")
            };
            let text = format!(
                "{PREAMBLE} You asked: \"{}\". Model: {}. Parameters honoured: {params}.",
                crate::error::excerpt(&asked, 2000),
                request.model
            );
            (json!({ "role": "assistant", "content": text }), "stop")
        }
    };
    let completion_tokens = tokens(&message.to_string());
    let value = json!({
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "created": 0,
        "model": request.model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens },
    });
    crate::from_json_value(&value).unwrap_or_default()
}

/// After a tool result the demo answers in text, so tool loops end.
fn has_tool_result(request: &ChatRequest) -> bool {
    request
        .messages()
        .map(|m| m.last().is_some_and(|m| m.role == "tool"))
        .unwrap_or(false)
}

/// The completion as OpenAI stream chunks: role, a few words at a time (or the tool call),
/// the finish reason, usage when asked, `[DONE]`.
fn stream_frames(completion: &ChatCompletion, include_usage: bool) -> Vec<Vec<u8>> {
    let chunk = |delta: Value, finish: Option<&str>| {
        crate::sse::json_data(&json!({
            "id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        }))
    };
    let mut frames = vec![chunk(json!({ "role": "assistant", "content": "" }), None)];
    let Some(choice) = completion.choices.first() else {
        return frames;
    };
    let text = choice.message.text();
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for piece in words.chunks(WORDS_PER_CHUNK) {
        frames.push(chunk(json!({ "content": piece.concat() }), None));
    }
    for (i, call) in choice.message.tool_calls.iter().flatten().enumerate() {
        frames.push(chunk(
            json!({ "tool_calls": [{ "index": i, "id": call.id, "type": "function",
                "function": { "name": call.function.name, "arguments": call.function.arguments } }] }),
            None,
        ));
    }
    frames.push(chunk(json!({}), choice.finish_reason.as_deref()));
    if include_usage {
        frames.push(crate::sse::json_data(&json!({
            "id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model, "choices": [], "usage": completion.usage,
        })));
    }
    frames.push(crate::sse::done());
    frames
}

impl Provider for Demo {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    fn chat_request(&self, ctx: &CallContext) -> Result<HttpRequest, GatewayError> {
        let body = ctx.openai_body();
        Ok(HttpRequest {
            method: "POST",
            url: DEMO_URL.into(),
            headers: Vec::new(),
            body: Some(
                serde_json::to_vec(&body).map_err(|e| GatewayError::Internal(e.to_string()))?,
            ),
        })
    }

    fn parse_completion(
        &self,
        body: &[u8],
        _ctx: &CallContext,
    ) -> Result<ChatCompletion, GatewayError> {
        ChatCompletion::parse(body)
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> GatewayError {
        GatewayError::from_upstream(status, body)
    }

    fn stream_translator(&self, _ctx: &CallContext) -> Option<Box<dyn EventTranslator>> {
        None
    }

    fn models_request(&self, _base_url: &str, _key: &str) -> Option<HttpRequest> {
        None
    }

    fn parse_models(&self, _body: &[u8]) -> Vec<String> {
        Vec::new()
    }

    fn passes_json_through(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::{SseItem, SseParser};

    fn ask(body: Value) -> DemoAnswer {
        answer(body.to_string().as_bytes(), 700)
    }

    #[test]
    fn echoes_the_question_model_and_parameters() {
        let reply = ask(
            json!({"model": "demo-chat", "temperature": 0.3, "max_tokens": 50,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]}),
        );
        assert_eq!(
            (reply.status, reply.think_ms, reply.event_stream),
            (200, 700, false)
        );
        let body: Value = serde_json::from_slice(&reply.frames[0]).unwrap();
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(text.starts_with(PREAMBLE));
        assert!(text.contains("You asked: \"Hello there\""));
        assert!(text.contains("Model: demo-chat"));
        assert!(text.contains("temperature=0.3, max_tokens=50"));
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        let usage = &body["usage"];
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(
                usage["prompt_tokens"].as_u64().unwrap()
                    + usage["completion_tokens"].as_u64().unwrap()
            )
        );
        // Deterministic: the same question, the same answer.
        assert_eq!(
            reply,
            ask(
                json!({"model": "demo-chat", "temperature": 0.3, "max_tokens": 50,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]})
            )
        );
    }

    #[test]
    fn streams_a_few_words_per_chunk_with_usage() {
        let reply = ask(
            json!({"model": "demo-chat", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "one two three four five"}]}),
        );
        assert!(reply.event_stream);
        let mut parser = SseParser::new();
        let items: Vec<SseItem> = reply.frames.iter().flat_map(|f| parser.push(f)).collect();
        let mut text = String::new();
        let mut usage = None;
        let mut finish = None;
        for item in &items {
            let SseItem::Event { data, .. } = item else {
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let chunk: Value = serde_json::from_str(data).unwrap();
            if let Some(choice) = chunk["choices"].get(0) {
                text.push_str(choice["delta"]["content"].as_str().unwrap_or_default());
                finish = finish.or(choice["finish_reason"].as_str().map(str::to_string));
            } else {
                usage = Some(chunk["usage"].clone());
            }
        }
        assert!(text.contains("You asked: \"one two three four five\""));
        assert_eq!(finish.as_deref(), Some("stop"));
        assert!(usage.unwrap()["total_tokens"].as_u64().unwrap() > 0);
        assert!(reply.frames.len() > 5, "several chunks");
        assert_eq!(reply.frames.last().unwrap(), &crate::sse::done());
    }

    #[test]
    fn tools_get_a_call_then_the_result_gets_text() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}, "days": {"type": "integer"}},
            "required": ["city", "unit"]}}}]);
        let reply = ask(
            json!({"model": "demo-chat", "tools": tools, "messages": [{"role": "user", "content": "Weather in Bern?"}]}),
        );
        let body: Value = serde_json::from_slice(&reply.frames[0]).unwrap();
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Weather in Bern?", "unit": "c"}));
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        let after = ask(json!({"model": "demo-chat", "tools": tools, "messages": [
            {"role": "user", "content": "Weather in Bern?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_demo_1", "content": "sunny"}]}));
        let body: Value = serde_json::from_slice(&after.frames[0]).unwrap();
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn error_models_fail_as_told() {
        let reply =
            ask(json!({"model": "demo-error-429", "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(reply.status, 429);
        assert!(reply.headers.contains(&("retry-after".into(), "1".into())));
        let body: Value = serde_json::from_slice(&reply.frames[0]).unwrap();
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(ask(json!({"model": "demo/demo-error-503", "messages": [{"role": "user", "content": "x"}]})).status, 503);
        assert_eq!(failing_status("demo-error-200"), None);
        assert_eq!(failing_status("demo-error-abc"), None);
        assert_eq!(answer(b"not json", 5).status, 400);
    }
}
