//! OpenAI Responses (`POST /v1/responses`) in front of every upstream: the request (with the
//! stored conversation of `previous_response_id`) becomes a chat request, the chat answer
//! becomes a Response object, and the chat stream becomes the documented Responses events.

use super::{collect_call, named_event, PendingCall, StreamDialect, UnsupportedTools};
use crate::error::GatewayError;
use crate::openai::{json_object, ChatCompletion};
use crate::sse::SseItem;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::rc::Rc;

/// `encrypted_content` of a reasoning item the gateway wrote: the Gemini thought signatures
/// of the function calls that follow it, as `gw1:` + JSON `{call_id: signature}`.
const SIGNATURES_PREFIX: &str = "gw1:";

/// Tool types the gateway turns into chat functions. `custom` (freeform text input, e.g.
/// Codex's `apply_patch`) becomes a function with one string parameter `input`.
const FUNCTION_TOOLS: &[&str] = &["function", "custom"];

fn bad(message: impl Into<String>, param: &str) -> GatewayError {
    GatewayError::invalid_param(message, param)
}

/// What the Response object repeats of its request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Echo {
    pub instructions: Value,
    pub tools: Value,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub temperature: Value,
    pub top_p: Value,
    pub max_output_tokens: Value,
    pub text: Value,
    pub reasoning: Value,
    pub metadata: Value,
    pub user: Value,
    pub previous_response_id: Value,
    pub store: bool,
    /// Names of the `custom` tools, whose calls answer as `custom_tool_call` items.
    pub custom_tools: Vec<String>,
}

/// A Responses request, read; the conversation is assembled once the previous response
/// (if any) is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub model: String,
    pub stream: bool,
    pub previous_response_id: Option<String>,
    pub dropped_tools: Vec<String>,
    pub echo: Echo,
    /// This call's input as chat messages (the instructions apart).
    pub input_messages: Vec<Value>,
    chat: Map<String, Value>,
}

pub fn parse(body: &[u8], unsupported: UnsupportedTools) -> Result<Parsed, GatewayError> {
    let request = json_object(body, "`model` and `input`")?;
    let model = match request.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        _ => return Err(bad("Missing required parameter: 'model'.", "model")),
    };
    let previous_response_id = match request.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(_) => {
            return Err(bad(
                "previous_response_id must be a response id",
                "previous_response_id",
            ))
        }
    };
    let input_messages = match request.get("input") {
        Some(Value::String(text)) => vec![json!({ "role": "user", "content": text })],
        Some(Value::Array(items)) => items_to_messages(items, "input")?,
        None | Some(Value::Null) if previous_response_id.is_some() => Vec::new(),
        _ => {
            return Err(bad(
                "Missing required parameter: 'input' (a string or a list of items).",
                "input",
            ))
        }
    };

    let mut chat = Map::new();
    chat.insert("model".into(), json!(model));
    for name in ["temperature", "top_p"] {
        if let Some(v) = request.get(name).filter(|v| v.is_number()) {
            chat.insert(name.into(), v.clone());
        }
    }
    if let Some(max) = request.get("max_output_tokens").filter(|v| !v.is_null()) {
        if max.as_u64().is_none_or(|n| n == 0) {
            return Err(bad(
                "max_output_tokens must be a positive integer",
                "max_output_tokens",
            ));
        }
        chat.insert("max_tokens".into(), max.clone());
    }
    if let Some(user) = request
        .get("user")
        .or_else(|| request.get("safety_identifier"))
        .and_then(Value::as_str)
    {
        chat.insert("user".into(), json!(user));
    }
    if let Some(effort) = request
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str)
    {
        chat.insert("reasoning_effort".into(), json!(effort));
    }
    match request.get("text").and_then(|t| t.get("format")) {
        None | Some(Value::Null) => {}
        Some(format) => match format["type"].as_str() {
            Some("text") | None => {}
            Some("json_object") => {
                chat.insert("response_format".into(), json!({ "type": "json_object" }));
            }
            Some("json_schema") => {
                let schema = format.get("schema").cloned().ok_or_else(|| {
                    bad(
                        "text.format of type json_schema needs `schema`",
                        "text.format.schema",
                    )
                })?;
                let mut json_schema = json!({
                    "name": format["name"].as_str().unwrap_or("response"),
                    "schema": schema,
                });
                for key in ["strict", "description"] {
                    if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                        json_schema[key] = v.clone();
                    }
                }
                chat.insert(
                    "response_format".into(),
                    json!({ "type": "json_schema", "json_schema": json_schema }),
                );
            }
            Some(_) => {
                return Err(bad(
                    "text.format.type must be text, json_object or json_schema",
                    "text.format.type",
                ))
            }
        },
    }

    let mut dropped_tools = Vec::new();
    let mut custom_tools = Vec::new();
    let mut echoed_tools = Vec::new();
    if let Some(tools) = request.get("tools").filter(|t| !t.is_null()) {
        let Value::Array(tools) = tools else {
            return Err(bad("tools must be an array", "tools"));
        };
        let mut functions = Vec::new();
        for (i, tool) in tools.iter().enumerate() {
            let kind = tool["type"].as_str().unwrap_or("function");
            if !FUNCTION_TOOLS.contains(&kind) {
                // Hosted tools (web_search, file_search, code_interpreter, computer_use, …)
                // and types the gateway does not know run nowhere behind it.
                unsupported.refuse_or_drop(i, kind, &mut dropped_tools)?;
                continue;
            }
            let name = tool["name"]
                .as_str()
                .ok_or_else(|| bad("a tool needs a `name`", &format!("tools[{i}].name")))?;
            let parameters = if kind == "custom" {
                custom_tools.push(name.to_string());
                json!({ "type": "object", "properties": { "input": { "type": "string",
                    "description": "The tool's whole input, as free text." } }, "required": ["input"] })
            } else {
                tool.get("parameters")
                    .filter(|p| p.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({ "type": "object", "properties": {} }))
            };
            let mut function = json!({ "name": name, "parameters": parameters });
            if let Some(description) = tool["description"].as_str() {
                function["description"] = json!(description);
            }
            if tool["strict"] == true {
                function["strict"] = json!(true);
            }
            functions.push(json!({ "type": "function", "function": function }));
            echoed_tools.push(tool.clone());
        }
        if !functions.is_empty() {
            chat.insert("tools".into(), Value::Array(functions));
        }
    }
    let tool_choice = request.get("tool_choice").cloned().unwrap_or(json!("auto"));
    if chat.contains_key("tools") {
        let mapped = match &tool_choice {
            Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
                Some(tool_choice.clone())
            }
            Value::Object(choice) if choice.get("name").and_then(Value::as_str).is_some() => {
                Some(json!({ "type": "function", "function": { "name": choice["name"] } }))
            }
            // A hosted tool's choice has nothing to choose behind the gateway.
            _ => None,
        };
        if let Some(mapped) = mapped {
            chat.insert("tool_choice".into(), mapped);
        }
        if let Some(parallel) = request.get("parallel_tool_calls").and_then(Value::as_bool) {
            chat.insert("parallel_tool_calls".into(), json!(parallel));
        }
    }
    let stream = request.get("stream") == Some(&Value::Bool(true));
    if stream {
        chat.insert("stream".into(), json!(true));
        chat.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    let store = request
        .get("store")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let echo = Echo {
        instructions: request.get("instructions").cloned().unwrap_or(Value::Null),
        tools: Value::Array(echoed_tools),
        tool_choice,
        parallel_tool_calls: request
            .get("parallel_tool_calls")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        temperature: request.get("temperature").cloned().unwrap_or(Value::Null),
        top_p: request.get("top_p").cloned().unwrap_or(Value::Null),
        max_output_tokens: request
            .get("max_output_tokens")
            .cloned()
            .unwrap_or(Value::Null),
        text: request
            .get("text")
            .cloned()
            .unwrap_or_else(|| json!({ "format": { "type": "text" } })),
        reasoning: request
            .get("reasoning")
            .cloned()
            .unwrap_or_else(|| json!({ "effort": null, "summary": null })),
        metadata: request
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| json!({})),
        user: request.get("user").cloned().unwrap_or(Value::Null),
        previous_response_id: previous_response_id
            .clone()
            .map_or(Value::Null, Value::String),
        store,
        custom_tools,
    };
    Ok(Parsed {
        model,
        stream,
        previous_response_id,
        dropped_tools,
        echo,
        input_messages,
        chat,
    })
}

impl Parsed {
    /// The chat request: the instructions, the stored conversation, then this input.
    pub fn chat_body(&self, previous: &[Value]) -> Result<Map<String, Value>, GatewayError> {
        let mut messages = Vec::with_capacity(previous.len() + self.input_messages.len() + 1);
        match &self.echo.instructions {
            Value::String(text) if !text.is_empty() => {
                messages.push(json!({ "role": "system", "content": text }));
            }
            _ => {}
        }
        messages.extend(previous.iter().cloned());
        messages.extend(self.input_messages.iter().cloned());
        if messages.is_empty() {
            return Err(bad("input must contain at least one item", "input"));
        }
        let mut chat = self.chat.clone();
        chat.insert("messages".into(), Value::Array(messages));
        Ok(chat)
    }
}

/// A content part of an input message as a chat content part.
fn content_part(part: &Value, param: &str) -> Result<Option<Value>, GatewayError> {
    Ok(match part["type"].as_str() {
        Some("input_text" | "output_text" | "text" | "summary_text") => {
            Some(json!({ "type": "text", "text": part["text"].as_str().unwrap_or_default() }))
        }
        Some("refusal") => {
            Some(json!({ "type": "text", "text": part["refusal"].as_str().unwrap_or_default() }))
        }
        Some("input_image") => {
            let url = part["image_url"].as_str().ok_or_else(|| {
                bad(
                    "input_image needs `image_url` (a data: or http(s) URL); file_id is not supported",
                    param,
                )
            })?;
            let mut image = json!({ "url": url });
            if let Some(detail) = part["detail"].as_str() {
                image["detail"] = json!(detail);
            }
            Some(json!({ "type": "image_url", "image_url": image }))
        }
        Some("input_file") => {
            let data = part["file_data"].as_str().ok_or_else(|| {
                bad(
                    "input_file needs `file_data` (a data: URL or base64); file_id and file_url are not supported",
                    param,
                )
            })?;
            let filename = part["filename"].as_str().unwrap_or("document.pdf");
            Some(json!({ "type": "file", "file": { "filename": filename, "file_data": data } }))
        }
        Some("input_audio") => {
            Some(json!({ "type": "input_audio", "input_audio": part["input_audio"] }))
        }
        _ => None,
    })
}

/// The text of a content list, or the list as chat parts when it holds more than text.
fn message_content(content: &Value, param: &str) -> Result<Value, GatewayError> {
    match content {
        Value::String(text) => Ok(json!(text)),
        Value::Array(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                out.extend(content_part(part, &format!("{param}[{j}]"))?);
            }
            if out.iter().all(|p| p["type"] == "text") {
                let text: String = out
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("");
                Ok(json!(text))
            } else {
                Ok(Value::Array(out))
            }
        }
        Value::Null => Ok(json!("")),
        _ => Err(bad("content must be a string or a list of parts", param)),
    }
}

/// The text of a function call output (a string, or content parts).
fn output_text(output: &Value) -> String {
    match output {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Responses input (or output) items as chat messages: consecutive calls become one
/// assistant turn, their outputs tool messages; a reasoning item written by the gateway
/// gives the following calls their thought signatures back.
pub fn items_to_messages(items: &[Value], param: &str) -> Result<Vec<Value>, GatewayError> {
    let mut messages: Vec<Value> = Vec::new();
    let mut signatures: Map<String, Value> = Map::new();
    for (i, item) in items.iter().enumerate() {
        let item_param = format!("{param}[{i}]");
        let kind = item["type"]
            .as_str()
            .unwrap_or(if item.get("role").is_some() {
                "message"
            } else {
                ""
            });
        match kind {
            "message" => {
                let role = match item["role"].as_str() {
                    Some(role @ ("user" | "assistant" | "system")) => role,
                    Some("developer") => "system",
                    _ => {
                        return Err(bad(
                            "a message's role must be user, assistant, system or developer",
                            &format!("{item_param}.role"),
                        ))
                    }
                };
                let content = message_content(&item["content"], &format!("{item_param}.content"))?;
                messages.push(json!({ "role": role, "content": content }));
            }
            "function_call" | "custom_tool_call" => {
                let call_id = item["call_id"].as_str().ok_or_else(|| {
                    bad(
                        "a function_call needs `call_id`",
                        &format!("{item_param}.call_id"),
                    )
                })?;
                let arguments = if kind == "custom_tool_call" {
                    json!({ "input": item["input"].as_str().unwrap_or_default() }).to_string()
                } else {
                    item["arguments"].as_str().unwrap_or("{}").to_string()
                };
                let mut call = json!({ "id": call_id, "type": "function",
                    "function": { "name": item["name"].as_str().unwrap_or_default(), "arguments": arguments } });
                if let Some(sig) = signatures.get(call_id) {
                    call["extra_content"] = json!({ "google": { "thought_signature": sig } });
                }
                // Calls join the assistant turn just before them, if it has no results yet.
                match messages.last_mut() {
                    Some(last) if last["role"] == "assistant" => {
                        if !last["tool_calls"].is_array() {
                            last["tool_calls"] = json!([]);
                            if last["content"] == "" {
                                last["content"] = Value::Null;
                            }
                        }
                        if let Some(calls) = last["tool_calls"].as_array_mut() {
                            calls.push(call);
                        }
                    }
                    _ => messages.push(
                        json!({ "role": "assistant", "content": null, "tool_calls": [call] }),
                    ),
                }
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = item["call_id"].as_str().ok_or_else(|| {
                    bad(
                        "a function_call_output needs `call_id`",
                        &format!("{item_param}.call_id"),
                    )
                })?;
                let tool = json!({ "role": "tool", "tool_call_id": call_id, "content": output_text(&item["output"]) });
                // A tool result must follow the turn holding its call (and that turn's other
                // results), even when a message came in between.
                let holder = messages.iter().rposition(|m| {
                    m["tool_calls"]
                        .as_array()
                        .is_some_and(|calls| calls.iter().any(|c| c["id"] == call_id))
                });
                match holder {
                    Some(at) => {
                        let mut position = at + 1;
                        while messages.get(position).is_some_and(|m| m["role"] == "tool") {
                            position += 1;
                        }
                        messages.insert(position, tool);
                    }
                    None => messages.push(tool),
                }
            }
            "reasoning" => {
                if let Some(encoded) = item["encrypted_content"]
                    .as_str()
                    .and_then(|e| e.strip_prefix(SIGNATURES_PREFIX))
                {
                    if let Ok(Value::Object(map)) =
                        serde_json::from_slice::<Value>(encoded.as_bytes())
                    {
                        signatures.extend(map);
                    }
                }
            }
            // item_reference, hosted tool calls and their results: nothing an upstream reads.
            _ => {}
        }
    }
    Ok(messages)
}

/// Everything the Response object and its events are made of.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMeta {
    pub id: String,
    pub model: String,
    pub created_at: i64,
    pub echo: Echo,
}

fn usage(chat: Option<&Value>) -> Value {
    let number = |pointer: &str| {
        chat.and_then(|u| u.pointer(pointer))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let input = number("/prompt_tokens");
    let output = number("/completion_tokens");
    json!({
        "input_tokens": input,
        "input_tokens_details": { "cached_tokens": number("/prompt_tokens_details/cached_tokens") },
        "output_tokens": output,
        "output_tokens_details": { "reasoning_tokens": number("/completion_tokens_details/reasoning_tokens") },
        "total_tokens": chat.and_then(|u| u["total_tokens"].as_u64()).unwrap_or(input + output),
    })
}

/// The Response object around `output`.
fn response_object(meta: &ResponseMeta, status: &str, output: Vec<Value>, usage: Value) -> Value {
    let echo = &meta.echo;
    let incomplete = match status {
        "incomplete" => json!({ "reason": "max_output_tokens" }),
        _ => Value::Null,
    };
    json!({
        "id": meta.id,
        "object": "response",
        "created_at": meta.created_at,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "model": meta.model,
        "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls,
        "previous_response_id": echo.previous_response_id,
        "reasoning": echo.reasoning,
        "store": echo.store,
        "temperature": echo.temperature,
        "text": echo.text,
        "tool_choice": echo.tool_choice,
        "tools": echo.tools,
        "top_p": echo.top_p,
        "truncation": "disabled",
        "usage": usage,
        "user": echo.user,
        "metadata": echo.metadata,
    })
}

fn status_for(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "incomplete",
        _ => "completed",
    }
}

/// A reasoning item: the reasoning text as its summary, the calls' signatures as its
/// `encrypted_content`.
fn reasoning_item(id: &str, text: &str, signatures: &Map<String, Value>) -> Value {
    let summary = if text.is_empty() {
        json!([])
    } else {
        json!([{ "type": "summary_text", "text": text }])
    };
    let mut item = json!({ "type": "reasoning", "id": id, "summary": summary });
    if !signatures.is_empty() {
        item["encrypted_content"] = json!(format!(
            "{SIGNATURES_PREFIX}{}",
            Value::Object(signatures.clone())
        ));
    }
    item
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({ "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{ "type": "output_text", "text": text, "annotations": [], "logprobs": [] }] })
}

fn call_item(
    meta: &ResponseMeta,
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    if meta.echo.custom_tools.iter().any(|t| t == name) {
        let input = serde_json::from_slice::<Value>(arguments.as_bytes())
            .ok()
            .and_then(|v| v["input"].as_str().map(str::to_string))
            .unwrap_or_else(|| arguments.to_string());
        return json!({ "type": "custom_tool_call", "id": id, "status": status, "call_id": call_id, "name": name, "input": input });
    }
    json!({ "type": "function_call", "id": id, "status": status, "call_id": call_id, "name": name, "arguments": arguments })
}

/// The chat completion as a Response object.
pub fn response_from_completion(completion: &ChatCompletion, meta: &ResponseMeta) -> Value {
    let mut output = Vec::new();
    let choice = completion.choices.first();
    if let Some(choice) = choice {
        let message = &choice.message;
        let mut signatures = Map::new();
        for call in message.tool_calls.iter().flatten() {
            if let Some(sig) = call
                .extra
                .get("extra_content")
                .and_then(|e| e.pointer("/google/thought_signature"))
            {
                signatures.insert(call.id.clone(), sig.clone());
            }
        }
        let reasoning = message.reasoning_content.as_deref().unwrap_or_default();
        if !reasoning.is_empty() || !signatures.is_empty() {
            output.push(reasoning_item(
                &format!("rs_{}", meta.id_suffix()),
                reasoning,
                &signatures,
            ));
        }
        let text = message.text_ref();
        if !text.is_empty() {
            output.push(message_item(
                &format!("msg_{}", meta.id_suffix()),
                &text,
                "completed",
            ));
        }
        for (n, call) in message.tool_calls.iter().flatten().enumerate() {
            output.push(call_item(
                meta,
                &format!("fc_{}_{n}", meta.id_suffix()),
                &call.id,
                &call.function.name,
                &call.function.arguments,
                "completed",
            ));
        }
    }
    let status = status_for(choice.and_then(|c| c.finish_reason.as_deref()));
    response_object(meta, status, output, usage(completion.usage.as_ref()))
}

impl ResponseMeta {
    fn id_suffix(&self) -> &str {
        self.id.strip_prefix("resp_").unwrap_or(&self.id)
    }
}

/// A gateway error as a Responses API error body (OpenAI's error object).
pub fn error_body(error: &GatewayError) -> Value {
    error.to_body()
}

#[derive(Debug)]
enum Open {
    Reasoning { index: usize, text: String },
    Message { index: usize, text: String },
}

/// Where the finished Response object goes (the runtime stores it when `store` is on).
pub type ResponseSink = Rc<RefCell<Option<Value>>>;

/// The chat stream as Responses events, each with its `sequence_number`; the finished
/// Response (output and usage) goes to the sink.
pub struct ResponsesStream {
    meta: ResponseMeta,
    sink: ResponseSink,
    sequence: u64,
    started: bool,
    open: Option<Open>,
    /// Finished output items, by output index.
    output: Vec<Value>,
    /// Tool calls, collected until the end.
    calls: Vec<PendingCall>,
    finish: Option<String>,
    usage: Option<Value>,
    failed: bool,
}

impl ResponsesStream {
    pub fn new(meta: ResponseMeta, sink: ResponseSink) -> Self {
        ResponsesStream {
            meta,
            sink,
            sequence: 0,
            started: false,
            open: None,
            output: Vec::new(),
            calls: Vec::new(),
            finish: None,
            usage: None,
            failed: false,
        }
    }

    fn emit(&mut self, name: &str, mut data: Value, out: &mut Vec<u8>) {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        named_event(name, &data, out);
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = response_object(&self.meta, "in_progress", Vec::new(), Value::Null);
        self.emit("response.created", json!({ "response": response }), out);
        self.emit("response.in_progress", json!({ "response": response }), out);
    }

    fn item_id(&self, prefix: &str, index: usize) -> String {
        format!("{prefix}_{}_{index}", self.meta.id_suffix())
    }

    /// Closes the open reasoning or message item.
    fn close(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            Some(Open::Reasoning { index, text }) => {
                let id = self.item_id("rs", index);
                let part = json!({ "type": "summary_text", "text": text });
                self.emit("response.reasoning_summary_text.done", json!({ "item_id": id, "output_index": index, "summary_index": 0, "text": text }), out);
                self.emit("response.reasoning_summary_part.done", json!({ "item_id": id, "output_index": index, "summary_index": 0, "part": part }), out);
                let item = reasoning_item(&id, &text, &Map::new());
                self.emit(
                    "response.output_item.done",
                    json!({ "output_index": index, "item": item }),
                    out,
                );
                self.output.push(item);
            }
            Some(Open::Message { index, text }) => {
                let id = self.item_id("msg", index);
                let part = json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] });
                self.emit("response.output_text.done", json!({ "item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": [] }), out);
                self.emit("response.content_part.done", json!({ "item_id": id, "output_index": index, "content_index": 0, "part": part }), out);
                let item = message_item(&id, &text, "completed");
                self.emit(
                    "response.output_item.done",
                    json!({ "output_index": index, "item": item }),
                    out,
                );
                self.output.push(item);
            }
            None => {}
        }
    }

    /// Every tool call, each whole: its signature's reasoning item first, then the call item
    /// (`added`, the arguments, `done`). Calls are kept until the end because upstreams may
    /// interleave parallel calls' arguments, and an item cannot reopen once done.
    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for (n, call) in std::mem::take(&mut self.calls).into_iter().enumerate() {
            let call_id = if call.id.is_empty() {
                format!("call_{}_{n}", self.meta.id_suffix())
            } else {
                call.id
            };
            if let Some(sig) = call.signature {
                // Agents keep the items of `output_item.done` and send them back.
                let index = self.output.len();
                let mut signatures = Map::new();
                signatures.insert(call_id.clone(), Value::String(sig));
                let item = reasoning_item(&self.item_id("rs", index), "", &signatures);
                let data = json!({ "output_index": index, "item": item });
                self.emit("response.output_item.added", data.clone(), out);
                self.emit("response.output_item.done", data, out);
                self.output.push(item);
            }
            let index = self.output.len();
            let id = self.item_id("fc", index);
            let added = call_item(&self.meta, &id, &call_id, &call.name, "", "in_progress");
            self.emit(
                "response.output_item.added",
                json!({ "output_index": index, "item": added }),
                out,
            );
            let item = call_item(
                &self.meta,
                &id,
                &call_id,
                &call.name,
                &call.arguments,
                "completed",
            );
            if item["type"] == "custom_tool_call" {
                // A custom tool's input is free text, not the gateway's JSON wrapper.
                let data = json!({ "item_id": id, "output_index": index, "input": item["input"] });
                self.emit("response.custom_tool_call_input.done", data, out);
            } else {
                if !call.arguments.is_empty() {
                    let data =
                        json!({ "item_id": id, "output_index": index, "delta": call.arguments });
                    self.emit("response.function_call_arguments.delta", data, out);
                }
                let data =
                    json!({ "item_id": id, "output_index": index, "arguments": call.arguments });
                self.emit("response.function_call_arguments.done", data, out);
            }
            self.emit(
                "response.output_item.done",
                json!({ "output_index": index, "item": item }),
                out,
            );
            self.output.push(item);
        }
    }

    fn text(&mut self, reasoning: bool, delta: &str, out: &mut Vec<u8>) {
        if delta.is_empty() {
            return;
        }
        let same = matches!(
            (&self.open, reasoning),
            (Some(Open::Reasoning { .. }), true) | (Some(Open::Message { .. }), false)
        );
        if !same {
            self.close(out);
            let index = self.output.len();
            if reasoning {
                let id = self.item_id("rs", index);
                self.emit("response.output_item.added", json!({ "output_index": index, "item": { "type": "reasoning", "id": id, "summary": [] } }), out);
                self.emit("response.reasoning_summary_part.added", json!({ "item_id": id, "output_index": index, "summary_index": 0, "part": { "type": "summary_text", "text": "" } }), out);
                self.open = Some(Open::Reasoning {
                    index,
                    text: String::new(),
                });
            } else {
                let id = self.item_id("msg", index);
                self.emit("response.output_item.added", json!({ "output_index": index, "item": { "type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": [] } }), out);
                self.emit("response.content_part.added", json!({ "item_id": id, "output_index": index, "content_index": 0, "part": { "type": "output_text", "text": "", "annotations": [], "logprobs": [] } }), out);
                self.open = Some(Open::Message {
                    index,
                    text: String::new(),
                });
            }
        }
        let (index, name) = match &mut self.open {
            Some(Open::Reasoning { index, text }) => {
                text.push_str(delta);
                (*index, "response.reasoning_summary_text.delta")
            }
            Some(Open::Message { index, text }) => {
                text.push_str(delta);
                (*index, "response.output_text.delta")
            }
            _ => return,
        };
        let id = self.item_id(if reasoning { "rs" } else { "msg" }, index);
        let data = if reasoning {
            json!({ "item_id": id, "output_index": index, "summary_index": 0, "delta": delta })
        } else {
            json!({ "item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": [] })
        };
        self.emit(name, data, out);
    }

    /// A tool call delta, kept until the end (see `close_calls`).
    fn tool_call(&mut self, call: &Value) {
        collect_call(&mut self.calls, call);
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
        if choice["index"].as_u64().unwrap_or(0) != 0 {
            return;
        }
        let delta = &choice["delta"];
        if let Some(reasoning) = delta["reasoning_content"].as_str() {
            self.text(true, reasoning, out);
        }
        if let Some(text) = delta["content"].as_str() {
            self.text(false, text, out);
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
        self.close(out);
        // Calls cut off by the failure are not answered as if they were whole.
        self.calls.clear();
        let mut response = response_object(
            &self.meta,
            "failed",
            std::mem::take(&mut self.output),
            usage(self.usage.as_ref()),
        );
        response["error"] = json!({
            "code": error["code"].as_str().unwrap_or("server_error"),
            "message": error["message"].as_str().unwrap_or("The upstream stream failed"),
        });
        self.emit("response.failed", json!({ "response": response }), out);
    }
}

impl StreamDialect for ResponsesStream {
    fn item(&mut self, item: &SseItem, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        self.start(out);
        match item {
            // Heartbeats stay comments: every Responses client skips them.
            SseItem::Comment(text) => out.extend_from_slice(&crate::sse::comment(text)),
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
        self.close_calls(out);
        let status = status_for(self.finish.as_deref());
        let output = std::mem::take(&mut self.output);
        let response = response_object(&self.meta, status, output, usage(self.usage.as_ref()));
        let name = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(name, json!({ "response": response }), out);
        *self.sink.borrow_mut() = Some(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::test_support::events;
    use crate::dialects::StreamRewriter;

    fn parsed(body: Value) -> Parsed {
        parse(body.to_string().as_bytes(), UnsupportedTools::Drop).unwrap()
    }

    fn meta(echo: Echo) -> ResponseMeta {
        ResponseMeta {
            id: "resp_abc".into(),
            model: "gpt-x".into(),
            created_at: 100,
            echo,
        }
    }

    #[test]
    fn requests_become_chat_requests() {
        let request = parsed(json!({
            "model": "gpt-x", "instructions": "Be brief.", "store": false, "stream": true,
            "max_output_tokens": 300, "temperature": 0.5, "top_p": 0.9, "user": "u1",
            "reasoning": {"effort": "high", "summary": "auto"},
            "text": {"format": {"type": "json_schema", "name": "answer", "strict": true, "schema": {"type": "object"}}},
            "tools": [
                {"type": "function", "name": "shell", "description": "Run", "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}, "strict": false},
                {"type": "custom", "name": "apply_patch", "description": "Patch files"},
                {"type": "web_search"}, {"type": "namespace", "name": "mcp"}],
            "tool_choice": "auto", "parallel_tool_calls": false,
            "input": [
                {"role": "developer", "content": "Use tools."},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iV", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gw1:{\"call_1\":\"SIG\"}"},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "custom_tool_call", "id": "ct_1", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                {"type": "custom_tool_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "done"}]}]
        }));
        assert!(request.stream);
        assert!(!request.echo.store);
        assert_eq!(request.dropped_tools, vec!["web_search", "namespace"]);
        assert_eq!(request.echo.custom_tools, vec!["apply_patch"]);
        let chat = Value::Object(request.chat_body(&[]).unwrap());
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": "Use tools."},
                {"role": "user", "content": [{"type": "text", "text": "list"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iV", "detail": "low"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
                     "extra_content": {"google": {"thought_signature": "SIG"}}},
                    {"id": "call_2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
                {"role": "tool", "tool_call_id": "call_2", "content": "done"}])
        );
        assert_eq!(chat["max_tokens"], 300);
        assert_eq!(chat["reasoning_effort"], "high");
        assert_eq!(
            chat["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
        );
        assert_eq!(
            chat["tools"][1]["function"]["parameters"]["required"],
            json!(["input"])
        );
        assert_eq!(chat["tools"].as_array().unwrap().len(), 2);
        assert_eq!(chat["parallel_tool_calls"], false);
        assert_eq!(chat["stream_options"], json!({"include_usage": true}));
        // A string input; the stored conversation goes between the instructions and it.
        let simple = parsed(json!({"model": "m", "input": "hi", "instructions": "sys"}));
        let previous = vec![
            json!({"role": "user", "content": "before"}),
            json!({"role": "assistant", "content": "ok"}),
        ];
        let chat = simple.chat_body(&previous).unwrap();
        assert_eq!(chat["messages"].as_array().unwrap().len(), 4);
        assert_eq!(
            chat["messages"][3],
            json!({"role": "user", "content": "hi"})
        );
        assert!(simple.echo.store, "store defaults to true");
    }

    #[test]
    fn bad_requests() {
        for (body, param) in [
            (json!({"input": "x"}), "model"),
            (json!({"model": "m"}), "input"),
            (
                json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}),
                "input[0].call_id",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
                "input[0].content[0]",
            ),
            (
                json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}),
                "text.format.type",
            ),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": 0}),
                "max_output_tokens",
            ),
        ] {
            let error = parse(body.to_string().as_bytes(), UnsupportedTools::Drop).unwrap_err();
            assert_eq!(error.to_body()["error"]["param"], param, "{body}");
        }
        let error = parse(
            json!({"model": "m", "input": "x", "tools": [{"type": "file_search"}]})
                .to_string()
                .as_bytes(),
            UnsupportedTools::Reject,
        )
        .unwrap_err();
        assert!(error.to_string().contains("file_search"));
        // No input is fine when continuing a stored conversation.
        assert!(parse(
            json!({"model": "m", "previous_response_id": "resp_1"})
                .to_string()
                .as_bytes(),
            UnsupportedTools::Drop
        )
        .is_ok());
    }

    #[test]
    fn completions_become_responses() {
        let request = parsed(
            json!({"model": "gpt-x", "input": "x", "tools": [{"type": "custom", "name": "apply_patch"}, {"type": "function", "name": "f"}]}),
        );
        let completion: ChatCompletion = serde_json::from_value(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "up",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Working.",
                "reasoning_content": "plan", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}, "extra_content": {"google": {"thought_signature": "S1"}}},
                    {"id": "call_2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin\"}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14, "completion_tokens_details": {"reasoning_tokens": 2}}})).unwrap();
        let response = response_from_completion(&completion, &meta(request.echo.clone()));
        assert_eq!(response["object"], "response");
        assert_eq!(response["status"], "completed");
        assert_eq!(response["id"], "resp_abc");
        assert_eq!(
            response["output"],
            json!([
                {"type": "reasoning", "id": "rs_abc", "summary": [{"type": "summary_text", "text": "plan"}], "encrypted_content": "gw1:{\"call_1\":\"S1\"}"},
                {"type": "message", "id": "msg_abc", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Working.", "annotations": [], "logprobs": []}]},
                {"type": "function_call", "id": "fc_abc_0", "status": "completed", "call_id": "call_1", "name": "f", "arguments": "{}"},
                {"type": "custom_tool_call", "id": "fc_abc_1", "status": "completed", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin"}])
        );
        assert_eq!(
            response["usage"],
            json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 14})
        );
        // The output, sent back as input, gives the same calls with their signature.
        let messages = items_to_messages(response["output"].as_array().unwrap(), "input").unwrap();
        assert_eq!(
            messages[0]["tool_calls"][0]["extra_content"]["google"]["thought_signature"],
            "S1"
        );
        assert_eq!(
            messages[0]["content"], "Working.",
            "the calls join the text's assistant turn"
        );
        assert_eq!(
            messages[0]["tool_calls"][1]["function"]["arguments"],
            "{\"input\":\"*** Begin\"}"
        );
    }

    #[test]
    fn chat_streams_become_response_events() {
        let chunks = [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "f", "arguments": "{\"a\""}, "extra_content": {"google": {"thought_signature": "S"}}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
        ];
        let mut input = b": heartbeat\n\n".to_vec();
        for chunk in &chunks {
            input.extend(crate::sse::json_data(chunk));
        }
        input.extend(crate::sse::done());
        let sink: ResponseSink = Rc::new(RefCell::new(None));
        let mut rewriter = StreamRewriter::new(Box::new(ResponsesStream::new(
            meta(Echo::default()),
            sink.clone(),
        )));
        let mut out = Vec::new();
        for piece in input.chunks(5) {
            out.extend(rewriter.push(piece));
        }
        out.extend(rewriter.finish());
        assert!(
            String::from_utf8_lossy(&out).contains(": heartbeat"),
            "heartbeats stay comments"
        );
        let events = events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                // The call's signature, in a reasoning item of its own.
                "response.output_item.added",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (i, (name, data)) in events.iter().enumerate() {
            assert_eq!(data["type"], name.as_str());
            assert_eq!(data["sequence_number"], i as u64);
        }
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        assert_eq!(events[10].1["delta"], "Hi");
        assert_eq!(
            events[15].1["item"]["encrypted_content"],
            "gw1:{\"call_1\":\"S\"}"
        );
        assert_eq!(events[17].1["delta"], "{\"a\":1}");
        assert_eq!(events[18].1["arguments"], "{\"a\":1}");
        let done = &events[20].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["usage"]["total_tokens"], 5);
        let output = done["output"].as_array().unwrap();
        let kinds: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            vec!["reasoning", "message", "reasoning", "function_call"]
        );
        assert_eq!(output[2]["encrypted_content"], "gw1:{\"call_1\":\"S\"}");
        assert_eq!(output[3]["call_id"], "call_1");
        // Sent back, the items give the call its signature again.
        let messages = items_to_messages(output, "input").unwrap();
        assert_eq!(
            messages[0]["tool_calls"][0]["extra_content"]["google"]["thought_signature"],
            "S"
        );
        assert_eq!(sink.borrow().as_ref(), Some(done));
    }

    #[test]
    fn a_tool_result_follows_its_call_even_after_a_message() {
        let messages = items_to_messages(
            &[
                json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}),
                json!({"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"}),
                json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Running both."}]}),
                json!({"type": "function_call_output", "call_id": "c2", "output": "two"}),
                json!({"type": "function_call_output", "call_id": "c1", "output": "one"}),
                json!({"role": "user", "content": "next"}),
            ],
            "input",
        )
        .unwrap();
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            vec!["assistant", "tool", "tool", "assistant", "user"]
        );
        assert_eq!(messages[1]["tool_call_id"], "c2");
        assert_eq!(messages[2]["tool_call_id"], "c1");
    }

    #[test]
    fn interleaved_parallel_calls_become_whole_items() {
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
        let sink: ResponseSink = Rc::new(RefCell::new(None));
        let mut rewriter = StreamRewriter::new(Box::new(ResponsesStream::new(
            meta(Echo::default()),
            sink.clone(),
        )));
        let mut out = rewriter.push(&input);
        out.extend(rewriter.finish());
        let events = events(&out);
        let done: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| n == "response.output_item.done")
            .map(|(_, d)| &d["item"])
            .collect();
        assert_eq!(done.len(), 2);
        assert_eq!(
            (done[0]["call_id"].as_str(), done[0]["arguments"].as_str()),
            (Some("a"), Some("{\"x\":1}"))
        );
        assert_eq!(
            (done[1]["call_id"].as_str(), done[1]["arguments"].as_str()),
            (Some("call_abc_1"), Some("{\"y\":2}"))
        );
        // Every event of an item names the item that was added at its output index.
        let mut ids = std::collections::HashMap::new();
        for (name, data) in &events {
            if name == "response.output_item.added" {
                ids.insert(
                    data["output_index"].as_u64().unwrap(),
                    data["item"]["id"].clone(),
                );
            } else if let Some(id) = data.get("item_id") {
                assert_eq!(
                    ids.get(&data["output_index"].as_u64().unwrap()),
                    Some(id),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn custom_tool_calls_stream_as_custom_items() {
        let echo = parsed(json!({"model": "m", "input": "x", "tools": [{"type": "custom", "name": "apply_patch"}]})).echo;
        let mut input = crate::sse::json_data(
            &json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_p",
            "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin"}}]}}]}),
        );
        input.extend(crate::sse::json_data(
            &json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
            "function": {"arguments": " Patch\"}"}}]}, "finish_reason": "tool_calls"}]}),
        ));
        input.extend(crate::sse::done());
        let sink: ResponseSink = Rc::new(RefCell::new(None));
        let mut rewriter =
            StreamRewriter::new(Box::new(ResponsesStream::new(meta(echo), sink.clone())));
        let mut out = rewriter.push(&input);
        out.extend(rewriter.finish());
        let events = events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.custom_tool_call_input.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(events[2].1["item"]["type"], "custom_tool_call");
        assert_eq!(events[3].1["input"], "*** Begin Patch");
        assert_eq!(
            events[4].1["item"],
            json!({"type": "custom_tool_call", "id": "fc_abc_0", "status": "completed",
            "call_id": "call_p", "name": "apply_patch", "input": "*** Begin Patch"})
        );
    }

    #[test]
    fn stream_failures_and_length() {
        let mut input =
            crate::sse::json_data(&json!({"choices": [{"index": 0, "delta": {"content": "pa"}}]}));
        input.extend(crate::sse::json_data(&json!({"error": {"message": "broke", "type": "server_error", "code": "upstream_error"}})));
        input.extend(crate::sse::done());
        let sink: ResponseSink = Rc::new(RefCell::new(None));
        let mut rewriter = StreamRewriter::new(Box::new(ResponsesStream::new(
            meta(Echo::default()),
            sink.clone(),
        )));
        let mut out = rewriter.push(&input);
        out.extend(rewriter.finish());
        let failed = events(&out);
        let (name, last) = failed.last().unwrap();
        assert_eq!(name, "response.failed");
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(
            last["response"]["error"],
            json!({"code": "upstream_error", "message": "broke"})
        );
        assert!(sink.borrow().is_none(), "a failed response is not stored");

        let mut input = crate::sse::json_data(
            &json!({"choices": [{"index": 0, "delta": {"content": "cut"}, "finish_reason": "length"}]}),
        );
        input.extend(crate::sse::done());
        let mut rewriter = StreamRewriter::new(Box::new(ResponsesStream::new(
            meta(Echo::default()),
            sink.clone(),
        )));
        let mut out = rewriter.push(&input);
        out.extend(rewriter.finish());
        let cut = events(&out);
        let (name, last) = cut.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
    }
}
