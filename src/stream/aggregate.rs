//! The reverse of fake streaming: an OpenAI chunk stream folded back into one
//! `chat.completion`, for upstreams that stream even when asked not to.

use crate::error::GatewayError;
use crate::openai::{AssistantMessage, ChatCompletion, Choice, FunctionCall, ToolCall};
use crate::sse::{SseItem, SseParser};
use serde_json::{Map, Value};

/// True when a body is an SSE stream rather than JSON.
pub fn looks_like_sse(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let rest = &body[start..];
    rest.starts_with(b"data:")
        || rest.starts_with(b":")
        || rest.starts_with(b"event:")
        || rest.starts_with(b"id:")
}

/// Folds every `chat.completion.chunk` of an SSE body into one completion.
pub fn completion_from_sse(body: &[u8]) -> Result<ChatCompletion, GatewayError> {
    let mut parser = SseParser::new();
    let mut items = parser.push(body);
    items.extend(parser.finish());
    let mut completion = ChatCompletion {
        object: "chat.completion".into(),
        ..ChatCompletion::default()
    };
    let mut seen_chunk = false;
    for item in items {
        let SseItem::Event { data, .. } = item else {
            continue;
        };
        if data.trim() == crate::sse::encode::DONE {
            break;
        }
        let chunk: Value = serde_json::from_slice(data.as_bytes()).map_err(|e| {
            GatewayError::UpstreamMalformed(format!("a stream event is not JSON ({e})"))
        })?;
        if chunk.get("error").is_some() {
            return Err(GatewayError::from_upstream(502, data.as_bytes()));
        }
        seen_chunk = true;
        if completion.id.is_empty() {
            completion.id = chunk["id"].as_str().unwrap_or_default().to_string();
            completion.created = chunk["created"].as_i64().unwrap_or_default();
            completion.model = chunk["model"].as_str().unwrap_or_default().to_string();
            completion.system_fingerprint = chunk
                .get("system_fingerprint")
                .cloned()
                .filter(|v| !v.is_null());
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            completion.usage = Some(usage.clone());
        }
        for delta_choice in chunk["choices"].as_array().into_iter().flatten() {
            let index = delta_choice["index"].as_u64().unwrap_or(0) as u32;
            let position = match completion.choices.iter().position(|c| c.index == index) {
                Some(i) => i,
                None => {
                    completion.choices.push(Choice {
                        index,
                        message: AssistantMessage {
                            content: Some(Value::String(String::new())),
                            ..AssistantMessage::default()
                        },
                        ..Choice::default()
                    });
                    completion.choices.len() - 1
                }
            };
            let choice = &mut completion.choices[position];
            apply_delta(&mut choice.message, &delta_choice["delta"]);
            if let Some(reason) = delta_choice["finish_reason"].as_str() {
                choice.finish_reason = Some(reason.to_string());
            }
        }
    }
    if !seen_chunk {
        return Err(GatewayError::UpstreamMalformed(
            "the upstream stream had no chunks".into(),
        ));
    }
    completion.choices.sort_unstable_by_key(|c| c.index);
    Ok(completion)
}

fn append(target: &mut Option<String>, text: &str) {
    target.get_or_insert_with(String::new).push_str(text);
}

fn apply_delta(message: &mut AssistantMessage, delta: &Value) {
    if let Some(role) = delta["role"].as_str() {
        message.role = role.to_string();
    }
    if let Some(text) = delta["content"].as_str() {
        if let Some(Value::String(content)) = &mut message.content {
            content.push_str(text);
        }
    }
    if let Some(text) = delta["reasoning_content"].as_str() {
        append(&mut message.reasoning_content, text);
    }
    if let Some(text) = delta["refusal"].as_str() {
        append(&mut message.refusal, text);
    }
    for call in delta["tool_calls"].as_array().into_iter().flatten() {
        let index = call["index"].as_u64().unwrap_or(0) as usize;
        let calls = message.tool_calls.get_or_insert_with(Vec::new);
        while calls.len() <= index {
            calls.push(ToolCall {
                kind: "function".into(),
                function: FunctionCall::default(),
                extra: Map::new(),
                ..ToolCall::default()
            });
        }
        let target = &mut calls[index];
        if let Some(id) = call["id"].as_str() {
            target.id = id.to_string();
        }
        if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
            target.function.name.push_str(name);
        }
        if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str) {
            target.function.arguments.push_str(arguments);
        }
    }
    if message.tool_calls.is_some() && message.content == Some(Value::String(String::new())) {
        message.content = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::fake::{meta_for, replay_frames};
    use serde_json::json;

    #[test]
    fn detects_sse() {
        assert!(looks_like_sse(b"\n data: {}"));
        assert!(looks_like_sse(b": ping\n\n"));
        assert!(!looks_like_sse(b"{\"id\":1}"));
        assert!(!looks_like_sse(b""));
    }

    #[test]
    fn replay_then_aggregate_round_trips() {
        let original: ChatCompletion = serde_json::from_value(json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 5, "model": "m", "system_fingerprint": "fp",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hello, 世界 🌍!", "reasoning_content": "hmm"}, "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":[1,2]}"}}]}, "finish_reason": "tool_calls"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        })).unwrap();
        let meta = meta_for(&original, "m", true, "x", 0);
        let body: Vec<u8> = replay_frames(&original, &meta, 3).concat();
        let folded = completion_from_sse(&body).unwrap();
        assert_eq!(folded.id, "chatcmpl-9");
        assert_eq!(folded.choices[0].message.text(), "Hello, 世界 🌍!");
        assert_eq!(
            folded.choices[0].message.reasoning_content.as_deref(),
            Some("hmm")
        );
        assert_eq!(folded.choices[0].finish_reason.as_deref(), Some("stop"));
        assert_eq!(folded.choices[1].message.content, None);
        let call = &folded.choices[1].message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(
            (
                call.id.as_str(),
                call.function.name.as_str(),
                call.function.arguments.as_str()
            ),
            ("c1", "f", "{\"a\":[1,2]}")
        );
        assert_eq!(folded.usage, original.usage);
        assert_eq!(folded.system_fingerprint, Some(json!("fp")));
    }

    #[test]
    fn errors() {
        assert_eq!(
            completion_from_sse(b"data: [DONE]\n\n")
                .unwrap_err()
                .status(),
            502
        );
        assert_eq!(
            completion_from_sse(b"data: {bad\n\n").unwrap_err().status(),
            502
        );
        let err =
            completion_from_sse(b"data: {\"error\":{\"message\":\"boom\",\"type\":\"x\"}}\n\n")
                .unwrap_err();
        assert_eq!(err.to_body()["error"]["message"], "boom");
    }
}
