//! Google Gemini through its native API: `models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`.

use super::gemini_schema::gemini_schema;
use super::{
    arguments_object, check_vector_count, parse_json, CallContext, EmbeddingBatch,
    EmbeddingContext, HttpRequest, Provider, ProviderSpec,
};
use crate::embeddings::Embeddings;
use crate::error::{upstream_error, GatewayError};
use crate::openai::{
    parse_data_url, tool_name_for_call, usage_object, AssistantMessage, ChatCompletion, Choice,
    FunctionCall, MessageContent, RequestMessage, ToolCall,
};
use crate::stream::translate::{ChunkState, EventTranslator};
use crate::stream::Chunk;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub struct Gemini;

pub static SPEC: ProviderSpec = ProviderSpec {
    id: "gemini",
    base_url_var: "GEMINI_BASE_URL",
    default_base_url: "https://generativelanguage.googleapis.com",
    env_prefix: "GEMINI",
    default_patterns: &["gemini-*", "gemma-*", "learnlm-*"],
    default_models: &[
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.0-flash",
        "gemini-embedding-001",
    ],
    base_url_suffixes: &["/v1beta", "/v1"],
    base_url_as_written: false,
    legacy_base_path: "",
    owned_by: "google",
};

const SAFETY_CATEGORIES: &[&str] = &[
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
];

// ---- wire types -------------------------------------------------------------------------

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest {
    contents: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Content>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    generation_config: Map<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    safety_settings: Vec<Value>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    logprobs_result: Option<Value>,
    #[serde(default)]
    /// Kept as text: Google adds values, and every one is mapped deliberately below.
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    total_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
}

// ---- request ----------------------------------------------------------------------------

fn build_body(ctx: &CallContext) -> Result<GenerateContentRequest, GatewayError> {
    let request = ctx.request;
    let messages = request.messages()?;
    let mut body = GenerateContentRequest::default();
    let mut system_parts: Vec<Value> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let (role, parts) = match message.role.as_str() {
            "system" | "developer" => {
                if let Some(content) = &message.content {
                    system_parts.push(json!({ "text": content.text() }));
                }
                continue;
            }
            "user" => ("user", content_parts(message.content.as_ref(), i)?),
            "assistant" => ("model", assistant_parts(message, i)?),
            "tool" | "function" => ("user", vec![tool_result_part(message, &messages, i)?]),
            other => {
                return Err(GatewayError::invalid_param(
                    format!("messages[{i}] has role `{other}`, which Gemini cannot take"),
                    &format!("messages[{i}].role"),
                ))
            }
        };
        if parts.is_empty() {
            continue;
        }
        // Gemini wants alternating turns: consecutive same-role messages become one turn.
        match body.contents.last_mut() {
            Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
            _ => body.contents.push(Content {
                role: Some(role.into()),
                parts,
            }),
        }
    }
    if !system_parts.is_empty() {
        body.system_instruction = Some(Content {
            role: None,
            parts: system_parts,
        });
    }
    if body.contents.is_empty() {
        return Err(GatewayError::invalid_param(
            "Gemini needs at least one user or assistant message",
            "messages",
        ));
    }
    body.generation_config = generation_config(ctx)?;
    let tools = request.tools()?;
    if !tools.is_empty() {
        let mut declarations: Vec<Value> = Vec::with_capacity(tools.len());
        for (i, t) in tools
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind == "function")
        {
            let mut decl = json!({ "name": t.function.name });
            if let Some(d) = &t.function.description {
                decl["description"] = Value::String(d.clone());
            }
            if let Some(p) = &t.function.parameters {
                decl["parameters"] = gemini_schema(p, &format!("tools[{i}].function.parameters"))?;
            }
            declarations.push(decl);
        }
        body.tools
            .push(json!({ "functionDeclarations": declarations }));
    }
    body.tool_config = tool_config(request.body.get("tool_choice"))?;
    body.safety_settings =
        safety_settings(&ctx.options.gemini_safety_threshold, ctx.upstream_model);
    Ok(body)
}

fn content_parts(content: Option<&MessageContent>, i: usize) -> Result<Vec<Value>, GatewayError> {
    let Some(content) = content else {
        return Ok(Vec::new());
    };
    match content {
        MessageContent::Text(text) => Ok(vec![json!({ "text": text })]),
        MessageContent::Parts(parts) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let param = format!("messages[{i}].content[{j}]");
                if let Some(text) = &part.text {
                    out.push(json!({ "text": text }));
                } else if let Some(image) = &part.image_url {
                    out.push(media_part(image.url(), "image_url", &param)?);
                } else {
                    match part.kind.as_str() {
                        "input_audio" => {
                            out.push(audio_part(part.extra.get("input_audio"), &param)?)
                        }
                        "file" => out.push(file_part(part.extra.get("file"), &param)?),
                        "video_url" => {
                            let url = part.extra.get("video_url").and_then(|v| {
                                v.as_str().or_else(|| v.get("url").and_then(Value::as_str))
                            });
                            let url = url.ok_or_else(|| {
                                GatewayError::invalid_param(
                                    "a video_url part needs `video_url.url`",
                                    &param,
                                )
                            })?;
                            out.push(media_part(url, "video_url", &param)?);
                        }
                        // Other part types (e.g. `refusal` in an assistant turn) carry nothing
                        // Gemini can read.
                        _ => {}
                    }
                }
            }
            Ok(out)
        }
    }
}

/// An image or video as a Gemini part: a data: URL inline, an http(s) URL by reference.
fn media_part(url: &str, field: &str, param: &str) -> Result<Value, GatewayError> {
    match parse_data_url(url) {
        Some(data) => {
            Ok(json!({ "inlineData": { "mimeType": data.mime_type, "data": data.base64 } }))
        }
        None if url.starts_with("http://") || url.starts_with("https://") => {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            let fallback = if field == "video_url" {
                "video/mp4"
            } else {
                "image/jpeg"
            };
            let mime = mime_from_name(path).unwrap_or(fallback);
            Ok(json!({ "fileData": { "mimeType": mime, "fileUri": url } }))
        }
        None => Err(GatewayError::invalid_param(
            format!("{field} must be a data: URL or an http(s) URL"),
            param,
        )),
    }
}

/// OpenAI's `input_audio` (`{data: base64, format}`) as inline audio.
fn audio_part(audio: Option<&Value>, param: &str) -> Result<Value, GatewayError> {
    let data = audio
        .and_then(|a| a["data"].as_str())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            GatewayError::invalid_param(
                "an input_audio part needs base64 `input_audio.data`",
                param,
            )
        })?;
    let format = audio
        .and_then(|a| a["format"].as_str())
        .unwrap_or("wav")
        .to_ascii_lowercase();
    let mime = match format.as_str() {
        "mp3" | "mpeg" => "audio/mp3".to_string(),
        other => format!("audio/{other}"),
    };
    Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }))
}

/// OpenAI's `file` part (`{filename, file_data}`; `file_data` a data: URL or bare base64) as
/// inline data. A `file_id` points into OpenAI's Files API, which Gemini cannot read.
fn file_part(file: Option<&Value>, param: &str) -> Result<Value, GatewayError> {
    let data = file
        .and_then(|f| f["file_data"].as_str())
        .filter(|d| !d.is_empty());
    let Some(data) = data else {
        let message = if file.and_then(|f| f.get("file_id")).is_some() {
            "a file part with `file_id` refers to OpenAI's Files API, which Gemini cannot read: send the content as `file.file_data`"
        } else {
            "a file part needs `file.file_data` (a data: URL or base64)"
        };
        return Err(GatewayError::invalid_param(message, param));
    };
    let filename = file
        .and_then(|f| f["filename"].as_str())
        .unwrap_or_default();
    let (mime, base64) = match parse_data_url(data) {
        Some(url) if url.mime_type != "application/octet-stream" => {
            (url.mime_type.to_string(), url.base64)
        }
        Some(url) => (
            mime_from_name(filename)
                .unwrap_or("application/pdf")
                .to_string(),
            url.base64,
        ),
        None => (
            mime_from_name(filename)
                .unwrap_or("application/pdf")
                .to_string(),
            data,
        ),
    };
    Ok(json!({ "inlineData": { "mimeType": mime, "data": base64 } }))
}

/// The MIME type Gemini expects for a file name's extension.
fn mime_from_name(name: &str) -> Option<&'static str> {
    let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "xml" => "text/xml",
        "json" => "application/json",
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "aac" => "audio/aac",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "mpeg" | "mpg" => "video/mpeg",
        _ => return None,
    })
}

fn assistant_parts(message: &RequestMessage, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut parts = content_parts(message.content.as_ref(), i)?;
    parts.retain(|p| {
        p.get("text")
            .and_then(Value::as_str)
            .is_none_or(|t| !t.is_empty())
    });
    let calls = message.tool_calls.as_deref().unwrap_or_default();
    // A turn's calls without any signature (another model's history, or a client that
    // drops unknown fields) get Google's documented placeholder on the first call, so
    // Gemini 3 accepts the history instead of answering 400.
    let unsigned = !calls.iter().any(|c| thought_signature(c).is_some());
    for (j, call) in calls.iter().enumerate() {
        let args = arguments_object(
            &call.function.arguments,
            &format!("messages[{i}].tool_calls[{j}].function.arguments"),
        )?;
        let mut part = json!({ "functionCall": { "name": call.function.name, "args": args } });
        match thought_signature(call) {
            Some(signature) => part["thoughtSignature"] = json!(signature),
            None if unsigned && j == 0 => part["thoughtSignature"] = json!(SKIP_SIGNATURE),
            None => {}
        }
        parts.push(part);
    }
    Ok(parts)
}

/// Google's placeholder for a function call whose thought signature is not known.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// A tool call's thought signature, carried as Google's OpenAI-compatible endpoint does:
/// `extra_content.google.thought_signature`.
fn thought_signature(call: &ToolCall) -> Option<&str> {
    call.extra
        .get("extra_content")?
        .pointer("/google/thought_signature")?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The OpenAI-side fields carrying a part's `thoughtSignature`, if it has one.
fn signature_extra(part: &Value) -> Map<String, Value> {
    let mut extra = Map::new();
    if let Some(signature) = part.get("thoughtSignature").and_then(Value::as_str) {
        extra.insert(
            "extra_content".into(),
            json!({ "google": { "thought_signature": signature } }),
        );
    }
    extra
}

fn tool_result_part(
    message: &RequestMessage,
    all: &[RequestMessage],
    i: usize,
) -> Result<Value, GatewayError> {
    let name = message
        .name
        .clone()
        .or_else(|| {
            message
                .tool_call_id
                .as_deref()
                .and_then(|id| tool_name_for_call(all, id))
        })
        .ok_or_else(|| {
            GatewayError::invalid_param(
                "a tool message needs a tool_call_id that matches an earlier assistant tool call",
                &format!("messages[{i}].tool_call_id"),
            )
        })?;
    let text = message
        .content
        .as_ref()
        .map(MessageContent::text)
        .unwrap_or_default();
    // Gemini wants an object; JSON objects pass as they are, anything else is wrapped.
    let response = match serde_json::from_slice::<Value>(text.as_bytes()) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => json!({ "content": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

fn generation_config(ctx: &CallContext) -> Result<Map<String, Value>, GatewayError> {
    let request = ctx.request;
    let mut config = Map::new();
    let mut copy_number = |from: &str, to: &str| {
        if let Some(v) = request.body.get(from).filter(|v| v.is_number()) {
            config.insert(to.into(), v.clone());
        }
    };
    copy_number("temperature", "temperature");
    copy_number("top_p", "topP");
    copy_number("top_k", "topK");
    copy_number("n", "candidateCount");
    copy_number("seed", "seed");
    copy_number("presence_penalty", "presencePenalty");
    copy_number("frequency_penalty", "frequencyPenalty");
    if let Some(max) = request.max_tokens() {
        config.insert("maxOutputTokens".into(), json!(max));
    }
    let stop = request.stop();
    if !stop.is_empty() {
        config.insert("stopSequences".into(), json!(stop));
    }
    match request.body.get("response_format") {
        None | Some(Value::Null) => {}
        Some(format) => match format["type"].as_str() {
            Some("text") => {}
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = format.pointer("/json_schema/schema") {
                    config.insert(
                        "responseSchema".into(),
                        gemini_schema(schema, "response_format.json_schema.schema")?,
                    );
                }
            }
            _ => {
                return Err(GatewayError::invalid_param(
                    "response_format.type must be text, json_object or json_schema",
                    "response_format",
                ))
            }
        },
    }
    match (
        request.body.get("logprobs").and_then(Value::as_bool),
        request.body.get("top_logprobs").filter(|v| !v.is_null()),
    ) {
        (Some(true), top) => {
            config.insert("responseLogprobs".into(), json!(true));
            if let Some(top) = top {
                let n = top.as_u64().filter(|n| *n <= 20).ok_or_else(|| {
                    GatewayError::invalid_param(
                        "`top_logprobs` must be an integer from 0 to 20",
                        "top_logprobs",
                    )
                })?;
                config.insert("logprobs".into(), json!(n));
            }
        }
        (_, Some(_)) => {
            return Err(GatewayError::invalid_param(
                "`logprobs` must be true when `top_logprobs` is set",
                "top_logprobs",
            ))
        }
        _ => {}
    }
    if let Some(effort) = request.body.get("reasoning_effort").and_then(Value::as_str) {
        let budget = match effort {
            "none" | "minimal" => 0,
            "low" => 1024,
            "medium" => 8192,
            _ => 24576,
        };
        config.insert(
            "thinkingConfig".into(),
            json!({ "thinkingBudget": budget, "includeThoughts": true }),
        );
    }
    // Anything Gemini-specific the client passed in `generationConfig` wins.
    if let Some(Value::Object(extra)) = request.body.get("generationConfig") {
        for (k, v) in extra {
            config.insert(k.clone(), v.clone());
        }
    }
    Ok(config)
}

fn tool_config(choice: Option<&Value>) -> Result<Option<Value>, GatewayError> {
    let config = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => json!({ "functionCallingConfig": { "mode": "AUTO" } }),
            "none" => json!({ "functionCallingConfig": { "mode": "NONE" } }),
            "required" => json!({ "functionCallingConfig": { "mode": "ANY" } }),
            other => {
                return Err(GatewayError::invalid_param(
                    format!("tool_choice `{other}` is not one of auto, none, required"),
                    "tool_choice",
                ))
            }
        },
        Some(object) => match object.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => {
                json!({ "functionCallingConfig": { "mode": "ANY", "allowedFunctionNames": [name] } })
            }
            None => return Err(GatewayError::invalid_param(
                "tool_choice must be a string or {\"type\":\"function\",\"function\":{\"name\":…}}",
                "tool_choice",
            )),
        },
    };
    Ok(Some(config))
}

/// `auto`: the least blocking threshold the model takes (`OFF` on current models,
/// `BLOCK_NONE` on 1.0-era ones); `none`: no settings sent; anything else: that threshold.
fn safety_settings(setting: &str, model: &str) -> Vec<Value> {
    let threshold = match setting.trim().to_ascii_lowercase().as_str() {
        "none" | "off" | "default" => return Vec::new(),
        "" | "auto" => {
            let legacy = model.starts_with("gemini-1.0")
                || model == "gemini-pro"
                || model.starts_with("gemini-pro-");
            if legacy { "BLOCK_NONE" } else { "OFF" }.to_string()
        }
        _ => setting.trim().to_ascii_uppercase(),
    };
    SAFETY_CATEGORIES
        .iter()
        .map(|c| json!({ "category": c, "threshold": threshold }))
        .collect()
}

// ---- response ---------------------------------------------------------------------------

/// Finish reasons that mean a block: the answer was withheld for its content.
const BLOCKED: &[&str] = &[
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
];

/// The OpenAI finish reason of a candidate, or the `empty_response` error when it ended
/// with nothing usable for a reason that is not a normal stop: `MALFORMED_FUNCTION_CALL`,
/// `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`, `LANGUAGE`, `NO_IMAGE`, `OTHER`, any value
/// Google adds later, or no finish reason and no parts at all.
fn finish_reason(
    reason: Option<&str>,
    has_output: bool,
    has_tool_calls: bool,
) -> Result<&'static str, GatewayError> {
    let normal = if has_tool_calls { "tool_calls" } else { "stop" };
    match reason {
        Some("MAX_TOKENS") => Ok("length"),
        Some(blocked) if BLOCKED.contains(&blocked) => Ok("content_filter"),
        Some("STOP") => Ok(normal),
        _ if has_output || has_tool_calls => Ok(normal),
        None => Err(GatewayError::EmptyResponse(
            "Gemini answered with no content and no finish reason".into(),
        )),
        Some(other) => Err(GatewayError::EmptyResponse(format!(
            "Gemini finished without a usable answer (finish reason {})",
            crate::error::excerpt(other, 60)
        ))),
    }
}

/// Gemini's `logprobsResult` (chosen and top candidates per decoding step) as OpenAI's
/// `logprobs` (`content[]` of token, logprob, bytes and top_logprobs).
fn openai_logprobs(result: &Value) -> Option<Value> {
    let entry = |candidate: &Value| {
        let token = candidate["token"].as_str().unwrap_or_default();
        json!({
            "token": token,
            "logprob": candidate["logProbability"].as_f64().unwrap_or(0.0),
            "bytes": token.as_bytes(),
        })
    };
    let chosen = result["chosenCandidates"].as_array()?;
    let top = result["topCandidates"].as_array();
    let content: Vec<Value> = chosen
        .iter()
        .enumerate()
        .map(|(step, candidate)| {
            let mut item = entry(candidate);
            item["top_logprobs"] = top
                .and_then(|steps| steps.get(step))
                .and_then(|s| s["candidates"].as_array())
                .map(|candidates| candidates.iter().map(entry).collect())
                .unwrap_or_else(|| json!([]));
            item
        })
        .collect();
    Some(json!({ "content": content, "refusal": null }))
}

fn usage(metadata: &UsageMetadata) -> Value {
    let thoughts = metadata.thoughts_token_count.unwrap_or(0);
    usage_object(
        metadata.prompt_token_count,
        metadata.candidates_token_count + thoughts,
        metadata.total_token_count,
        metadata.thoughts_token_count,
        metadata.cached_content_token_count,
    )
}

fn blocked_prompt(feedback: &Option<PromptFeedback>) -> Option<GatewayError> {
    let reason = feedback.as_ref()?.block_reason.as_ref()?;
    Some(GatewayError::InvalidRequest {
        message: format!("Gemini blocked the prompt (blockReason: {reason})"),
        param: Some("messages".into()),
        code: Some("content_filter"),
    })
}

fn tool_call_id(ctx: &CallContext, part: &Value, n: usize) -> String {
    part.pointer("/functionCall/id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("call_{}_{n}", ctx.request_id))
}

impl Provider for Gemini {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    fn chat_request(&self, ctx: &CallContext) -> Result<HttpRequest, GatewayError> {
        let model = model_path(ctx.upstream_model)?;
        let body = build_body(ctx)?;
        let url = if ctx.stream {
            format!(
                "{}/v1beta/{model}:streamGenerateContent?alt=sse",
                ctx.base_url
            )
        } else {
            format!("{}/v1beta/{model}:generateContent", ctx.base_url)
        };
        Ok(HttpRequest {
            method: "POST",
            url,
            headers: vec![
                ("x-goog-api-key".into(), ctx.key.to_string()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: Some(
                serde_json::to_vec(&body).map_err(|e| GatewayError::Internal(e.to_string()))?,
            ),
        })
    }

    fn parse_completion(
        &self,
        body: &[u8],
        ctx: &CallContext,
    ) -> Result<ChatCompletion, GatewayError> {
        let response: GenerateContentResponse =
            parse_json(body, "a Gemini GenerateContentResponse")?;
        if let Some(error) = response.error {
            return Err(error_from_value(500, &error));
        }
        if response.candidates.is_empty() {
            return Err(
                blocked_prompt(&response.prompt_feedback).unwrap_or_else(|| {
                    GatewayError::UpstreamMalformed("Gemini returned no candidates".into())
                }),
            );
        }
        let mut calls_seen = 0;
        let choices = response
            .candidates
            .iter()
            .enumerate()
            .map(|(i, candidate)| {
                let mut text = String::new();
                let mut thoughts = String::new();
                let mut tool_calls = Vec::new();
                for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        if part.get("thought").and_then(Value::as_bool) == Some(true) {
                            thoughts.push_str(t);
                        } else {
                            text.push_str(t);
                        }
                    } else if let Some(call) = part.get("functionCall") {
                        tool_calls.push(ToolCall {
                            id: tool_call_id(ctx, part, calls_seen),
                            kind: "function".into(),
                            function: FunctionCall {
                                name: call["name"].as_str().unwrap_or_default().into(),
                                arguments: call.get("args").unwrap_or(&json!({})).to_string(),
                            },
                            extra: signature_extra(part),
                        });
                        calls_seen += 1;
                    }
                }
                let has_calls = !tool_calls.is_empty();
                let has_output = !text.is_empty() || !thoughts.is_empty();
                let finish =
                    finish_reason(candidate.finish_reason.as_deref(), has_output, has_calls)?;
                Ok(Choice {
                    index: candidate.index.unwrap_or(i as u32),
                    message: AssistantMessage {
                        content: Some(if text.is_empty() && has_calls {
                            Value::Null
                        } else {
                            Value::String(text)
                        }),
                        reasoning_content: (!thoughts.is_empty()).then_some(thoughts),
                        tool_calls: has_calls.then_some(tool_calls),
                        ..AssistantMessage::default()
                    },
                    finish_reason: Some(finish.into()),
                    logprobs: candidate.logprobs_result.as_ref().and_then(openai_logprobs),
                    extra: Map::new(),
                })
            })
            .collect::<Result<Vec<_>, GatewayError>>()?;
        Ok(ChatCompletion {
            id: format!(
                "chatcmpl-{}",
                response.response_id.as_deref().unwrap_or(ctx.request_id)
            ),
            object: "chat.completion".into(),
            created: ctx.now_seconds,
            model: ctx.request.model.clone(),
            choices,
            usage: response.usage_metadata.as_ref().map(usage),
            system_fingerprint: None,
            extra: Map::new(),
        })
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> GatewayError {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) if value.get("error").is_some() => error_from_value(status, &value["error"]),
            Ok(Value::Array(items)) if items.first().is_some_and(|v| v.get("error").is_some()) => {
                error_from_value(status, &items[0]["error"])
            }
            _ => GatewayError::from_upstream(status, body),
        }
    }

    fn embeddings_requests(
        &self,
        ctx: &EmbeddingContext,
    ) -> Result<Vec<EmbeddingBatch>, GatewayError> {
        let model = model_path(ctx.upstream_model)?;
        let texts = ctx.request.texts("Gemini")?;
        let task_type = ctx
            .request
            .task_type
            .as_deref()
            .map(embedding_task_type)
            .transpose()?;
        texts
            .chunks(EMBED_BATCH_LIMIT)
            .map(|batch| {
                let requests: Vec<Value> = batch
                    .iter()
                    .map(|text| {
                        let mut one =
                            json!({ "model": model, "content": { "parts": [{ "text": text }] } });
                        if let Some(task) = task_type {
                            one["taskType"] = json!(task);
                        }
                        if let Some(dimensions) = ctx.request.dimensions {
                            one["outputDimensionality"] = json!(dimensions);
                        }
                        one
                    })
                    .collect();
                let body = serde_json::to_vec(&json!({ "requests": requests }))
                    .map_err(|e| GatewayError::Internal(e.to_string()))?;
                Ok(EmbeddingBatch {
                    request: HttpRequest {
                        method: "POST",
                        url: format!("{}/v1beta/{model}:batchEmbedContents", ctx.base_url),
                        headers: vec![
                            ("x-goog-api-key".into(), ctx.key.to_string()),
                            ("Content-Type".into(), "application/json".into()),
                        ],
                        body: Some(body),
                    },
                    inputs: batch.len(),
                })
            })
            .collect()
    }

    fn parse_embeddings(&self, body: &[u8], expected: usize) -> Result<Embeddings, GatewayError> {
        #[derive(Deserialize)]
        struct Values {
            #[serde(default)]
            values: Vec<f32>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct BatchAnswer {
            #[serde(default)]
            embeddings: Vec<Values>,
            #[serde(default)]
            usage_metadata: Option<UsageMetadata>,
        }
        let answer: BatchAnswer = parse_json(body, "a Gemini BatchEmbedContentsResponse")?;
        check_vector_count(answer.embeddings.len(), expected)?;
        Ok(Embeddings {
            vectors: answer.embeddings.into_iter().map(|e| e.values).collect(),
            prompt_tokens: answer.usage_metadata.map(|u| u.prompt_token_count),
        })
    }

    fn stream_translator(&self, ctx: &CallContext) -> Option<Box<dyn EventTranslator>> {
        Some(Box::new(GeminiStream {
            state: ChunkState::new(ctx.chunk_meta(None)),
            request_id: ctx.request_id.to_string(),
            calls_seen: 0,
            emitted: Vec::new(),
        }))
    }

    fn validate_model(&self, model: &str) -> Result<(), GatewayError> {
        model_path(model).map(|_| ())
    }

    fn models_request(&self, base_url: &str, key: &str) -> Option<HttpRequest> {
        Some(HttpRequest {
            method: "GET",
            url: format!("{base_url}/v1beta/models?pageSize=1000"),
            headers: vec![("x-goog-api-key".into(), key.to_string())],
            body: None,
        })
    }

    fn parse_models(&self, body: &[u8]) -> Vec<String> {
        let Ok(list) = serde_json::from_slice::<Value>(body) else {
            return Vec::new();
        };
        list["models"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| {
                m["supportedGenerationMethods"]
                    .as_array()
                    .is_none_or(|methods| {
                        methods.iter().any(|x| {
                            x == "generateContent"
                                || x == "embedContent"
                                || x == "batchEmbedContents"
                        })
                    })
            })
            .filter_map(|m| m["name"].as_str())
            .map(|name| name.strip_prefix("models/").unwrap_or(name).to_string())
            .collect()
    }
}

/// Requests per `batchEmbedContents` call, Gemini's documented maximum.
const EMBED_BATCH_LIMIT: usize = 100;

/// Gemini's embedding task types; `query` and `document` as the short forms other
/// providers use.
fn embedding_task_type(task: &str) -> Result<&'static str, GatewayError> {
    const TASKS: &[&str] = &[
        "TASK_TYPE_UNSPECIFIED",
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    ];
    let upper = task.to_ascii_uppercase();
    match upper.as_str() {
        "QUERY" => return Ok("RETRIEVAL_QUERY"),
        "DOCUMENT" => return Ok("RETRIEVAL_DOCUMENT"),
        _ => {}
    }
    TASKS.iter().copied().find(|t| *t == upper).ok_or_else(|| {
        GatewayError::invalid_param(
            format!(
                "`task_type` `{}` is not a Gemini task type ({})",
                crate::error::excerpt(task, 60),
                TASKS[1..].join(", ")
            ),
            "task_type",
        )
    })
}

/// A Gemini error object (`{code, message, status, details}`) as an OpenAI error.
fn error_from_value(status: u16, error: &Value) -> GatewayError {
    let message = error["message"]
        .as_str()
        .unwrap_or("Gemini returned an error")
        .to_string();
    let google_status = error["status"].as_str().unwrap_or_default().to_string();
    let invalid_key = message.contains("API key not valid")
        || error["details"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["reason"] == "API_KEY_INVALID");
    let status = if invalid_key {
        401
    } else {
        error["code"]
            .as_u64()
            .map(|c| c as u16)
            .filter(|c| (400..=599).contains(c))
            .unwrap_or(status)
    };
    let code = if invalid_key {
        json!("invalid_api_key")
    } else if google_status.is_empty() {
        Value::Null
    } else {
        Value::String(google_status)
    };
    let retry_after = error["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| {
            d["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .and_then(|d| d["retryDelay"].as_str())
        .and_then(retry_delay_seconds);
    upstream_error(status, message, code)
        .with_headers(retry_after.map(|seconds| ("retry-after".to_string(), seconds.to_string())))
}

/// A `google.protobuf.Duration` in JSON (`"17s"`, `"1.2s"`) as whole seconds, rounded up.
fn retry_delay_seconds(delay: &str) -> Option<u64> {
    let seconds: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| seconds.ceil() as u64)
}

/// Whether `model` is a Gemini model id: letters, digits, `.`, `-` and `_`, optionally
/// as `models/<id>` or `tunedModels/<id>`. Anything else could reach another API path.
fn model_path(model: &str) -> Result<String, GatewayError> {
    let (collection, id) = match model.split_once('/') {
        Some(("models", id)) => ("models", id),
        Some(("tunedModels", id)) => ("tunedModels", id),
        Some(_) => ("", ""),
        None => ("models", model),
    };
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !valid {
        return Err(GatewayError::invalid_model(format!(
            "`{}` is not a valid Gemini model id: use letters, digits, `.`, `-` and `_` (optionally as `models/<id>` or `tunedModels/<id>`)",
            crate::error::excerpt(model, 100)
        )));
    }
    // Already only unreserved characters; encoded anyway so no later change can open a path.
    Ok(format!("{collection}/{}", crate::scrub::percent_encode(id)))
}

struct GeminiStream {
    state: ChunkState,
    request_id: String,
    calls_seen: usize,
    /// Candidates that sent any text or thought so far.
    emitted: Vec<u32>,
}

impl EventTranslator for GeminiStream {
    fn event(&mut self, _event: Option<&str>, data: &str) -> Result<Vec<Chunk>, GatewayError> {
        let response: GenerateContentResponse =
            parse_json(data.as_bytes(), "a Gemini stream event")?;
        if let Some(error) = &response.error {
            return Err(error_from_value(500, error));
        }
        if response.candidates.is_empty() {
            if let Some(error) = blocked_prompt(&response.prompt_feedback) {
                return Err(error);
            }
        }
        let mut out = Vec::new();
        for (i, candidate) in response.candidates.iter().enumerate() {
            let index = candidate.index.unwrap_or(i as u32);
            self.state.start(index, &mut out);
            for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    let field = if part.get("thought").and_then(Value::as_bool) == Some(true) {
                        "reasoning_content"
                    } else {
                        "content"
                    };
                    if !text.is_empty() && !self.emitted.contains(&index) {
                        self.emitted.push(index);
                    }
                    self.state.text(index, field, text, &mut out);
                } else if let Some(call) = part.get("functionCall") {
                    let tool_index = self.state.next_tool_index(index);
                    let id = part
                        .pointer("/functionCall/id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("call_{}_{}", self.request_id, self.calls_seen));
                    self.calls_seen += 1;
                    let mut tool_call = json!({
                        "index": tool_index,
                        "id": id,
                        "type": "function",
                        "function": {
                            "name": call["name"].as_str().unwrap_or_default(),
                            "arguments": call.get("args").unwrap_or(&json!({})).to_string(),
                        },
                    });
                    for (key, value) in signature_extra(part) {
                        tool_call[key] = value;
                    }
                    out.push(
                        self.state
                            .delta(index, json!({ "tool_calls": [tool_call] })),
                    );
                }
            }
            if let Some(logprobs) = candidate.logprobs_result.as_ref().and_then(openai_logprobs) {
                self.state.logprobs(index, logprobs, &mut out);
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                let mapped = finish_reason(
                    Some(reason),
                    self.emitted.contains(&index),
                    self.state.has_tool_calls(index),
                )?;
                self.state.set_finish(index, mapped.into());
            }
        }
        if let Some(metadata) = &response.usage_metadata {
            self.state.usage = Some(usage(metadata));
        }
        Ok(out)
    }

    fn state(&self) -> &ChunkState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut ChunkState {
        &mut self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::test_support::{
        embedding_batches, request, run_stream, translated, with_ctx,
    };
    use crate::stream::translate::StreamAdapter;

    fn upstream_body(body: Value) -> Value {
        let req = request(body);
        with_ctx(&req, false, |ctx| {
            let call = Gemini.chat_request(ctx).unwrap();
            serde_json::from_slice(&call.body.unwrap()).unwrap()
        })
    }

    #[test]
    fn request_mapping() {
        let body = upstream_body(json!({
            "model": "gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": [{"type": "text", "text": "Look:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_9", "content": "{\"temp\":21}"},
                {"role": "tool", "tool_call_id": "call_9", "content": "plain text"}
            ],
            "temperature": 0.5, "top_p": 0.9, "max_tokens": 100, "stop": ["END"], "n": 2, "seed": 7,
            "presence_penalty": 0.1, "frequency_penalty": 0.2,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true,
                "schema": {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}}}},
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d",
                "parameters": {"type": "object", "$schema": "x", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}}
        }));
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]})
        );
        let contents = body["contents"].as_array().unwrap();
        assert_eq!(
            contents.len(),
            3,
            "two user turns merged, tool results merged: {contents:?}"
        );
        assert_eq!(contents[0]["role"], "user");
        assert_eq!(
            contents[0]["parts"],
            json!([{"text": "Hi"}, {"text": "Look:"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}])
        );
        assert_eq!(contents[1]["role"], "model");
        assert_eq!(
            contents[1]["parts"],
            json!([{"functionCall": {"name": "weather", "args": {"city": "Paris"}},
                "thoughtSignature": "skip_thought_signature_validator"}])
        );
        assert_eq!(
            contents[2]["parts"],
            json!([
            {"functionResponse": {"name": "weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "weather", "response": {"content": "plain text"}}}])
        );
        let config = &body["generationConfig"];
        assert_eq!(config["temperature"], 0.5);
        assert_eq!(config["topP"], 0.9);
        assert_eq!(config["maxOutputTokens"], 100);
        assert_eq!(config["stopSequences"], json!(["END"]));
        assert_eq!(config["candidateCount"], 2);
        assert_eq!(config["seed"], 7);
        assert_eq!(config["presencePenalty"], 0.1);
        assert_eq!(config["frequencyPenalty"], 0.2);
        assert_eq!(config["responseMimeType"], "application/json");
        assert_eq!(
            config["responseSchema"],
            json!({"type": "object", "properties": {"a": {"type": "string"}}})
        );
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0]["parameters"],
            json!({"type": "object", "properties": {"city": {"type": "string"}}})
        );
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}})
        );
        assert_eq!(body["safetySettings"].as_array().unwrap().len(), 4);
        assert_eq!(body["safetySettings"][0]["threshold"], "OFF");
    }

    #[test]
    fn request_urls_and_key_header() {
        let req = request(
            json!({"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": "x"}]}),
        );
        with_ctx(&req, true, |ctx| {
            let call = Gemini.chat_request(ctx).unwrap();
            assert_eq!(
                call.url,
                "https://up.test/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
            );
            assert!(call
                .headers
                .contains(&("x-goog-api-key".into(), "up-key".into())));
        });
        with_ctx(&req, false, |ctx| {
            assert!(Gemini
                .chat_request(ctx)
                .unwrap()
                .url
                .ends_with(":generateContent"));
        });
    }

    #[test]
    fn model_ids_never_shape_the_url() {
        assert_eq!(
            model_path("gemini-2.5-flash").unwrap(),
            "models/gemini-2.5-flash"
        );
        assert_eq!(
            model_path("models/gemini-2.5-flash").unwrap(),
            "models/gemini-2.5-flash"
        );
        assert_eq!(
            model_path("tunedModels/my-model_1").unwrap(),
            "tunedModels/my-model_1"
        );
        for bad in [
            "gemini-x/../../../../v1beta/files?",
            "gemini-x#frag",
            "gemini-x:generateContent?key=1&",
            "gemini-x%2F..",
            "gemini-x?alt=json",
            "models/",
            "files/abc",
            "models/a/b",
            "gemini x",
            "",
        ] {
            let error = model_path(bad).unwrap_err();
            assert_eq!(error.status(), 400, "{bad}");
            assert_eq!(error.to_body()["error"]["code"], "invalid_model", "{bad}");
            assert!(Gemini.validate_model(bad).is_err());
        }
    }

    #[test]
    fn retry_info_becomes_retry_after() {
        let body = json!({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.2s"}]}});
        let error = Gemini.parse_error(429, body.to_string().as_bytes());
        assert_eq!(error.status(), 429);
        assert_eq!(
            error.headers(),
            &[("retry-after".to_string(), "2".to_string())]
        );
        assert_eq!(retry_delay_seconds("17s"), Some(17));
        assert_eq!(retry_delay_seconds("0s"), Some(0));
        assert_eq!(retry_delay_seconds("soon"), None);
        assert_eq!(retry_delay_seconds("-1s"), None);
    }

    #[test]
    fn request_errors() {
        for (body, param) in [
            (
                json!({"model": "g", "messages": [{"role": "system", "content": "only system"}]}),
                "messages",
            ),
            (
                json!({"model": "g", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"model": "g", "messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{bad"}}]}]}),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                json!({"model": "g", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
                "messages[0].content[0]",
            ),
        ] {
            let req = request(body.clone());
            let err = with_ctx(&req, false, |ctx| Gemini.chat_request(ctx).unwrap_err());
            assert_eq!(err.status(), 400, "{body}");
            assert_eq!(err.to_body()["error"]["param"], param, "{body}");
        }
    }

    #[test]
    fn safety_threshold_choices() {
        assert_eq!(
            safety_settings("auto", "gemini-1.0-pro")[0]["threshold"],
            "BLOCK_NONE"
        );
        assert_eq!(
            safety_settings("auto", "gemini-2.5-pro")[0]["threshold"],
            "OFF"
        );
        assert!(safety_settings("none", "gemini-2.5-pro").is_empty());
        assert_eq!(
            safety_settings("block_only_high", "x")[0]["threshold"],
            "BLOCK_ONLY_HIGH"
        );
    }

    #[test]
    fn response_mapping() {
        let req = request(
            json!({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "x"}]}),
        );
        let native = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking…", "thought": true}, {"text": "Hello "}, {"text": "世界"},
                {"functionCall": {"name": "f", "args": {"a": 1}}}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 13, "thoughtsTokenCount": 3},
            "responseId": "resp-1"
        });
        let completion = with_ctx(&req, false, |ctx| {
            Gemini
                .parse_completion(native.to_string().as_bytes(), ctx)
                .unwrap()
        });
        assert_eq!(completion.id, "chatcmpl-resp-1");
        assert_eq!(completion.model, "gemini-2.5-pro");
        let message = &completion.choices[0].message;
        assert_eq!(message.text(), "Hello 世界");
        assert_eq!(message.reasoning_content.as_deref(), Some("thinking…"));
        let call = &message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(
            (
                call.id.as_str(),
                call.function.name.as_str(),
                call.function.arguments.as_str()
            ),
            ("call_req1_0", "f", "{\"a\":1}")
        );
        assert_eq!(
            completion.choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );
        let usage = completion.usage.unwrap();
        assert_eq!(
            usage,
            json!({"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13,
            "completion_tokens_details": {"reasoning_tokens": 3}})
        );
    }

    #[test]
    fn finish_reasons() {
        let cases = [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("IMAGE_SAFETY", "content_filter"),
            ("IMAGE_PROHIBITED_CONTENT", "content_filter"),
            // With text, any other ending is a normal stop.
            ("OTHER", "stop"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
            ("SOMETHING_NEW", "stop"),
        ];
        let req = request(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}));
        for (native, want) in cases {
            let body = json!({"candidates": [{"content": {"parts": [{"text": "t"}]}, "finishReason": native}]});
            let completion = with_ctx(&req, false, |ctx| {
                Gemini
                    .parse_completion(body.to_string().as_bytes(), ctx)
                    .unwrap()
            });
            assert_eq!(
                completion.choices[0].finish_reason.as_deref(),
                Some(want),
                "{native}"
            );
        }
    }

    #[test]
    fn empty_answers_are_errors_unless_a_normal_stop_or_a_block() {
        let req = request(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}));
        let parse = |body: Value| {
            with_ctx(&req, false, |ctx| {
                Gemini.parse_completion(body.to_string().as_bytes(), ctx)
            })
        };
        for reason in [
            "MALFORMED_FUNCTION_CALL",
            "UNEXPECTED_TOOL_CALL",
            "TOO_MANY_TOOL_CALLS",
            "LANGUAGE",
            "NO_IMAGE",
            "OTHER",
            "SOMETHING_NEW",
        ] {
            let error = parse(
                json!({"candidates": [{"content": {"role": "model"}, "finishReason": reason}]}),
            )
            .unwrap_err();
            assert_eq!(error.status(), 502, "{reason}");
            assert_eq!(
                error.to_body()["error"]["code"],
                "empty_response",
                "{reason}"
            );
            assert!(error.to_string().contains(reason), "{reason}");
        }
        let none = parse(json!({"candidates": [{"index": 0}]})).unwrap_err();
        assert_eq!(none.to_body()["error"]["code"], "empty_response");
        // An empty block is content_filter; an empty STOP or MAX_TOKENS is an honest empty answer.
        for (reason, want) in [
            ("SAFETY", "content_filter"),
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
        ] {
            let completion = parse(json!({"candidates": [{"finishReason": reason}]})).unwrap();
            assert_eq!(
                completion.choices[0].finish_reason.as_deref(),
                Some(want),
                "{reason}"
            );
        }
        // A tool call with a later odd reason still counts as output.
        let calls = parse(json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}, "finishReason": "OTHER"}]})).unwrap();
        assert_eq!(
            calls.choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );
    }

    #[test]
    fn a_stream_ending_with_nothing_usable_ends_with_empty_response() {
        let req = request(
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "stream": true}),
        );
        let empty = "data: {\"candidates\":[{\"content\":{\"role\":\"model\"},\"finishReason\":\"MALFORMED_FUNCTION_CALL\"}]}\r\n\r\n";
        let (chunks, _) = run_stream(&Gemini, &req, empty.as_bytes());
        let last = chunks.last().unwrap();
        assert_eq!(last["error"]["code"], "empty_response", "{chunks:?}");
        assert!(!chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"));
        // Text first, then the odd reason: a normal end.
        let late = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]}}]}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"OTHER\"}]}\r\n\r\n"
        );
        let (chunks, text) = run_stream(&Gemini, &req, late.as_bytes());
        assert_eq!(text, "hi");
        assert!(
            !chunks.iter().any(|c| c.get("error").is_some()),
            "{chunks:?}"
        );
        assert!(
            chunks
                .iter()
                .any(|c| c["choices"][0]["finish_reason"] == "stop"),
            "{chunks:?}"
        );
    }

    #[test]
    fn blocked_prompt_and_errors() {
        let req = request(json!({"model": "g", "messages": [{"role": "user", "content": "x"}]}));
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        let err = with_ctx(&req, false, |ctx| {
            Gemini
                .parse_completion(blocked.to_string().as_bytes(), ctx)
                .unwrap_err()
        });
        assert_eq!(err.status(), 400);
        assert_eq!(err.to_body()["error"]["code"], "content_filter");

        let bad_key = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT", "details": [{"reason": "API_KEY_INVALID"}]}});
        let err = Gemini.parse_error(400, bad_key.to_string().as_bytes());
        assert_eq!(err.status(), 401);
        assert_eq!(err.to_body()["error"]["code"], "invalid_api_key");
        let quota = json!({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}});
        let err = Gemini.parse_error(429, quota.to_string().as_bytes());
        assert_eq!(
            (err.status(), err.to_body()["error"]["type"].clone()),
            (429, json!("rate_limit_error"))
        );
        assert_eq!(err.to_body()["error"]["code"], "RESOURCE_EXHAUSTED");
        assert_eq!(Gemini.parse_error(503, b"oops").status(), 503);
    }

    #[test]
    fn stream_translation_with_tools_and_usage() {
        let req = request(
            json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}],
            "stream": true, "stream_options": {"include_usage": true}}),
        );
        let events = [
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}]}),
            json!({"candidates": [{"content": {"parts": [{"text": "lo 🌍"}]}}]}),
            json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "a", "args": {}}},
                {"functionCall": {"name": "b", "args": {"x": "ü"}}}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 5, "totalTokenCount": 7}}),
        ];
        let raw: String = events
            .iter()
            .map(|e| format!("data: {e}\r\n\r\n"))
            .collect();
        let (chunks, content) = run_stream(&Gemini, &req, raw.as_bytes());
        assert_eq!(content, "Hello 🌍");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0)?.get("delta")?.get("tool_calls"))
            .collect();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0][0]["index"], 0);
        assert_eq!(calls[1][0]["index"], 1);
        assert_eq!(calls[1][0]["function"]["arguments"], "{\"x\":\"ü\"}");
        assert_eq!(calls[1][0]["id"], "call_req1_1");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 7);
    }

    #[test]
    fn thought_signatures_travel_with_their_calls() {
        // Answer: parallel calls, only the first signed (Gemini 3's rule) → extra_content on
        // that call only, non-streaming and streaming alike.
        let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-A"},
            {"functionCall": {"name": "weather", "args": {"city": "Tokyo"}}}]},
            "finishReason": "STOP"}]});
        let req = request(
            json!({"model": "gemini-3-pro-preview", "messages": [{"role": "user", "content": "x"}]}),
        );
        let completion = with_ctx(&req, false, |ctx| {
            Gemini
                .parse_completion(answer.to_string().as_bytes(), ctx)
                .unwrap()
        });
        let message = serde_json::to_value(&completion.choices[0].message).unwrap();
        assert_eq!(
            message["tool_calls"][0]["extra_content"],
            json!({"google": {"thought_signature": "sig-A"}})
        );
        assert!(message["tool_calls"][1].get("extra_content").is_none());

        let stream_req = request(json!({"model": "gemini-3-pro-preview", "stream": true,
            "messages": [{"role": "user", "content": "x"}]}));
        let (chunks, _) = run_stream(
            &Gemini,
            &stream_req,
            format!("data: {answer}\r\n\r\n").as_bytes(),
        );
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0)?.get("delta")?.get("tool_calls"))
            .collect();
        assert_eq!(
            calls[0][0]["extra_content"]["google"]["thought_signature"],
            "sig-A"
        );
        assert!(calls[1][0].get("extra_content").is_none());

        // Request: signatures go back onto the same functionCall parts; an unsigned turn
        // gets the placeholder on its first call only; a signed turn gets none added.
        let history = |calls: Value| {
            upstream_body(json!({"model": "gemini-3-pro-preview", "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"t\": 20}"},
                {"role": "tool", "tool_call_id": "c2", "content": "{\"t\": 25}"}]}))
        };
        let call = |id: &str, city: &str, signature: Option<&str>| {
            let mut call = json!({"id": id, "type": "function",
                "function": {"name": "weather", "arguments": format!("{{\"city\":\"{city}\"}}")}});
            if let Some(sig) = signature {
                call["extra_content"] = json!({"google": {"thought_signature": sig}});
            }
            call
        };
        let signed = history(json!([
            call("c1", "Paris", Some("sig-A")),
            call("c2", "Tokyo", None)
        ]));
        let parts = &signed["contents"][1]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], "sig-A");
        assert_eq!(parts[0]["functionCall"]["args"], json!({"city": "Paris"}));
        assert!(parts[1].get("thoughtSignature").is_none());

        let unsigned = history(json!([
            call("c1", "Paris", None),
            call("c2", "Tokyo", None)
        ]));
        let parts = &unsigned["contents"][1]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], SKIP_SIGNATURE);
        assert!(parts[1].get("thoughtSignature").is_none());
        // The tool results answer the right calls.
        assert_eq!(
            unsigned["contents"][2]["parts"][0]["functionResponse"]["name"],
            "weather"
        );
    }

    #[test]
    fn logprobs_both_ways() {
        let body = upstream_body(
            json!({"model": "gemini-2.5-flash", "logprobs": true, "top_logprobs": 2,
            "messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(body["generationConfig"]["responseLogprobs"], true);
        assert_eq!(body["generationConfig"]["logprobs"], 2);
        let plain = upstream_body(
            json!({"model": "g", "logprobs": true, "messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(plain["generationConfig"]["responseLogprobs"], true);
        assert!(plain["generationConfig"].get("logprobs").is_none());
        let off = upstream_body(
            json!({"model": "g", "logprobs": false, "messages": [{"role": "user", "content": "x"}]}),
        );
        assert!(off
            .get("generationConfig")
            .is_none_or(|c| c.get("responseLogprobs").is_none()));
        for bad in [
            json!({"top_logprobs": 2}),
            json!({"logprobs": true, "top_logprobs": 21}),
        ] {
            let mut req = json!({"model": "g", "messages": [{"role": "user", "content": "x"}]});
            req.as_object_mut()
                .unwrap()
                .extend(bad.as_object().unwrap().clone());
            let req = request(req);
            let error = with_ctx(&req, false, |ctx| Gemini.chat_request(ctx).unwrap_err());
            assert_eq!(error.to_body()["error"]["param"], "top_logprobs");
        }

        let result = json!({
            "topCandidates": [
                {"candidates": [{"token": "Hi", "logProbability": -0.1}, {"token": "Hey", "logProbability": -2.5}]},
                {"candidates": [{"token": "!", "logProbability": -0.3}]}],
            "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}, {"token": "!", "logProbability": -0.3}]});
        let expected = json!({"content": [
            {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [
                {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                {"token": "Hey", "logprob": -2.5, "bytes": [72, 101, 121]}]},
            {"token": "!", "logprob": -0.3, "bytes": [33], "top_logprobs": [
                {"token": "!", "logprob": -0.3, "bytes": [33]}]}], "refusal": null});
        let answer = json!({"candidates": [{"content": {"parts": [{"text": "Hi!"}]},
            "finishReason": "STOP", "logprobsResult": result, "avgLogprobs": -0.2}]});
        let req = request(
            json!({"model": "g", "logprobs": true, "messages": [{"role": "user", "content": "x"}]}),
        );
        let completion = with_ctx(&req, false, |ctx| {
            Gemini
                .parse_completion(answer.to_string().as_bytes(), ctx)
                .unwrap()
        });
        assert_eq!(completion.choices[0].logprobs, Some(expected.clone()));

        let stream_req = request(json!({"model": "g", "stream": true, "logprobs": true,
            "messages": [{"role": "user", "content": "x"}]}));
        let (chunks, content) = run_stream(
            &Gemini,
            &stream_req,
            format!("data: {answer}\r\n\r\n").as_bytes(),
        );
        assert_eq!(content, "Hi!");
        let with_logprobs: Vec<&Value> = chunks
            .iter()
            .filter(|c| !c["choices"][0]["logprobs"].is_null() && c["choices"].get(0).is_some())
            .collect();
        assert_eq!(with_logprobs.len(), 1);
        assert_eq!(with_logprobs[0]["choices"][0]["delta"]["content"], "Hi!");
        assert_eq!(with_logprobs[0]["choices"][0]["logprobs"], expected);
    }

    #[test]
    fn audio_file_and_video_parts_become_inline_or_file_data() {
        let body = upstream_body(
            json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Compare:"},
            {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
            {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
            {"type": "file", "file": {"filename": "notes.csv", "file_data": "YSxiCjEsMg=="}},
            {"type": "video_url", "video_url": {"url": "https://www.youtube.com/watch?v=abc"}},
            {"type": "video_url", "video_url": {"url": "data:video/webm;base64,GkXf"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/cat.webp?size=2"}}]}]}),
        );
        assert_eq!(
            body["contents"][0]["parts"],
            json!([
                {"text": "Compare:"},
                {"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
                {"inlineData": {"mimeType": "text/csv", "data": "YSxiCjEsMg=="}},
                {"fileData": {"mimeType": "video/mp4", "fileUri": "https://www.youtube.com/watch?v=abc"}},
                {"inlineData": {"mimeType": "video/webm", "data": "GkXf"}},
                {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/cat.webp?size=2"}}])
        );
        for (part, needle) in [
            (
                json!({"type": "file", "file": {"file_id": "file-abc"}}),
                "Files API",
            ),
            (json!({"type": "file", "file": {}}), "file_data"),
            (
                json!({"type": "input_audio", "input_audio": {"format": "wav"}}),
                "input_audio.data",
            ),
            (
                json!({"type": "video_url", "video_url": {}}),
                "video_url.url",
            ),
            (
                json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}),
                "data: URL",
            ),
        ] {
            let req = request(
                json!({"model": "g", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, part]}]}),
            );
            let error = with_ctx(&req, false, |ctx| Gemini.chat_request(ctx).unwrap_err());
            assert_eq!(error.status(), 400);
            assert_eq!(error.to_body()["error"]["param"], "messages[0].content[1]");
            assert!(error.to_string().contains(needle), "{error}");
        }
    }

    #[test]
    fn schemas_with_refs_are_inlined_and_recursive_ones_refused() {
        let schema = json!({"$defs": {"Address": {"type": "object", "title": "Address",
            "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}},
            "type": "object", "properties": {"home": {"$ref": "#/$defs/Address"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null}},
            "required": ["home", "note"], "additionalProperties": false});
        let body = upstream_body(
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true, "schema": schema}},
            "tools": [{"type": "function", "function": {"name": "save", "parameters": schema}}]}),
        );
        let response = &body["generationConfig"]["responseSchema"];
        assert_eq!(
            response["properties"]["home"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(response["properties"]["note"]["nullable"], true);
        assert_eq!(
            &body["tools"][0]["functionDeclarations"][0]["parameters"],
            response
        );
        assert!(!response.to_string().contains("$ref"));

        let recursive = json!({"$defs": {"Node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}, "$ref": "#/$defs/Node"});
        let req = request(
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "a"}},
                {"type": "function", "function": {"name": "tree", "parameters": recursive}}]}),
        );
        let error = with_ctx(&req, false, |ctx| Gemini.chat_request(ctx).unwrap_err());
        assert_eq!(error.status(), 400);
        assert_eq!(
            error.to_body()["error"]["param"],
            "tools[1].function.parameters"
        );
        assert!(error.to_string().contains("recursive"), "{error}");
    }

    #[test]
    fn stream_cut_without_finish_reason_is_an_error() {
        let req = request(
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "stream": true}),
        );
        let mut adapter = translated(&Gemini, &req);
        adapter.push(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]}}]}\n\n");
        let tail = String::from_utf8(adapter.finish(None)).unwrap();
        assert!(
            tail.contains("\"error\"") && tail.ends_with("data: [DONE]\n\n"),
            "{tail}"
        );
    }

    #[test]
    fn embeddings_batch_with_task_and_dimensions() {
        let texts: Vec<String> = (0..150).map(|i| format!("t{i}")).collect();
        let batches = embedding_batches(
            &Gemini,
            json!({"model": "emb", "input": texts, "dimensions": 768, "task_type": "query"}),
            "gemini-embedding-001",
        )
        .unwrap();
        assert_eq!(batches.len(), 2, "100 requests per batch");
        let (url, body, inputs) = &batches[0];
        assert_eq!(
            url,
            "https://up.test/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        assert_eq!(*inputs, 100);
        assert_eq!(
            body["requests"][0],
            json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "t0"}]},
                "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 768})
        );
        assert_eq!(batches[1].2, 50);
        assert_eq!(
            batches[1].1["requests"][49]["content"]["parts"][0]["text"],
            "t149"
        );

        let plain = embedding_batches(
            &Gemini,
            json!({"model": "e", "input": "one"}),
            "text-embedding-004",
        )
        .unwrap();
        assert_eq!(
            plain[0].1,
            json!({"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "one"}]}}]})
        );
        for bad in [
            json!({"model": "e", "input": [[1, 2]]}),
            json!({"model": "e", "input": "x", "task_type": "SUMMARIZE"}),
        ] {
            let error = embedding_batches(&Gemini, bad, "gemini-embedding-001").unwrap_err();
            assert_eq!(error.status(), 400);
        }
        assert_eq!(
            embedding_batches(&Gemini, json!({"model": "e", "input": "x"}), "../x")
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn embeddings_answers() {
        let body = json!({"embeddings": [{"values": [0.1, -0.2]}, {"values": [0.3, 0.4]}]});
        let parsed = Gemini
            .parse_embeddings(body.to_string().as_bytes(), 2)
            .unwrap();
        assert_eq!(parsed.vectors, vec![vec![0.1, -0.2], vec![0.3, 0.4]]);
        assert_eq!(parsed.prompt_tokens, None);
        let with_usage =
            json!({"embeddings": [{"values": [1.0]}], "usageMetadata": {"promptTokenCount": 7}});
        assert_eq!(
            Gemini
                .parse_embeddings(with_usage.to_string().as_bytes(), 1)
                .unwrap()
                .prompt_tokens,
            Some(7)
        );
        let short = Gemini.parse_embeddings(body.to_string().as_bytes(), 3);
        assert_eq!(short.unwrap_err().status(), 502);
        assert_eq!(
            Gemini.parse_embeddings(b"<html>", 1).unwrap_err().status(),
            502
        );
    }

    #[test]
    fn models_list() {
        let body = json!({"models": [
            {"name": "models/gemini-2.5-pro", "supportedGenerationMethods": ["generateContent", "countTokens"]},
            {"name": "models/gemini-embedding-001", "supportedGenerationMethods": ["embedContent", "countTextTokens"]},
            {"name": "models/aqa", "supportedGenerationMethods": ["generateAnswer"]},
            {"name": "models/imagen-4.0-generate-001", "supportedGenerationMethods": ["predict"]}]});
        // Chat and embedding models; nothing the gateway cannot call.
        assert_eq!(
            Gemini.parse_models(body.to_string().as_bytes()),
            vec!["gemini-2.5-pro", "gemini-embedding-001"]
        );
    }
}
