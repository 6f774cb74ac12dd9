//! Fake streaming: the frames sent while a non-streaming upstream call is pending
//! (heartbeats) and the replay of its full answer as realistic `chat.completion.chunk`s.

use super::ChunkMeta;
use crate::error::GatewayError;
use crate::openai::{ChatCompletion, Choice};
use crate::sse;
use serde_json::{json, Map, Value};

/// An SSE comment: every OpenAI SDK ignores it, and it keeps the connection and any
/// proxy in between from timing out while the upstream works.
pub fn heartbeat() -> Vec<u8> {
    sse::comment("heartbeat")
}

/// How a failure after the 200 went out is reported: one error event, then `[DONE]`.
pub fn error_frames(error: &GatewayError) -> Vec<u8> {
    let mut out = sse::json_data(&error.to_body());
    out.extend_from_slice(&sse::done());
    out
}

/// Splits text into stream pieces the way tokens arrive: a piece starts at a word
/// (with the space before it) and is at most `max_chars` characters. Never splits
/// a UTF-8 character; the pieces concatenate back to `text`.
pub fn split_text(text: &str, max_chars: usize) -> Vec<&str> {
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut count = 0;
    let mut has_word = false;
    for (offset, ch) in text.char_indices() {
        let boundary_at_space = ch.is_whitespace() && has_word;
        if count > 0 && (count >= max_chars || boundary_at_space) {
            pieces.push(&text[start..offset]);
            start = offset;
            count = 0;
            has_word = false;
        }
        count += 1;
        has_word |= !ch.is_whitespace();
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// The chunk objects (not yet SSE-encoded) that replay `completion`.
pub fn completion_chunks(
    completion: &ChatCompletion,
    meta: &ChunkMeta,
    max_chars: usize,
) -> Vec<Value> {
    let mut chunks = Vec::new();
    let mut choices: Vec<&Choice> = completion.choices.iter().collect();
    choices.sort_by_key(|c| c.index);
    for choice in choices {
        let message = &choice.message;
        let index = choice.index;
        // First delta: the role, and any unknown message fields the client may rely on.
        let mut first = Map::new();
        first.insert("role".into(), Value::String(message.role.clone()));
        first.insert("content".into(), Value::String(String::new()));
        for (key, value) in &message.extra {
            first.insert(key.clone(), value.clone());
        }
        chunks.push(meta.delta(index, Value::Object(first), None));

        if let Some(reasoning) = &message.reasoning_content {
            for piece in split_text(reasoning, max_chars) {
                chunks.push(meta.delta(index, json!({ "reasoning_content": piece }), None));
            }
        }
        for piece in split_text(&message.text(), max_chars) {
            chunks.push(meta.delta(index, json!({ "content": piece }), None));
        }
        if let Some(refusal) = &message.refusal {
            for piece in split_text(refusal, max_chars) {
                chunks.push(meta.delta(index, json!({ "refusal": piece }), None));
            }
        }
        for (call_index, call) in message.tool_calls.iter().flatten().enumerate() {
            // OpenAI's shape: id, type and name first with empty arguments, then argument pieces.
            chunks.push(meta.delta(
                index,
                json!({ "tool_calls": [{
                    "index": call_index,
                    "id": call.id,
                    "type": call.kind,
                    "function": { "name": call.function.name, "arguments": "" },
                }]}),
                None,
            ));
            for piece in split_text(&call.function.arguments, max_chars.max(16)) {
                chunks.push(meta.delta(
                    index,
                    json!({ "tool_calls": [{ "index": call_index, "function": { "arguments": piece } }] }),
                    None,
                ));
            }
        }
        let has_tool_calls = message.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
        let finish_reason = choice
            .finish_reason
            .clone()
            .unwrap_or_else(|| if has_tool_calls { "tool_calls" } else { "stop" }.to_string());
        let mut last = meta.delta(index, json!({}), Some(&finish_reason));
        if let Some(logprobs) = &choice.logprobs {
            last["choices"][0]["logprobs"] = logprobs.clone();
        }
        chunks.push(last);
    }
    if meta.include_usage {
        chunks.push(meta.usage_chunk(completion.usage.clone().unwrap_or(Value::Null)));
    }
    chunks
}

/// The chunk envelope for replaying `completion`; missing ids and times are filled in.
pub fn meta_for(
    completion: &ChatCompletion,
    requested_model: &str,
    include_usage: bool,
    fallback_id: &str,
    now_seconds: i64,
) -> ChunkMeta {
    ChunkMeta {
        id: if completion.id.is_empty() {
            fallback_id.to_string()
        } else {
            completion.id.clone()
        },
        created: if completion.created > 0 {
            completion.created
        } else {
            now_seconds
        },
        model: if completion.model.is_empty() {
            requested_model.to_string()
        } else {
            completion.model.clone()
        },
        system_fingerprint: completion.system_fingerprint.clone(),
        include_usage,
    }
}

/// Every frame of the replay, ending with `[DONE]`: one SSE event per element.
pub fn replay_frames(
    completion: &ChatCompletion,
    meta: &ChunkMeta,
    max_chars: usize,
) -> Vec<Vec<u8>> {
    let mut frames: Vec<Vec<u8>> = completion_chunks(completion, meta, max_chars)
        .iter()
        .map(sse::json_data)
        .collect();
    frames.push(sse::done());
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::{SseItem, SseParser};

    fn completion(v: Value) -> ChatCompletion {
        serde_json::from_value(v).unwrap()
    }

    fn meta(include_usage: bool) -> ChunkMeta {
        ChunkMeta {
            id: "chatcmpl-x".into(),
            created: 7,
            model: "m".into(),
            system_fingerprint: None,
            include_usage,
        }
    }

    /// Parses replayed frames back and reassembles them the way an SDK accumulates deltas.
    fn reassemble(frames: &[Vec<u8>]) -> (String, Vec<(String, String, String)>, Vec<Value>) {
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        for frame in frames {
            items.extend(parser.push(frame));
        }
        let mut text = String::new();
        let mut calls: Vec<(String, String, String)> = Vec::new();
        let mut chunks = Vec::new();
        for item in items {
            let SseItem::Event { data, .. } = item else {
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let chunk: Value = serde_json::from_str(&data).unwrap();
            if let Some(delta) = chunk["choices"].get(0).map(|c| &c["delta"]) {
                if let Some(c) = delta["content"].as_str() {
                    text.push_str(c);
                }
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    let i = call["index"].as_u64().unwrap() as usize;
                    if calls.len() <= i {
                        calls.push(Default::default());
                    }
                    if let Some(id) = call["id"].as_str() {
                        calls[i].0 = id.into();
                    }
                    if let Some(name) = call["function"]["name"].as_str() {
                        calls[i].1.push_str(name);
                    }
                    if let Some(args) = call["function"]["arguments"].as_str() {
                        calls[i].2.push_str(args);
                    }
                }
            }
            chunks.push(chunk);
        }
        (text, calls, chunks)
    }

    #[test]
    fn split_keeps_every_character_and_words() {
        assert_eq!(
            split_text("Hello big world", 12),
            vec!["Hello", " big", " world"]
        );
        assert_eq!(split_text("abcdef", 4), vec!["abcd", "ef"]);
        assert_eq!(split_text("", 4), Vec::<&str>::new());
        assert_eq!(split_text("  lead", 12), vec!["  lead"]);
        for text in [
            "你好，世界！这是一个测试。",
            "emoji 🌍🚀 ok",
            "a\nb\n\nc",
            "x",
        ] {
            for max in 1..6 {
                let pieces = split_text(text, max);
                assert_eq!(pieces.concat(), text);
                assert!(pieces.iter().all(|p| p.chars().count() <= max));
            }
        }
    }

    #[test]
    fn replay_reassembles_content_exactly() {
        let text = "Hello, 世界! Ünïcödé 🌍 text\nwith lines.";
        let c = completion(
            json!({"id":"chatcmpl-1","created":5,"model":"gpt-x","choices":[
            {"index":0,"message":{"role":"assistant","content":text},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}}),
        );
        let m = meta_for(&c, "asked", true, "fallback", 99);
        assert_eq!(
            (m.id.as_str(), m.created, m.model.as_str()),
            ("chatcmpl-1", 5, "gpt-x")
        );
        let frames = replay_frames(&c, &m, 4);
        assert_eq!(frames.last().unwrap(), &sse::done());
        let (got, calls, chunks) = reassemble(&frames);
        assert_eq!(got, text);
        assert!(calls.is_empty());
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == "chatcmpl-1"));
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 12);
        assert!(chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["usage"].is_null()));
    }

    #[test]
    fn tool_calls_become_indexed_deltas() {
        let c = completion(
            json!({"choices":[{"index":0,"message":{"role":"assistant","content":null,
            "tool_calls":[
                {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"celsius\"}"}},
                {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
            "finish_reason":"tool_calls"}]}),
        );
        let m = meta_for(&c, "asked", false, "chatcmpl-fallback", 99);
        assert_eq!(
            (m.id.as_str(), m.created, m.model.as_str()),
            ("chatcmpl-fallback", 99, "asked")
        );
        let frames = replay_frames(&c, &m, 3);
        let (text, calls, chunks) = reassemble(&frames);
        assert_eq!(text, "");
        assert_eq!(
            calls,
            vec![
                (
                    "call_a".into(),
                    "get_weather".into(),
                    "{\"city\":\"Paris\",\"unit\":\"celsius\"}".into()
                ),
                ("call_b".into(), "get_time".into(), "{}".into()),
            ]
        );
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn several_choices_and_reasoning() {
        let c = completion(json!({"choices":[
            {"index":1,"message":{"role":"assistant","content":"second"},"finish_reason":"length"},
            {"index":0,"message":{"role":"assistant","content":"first","reasoning_content":"think"}}]}));
        let chunks = completion_chunks(&c, &meta(false), 100);
        let indexes: Vec<u64> = chunks
            .iter()
            .map(|c| c["choices"][0]["index"].as_u64().unwrap())
            .collect();
        assert_eq!(indexes, vec![0, 0, 0, 0, 1, 1, 1]);
        assert_eq!(
            chunks[1]["choices"][0]["delta"]["reasoning_content"],
            "think"
        );
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[6]["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn error_frames_end_with_done() {
        let frames = error_frames(&GatewayError::UpstreamTimeout { after_ms: 10 });
        let text = String::from_utf8(frames).unwrap();
        assert!(text.starts_with("data: {\"error\":{"));
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(heartbeat(), b": heartbeat\n\n");
    }
}
