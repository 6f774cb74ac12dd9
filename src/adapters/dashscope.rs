//! Alibaba DashScope (Qwen, farui, …) through its native API:
//! `/api/v1/services/aigc/text-generation/generation`, and
//! `/api/v1/services/aigc/multimodal-generation/generation` for vision models and images.

use super::{
    check_vector_count, parse_json, CallContext, EmbeddingBatch, EmbeddingContext, HttpRequest,
    Provider, ProviderSpec,
};
use crate::embeddings::Embeddings;
use crate::error::{upstream_error, GatewayError};
use crate::openai::{
    tool_name_for_call, usage_object, AssistantMessage, ChatCompletion, Choice, ContentPart,
    MessageContent, RequestMessage, ToolCall,
};
use crate::stream::translate::{ChunkState, EventTranslator};
use crate::stream::Chunk;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct DashScope;

pub static SPEC: ProviderSpec = ProviderSpec {
    id: "dashscope",
    base_url_var: "DASHSCOPE_BASE_URL",
    default_base_url: "https://dashscope.aliyuncs.com",
    env_prefix: "DASHSCOPE",
    default_patterns: &["qwen*", "qwq*", "qvq*", "farui*", "text-embedding-v*"],
    default_models: &[
        "qwen-max",
        "qwen-plus",
        "qwen-turbo",
        "qwen-long",
        "qwen-vl-max",
        "qwen-vl-plus",
        "farui-plus",
        "text-embedding-v4",
    ],
    base_url_suffixes: &["/api/v1", "/compatible-mode/v1"],
    base_url_as_written: false,
    legacy_base_path: "",
    owned_by: "alibaba",
};

const TEXT_PATH: &str = "/api/v1/services/aigc/text-generation/generation";
const MULTIMODAL_PATH: &str = "/api/v1/services/aigc/multimodal-generation/generation";
const EMBEDDING_PATH: &str = "/api/v1/services/embeddings/text-embedding/text-embedding";

/// Texts per embeddings call: 10 for `text-embedding-v3`/`v4` (and any later model), 25 for
/// the older `v1`/`v2`.
fn embedding_batch_limit(model: &str) -> usize {
    match model {
        "text-embedding-v1" | "text-embedding-v2" => 25,
        _ => 10,
    }
}

/// DashScope's `text_type`: `query` or `document` (Gemini's retrieval names accepted).
fn embedding_text_type(task: &str) -> Result<&'static str, GatewayError> {
    match task.to_ascii_lowercase().as_str() {
        "query" | "retrieval_query" => Ok("query"),
        "document" | "retrieval_document" => Ok("document"),
        _ => Err(GatewayError::invalid_param(
            format!(
                "`task_type` `{}` is not a DashScope text_type: use `query` or `document`",
                crate::error::excerpt(task, 60)
            ),
            "task_type",
        )),
    }
}

/// Parameters DashScope takes under the same name as the client sent them.
const SAME_NAME_PARAMETERS: &[&str] = &[
    "temperature",
    "top_k",
    "seed",
    "repetition_penalty",
    "presence_penalty",
    "n",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
    "enable_search",
    "search_options",
    "enable_thinking",
    "thinking_budget",
    "vl_high_resolution_images",
    "translation_options",
    "enable_code_interpreter",
];

/// Vision models, which only the multimodal endpoint serves.
fn is_multimodal_model(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    model.contains("-vl")
        || model.starts_with("qvq")
        || model.contains("-omni")
        || model.contains("-audio")
}

// ---- request ----------------------------------------------------------------------------

fn build_body(ctx: &CallContext) -> Result<(Value, bool), GatewayError> {
    let request = ctx.request;
    let messages = request.messages()?;
    let multimodal = is_multimodal_model(ctx.upstream_model)
        || messages
            .iter()
            .any(|m| m.content.as_ref().is_some_and(MessageContent::has_media));
    let native: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| native_message(m, &messages, multimodal, i))
        .collect::<Result<_, _>>()?;

    let mut parameters = Map::new();
    parameters.insert("result_format".into(), json!("message"));
    for name in SAME_NAME_PARAMETERS {
        if let Some(v) = request.body.get(*name).filter(|v| !v.is_null()) {
            parameters.insert((*name).into(), v.clone());
        }
    }
    if let Some(top_p) = request.number("top_p") {
        // DashScope takes top_p in (0, 1): 1.0 (OpenAI's "off") would be rejected.
        parameters.insert("top_p".into(), json!(top_p.clamp(0.0001, 0.9999)));
    }
    if let Some(max) = request.max_tokens() {
        parameters.insert("max_tokens".into(), json!(max));
    }
    let stop = request.stop();
    if !stop.is_empty() {
        parameters.insert("stop".into(), json!(stop));
    }
    if let Some(tools) = request.body.get("tools").filter(|t| t.is_array()) {
        parameters.insert("tools".into(), tools.clone());
    }
    if ctx.stream {
        parameters.insert("incremental_output".into(), json!(true));
    }
    Ok((
        json!({
            "model": ctx.upstream_model,
            "input": { "messages": native },
            "parameters": parameters,
        }),
        multimodal,
    ))
}

/// An OpenAI content part as a DashScope multimodal item: `text`, `image`, `audio`
/// (`input_audio` as a data: URL) or `video` (a URL, or a list of frame images).
fn native_part(part: &ContentPart, param: &str) -> Result<Option<Value>, GatewayError> {
    if let Some(text) = &part.text {
        return Ok(Some(json!({ "text": text })));
    }
    if let Some(image) = &part.image_url {
        return Ok(Some(json!({ "image": image.url() })));
    }
    let bad = |message: &str| GatewayError::invalid_param(message, param);
    match part.kind.as_str() {
        "input_audio" => {
            let audio = part.extra.get("input_audio");
            let data = audio
                .and_then(|a| a["data"].as_str())
                .filter(|d| !d.is_empty())
                .ok_or_else(|| bad("an input_audio part needs base64 `input_audio.data`"))?;
            let format = audio.and_then(|a| a["format"].as_str()).unwrap_or("wav");
            Ok(Some(
                json!({ "audio": format!("data:audio/{format};base64,{data}") }),
            ))
        }
        "video_url" => {
            let video = part.extra.get("video_url");
            let url = video
                .and_then(|v| v.as_str().or_else(|| v.get("url").and_then(Value::as_str)))
                .ok_or_else(|| bad("a video_url part needs `video_url.url`"))?;
            Ok(Some(json!({ "video": url })))
        }
        // DashScope's own frame-list form: `{"type": "video", "video": ["f1.jpg", …]}`.
        "video" => match part.extra.get("video") {
            Some(frames @ Value::Array(_)) => Ok(Some(json!({ "video": frames }))),
            Some(Value::String(url)) => Ok(Some(json!({ "video": url }))),
            _ => Err(bad(
                "a video part needs `video`: a URL or a list of frame image URLs",
            )),
        },
        "file" => Err(bad(
            "DashScope takes no file parts: send documents as text, or use a Gemini model",
        )),
        _ => Ok(None),
    }
}

fn native_message(
    message: &RequestMessage,
    all: &[RequestMessage],
    multimodal: bool,
    i: usize,
) -> Result<Value, GatewayError> {
    let role = if message.role == "developer" {
        "system"
    } else {
        message.role.as_str()
    };
    let content = match (&message.content, multimodal) {
        (None, false) => json!(""),
        (None, true) => json!([]),
        (Some(content), false) => json!(content.text()),
        (Some(MessageContent::Text(text)), true) => json!([{ "text": text }]),
        (Some(MessageContent::Parts(parts)), true) => {
            let mut items = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                items.extend(native_part(part, &format!("messages[{i}].content[{j}]"))?);
            }
            Value::Array(items)
        }
    };
    let mut out = json!({ "role": role, "content": content });
    if let Some(calls) = &message.tool_calls {
        out["tool_calls"] = serde_json::to_value(calls).unwrap_or(Value::Null);
    }
    if let Some(id) = &message.tool_call_id {
        out["tool_call_id"] = json!(id);
        if let Some(name) = message.name.clone().or_else(|| tool_name_for_call(all, id)) {
            out["name"] = json!(name);
        }
    }
    Ok(out)
}

// ---- response ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct GenerationResponse {
    #[serde(default)]
    output: Option<Output>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Output {
    #[serde(default)]
    choices: Vec<NativeChoice>,
    /// `result_format: "text"` answers.
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct NativeChoice {
    #[serde(default)]
    message: NativeMessage,
    /// Already in OpenAI's shape (`content[]` of token, bytes, logprob, top_logprobs).
    #[serde(default)]
    logprobs: Option<Value>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct NativeMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

impl GenerationResponse {
    /// The error an answer carries in its body (`code` set), or that its SSE event name
    /// (`event: error`) announces; `status` is used when the code does not decide one.
    fn error(&self, error_event: bool, status: u16) -> Option<GatewayError> {
        let code = self.code.as_deref().filter(|c| !c.is_empty());
        if code.is_none() && !error_event {
            return None;
        }
        let message = self
            .message
            .as_deref()
            .unwrap_or("DashScope returned an error");
        Some(error_from_native(
            status,
            code.unwrap_or("UnknownError"),
            message,
            self.request_id.as_deref(),
        ))
    }
}

/// Content is a string on the text endpoint and `[{"text": …}]` on the multimodal one.
fn content_text(content: &Option<Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// `"null"` (a string) is how DashScope streams say "not finished".
fn finish_reason(reason: Option<&str>) -> Option<String> {
    match reason {
        None | Some("null") | Some("") => None,
        Some("stop") => Some("stop".into()),
        Some("length") => Some("length".into()),
        Some("tool_calls") => Some("tool_calls".into()),
        Some("content_filter") | Some("sensitive") => Some("content_filter".into()),
        Some(_) => Some("stop".into()),
    }
}

fn usage(native: &Value) -> Option<Value> {
    let input = native["input_tokens"].as_u64()?;
    let output = native["output_tokens"].as_u64().unwrap_or(0);
    Some(usage_object(
        input,
        output,
        native["total_tokens"].as_u64(),
        native
            .pointer("/output_tokens_details/reasoning_tokens")
            .and_then(Value::as_u64),
        native
            .pointer("/prompt_tokens_details/cached_tokens")
            .and_then(Value::as_u64),
    ))
}

/// DashScope error codes → HTTP status (the code is kept as the OpenAI `code`).
fn status_for_code(code: &str, http_status: u16) -> u16 {
    match code {
        "InvalidApiKey" | "InvalidApiKey.Empty" => 401,
        c if c.starts_with("Throttling") => 429,
        "DataInspectionFailed" | "data_inspection_failed" | "InvalidParameter" | "InvalidInput" => {
            400
        }
        c if c.starts_with("AccessDenied") || c == "Arrearage" || c == "Forbidden" => 403,
        "ModelNotFound" | "Model.NotFound" | "NotFound" => 404,
        c if c.starts_with("InternalError") => 500,
        "ServiceUnavailable" | "ModelServiceFailed" => 503,
        _ if (400..=599).contains(&http_status) => http_status,
        _ => 502,
    }
}

fn error_from_native(
    http_status: u16,
    code: &str,
    message: &str,
    request_id: Option<&str>,
) -> GatewayError {
    let message = match request_id {
        Some(id) => format!("{message} (DashScope request_id {id})"),
        None => message.to_string(),
    };
    upstream_error(status_for_code(code, http_status), message, json!(code))
        .with_headers(request_id.map(|id| ("X-Upstream-Request-Id".to_string(), id.to_string())))
}

impl Provider for DashScope {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    fn chat_request(&self, ctx: &CallContext) -> Result<HttpRequest, GatewayError> {
        let (body, multimodal) = build_body(ctx)?;
        let path = if multimodal {
            MULTIMODAL_PATH
        } else {
            TEXT_PATH
        };
        let mut headers = vec![
            ("Authorization".to_string(), format!("Bearer {}", ctx.key)),
            ("Content-Type".to_string(), "application/json".to_string()),
        ];
        if ctx.stream {
            headers.push(("X-DashScope-SSE".into(), "enable".into()));
            headers.push(("Accept".into(), "text/event-stream".into()));
        }
        Ok(HttpRequest {
            method: "POST",
            url: format!("{}{path}", ctx.base_url),
            headers,
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
        let response: GenerationResponse = parse_json(body, "a DashScope generation response")?;
        if let Some(error) = response.error(false, 400) {
            return Err(error);
        }
        let output = response.output.ok_or_else(|| {
            GatewayError::UpstreamMalformed("DashScope answer has no `output`".into())
        })?;
        let choices: Vec<Choice> = if output.choices.is_empty() {
            let text = output.text.ok_or_else(|| {
                GatewayError::UpstreamMalformed("DashScope answer has no choices".into())
            })?;
            vec![Choice {
                index: 0,
                message: AssistantMessage {
                    content: Some(Value::String(text)),
                    ..AssistantMessage::default()
                },
                finish_reason: Some(
                    finish_reason(output.finish_reason.as_deref()).unwrap_or_else(|| "stop".into()),
                ),
                logprobs: None,
                extra: Map::new(),
            }]
        } else {
            output
                .choices
                .into_iter()
                .enumerate()
                .map(|(i, choice)| {
                    let tool_calls: Option<Vec<ToolCall>> = choice
                        .message
                        .tool_calls
                        .map(|calls| {
                            calls
                                .into_iter()
                                .filter_map(|c| crate::from_json_value(&c).ok())
                                .collect()
                        })
                        .filter(|calls: &Vec<ToolCall>| !calls.is_empty());
                    let has_calls = tool_calls.is_some();
                    let text = content_text(&choice.message.content);
                    Choice {
                        index: choice.index.unwrap_or(i as u32),
                        message: AssistantMessage {
                            content: Some(if text.is_empty() && has_calls {
                                Value::Null
                            } else {
                                Value::String(text)
                            }),
                            reasoning_content: choice
                                .message
                                .reasoning_content
                                .filter(|r| !r.is_empty()),
                            tool_calls,
                            ..AssistantMessage::default()
                        },
                        finish_reason: Some(
                            finish_reason(choice.finish_reason.as_deref()).unwrap_or_else(|| {
                                if has_calls { "tool_calls" } else { "stop" }.into()
                            }),
                        ),
                        logprobs: choice.logprobs.filter(|l| !l.is_null()),
                        extra: Map::new(),
                    }
                })
                .collect()
        };
        let mut extra = Map::new();
        if let Some(id) = &response.request_id {
            extra.insert("request_id".into(), json!(id));
        }
        Ok(ChatCompletion {
            id: format!(
                "chatcmpl-{}",
                response.request_id.as_deref().unwrap_or(ctx.request_id)
            ),
            object: "chat.completion".into(),
            created: ctx.now_seconds,
            model: ctx.request.model.clone(),
            choices,
            usage: response.usage.as_ref().and_then(usage),
            system_fingerprint: None,
            extra,
        })
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> GatewayError {
        match serde_json::from_slice::<GenerationResponse>(body) {
            Ok(GenerationResponse {
                code: Some(code),
                message,
                request_id,
                ..
            }) => error_from_native(
                status,
                &code,
                message.as_deref().unwrap_or("DashScope returned an error"),
                request_id.as_deref(),
            ),
            _ => GatewayError::from_upstream(status, body),
        }
    }

    fn embeddings_requests(
        &self,
        ctx: &EmbeddingContext,
    ) -> Result<Vec<EmbeddingBatch>, GatewayError> {
        let texts = ctx.request.texts("DashScope")?;
        let mut parameters = Map::new();
        if let Some(dimensions) = ctx.request.dimensions {
            parameters.insert("dimension".into(), json!(dimensions));
        }
        if let Some(task) = ctx.request.task_type.as_deref() {
            parameters.insert("text_type".into(), json!(embedding_text_type(task)?));
        }
        texts
            .chunks(embedding_batch_limit(ctx.upstream_model))
            .map(|batch| {
                let mut body = json!({ "model": ctx.upstream_model, "input": { "texts": batch } });
                if !parameters.is_empty() {
                    body["parameters"] = Value::Object(parameters.clone());
                }
                Ok(EmbeddingBatch {
                    request: HttpRequest {
                        method: "POST",
                        url: format!("{}{EMBEDDING_PATH}", ctx.base_url),
                        headers: vec![
                            ("Authorization".to_string(), format!("Bearer {}", ctx.key)),
                            ("Content-Type".to_string(), "application/json".to_string()),
                        ],
                        body: Some(
                            serde_json::to_vec(&body)
                                .map_err(|e| GatewayError::Internal(e.to_string()))?,
                        ),
                    },
                    inputs: batch.len(),
                })
            })
            .collect()
    }

    fn parse_embeddings(&self, body: &[u8], expected: usize) -> Result<Embeddings, GatewayError> {
        #[derive(Deserialize)]
        struct Item {
            #[serde(default)]
            text_index: usize,
            #[serde(default)]
            embedding: Vec<f32>,
        }
        #[derive(Deserialize, Default)]
        struct Output {
            #[serde(default)]
            embeddings: Vec<Item>,
        }
        #[derive(Deserialize)]
        struct Usage {
            #[serde(default)]
            total_tokens: u64,
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            output: Option<Output>,
            #[serde(default)]
            usage: Option<Usage>,
            #[serde(default)]
            code: Option<String>,
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            request_id: Option<String>,
        }
        let answer: Answer = parse_json(body, "a DashScope text-embedding response")?;
        if let Some(code) = answer.code.as_deref().filter(|c| !c.is_empty()) {
            return Err(error_from_native(
                400,
                code,
                answer
                    .message
                    .as_deref()
                    .unwrap_or("DashScope returned an error"),
                answer.request_id.as_deref(),
            ));
        }
        let mut items = answer.output.unwrap_or_default().embeddings;
        check_vector_count(items.len(), expected)?;
        // Answers carry each vector's position; order by it, and every position once.
        items.sort_unstable_by_key(|item| item.text_index);
        if items
            .iter()
            .enumerate()
            .any(|(i, item)| item.text_index != i)
        {
            return Err(GatewayError::UpstreamMalformed(
                "DashScope answered embeddings with missing or repeated text_index values".into(),
            ));
        }
        Ok(Embeddings {
            vectors: items.into_iter().map(|item| item.embedding).collect(),
            prompt_tokens: answer.usage.map(|u| u.total_tokens),
        })
    }

    fn stream_translator(&self, ctx: &CallContext) -> Option<Box<dyn EventTranslator>> {
        Some(Box::new(DashScopeStream {
            state: ChunkState::new(ctx.chunk_meta(None)),
            tool_indexes: Vec::new(),
        }))
    }

    fn models_request(&self, _base_url: &str, _key: &str) -> Option<HttpRequest> {
        None
    }

    fn parse_models(&self, _body: &[u8]) -> Vec<String> {
        Vec::new()
    }
}

struct DashScopeStream {
    state: ChunkState,
    /// Native tool-call indexes seen, per choice, mapped to OpenAI indexes.
    tool_indexes: Vec<(u32, u64, usize)>,
}

impl EventTranslator for DashScopeStream {
    fn event(&mut self, event: Option<&str>, data: &str) -> Result<Vec<Chunk>, GatewayError> {
        let response: GenerationResponse = parse_json(data.as_bytes(), "a DashScope stream event")?;
        if let Some(error) = response.error(event == Some("error"), 500) {
            return Err(error);
        }
        // The chunk id comes from DashScope's request id, fixed before the first chunk.
        if self.state.started.is_empty() {
            if let Some(id) = &response.request_id {
                self.state.meta.id = format!("chatcmpl-{id}");
            }
        }
        let mut out = Vec::new();
        let Some(output) = response.output else {
            return Ok(out);
        };
        if output.choices.is_empty() {
            if let Some(text) = &output.text {
                self.state.text(0, "content", text, &mut out);
            }
            if let Some(reason) = finish_reason(output.finish_reason.as_deref()) {
                self.state.set_finish(0, reason);
            }
        }
        for (i, choice) in output.choices.iter().enumerate() {
            let index = choice.index.unwrap_or(i as u32);
            self.state.start(index, &mut out);
            if let Some(reasoning) = &choice.message.reasoning_content {
                self.state
                    .text(index, "reasoning_content", reasoning, &mut out);
            }
            let text = content_text(&choice.message.content);
            self.state.text(index, "content", &text, &mut out);
            if let Some(logprobs) = choice.logprobs.as_ref().filter(|l| !l.is_null()) {
                self.state.logprobs(index, logprobs.clone(), &mut out);
            }
            for call in choice.message.tool_calls.iter().flatten() {
                let native_index = call["index"].as_u64().unwrap_or(0);
                let openai_index = match self
                    .tool_indexes
                    .iter()
                    .find(|(c, n, _)| *c == index && *n == native_index)
                {
                    Some((_, _, i)) => *i,
                    None => {
                        let i = self.state.next_tool_index(index);
                        self.tool_indexes.push((index, native_index, i));
                        i
                    }
                };
                let mut delta = json!({ "index": openai_index });
                for key in ["id", "type"] {
                    if let Some(v) = call
                        .get(key)
                        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                    {
                        delta[key] = v.clone();
                    }
                }
                if let Some(function) = call.get("function") {
                    delta["function"] = function.clone();
                }
                out.push(self.state.delta(index, json!({ "tool_calls": [delta] })));
            }
            if let Some(reason) = finish_reason(choice.finish_reason.as_deref()) {
                self.state.set_finish(index, reason);
            }
        }
        if let Some(u) = response.usage.as_ref().and_then(usage) {
            self.state.usage = Some(u);
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

    #[test]
    fn text_request_mapping() {
        let req = request(json!({"model": "qwen-plus", "stream": true,
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "done"}],
            "temperature": 0.7, "top_p": 1.0, "max_completion_tokens": 99, "stop": "X", "seed": 3,
            "repetition_penalty": 1.1, "presence_penalty": 0.5, "enable_thinking": false, "user": "u1",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}));
        let call = with_ctx(&req, true, |ctx| DashScope.chat_request(ctx).unwrap());
        assert_eq!(
            call.url,
            "https://up.test/api/v1/services/aigc/text-generation/generation"
        );
        assert!(call
            .headers
            .contains(&("X-DashScope-SSE".into(), "enable".into())));
        assert!(call
            .headers
            .contains(&("Authorization".into(), "Bearer up-key".into())));
        let body: Value = serde_json::from_slice(&call.body.unwrap()).unwrap();
        assert_eq!(body["model"], "qwen-plus");
        let messages = body["input"]["messages"].as_array().unwrap();
        assert_eq!(messages[1], json!({"role": "user", "content": "ab"}));
        assert_eq!(messages[2]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(
            messages[3],
            json!({"role": "tool", "content": "done", "tool_call_id": "call_1", "name": "f"})
        );
        let p = &body["parameters"];
        assert_eq!(p["result_format"], "message");
        assert_eq!(p["incremental_output"], true);
        assert_eq!(p["temperature"], 0.7);
        assert!(p["top_p"].as_f64().unwrap() < 1.0);
        assert_eq!(p["max_tokens"], 99);
        assert_eq!(p["stop"], json!(["X"]));
        assert_eq!(p["seed"], 3);
        assert_eq!(p["repetition_penalty"], 1.1);
        assert_eq!(p["presence_penalty"], 0.5);
        assert_eq!(p["enable_thinking"], false);
        assert_eq!(p["tools"][0]["function"]["name"], "f");
        assert!(p.get("user").is_none());
    }

    #[test]
    fn vision_goes_to_the_multimodal_endpoint() {
        let req = request(json!({"model": "qwen-vl-max", "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}, {"type": "text", "text": "what?"}]}]}));
        let call = with_ctx(&req, false, |ctx| DashScope.chat_request(ctx).unwrap());
        assert!(call.url.ends_with("/multimodal-generation/generation"));
        assert!(!call.headers.iter().any(|(k, _)| k == "X-DashScope-SSE"));
        let body: Value = serde_json::from_slice(&call.body.unwrap()).unwrap();
        assert_eq!(
            body["input"]["messages"][0]["content"],
            json!([{"text": "sys"}])
        );
        assert_eq!(
            body["input"]["messages"][1]["content"],
            json!([{"image": "https://x/cat.png"}, {"text": "what?"}])
        );
        assert!(body["parameters"].get("incremental_output").is_none());
    }

    #[test]
    fn response_mapping() {
        let req =
            request(json!({"model": "qwen-max", "messages": [{"role": "user", "content": "x"}]}));
        let native = json!({"output": {"choices": [{"finish_reason": "tool_calls", "message": {"role": "assistant", "content": "",
            "reasoning_content": "hmm", "tool_calls": [{"id": "call_a", "type": "function", "index": 0,
            "function": {"name": "f", "arguments": "{\"q\":1}"}}]}}]},
            "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}, "request_id": "rid-1"});
        let c = with_ctx(&req, false, |ctx| {
            DashScope
                .parse_completion(native.to_string().as_bytes(), ctx)
                .unwrap()
        });
        assert_eq!(c.id, "chatcmpl-rid-1");
        assert_eq!(c.extra["request_id"], "rid-1");
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(c.choices[0].message.content, Some(Value::Null));
        assert_eq!(
            c.choices[0].message.reasoning_content.as_deref(),
            Some("hmm")
        );
        assert_eq!(
            c.choices[0].message.tool_calls.as_ref().unwrap()[0]
                .function
                .arguments,
            "{\"q\":1}"
        );
        assert_eq!(
            c.usage.unwrap(),
            json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
        );

        let multimodal = json!({"output": {"choices": [{"finish_reason": "stop", "message": {"content": [{"text": "a cat"}]}}]},
            "usage": {"input_tokens": 1, "output_tokens": 2}});
        let c = with_ctx(&req, false, |ctx| {
            DashScope
                .parse_completion(multimodal.to_string().as_bytes(), ctx)
                .unwrap()
        });
        assert_eq!(c.choices[0].message.text(), "a cat");
        assert_eq!(c.usage.unwrap()["total_tokens"], 3);

        let text_format = json!({"output": {"text": "plain", "finish_reason": "length"}});
        let c = with_ctx(&req, false, |ctx| {
            DashScope
                .parse_completion(text_format.to_string().as_bytes(), ctx)
                .unwrap()
        });
        assert_eq!(
            (
                c.choices[0].message.text().as_str(),
                c.choices[0].finish_reason.as_deref()
            ),
            ("plain", Some("length"))
        );
    }

    #[test]
    fn error_codes() {
        for (code, http, want) in [
            ("InvalidApiKey", 401, 401),
            ("Throttling.RateQuota", 429, 429),
            ("Throttling", 400, 429),
            ("DataInspectionFailed", 400, 400),
            ("InvalidParameter", 400, 400),
            ("Arrearage", 400, 403),
            ("ModelNotFound", 400, 404),
            ("InternalError.Algo", 500, 500),
            ("SomethingNew", 418, 418),
        ] {
            let body = json!({"code": code, "message": "m", "request_id": "r"});
            let err = DashScope.parse_error(http, body.to_string().as_bytes());
            assert_eq!(err.status(), want, "{code}");
            assert_eq!(err.to_body()["error"]["code"], code);
            assert_eq!(
                err.headers(),
                &[("X-Upstream-Request-Id".to_string(), "r".to_string())]
            );
        }
        assert_eq!(DashScope.parse_error(502, b"<html>").status(), 502);
    }

    #[test]
    fn stream_translation() {
        let req = request(
            json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "x"}], "stream": true,
            "stream_options": {"include_usage": true}}),
        );
        let raw = concat!(
            "id:1\nevent:result\n:HTTP_STATUS/200\n",
            "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"你好\",\"role\":\"assistant\"},\"finish_reason\":\"null\"}]},\"usage\":{\"input_tokens\":5,\"output_tokens\":1,\"total_tokens\":6},\"request_id\":\"rid-9\"}\n\n",
            "id:2\nevent:result\n:HTTP_STATUS/200\n",
            "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"，世界\",\"role\":\"assistant\"},\"finish_reason\":\"null\"}]},\"usage\":{\"input_tokens\":5,\"output_tokens\":3,\"total_tokens\":8},\"request_id\":\"rid-9\"}\n\n",
            "id:3\nevent:result\n:HTTP_STATUS/200\n",
            "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"role\":\"assistant\"},\"finish_reason\":\"stop\"}]},\"usage\":{\"input_tokens\":5,\"output_tokens\":3,\"total_tokens\":8},\"request_id\":\"rid-9\"}\n\n",
        );
        let (chunks, content) = run_stream(&DashScope, &req, raw.as_bytes());
        assert_eq!(content, "你好，世界");
        assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-rid-9"));
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);
    }

    #[test]
    fn stream_tool_calls_and_errors() {
        let req = request(
            json!({"model": "qwen-plus", "messages": [{"role": "user", "content": "x"}], "stream": true}),
        );
        let raw = concat!(
            "event:result\ndata:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"tool_calls\":[{\"index\":0,\"id\":\"call_x\",\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]},\"finish_reason\":\"null\"}]}}\n\n",
            "event:result\ndata:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"tool_calls\":[{\"index\":0,\"id\":\"\",\"type\":\"function\",\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}}\n\n",
        );
        let (chunks, _) = run_stream(&DashScope, &req, raw.as_bytes());
        let deltas: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0)?.get("delta")?.get("tool_calls"))
            .collect();
        assert_eq!(deltas.len(), 2);
        assert_eq!(deltas[0][0]["id"], "call_x");
        assert!(deltas[1][0].get("id").is_none());
        let args: String = deltas
            .iter()
            .map(|d| d[0]["function"]["arguments"].as_str().unwrap())
            .collect();
        assert_eq!(args, "{\"a\":1}");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );

        let mut adapter = translated(&DashScope, &req);
        let out = String::from_utf8(adapter.push(
            b"event:error\n:HTTP_STATUS/400\ndata:{\"code\":\"DataInspectionFailed\",\"message\":\"Input data may contain inappropriate content.\",\"request_id\":\"r\"}\n\n",
        )).unwrap();
        assert!(
            out.contains("DataInspectionFailed") && out.ends_with("data: [DONE]\n\n"),
            "{out}"
        );
    }

    #[test]
    fn embeddings_batch_to_the_documented_limit() {
        let texts: Vec<String> = (0..23).map(|i| format!("t{i}")).collect();
        let batches = embedding_batches(
            &DashScope,
            json!({"model": "text-embedding-v4", "input": texts, "dimensions": 512, "task_type": "document"}),
            "text-embedding-v4",
        )
        .unwrap();
        let sizes: Vec<usize> = batches.iter().map(|b| b.2).collect();
        assert_eq!(sizes, vec![10, 10, 3]);
        assert_eq!(
            batches[0].0,
            "https://up.test/api/v1/services/embeddings/text-embedding/text-embedding"
        );
        assert_eq!(
            batches[2].1,
            json!({"model": "text-embedding-v4",
            "input": {"texts": ["t20", "t21", "t22"]},
            "parameters": {"dimension": 512, "text_type": "document"}})
        );
        let old = embedding_batches(
            &DashScope,
            json!({"model": "text-embedding-v2", "input": texts}),
            "text-embedding-v2",
        )
        .unwrap();
        assert_eq!(old.len(), 1);
        assert!(old[0].1.get("parameters").is_none());
        for bad in [
            json!({"model": "e", "input": [1, 2]}),
            json!({"model": "e", "input": "x", "task_type": "CLUSTERING"}),
        ] {
            let error = embedding_batches(&DashScope, bad, "text-embedding-v4").unwrap_err();
            assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn embeddings_answers_in_text_index_order() {
        let body = json!({"output": {"embeddings": [
            {"text_index": 1, "embedding": [0.3]}, {"text_index": 0, "embedding": [0.1]}]},
            "usage": {"total_tokens": 9}, "request_id": "r1"});
        let parsed = DashScope
            .parse_embeddings(body.to_string().as_bytes(), 2)
            .unwrap();
        assert_eq!(parsed.vectors, vec![vec![0.1], vec![0.3]]);
        assert_eq!(parsed.prompt_tokens, Some(9));
        let repeated = json!({"output": {"embeddings": [
            {"text_index": 0, "embedding": [0.3]}, {"text_index": 0, "embedding": [0.1]}]}});
        assert_eq!(
            DashScope
                .parse_embeddings(repeated.to_string().as_bytes(), 2)
                .unwrap_err()
                .status(),
            502
        );
        let error = json!({"code": "InvalidParameter", "message": "batch size is invalid", "request_id": "r2"});
        let error = DashScope
            .parse_embeddings(error.to_string().as_bytes(), 1)
            .unwrap_err();
        assert_eq!(error.status(), 400);
        assert!(error.to_string().contains("batch size is invalid"));
    }

    #[test]
    fn logprobs_pass_through_in_openai_shape() {
        let logprobs = json!({"content": [{"token": "你", "bytes": [228, 189, 160], "logprob": -0.01,
            "top_logprobs": [{"token": "你", "bytes": [228, 189, 160], "logprob": -0.01}]}]});
        let req = request(
            json!({"model": "qwen-plus", "logprobs": true, "top_logprobs": 1,
            "messages": [{"role": "user", "content": "x"}]}),
        );
        let native = with_ctx(&req, false, |ctx| {
            serde_json::from_slice::<Value>(&DashScope.chat_request(ctx).unwrap().body.unwrap())
                .unwrap()
        });
        assert_eq!(native["parameters"]["logprobs"], true);
        assert_eq!(native["parameters"]["top_logprobs"], 1);
        let answer = json!({"output": {"choices": [{"message": {"role": "assistant", "content": "你"},
            "finish_reason": "stop", "logprobs": logprobs}]}, "request_id": "r"});
        let completion = with_ctx(&req, false, |ctx| {
            DashScope
                .parse_completion(answer.to_string().as_bytes(), ctx)
                .unwrap()
        });
        assert_eq!(completion.choices[0].logprobs, Some(logprobs.clone()));
        let stream_req = request(
            json!({"model": "qwen-plus", "stream": true, "logprobs": true,
            "messages": [{"role": "user", "content": "x"}]}),
        );
        let (chunks, content) = run_stream(
            &DashScope,
            &stream_req,
            format!("data:{answer}\n\n").as_bytes(),
        );
        assert_eq!(content, "你");
        assert!(chunks.iter().any(|c| c["choices"]
            .get(0)
            .is_some_and(|ch| ch["logprobs"] == logprobs && ch["delta"]["content"] == "你")));
    }

    #[test]
    fn audio_and_video_parts_for_omni_and_vl_models() {
        let req = request(
            json!({"model": "qwen-vl-max", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            {"type": "video_url", "video_url": {"url": "https://x.test/clip.mp4"}},
            {"type": "video", "video": ["https://x.test/f1.jpg", "https://x.test/f2.jpg"]},
            {"type": "text", "text": "What happens?"}]}]}),
        );
        let call = with_ctx(&req, false, |ctx| DashScope.chat_request(ctx).unwrap());
        assert!(call.url.ends_with("/multimodal-generation/generation"));
        let body: Value = serde_json::from_slice(&call.body.unwrap()).unwrap();
        assert_eq!(
            body["input"]["messages"][0]["content"],
            json!([{"audio": "data:audio/wav;base64,UklG"}, {"video": "https://x.test/clip.mp4"},
                {"video": ["https://x.test/f1.jpg", "https://x.test/f2.jpg"]}, {"text": "What happens?"}])
        );
        // Audio alone makes the call multimodal, whatever the model name.
        let audio = request(
            json!({"model": "qwen-plus", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "UklG", "format": "mp3"}}]}]}),
        );
        let call = with_ctx(&audio, false, |ctx| DashScope.chat_request(ctx).unwrap());
        assert!(call.url.ends_with("/multimodal-generation/generation"));
        for part in [
            json!({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}}),
            json!({"type": "video", "video": 3}),
            json!({"type": "input_audio", "input_audio": {}}),
        ] {
            let req = request(
                json!({"model": "qwen-vl-max", "messages": [{"role": "user", "content": [part]}]}),
            );
            let error = with_ctx(&req, false, |ctx| DashScope.chat_request(ctx).unwrap_err());
            assert_eq!(error.to_body()["error"]["param"], "messages[0].content[0]");
        }
    }
}
