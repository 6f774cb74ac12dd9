//! Fake streaming: the frames sent while a non-streaming upstream call is pending
//! (heartbeats) and the replay of its full answer as realistic `chat.completion.chunk`s.

use super::{ChunkMeta, TextFrames};
use crate::error::GatewayError;
use crate::openai::{ChatCompletion, Choice, ToolCall};
use crate::sse;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;

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

/// Where the piece of `text` starting at byte `start` ends: a piece starts at a word
/// (with the space before it) and is at most `max_chars` characters. Never splits a UTF-8
/// character; consecutive pieces concatenate back to `text`.
pub fn next_piece(text: &str, start: usize, max_chars: usize) -> usize {
    let max_chars = max_chars.max(1);
    if max_chars > WORD_PIECE_LIMIT {
        return long_piece(text, start, max_chars);
    }
    let mut has_word = false;
    for (count, (offset, ch)) in text[start..].char_indices().enumerate() {
        if count > 0 && (count >= max_chars || (ch.is_whitespace() && has_word)) {
            return start + offset;
        }
        has_word |= !ch.is_whitespace();
    }
    text.len()
}

/// Chunks up to this size are one word each, as tokens arrive; larger ones (huge answers)
/// hold many words and end before a word.
const WORD_PIECE_LIMIT: usize = 64;

fn long_piece(text: &str, start: usize, max_chars: usize) -> usize {
    let rest = &text[start..];
    let Some((cut, _)) = rest.char_indices().nth(max_chars) else {
        return text.len();
    };
    // End before the last word that would be cut, when there is one.
    match rest[..cut].rfind(char::is_whitespace) {
        Some(space) if space > 0 => start + space,
        _ => start + cut,
    }
}

/// Splits text into stream pieces the way tokens arrive (see `next_piece`).
pub fn split_text(text: &str, max_chars: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = next_piece(text, start, max_chars);
        pieces.push(&text[start..end]);
        start = end;
    }
    pieces
}

/// The text fields a choice replays, in order.
const TEXT_FIELDS: [&str; 3] = ["reasoning_content", "content", "refusal"];

/// One choice being replayed; its texts are owned, never copied per chunk.
struct ChoiceReplay {
    index: u32,
    /// The role delta, with any unknown message fields the client may rely on.
    first: Option<Value>,
    texts: VecDeque<(&'static str, String)>,
    text_at: usize,
    calls: VecDeque<ToolCall>,
    call_index: usize,
    call_head_sent: bool,
    args_at: usize,
    last: Option<Value>,
}

impl ChoiceReplay {
    fn new(choice: Choice, meta: &ChunkMeta) -> ChoiceReplay {
        let Choice {
            index,
            mut message,
            finish_reason,
            logprobs,
            ..
        } = choice;
        let mut first = Map::new();
        first.insert("role".into(), Value::String(message.role.clone()));
        first.insert("content".into(), Value::String(String::new()));
        for (key, value) in std::mem::take(&mut message.extra) {
            first.insert(key, value);
        }
        let content = message.take_text();
        let texts: VecDeque<(&'static str, String)> = [
            message.reasoning_content.take(),
            Some(content),
            message.refusal.take(),
        ]
        .into_iter()
        .zip(TEXT_FIELDS)
        .filter_map(|(text, field)| text.filter(|t| !t.is_empty()).map(|t| (field, t)))
        .collect();
        let calls: VecDeque<ToolCall> = message.tool_calls.take().unwrap_or_default().into();
        let finish_reason = finish_reason.unwrap_or_else(|| {
            if calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            }
            .to_string()
        });
        let mut last = meta.delta(index, json!({}), Some(&finish_reason));
        if let Some(logprobs) = logprobs {
            last["choices"][0]["logprobs"] = logprobs;
        }
        ChoiceReplay {
            index,
            first: Some(meta.delta(index, Value::Object(first), None)),
            texts,
            text_at: 0,
            calls,
            call_index: 0,
            call_head_sent: false,
            args_at: 0,
            last: Some(last),
        }
    }
}

/// The most chunks one text (or one tool call's arguments) is replayed in; past that,
/// chunks grow instead of multiplying.
pub const MAX_PIECES: usize = 4096;

/// The replay of a full answer as SSE frames, made one at a time: memory stays the size of
/// the answer, whatever the number of chunks. Ends with `[DONE]`.
pub struct Replay {
    choices: std::vec::IntoIter<Choice>,
    current: Option<ChoiceReplay>,
    meta: ChunkMeta,
    max_chars: usize,
    usage: Option<Value>,
    frames: TextFrames,
    done: bool,
}

impl Replay {
    pub fn new(completion: ChatCompletion, meta: ChunkMeta, max_chars: usize) -> Replay {
        let ChatCompletion {
            mut choices, usage, ..
        } = completion;
        choices.sort_unstable_by_key(|c| c.index);
        Replay {
            choices: choices.into_iter(),
            current: None,
            usage: meta.include_usage.then(|| usage.unwrap_or(Value::Null)),
            meta,
            max_chars: max_chars.max(1),
            frames: TextFrames::default(),
            done: false,
        }
    }

    /// The next frame of the current choice, if it has one left.
    fn choice_frame(&mut self) -> Option<Vec<u8>> {
        let max_chars = self.max_chars;
        let choice = self.current.as_mut()?;
        if let Some(first) = choice.first.take() {
            return Some(sse::json_data(&first));
        }
        while let Some((field, text)) = choice.texts.front() {
            if choice.text_at < text.len() {
                let start = choice.text_at;
                // A huge answer is cut in at most MAX_PIECES chunks: bounded work and frames.
                let end = next_piece(text, start, max_chars.max(text.len() / MAX_PIECES));
                choice.text_at = end;
                let (index, field) = (choice.index, *field);
                let choice = self.current.as_ref()?;
                let piece = &choice.texts.front()?.1[start..end];
                // The hot path of a long answer.
                return Some(self.frames.text(&self.meta, index, field, piece));
            }
            choice.texts.pop_front();
            choice.text_at = 0;
        }
        while let Some(call) = choice.calls.front() {
            let call_index = choice.call_index;
            if !choice.call_head_sent {
                choice.call_head_sent = true;
                // OpenAI's shape: id, type and name first with empty arguments, then pieces.
                let mut head = json!({
                    "index": call_index,
                    "id": call.id,
                    "type": call.kind,
                    "function": { "name": call.function.name, "arguments": "" },
                });
                // Fields beyond OpenAI's (Gemini's `extra_content` thought signature) stay
                // with their call.
                for (key, value) in &call.extra {
                    head[key] = value.clone();
                }
                let delta = json!({ "tool_calls": [head] });
                return Some(sse::json_data(&self.meta.delta(choice.index, delta, None)));
            }
            let arguments = &call.function.arguments;
            if choice.args_at < arguments.len() {
                let max = max_chars.max(16).max(arguments.len() / MAX_PIECES);
                let end = next_piece(arguments, choice.args_at, max);
                let piece = &arguments[choice.args_at..end];
                choice.args_at = end;
                let delta = json!({ "tool_calls": [{ "index": call_index, "function": { "arguments": piece } }] });
                return Some(sse::json_data(&self.meta.delta(choice.index, delta, None)));
            }
            choice.calls.pop_front();
            choice.call_index += 1;
            choice.call_head_sent = false;
            choice.args_at = 0;
        }
        let last = choice.last.take()?;
        Some(sse::json_data(&last))
    }
}

impl Iterator for Replay {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(frame) = self.choice_frame() {
                return Some(frame);
            }
            match self.choices.next() {
                Some(choice) => self.current = Some(ChoiceReplay::new(choice, &self.meta)),
                None => break,
            }
        }
        self.current = None;
        if let Some(usage) = self.usage.take() {
            return Some(sse::json_data(&self.meta.usage_chunk(usage)));
        }
        if !self.done {
            self.done = true;
            return Some(sse::done());
        }
        None
    }
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

/// Every frame of the replay at once, ending with `[DONE]` (for small answers and tests).
pub fn replay_frames(
    completion: &ChatCompletion,
    meta: &ChunkMeta,
    max_chars: usize,
) -> Vec<Vec<u8>> {
    Replay::new(completion.clone(), meta.clone(), max_chars).collect()
}

/// Frames batched into one write when there is no pause between chunks: one write per frame
/// would cost more than the frame itself.
pub const BATCH_BYTES: usize = 16 * 1024;

/// The next write of a replay: one frame (`one_per_chunk`, when chunks are paced) or frames up
/// to `BATCH_BYTES`; and whether the frames ran out with it.
pub fn next_batch(
    frames: &mut dyn Iterator<Item = Vec<u8>>,
    one_per_chunk: bool,
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        match frames.next() {
            Some(frame) => {
                out.extend(frame);
                if one_per_chunk || out.len() >= BATCH_BYTES {
                    return (out, false);
                }
            }
            None => return (out, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::{SseItem, SseParser};

    fn completion(v: Value) -> ChatCompletion {
        serde_json::from_value(v).unwrap()
    }

    /// The chunk objects of a replay, without `[DONE]`.
    fn completion_chunks(completion: &ChatCompletion, meta: &ChunkMeta, max: usize) -> Vec<Value> {
        replay_frames(completion, meta, max)
            .iter()
            .map(|f| std::str::from_utf8(f).unwrap().trim_end())
            .filter(|f| *f != "data: [DONE]")
            .map(|f| serde_json::from_str(f.strip_prefix("data: ").unwrap()).unwrap())
            .collect()
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
    fn huge_answer_is_replayed_in_bounded_chunks() {
        let text = "word ".repeat(400_000); // 2 MB
        let args = format!("{{\"q\":\"{}\"}}", "x".repeat(300_000));
        let c = completion(json!({"choices":[{"index":0,"message":{"role":"assistant",
            "content": text, "tool_calls":[{"id":"c1","type":"function",
            "function":{"name":"f","arguments": args}}]},"finish_reason":"tool_calls"}]}));
        let frames: Vec<Vec<u8>> = Replay::new(c, meta(false), 12).collect();
        // role + text pieces + call head + argument pieces + finish + [DONE]
        // Pieces end before a word, so a text may take a few more than MAX_PIECES.
        assert!(
            frames.len() <= 2 * MAX_PIECES + MAX_PIECES / 8,
            "{} frames",
            frames.len()
        );
        let (got, calls, _) = reassemble(&frames);
        assert_eq!(got, text);
        assert_eq!(calls[0].2, args);
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
    fn extra_tool_call_fields_stay_with_their_call() {
        let c = completion(
            json!({"choices":[{"index":0,"message":{"role":"assistant","content":null,
            "tool_calls":[
                {"id":"c1","type":"function","function":{"name":"f","arguments":"{}"},
                 "extra_content":{"google":{"thought_signature":"sig-A"}}},
                {"id":"c2","type":"function","function":{"name":"g","arguments":"{}"}}]},
            "finish_reason":"tool_calls"}]}),
        );
        let chunks = completion_chunks(&c, &meta(false), 100);
        let heads: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0)?.pointer("/delta/tool_calls/0"))
            .filter(|call| call.get("id").is_some())
            .collect();
        assert_eq!(heads.len(), 2);
        assert_eq!(
            heads[0]["extra_content"]["google"]["thought_signature"],
            "sig-A"
        );
        assert!(heads[1].get("extra_content").is_none());
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
    fn fast_text_frames_equal_the_generic_encoding() {
        for include_usage in [false, true] {
            let mut m = meta(include_usage);
            m.system_fingerprint = Some(json!("fp_\"x"));
            m.id = "chat\"cmpl\\\"choices\":[]".into();
            let mut frames = TextFrames::default();
            for piece in ["plain", "quote \" and \\ and \n 🌍", ""] {
                assert_eq!(
                    frames.text(&m, 2, "content", piece),
                    sse::json_data(&m.delta(2, json!({ "content": piece }), None))
                );
            }
        }
    }

    #[test]
    fn a_long_answer_is_replayed_lazily() {
        let text = "word ".repeat(200_000);
        let c = completion(
            json!({"choices":[{"index":0,"message":{"role":"assistant","content":text.clone()}}]}),
        );
        let mut replay = Replay::new(c, meta(false), 12);
        let first: Vec<Vec<u8>> = replay.by_ref().take(3).collect();
        assert_eq!(first.len(), 3);
        let (mut frames, mut bytes) = (3, 0);
        for frame in replay {
            frames += 1;
            bytes += frame.len();
        }
        // Role, every piece, finish, [DONE].
        let piece = 12usize.max(text.len() / MAX_PIECES);
        assert_eq!(frames, 1 + split_text(&text, piece).len() + 2);
        assert!(bytes > text.len());
    }

    #[test]
    fn error_frames_end_with_done() {
        let frames = error_frames(&GatewayError::UpstreamTimeout { after_ms: 10 });
        let text = String::from_utf8(frames).unwrap();
        assert!(text.starts_with("data: {\"error\":{"));
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(heartbeat(), b": heartbeat\n\n");
    }

    #[test]
    fn batches_hold_whole_frames_up_to_the_batch_size_or_one_when_paced() {
        let frames = || (0..100).map(|i| vec![b'a' + (i % 26) as u8; 500]);
        let mut all = frames();
        let mut batches = Vec::new();
        loop {
            let (batch, ended) = next_batch(&mut all, false);
            batches.push(batch);
            if ended {
                break;
            }
        }
        // 500-byte frames: a batch closes at the first frame that reaches 16 KiB.
        assert_eq!(batches[0].len(), 33 * 500);
        assert!(batches
            .iter()
            .all(|b| b.len() % 500 == 0 && b.len() <= BATCH_BYTES + 500));
        assert_eq!(batches.concat(), frames().flatten().collect::<Vec<u8>>());

        let mut paced = frames();
        assert_eq!(next_batch(&mut paced, true), (vec![b'a'; 500], false));
        assert_eq!(next_batch(&mut paced, true), (vec![b'b'; 500], false));
        let mut empty = std::iter::empty();
        assert_eq!(next_batch(&mut empty, true), (Vec::new(), true));
    }
}
