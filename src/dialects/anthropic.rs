//! Anthropic Messages (`POST /v1/messages`) in front of every upstream: the request becomes a
//! chat request, the chat answer becomes a Message, the chat stream becomes Anthropic's
//! event sequence, errors take Anthropic's shape.

use super::{collect_call, named_event, PendingCall, StreamDialect, UnsupportedTools};
use crate::error::GatewayError;
use crate::openai::{json_object, ChatCompletion};
use crate::sse::SseItem;
use serde_json::{json, Map, Value};

/// A thinking block carrying a Gemini thought signature (for the tool call that follows it)
/// starts its `signature` with this, so it can go back onto the right call.
const GEMINI_SIGNATURE_PREFIX: &str = "gw-gemini:";

/// A Messages request, translated.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The chat request body.
    pub chat: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// Tool types dropped because no upstream can run them (`web_search_20250305`, …).
    pub dropped_tools: Vec<String>,
}

fn bad(message: impl Into<String>, param: &str) -> GatewayError {
    GatewayError::invalid_param(message, param)
}

/// The Messages request as a chat request.
pub fn to_chat(body: &[u8], unsupported: UnsupportedTools) -> Result<Translated, GatewayError> {
    let request = json_object(body, "`model`, `max_tokens` and `messages`")?;
    let model = match request.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        _ => return Err(bad("model: Field required", "model")),
    };
    let mut chat = Map::new();
    chat.insert("model".into(), json!(model));

    let mut messages = Vec::new();
    match request.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                messages.push(json!({ "role": "system", "content": text }));
            }
        }
        Some(Value::Array(blocks)) => {
            let text = text_of_blocks(blocks, "system")?;
            if !text.is_empty() {
                messages.push(json!({ "role": "system", "content": text }));
            }
        }
        Some(_) => return Err(bad("system must be a string or text blocks", "system")),
    }
    let Some(Value::Array(input)) = request.get("messages") else {
        return Err(bad("messages: Field required", "messages"));
    };
    if input.is_empty() {
        return Err(bad(
            "messages: at least one message is required",
            "messages",
        ));
    }
    for (i, message) in input.iter().enumerate() {
        translate_message(message, i, &mut messages)?;
    }
    chat.insert("messages".into(), Value::Array(messages));

    match request.get("max_tokens") {
        Some(v) if v.as_u64().is_some_and(|n| n > 0) => {
            chat.insert("max_tokens".into(), v.clone());
        }
        None | Some(Value::Null) => return Err(bad("max_tokens: Field required", "max_tokens")),
        Some(_) => return Err(bad("max_tokens must be a positive integer", "max_tokens")),
    }
    for name in ["temperature", "top_p", "top_k"] {
        if let Some(v) = request.get(name).filter(|v| v.is_number()) {
            chat.insert(name.into(), v.clone());
        }
    }
    if let Some(Value::Array(stops)) = request.get("stop_sequences") {
        if !stops.is_empty() {
            chat.insert("stop".into(), Value::Array(stops.clone()));
        }
    }
    if let Some(user) = request.get("metadata").and_then(|m| m["user_id"].as_str()) {
        chat.insert("user".into(), json!(user));
    }
    if let Some(thinking) = request.get("thinking").filter(|t| t.is_object()) {
        match thinking["type"].as_str() {
            Some("enabled") => {
                let budget = thinking["budget_tokens"].as_u64().unwrap_or(4096);
                let effort = match budget {
                    0..=2048 => "low",
                    2049..=16384 => "medium",
                    _ => "high",
                };
                chat.insert("reasoning_effort".into(), json!(effort));
            }
            Some("adaptive") => {
                chat.insert("reasoning_effort".into(), json!("medium"));
            }
            _ => {}
        }
    }

    // Claude Code's explicit effort wins over the one read from the thinking budget.
    if let Some(effort) = request
        .get("output_config")
        .and_then(|c| c["effort"].as_str())
        .filter(|e| matches!(*e, "low" | "medium" | "high"))
    {
        if request.get("thinking").and_then(|t| t["type"].as_str()) != Some("disabled") {
            chat.insert("reasoning_effort".into(), json!(effort));
        }
    }
    let mut dropped_tools = Vec::new();
    if let Some(tools) = request.get("tools").filter(|t| !t.is_null()) {
        let Value::Array(tools) = tools else {
            return Err(bad("tools must be an array", "tools"));
        };
        let mut functions = Vec::new();
        for (i, tool) in tools.iter().enumerate() {
            let kind = tool["type"].as_str().unwrap_or("custom");
            if kind != "custom" {
                // Anthropic's server and built-in tools (web_search_*, bash_*, text_editor_*,
                // computer_*, code_execution_*) run at Anthropic or need its own schemas.
                unsupported.refuse_or_drop(i, kind, &mut dropped_tools)?;
                continue;
            }
            let name = tool["name"]
                .as_str()
                .ok_or_else(|| bad("a tool needs a `name`", &format!("tools[{i}].name")))?;
            let mut function = json!({
                "name": name,
                "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
            });
            if let Some(description) = tool["description"].as_str() {
                function["description"] = json!(description);
            }
            functions.push(json!({ "type": "function", "function": function }));
        }
        if !functions.is_empty() {
            chat.insert("tools".into(), Value::Array(functions));
        }
    }
    if let Some(choice) = request.get("tool_choice").filter(|c| c.is_object()) {
        if chat.contains_key("tools") {
            let mapped = match choice["type"].as_str() {
                Some("auto") => json!("auto"),
                Some("any") => json!("required"),
                Some("none") => json!("none"),
                Some("tool") => {
                    let name = choice["name"].as_str().ok_or_else(|| {
                        bad(
                            "tool_choice of type `tool` needs a `name`",
                            "tool_choice.name",
                        )
                    })?;
                    json!({ "type": "function", "function": { "name": name } })
                }
                _ => {
                    return Err(bad(
                        "tool_choice.type must be auto, any, tool or none",
                        "tool_choice.type",
                    ))
                }
            };
            chat.insert("tool_choice".into(), mapped);
            if choice["disable_parallel_tool_use"] == true {
                chat.insert("parallel_tool_calls".into(), json!(false));
            }
        }
    }
    let stream = request.get("stream") == Some(&Value::Bool(true));
    if stream {
        chat.insert("stream".into(), json!(true));
        chat.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Translated {
        chat,
        model,
        stream,
        dropped_tools,
    })
}

fn text_of_blocks(blocks: &[Value], param: &str) -> Result<String, GatewayError> {
    let mut text = String::new();
    for (i, block) in blocks.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") => {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(block["text"].as_str().unwrap_or_default());
            }
            _ => {
                return Err(bad(
                    "only text blocks are accepted here",
                    &format!("{param}[{i}]"),
                ))
            }
        }
    }
    Ok(text)
}

/// An image or document block's `source` as a data: URL or an http(s) URL.
fn source_url(block: &Value, param: &str) -> Result<String, GatewayError> {
    let source = &block["source"];
    match source["type"].as_str() {
        Some("base64") => {
            let media = source["media_type"]
                .as_str()
                .unwrap_or("application/octet-stream");
            let data = source["data"]
                .as_str()
                .ok_or_else(|| bad("a base64 source needs `data`", param))?;
            Ok(format!("data:{media};base64,{data}"))
        }
        Some("url") => source["url"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| bad("a url source needs `url`", param)),
        _ => Err(bad(
            "a source must be of type base64 or url",
            &format!("{param}.source.type"),
        )),
    }
}

fn translate_message(message: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let param = format!("messages[{i}]");
    let role = message["role"].as_str().unwrap_or_default();
    if role == "system" {
        // Claude Code sends mid-conversation system messages (string or text blocks).
        let text = match &message["content"] {
            Value::String(text) => text.clone(),
            Value::Array(blocks) => text_of_blocks(blocks, &format!("{param}.content"))?,
            _ => String::new(),
        };
        if !text.is_empty() {
            out.push(json!({ "role": "system", "content": text }));
        }
        return Ok(());
    }
    if role != "user" && role != "assistant" {
        return Err(bad(
            "a message's role must be `user`, `assistant` or `system`",
            &format!("{param}.role"),
        ));
    }
    let blocks: Vec<Value> = match &message["content"] {
        Value::String(text) => vec![json!({ "type": "text", "text": text })],
        Value::Array(blocks) => blocks.clone(),
        _ => {
            return Err(bad(
                "content must be a string or an array of blocks",
                &format!("{param}.content"),
            ))
        }
    };
    if role == "assistant" {
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut calls = Vec::new();
        let mut pending_signature: Option<String> = None;
        for block in &blocks {
            match block["type"].as_str() {
                Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
                Some("thinking") => {
                    reasoning.push_str(block["thinking"].as_str().unwrap_or_default());
                    if let Some(sig) = block["signature"]
                        .as_str()
                        .and_then(|s| s.strip_prefix(GEMINI_SIGNATURE_PREFIX))
                    {
                        pending_signature = Some(sig.to_string());
                    }
                }
                Some("tool_use" | "server_tool_use") => {
                    let mut call = json!({
                        "id": block["id"].as_str().unwrap_or_default(),
                        "type": "function",
                        "function": {
                            "name": block["name"].as_str().unwrap_or_default(),
                            "arguments": block.get("input").unwrap_or(&json!({})).to_string(),
                        },
                    });
                    if let Some(sig) = pending_signature.take() {
                        call["extra_content"] = json!({ "google": { "thought_signature": sig } });
                    }
                    calls.push(call);
                }
                // redacted_thinking and server tool results carry nothing another model reads.
                _ => {}
            }
        }
        let mut assistant = json!({ "role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) } });
        if !reasoning.is_empty() {
            assistant["reasoning_content"] = json!(reasoning);
        }
        if !calls.is_empty() {
            assistant["tool_calls"] = Value::Array(calls);
        }
        out.push(assistant);
        return Ok(());
    }
    // A user turn: tool results first (they answer the previous assistant turn), then the rest.
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let block_param = format!("{param}.content[{j}]");
        match block["type"].as_str() {
            Some("text") => parts.push(json!({ "type": "text", "text": block["text"].as_str().unwrap_or_default() })),
            Some("image") => parts.push(json!({ "type": "image_url", "image_url": { "url": source_url(block, &block_param)? } })),
            Some("document") => {
                if block["source"]["type"] == "text" {
                    let text = block["source"]["data"].as_str().unwrap_or_default();
                    parts.push(json!({ "type": "text", "text": text }));
                } else {
                    let url = source_url(block, &block_param)?;
                    let filename = block["title"].as_str().unwrap_or("document.pdf");
                    parts.push(json!({ "type": "file", "file": { "filename": filename, "file_data": url } }));
                }
            }
            Some("tool_result") => {
                let id = block["tool_use_id"].as_str().ok_or_else(|| {
                    bad("a tool_result needs `tool_use_id`", &format!("{block_param}.tool_use_id"))
                })?;
                let mut content = match &block["content"] {
                    Value::String(text) => text.clone(),
                    Value::Array(items) => items
                        .iter()
                        .filter_map(|item| match item["type"].as_str() {
                            // Claude Code's ToolSearch answers with references to tools
                            // it has just loaded.
                            Some("tool_reference") => item["tool_name"]
                                .as_str()
                                .map(|name| format!("Tool `{name}` is now available.")),
                            _ => item["text"].as_str().map(str::to_string),
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                if block["is_error"] == true {
                    content = format!("Error: {content}");
                }
                out.push(json!({ "role": "tool", "tool_call_id": id, "content": content }));
            }
            _ => {}
        }
    }
    if !parts.is_empty() {
        let only_text = parts.iter().all(|p| p["type"] == "text");
        let content = if only_text && parts.len() == 1 {
            parts[0]["text"].clone()
        } else {
            Value::Array(parts)
        };
        out.push(json!({ "role": "user", "content": content }));
    }
    Ok(())
}

/// Anthropic's stop reason for a chat finish reason.
fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic usage from a chat `usage` object.
fn usage(chat: Option<&Value>) -> Value {
    let prompt = chat.and_then(|u| u["prompt_tokens"].as_u64()).unwrap_or(0);
    let completion = chat
        .and_then(|u| u["completion_tokens"].as_u64())
        .unwrap_or(0);
    let cached = chat
        .and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "output_tokens": completion,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

fn tool_input(arguments: &str) -> Value {
    match serde_json::from_slice::<Value>(arguments.as_bytes()) {
        Ok(value @ Value::Object(_)) => value,
        _ if arguments.trim().is_empty() => json!({}),
        // Not an object: kept so nothing is lost.
        _ => json!({ "arguments": arguments }),
    }
}

/// The chat completion as an Anthropic Message.
pub fn message_from_completion(completion: &ChatCompletion, model: &str, id: &str) -> Value {
    let mut content = Vec::new();
    let choice = completion.choices.first();
    if let Some(choice) = choice {
        let message = &choice.message;
        if let Some(reasoning) = message
            .reasoning_content
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            content.push(json!({ "type": "thinking", "thinking": reasoning, "signature": "" }));
        }
        let text = message.text_ref();
        if !text.is_empty() {
            content.push(json!({ "type": "text", "text": text }));
        }
        for call in message.tool_calls.iter().flatten() {
            if let Some(sig) = call
                .extra
                .get("extra_content")
                .and_then(|e| e.pointer("/google/thought_signature"))
                .and_then(Value::as_str)
            {
                content.push(json!({ "type": "thinking", "thinking": "",
                    "signature": format!("{GEMINI_SIGNATURE_PREFIX}{sig}") }));
            }
            content.push(json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": tool_input(&call.function.arguments),
            }));
        }
    }
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.and_then(|c| c.finish_reason.as_deref())),
        "stop_sequence": null,
        "usage": usage(completion.usage.as_ref()),
    })
}

/// Anthropic's error type for an HTTP status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

/// A gateway error in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.
pub fn error_body(error: &GatewayError) -> Value {
    let object = error.to_error_object();
    json!({
        "type": "error",
        "error": {
            "type": error_type(error.status()),
            "message": object.get("message").cloned().unwrap_or(Value::Null),
        },
    })
}

/// `POST /v1/messages/count_tokens`: an estimate of the request's input tokens (about four
/// bytes of system, message and tool text per token; images count 1600 tokens each).
pub fn count_tokens(body: &[u8]) -> Result<Value, GatewayError> {
    let value = Value::Object(json_object(body, "`model` and `messages`")?);
    if !value["messages"].is_array() {
        return Err(bad("messages: Field required", "messages"));
    }
    let mut bytes = 0usize;
    let mut images = 0u64;
    fn walk(value: &Value, bytes: &mut usize, images: &mut u64) {
        match value {
            Value::String(s) => *bytes += s.len(),
            Value::Array(items) => items.iter().for_each(|v| walk(v, bytes, images)),
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("image") {
                    *images += 1;
                    return;
                }
                for (key, v) in map {
                    if key != "cache_control" && key != "type" {
                        walk(v, bytes, images);
                    }
                }
            }
            _ => {}
        }
    }
    walk(&value["system"], &mut bytes, &mut images);
    walk(&value["messages"], &mut bytes, &mut images);
    if let Some(tools) = value.get("tools") {
        bytes += tools.to_string().len();
    }
    Ok(json!({ "input_tokens": super::estimate_tokens(bytes) + images * 1600 }))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Text,
    Thinking,
    Tool,
}

/// The chat stream as Anthropic events: `message_start`, content blocks (`text`, `thinking`,
/// `tool_use` with `input_json_delta`), `message_delta` with the stop reason and usage,
/// `message_stop`; heartbeats become `ping`, an error event becomes `error`.
pub struct AnthropicStream {
    id: String,
    model: String,
    started: bool,
    open: Option<(usize, Block)>,
    next_index: usize,
    /// Tool calls, collected until the end.
    calls: Vec<PendingCall>,
    finish: Option<String>,
    usage: Option<Value>,
    failed: bool,
}

impl AnthropicStream {
    pub fn new(id: &str, model: &str) -> Self {
        AnthropicStream {
            id: id.to_string(),
            model: model.to_string(),
            started: false,
            open: None,
            next_index: 0,
            calls: Vec::new(),
            finish: None,
            usage: None,
            failed: false,
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        named_event(
            "message_start",
            &json!({ "type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": 0, "output_tokens": 0 } } }),
            out,
        );
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            named_event(
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": index }),
                out,
            );
        }
    }

    fn open(&mut self, kind: Block, block: Value, out: &mut Vec<u8>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        named_event(
            "content_block_start",
            &json!({ "type": "content_block_start", "index": index, "content_block": block }),
            out,
        );
        self.open = Some((index, kind));
        index
    }

    fn delta(&mut self, index: usize, delta: Value, out: &mut Vec<u8>) {
        named_event(
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": index, "delta": delta }),
            out,
        );
    }

    fn text(&mut self, kind: Block, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        let index = match self.open {
            Some((index, open)) if open == kind => index,
            _ => {
                let block = if kind == Block::Thinking {
                    json!({ "type": "thinking", "thinking": "", "signature": "" })
                } else {
                    json!({ "type": "text", "text": "" })
                };
                self.open(kind, block, out)
            }
        };
        let delta = if kind == Block::Thinking {
            json!({ "type": "thinking_delta", "thinking": text })
        } else {
            json!({ "type": "text_delta", "text": text })
        };
        self.delta(index, delta, out);
    }

    /// A tool call delta: kept until the stream ends. Upstreams may interleave the
    /// arguments of parallel calls, and an Anthropic block cannot reopen once another
    /// started: each call goes out whole, as one block, at the end.
    fn tool_call(&mut self, call: &Value) {
        collect_call(&mut self.calls, call);
    }

    /// Every tool call, each as one complete block (after its signature's thinking block).
    fn flush_calls(&mut self, out: &mut Vec<u8>) {
        for (n, call) in std::mem::take(&mut self.calls).into_iter().enumerate() {
            if let Some(sig) = &call.signature {
                let index = self.open(
                    Block::Thinking,
                    json!({ "type": "thinking", "thinking": "", "signature": "" }),
                    out,
                );
                self.delta(
                    index,
                    json!({ "type": "signature_delta", "signature": format!("{GEMINI_SIGNATURE_PREFIX}{sig}") }),
                    out,
                );
            }
            let id = if call.id.is_empty() {
                format!("toolu_{}_{n}", self.id.trim_start_matches("msg_"))
            } else {
                call.id
            };
            let index = self.open(
                Block::Tool,
                json!({ "type": "tool_use", "id": id, "name": call.name, "input": {} }),
                out,
            );
            if !call.arguments.is_empty() {
                self.delta(
                    index,
                    json!({ "type": "input_json_delta", "partial_json": call.arguments }),
                    out,
                );
            }
        }
        self.close(out);
    }

    fn chunk(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if let Some(error) = chunk.get("error") {
            self.fail(error, out);
            return;
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else {
            return;
        };
        // Only the first choice: Anthropic has no `n`.
        if choice["index"].as_u64().unwrap_or(0) != 0 {
            return;
        }
        let delta = &choice["delta"];
        if let Some(reasoning) = delta["reasoning_content"].as_str() {
            self.text(Block::Thinking, reasoning, out);
        }
        if let Some(text) = delta["content"].as_str() {
            self.text(Block::Text, text, out);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call(call);
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.finish = Some(finish.to_string());
        }
    }

    fn fail(&mut self, error: &Value, out: &mut Vec<u8>) {
        self.failed = true;
        let status = error["code"]
            .as_str()
            .and_then(|c| c.strip_prefix("upstream_http_"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(500);
        named_event(
            "error",
            &json!({ "type": "error", "error": {
                "type": error_type(status),
                "message": error["message"].as_str().unwrap_or("The upstream stream failed"),
            } }),
            out,
        );
    }
}

impl StreamDialect for AnthropicStream {
    fn item(&mut self, item: &SseItem, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        self.start(out);
        match item {
            SseItem::Comment(_) => named_event("ping", &json!({ "type": "ping" }), out),
            SseItem::Event { data, .. } => {
                if let Ok(chunk) = serde_json::from_slice::<Value>(data.as_bytes()) {
                    self.chunk(&chunk, out);
                }
            }
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        self.start(out);
        self.close(out);
        self.flush_calls(out);
        let mut usage = usage(self.usage.as_ref());
        if let Value::Object(map) = &mut usage {
            map.retain(|k, _| k != "cache_creation_input_tokens");
        }
        named_event(
            "message_delta",
            &json!({ "type": "message_delta",
                "delta": { "stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null },
                "usage": usage }),
            out,
        );
        named_event("message_stop", &json!({ "type": "message_stop" }), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::test_support::events;
    use crate::dialects::StreamRewriter;

    fn chat(body: Value) -> Map<String, Value> {
        to_chat(body.to_string().as_bytes(), UnsupportedTools::Drop)
            .unwrap()
            .chat
    }

    #[test]
    fn requests_become_chat_requests() {
        let translated = to_chat(
            json!({
                "model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true,
                "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                           {"type": "text", "text": "Be brief."}],
                "temperature": 0.2, "top_k": 5, "stop_sequences": ["END"],
                "metadata": {"user_id": "u-1"},
                "thinking": {"type": "enabled", "budget_tokens": 8000},
                "tools": [
                    {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
                    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "messages": [
                    {"role": "user", "content": "list files"},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "I should run ls", "signature": "sig"},
                        {"type": "text", "text": "Running ls."},
                        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a.txt"}]},
                        {"type": "text", "text": "and now?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]}]
            })
            .to_string()
            .as_bytes(),
            UnsupportedTools::Drop,
        )
        .unwrap();
        assert!(translated.stream);
        assert_eq!(translated.dropped_tools, vec!["web_search_20250305"]);
        let chat = Value::Object(translated.chat);
        assert_eq!(
            chat,
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [
                    {"role": "system", "content": "You are Claude Code.\n\nBe brief."},
                    {"role": "user", "content": "list files"},
                    {"role": "assistant", "content": "Running ls.", "reasoning_content": "I should run ls",
                     "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"},
                    {"role": "user", "content": [{"type": "text", "text": "and now?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]}],
                "max_tokens": 1024, "temperature": 0.2, "top_k": 5, "stop": ["END"], "user": "u-1",
                "reasoning_effort": "medium",
                "tools": [{"type": "function", "function": {"name": "Bash",
                    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
                    "description": "Run a command"}}],
                "tool_choice": "required", "parallel_tool_calls": false,
                "stream": true, "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn what_claude_code_sends() {
        let chat = chat(
            json!({"model": "claude-opus-5-5", "max_tokens": 128000, "stream": true,
            "thinking": {"type": "adaptive", "display": "omitted"}, "output_config": {"effort": "high"},
            "context_management": {"edits": []}, "metadata": {"user_id": "{\"device_id\":\"d\"}"},
            "tools": [{"name": "DeferredToolPlaceholder", "input_schema": {"type": "object", "properties": {}}, "defer_loading": true}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "say hi"}]},
                {"role": "system", "content": [{"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}}],
                 "output_config": {"effort": "medium"}},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {"query": "select:WebFetch"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                    {"type": "tool_reference", "tool_name": "WebFetch"}]}, {"type": "text", "text": "Tool loaded."}]}]}),
        );
        assert_eq!(chat["reasoning_effort"], "high");
        assert_eq!(
            chat["messages"][1],
            json!({"role": "system", "content": "# Environment"})
        );
        assert_eq!(
            chat["messages"][3],
            json!({"role": "tool", "tool_call_id": "t1", "content": "Tool `WebFetch` is now available."})
        );
        assert_eq!(
            chat["messages"][4],
            json!({"role": "user", "content": "Tool loaded."})
        );
        assert_eq!(
            chat["tools"][0]["function"]["name"],
            "DeferredToolPlaceholder"
        );
        assert!(chat["tools"][0]["function"].get("defer_loading").is_none());
    }

    #[test]
    fn tool_results_and_choices() {
        let chat = chat(json!({"model": "m", "max_tokens": 10,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"},
            "messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": true},
                {"type": "tool_result", "tool_use_id": "t2", "content": "ok"}]}]}));
        assert_eq!(
            chat["messages"],
            json!([{"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
                   {"role": "tool", "tool_call_id": "t2", "content": "ok"}])
        );
        assert_eq!(
            chat["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
    }

    #[test]
    fn bad_requests_and_server_tools_under_reject() {
        for (body, param) in [
            (json!({"max_tokens": 1, "messages": []}), "model"),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
            ),
            (json!({"model": "m", "max_tokens": 1}), "messages"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
                "messages[0].content[0].source.type",
            ),
        ] {
            let error = to_chat(body.to_string().as_bytes(), UnsupportedTools::Drop).unwrap_err();
            assert_eq!(error.status(), 400, "{body}");
            assert_eq!(error.to_body()["error"]["param"], param, "{body}");
            assert_eq!(error_body(&error)["error"]["type"], "invalid_request_error");
        }
        let body = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
        let error = to_chat(body.to_string().as_bytes(), UnsupportedTools::Reject).unwrap_err();
        assert!(error.to_string().contains("web_search_20250305"));
        assert_eq!(error.to_body()["error"]["param"], "tools[0]");
    }

    #[test]
    fn completions_become_messages() {
        let completion: ChatCompletion = serde_json::from_value(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "content": "Let me look.", "reasoning_content": "hmm",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"a\"}"},
                    "extra_content": {"google": {"thought_signature": "SIG"}}}]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27,
                "prompt_tokens_details": {"cached_tokens": 5}}})).unwrap();
        let message = message_from_completion(&completion, "claude-sonnet-4-5", "msg_1");
        assert_eq!(
            message,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": ""},
                    {"type": "text", "text": "Let me look."},
                    {"type": "thinking", "thinking": "", "signature": "gw-gemini:SIG"},
                    {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 15, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5}})
        );
        // The signature goes back onto the call it belongs to.
        let chat = chat(json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": message["content"]}]}));
        assert_eq!(
            chat["messages"][1]["tool_calls"][0]["extra_content"]["google"]["thought_signature"],
            "SIG"
        );
        for (finish, stop) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("content_filter", "refusal"),
        ] {
            assert_eq!(stop_reason(Some(finish)), stop);
        }
    }

    #[test]
    fn chat_streams_become_anthropic_events() {
        let chunks = [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"index": 0, "delta": {"reasoning_content": "think"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "lo"}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "Bash", "arguments": ""}, "extra_content": {"google": {"thought_signature": "S"}}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"command\":"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"ls\"}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
        ];
        let mut input = b": heartbeat\n\n".to_vec();
        for chunk in &chunks {
            input.extend_from_slice(&crate::sse::json_data(chunk));
        }
        input.extend_from_slice(&crate::sse::done());
        let mut rewriter = StreamRewriter::new(Box::new(AnthropicStream::new("msg_1", "claude")));
        // Any chunking of the input gives the same events.
        let mut out = Vec::new();
        for piece in input.chunks(7) {
            out.extend(rewriter.push(piece));
        }
        out.extend(rewriter.finish());
        let events = events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                // The tool call goes out whole once the stream ends.
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        for (name, value) in &events {
            assert_eq!(value["type"], name.as_str());
        }
        assert_eq!(events[0].1["message"]["id"], "msg_1");
        assert_eq!(events[2].1["content_block"]["type"], "thinking");
        assert_eq!(
            events[3].1["delta"],
            json!({"type": "thinking_delta", "thinking": "think"})
        );
        assert_eq!(
            events[6].1["delta"],
            json!({"type": "text_delta", "text": "Hel"})
        );
        assert_eq!(events[10].1["delta"]["signature"], "gw-gemini:S");
        assert_eq!(
            events[12].1["content_block"],
            json!({"type": "tool_use", "id": "call_1", "name": "Bash", "input": {}})
        );
        assert_eq!(events[12].1["index"], 3);
        assert_eq!(
            events[13].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"command\":\"ls\"}"})
        );
        assert_eq!(events[15].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[15].1["usage"]["output_tokens"], 4);
        assert_eq!(events[15].1["usage"]["input_tokens"], 3);
    }

    #[test]
    fn interleaved_parallel_calls_each_arrive_whole() {
        let deltas = [
            json!({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{\"x\":"}}),
            json!({"index": 1, "function": {"name": "g", "arguments": "{\"y\":"}}),
            json!({"index": 0, "function": {"arguments": "1}"}}),
            json!({"index": 1, "function": {"arguments": "2}"}}),
        ];
        let mut input = Vec::new();
        for delta in &deltas {
            input.extend(crate::sse::json_data(
                &json!({"choices": [{"index": 0, "delta": {"tool_calls": [delta]}}]}),
            ));
        }
        input.extend(crate::sse::done());
        let mut rewriter = StreamRewriter::new(Box::new(AnthropicStream::new("msg_9", "c")));
        let mut out = rewriter.push(&input);
        out.extend(rewriter.finish());
        let events = events(&out);
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| &d["content_block"])
            .collect();
        assert_eq!(starts[0]["id"], "a");
        assert_eq!(
            starts[1]["id"], "toolu_9_1",
            "a call without an id gets one"
        );
        let inputs: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "content_block_delta")
            .map(|(_, d)| &d["delta"]["partial_json"])
            .collect();
        assert_eq!(inputs, vec!["{\"x\":1}", "{\"y\":2}"]);
        // Every delta belongs to the block open at that moment.
        let mut open = None;
        for (name, data) in &events {
            match name.as_str() {
                "content_block_start" => open = Some(data["index"].clone()),
                "content_block_delta" => assert_eq!(Some(data["index"].clone()), open),
                "content_block_stop" => open = None,
                _ => {}
            }
        }
    }

    #[test]
    fn a_stream_error_becomes_an_error_event_and_ends_it() {
        let mut input =
            crate::sse::json_data(&json!({"choices": [{"index": 0, "delta": {"content": "par"}}]}));
        input.extend(crate::sse::json_data(&json!({"error": {"message": "upstream broke", "type": "server_error", "code": "upstream_http_429"}})));
        input.extend(crate::sse::done());
        let mut rewriter = StreamRewriter::new(Box::new(AnthropicStream::new("m", "c")));
        let mut out = rewriter.push(&input);
        out.extend(rewriter.finish());
        let events = events(&out);
        let last = events.last().unwrap();
        assert_eq!(last.0, "error");
        assert_eq!(
            last.1["error"],
            json!({"type": "rate_limit_error", "message": "upstream broke"})
        );
        assert!(!events.iter().any(|(n, _)| n == "message_stop"));
    }

    #[test]
    fn token_counts_are_estimates() {
        let body = json!({"model": "m", "system": "abcd", "messages": [{"role": "user", "content": "12345678"},
            {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "xxxxxxxx"}}]}]});
        let counted = count_tokens(body.to_string().as_bytes()).unwrap();
        // "abcd" + "user" + "12345678" + "user" = 20 bytes → 5 tokens, plus one image.
        assert_eq!(counted["input_tokens"], 5 + 1600);
        assert_eq!(count_tokens(b"{}").unwrap_err().status(), 400);
    }
}
