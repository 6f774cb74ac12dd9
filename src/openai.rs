//! OpenAI Chat Completions wire types. Unknown fields are kept (`extra`) so vendor
//! parameters and new API fields pass through the gateway untouched.

use crate::error::GatewayError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A validated client request. `body` is the client's JSON object, forwarded as-is.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
}

/// A client's request body as a JSON object; `fields` names what it should hold (for the
/// errors: empty, not JSON, not an object).
pub fn json_object(bytes: &[u8], fields: &str) -> Result<Map<String, Value>, GatewayError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::invalid(format!(
            "Request body is empty: send a JSON object with {fields}"
        )));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| GatewayError::InvalidRequest {
        message: format!("Request body is not valid JSON: {e}"),
        param: None,
        code: Some("invalid_json"),
    })?;
    match value {
        Value::Object(body) => Ok(body),
        _ => Err(GatewayError::invalid(format!(
            "Request body must be a JSON object with {fields}"
        ))),
    }
}

/// The body's `model`: required, a non-empty string.
pub fn required_model(body: &Map<String, Value>) -> Result<String, GatewayError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => Ok(m.clone()),
        None | Some(Value::Null) => Err(GatewayError::invalid_param(
            "You must provide a model parameter",
            "model",
        )),
        Some(_) => Err(GatewayError::invalid_param(
            "`model` must be a non-empty string",
            "model",
        )),
    }
}

impl ChatRequest {
    pub fn parse(bytes: &[u8]) -> Result<ChatRequest, GatewayError> {
        let body = json_object(bytes, "`model` and `messages`")?;
        let model = required_model(&body)?;
        match body.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => {
                for (i, message) in messages.iter().enumerate() {
                    let role = message.get("role").and_then(Value::as_str);
                    if role.is_none() {
                        return Err(GatewayError::invalid_param(
                            format!("messages[{i}] must be an object with a string `role`"),
                            &format!("messages[{i}].role"),
                        ));
                    }
                }
            }
            Some(Value::Array(_)) => {
                return Err(GatewayError::invalid_param(
                    "`messages` must contain at least one message",
                    "messages",
                ))
            }
            None | Some(Value::Null) => {
                return Err(GatewayError::invalid_param(
                    "Missing required parameter: `messages`",
                    "messages",
                ))
            }
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "`messages` must be an array of message objects",
                    "messages",
                ))
            }
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "`stream` must be a boolean",
                    "stream",
                ))
            }
        };
        let include_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(options)) => match options.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(GatewayError::invalid_param(
                        "`stream_options.include_usage` must be a boolean",
                        "stream_options.include_usage",
                    ))
                }
            },
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "`stream_options` must be an object",
                    "stream_options",
                ))
            }
        };
        Ok(ChatRequest {
            body,
            model,
            stream,
            include_usage,
        })
    }

    /// The body for a non-streaming upstream call serving a streaming client:
    /// `stream: false`, and no `stream_options` (which OpenAI rejects without streaming).
    pub fn non_streaming_body(&self) -> Map<String, Value> {
        let mut body = self.body.clone();
        body.insert("stream".into(), Value::Bool(false));
        body.remove("stream_options");
        body
    }
}

/// A non-streaming Chat Completions response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    #[serde(default)]
    pub id: String,
    #[serde(default = "chat_completion_object")]
    pub object: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn chat_completion_object() -> String {
    "chat.completion".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub message: AssistantMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    #[serde(default = "assistant_role")]
    pub role: String,
    #[serde(default)]
    pub content: Option<Value>,
    /// Reasoning text some providers return beside the answer (DeepSeek, Qwen, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for AssistantMessage {
    fn default() -> Self {
        AssistantMessage {
            role: assistant_role(),
            content: None,
            reasoning_content: None,
            refusal: None,
            tool_calls: None,
            extra: Map::new(),
        }
    }
}

impl AssistantMessage {
    /// The content as text: a string as is, an array of text parts joined.
    /// The text, moved out of the message (no copy of a long answer).
    pub fn take_text(&mut self) -> String {
        match self.content.take() {
            Some(Value::String(s)) => s,
            other => {
                self.content = other;
                let text = self.text();
                self.content = None;
                text
            }
        }
    }

    /// The text without a copy when it is one string (a long answer, for the log).
    pub fn text_ref(&self) -> std::borrow::Cow<'_, str> {
        match &self.content {
            Some(Value::String(s)) => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(self.text()),
        }
    }

    pub fn text(&self) -> String {
        match &self.content {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
            _ => String::new(),
        }
    }
}

fn assistant_role() -> String {
    "assistant".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    #[serde(default)]
    pub function: FunctionCall,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

impl ChatCompletion {
    /// Parses an upstream body, with an error that says what was wrong.
    pub fn parse(bytes: &[u8]) -> Result<ChatCompletion, GatewayError> {
        let completion: ChatCompletion = serde_json::from_slice(bytes).map_err(|e| {
            GatewayError::UpstreamMalformed(format!("expected a chat.completion JSON object ({e})"))
        })?;
        if completion.choices.is_empty() && completion.extra.contains_key("error") {
            return Err(GatewayError::from_upstream(502, bytes));
        }
        Ok(completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ChatRequest, GatewayError> {
        ChatRequest::parse(v.to_string().as_bytes())
    }

    #[test]
    fn valid_request_keeps_every_field() {
        let body = json!({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],
            "stream":true,"stream_options":{"include_usage":true},"temperature":0.2,"vendor_x":{"a":1}});
        let req = parse(body.clone()).unwrap();
        assert_eq!(req.model, "gpt-4o");
        assert!(req.stream && req.include_usage);
        assert_eq!(Value::Object(req.body.clone()), body);
        let upstream = req.non_streaming_body();
        assert_eq!(upstream["stream"], false);
        assert!(!upstream.contains_key("stream_options"));
        assert_eq!(upstream["vendor_x"], json!({"a":1}));
    }

    #[test]
    fn bad_requests_are_400_with_param() {
        let cases = [
            (json!([1]), None),
            (
                json!({"messages":[{"role":"user","content":"x"}]}),
                Some("model"),
            ),
            (
                json!({"model":5,"messages":[{"role":"user"}]}),
                Some("model"),
            ),
            (json!({"model":"m"}), Some("messages")),
            (json!({"model":"m","messages":[]}), Some("messages")),
            (json!({"model":"m","messages":"hi"}), Some("messages")),
            (
                json!({"model":"m","messages":[{"content":"x"}]}),
                Some("messages[0].role"),
            ),
            (
                json!({"model":"m","messages":[{"role":"user"}],"stream":"yes"}),
                Some("stream"),
            ),
            (
                json!({"model":"m","messages":[{"role":"user"}],"stream_options":1}),
                Some("stream_options"),
            ),
        ];
        for (body, param) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert_eq!(err.to_body()["error"]["param"].as_str(), param, "{body}");
        }
    }

    #[test]
    fn invalid_json_and_empty_body() {
        let err = ChatRequest::parse(b"{not json").unwrap_err();
        assert_eq!(err.to_body()["error"]["code"], "invalid_json");
        assert_eq!(ChatRequest::parse(b"  ").unwrap_err().status(), 400);
        assert_eq!(ChatRequest::parse(&[0xff, 0xfe]).unwrap_err().status(), 400);
    }

    #[test]
    fn completion_round_trip_keeps_unknown_fields() {
        let raw = json!({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi","annotations":[]},
            "finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":1},"service_tier":"default"});
        let parsed = ChatCompletion::parse(raw.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.choices[0].message.text(), "hi");
        assert_eq!(parsed.extra["service_tier"], "default");
        assert_eq!(parsed.choices[0].message.extra["annotations"], json!([]));
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back["choices"][0]["message"]["annotations"], json!([]));
    }

    #[test]
    fn malformed_completion_is_502() {
        assert_eq!(ChatCompletion::parse(b"<html>").unwrap_err().status(), 502);
        assert_eq!(
            ChatCompletion::parse(b"{\"choices\": 3}")
                .unwrap_err()
                .status(),
            502
        );
    }
}

/// One message of a client request, typed for translation to native APIs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub image_url: Option<ImageUrl>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ImageUrl {
    Object { url: String },
    Plain(String),
}

impl ImageUrl {
    pub fn url(&self) -> &str {
        match self {
            ImageUrl::Object { url } | ImageUrl::Plain(url) => url,
        }
    }
}

impl MessageContent {
    /// All text of the content, parts joined without separator.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(text) => text.clone(),
            MessageContent::Parts(parts) => {
                parts.iter().filter_map(|p| p.text.as_deref()).collect()
            }
        }
    }

    pub fn has_images(&self) -> bool {
        matches!(self, MessageContent::Parts(parts) if parts.iter().any(|p| p.image_url.is_some()))
    }

    /// Whether any part is an image, audio or video (what multimodal endpoints take).
    pub fn has_media(&self) -> bool {
        matches!(self, MessageContent::Parts(parts) if parts.iter().any(|p| {
            p.image_url.is_some() || matches!(p.kind.as_str(), "input_audio" | "video_url" | "video")
        }))
    }
}

/// A function tool a client offers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDefinition,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// A decoded data URL (`data:image/png;base64,...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUrl<'a> {
    pub mime_type: &'a str,
    pub base64: &'a str,
}

pub fn parse_data_url(url: &str) -> Option<DataUrl<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime_type = meta.strip_suffix(";base64")?;
    Some(DataUrl {
        mime_type: if mime_type.is_empty() {
            "application/octet-stream"
        } else {
            mime_type
        },
        base64: data,
    })
}

impl ChatRequest {
    /// The messages, typed. Shape errors name the message.
    pub fn messages(&self) -> Result<Vec<RequestMessage>, GatewayError> {
        let Some(Value::Array(raw)) = self.body.get("messages") else {
            return Err(GatewayError::invalid_param(
                "`messages` must be an array",
                "messages",
            ));
        };
        raw.iter()
            .enumerate()
            .map(|(i, m)| {
                crate::from_json_value(m).map_err(|e| {
                    GatewayError::invalid_param(
                        format!("messages[{i}] is not a valid chat message: {e}"),
                        &format!("messages[{i}]"),
                    )
                })
            })
            .collect()
    }

    /// The function tools, typed.
    pub fn tools(&self) -> Result<Vec<Tool>, GatewayError> {
        match self.body.get("tools") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(value) => crate::from_json_value(value).map_err(|e| {
                GatewayError::invalid_param(
                    format!("`tools` is not a valid list of tools: {e}"),
                    "tools",
                )
            }),
        }
    }

    pub fn number(&self, name: &str) -> Option<f64> {
        self.body.get(name).and_then(Value::as_f64)
    }

    pub fn integer(&self, name: &str) -> Option<i64> {
        self.body.get(name).and_then(Value::as_i64)
    }

    /// `max_completion_tokens`, else `max_tokens`.
    pub fn max_tokens(&self) -> Option<i64> {
        self.integer("max_completion_tokens")
            .or_else(|| self.integer("max_tokens"))
    }

    /// `stop` as a list (a single string becomes one entry).
    pub fn stop(&self) -> Vec<String> {
        match self.body.get("stop") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Finds the function name of the assistant tool call with `id`, for native APIs that
/// identify tool results by name.
pub fn tool_name_for_call(messages: &[RequestMessage], id: &str) -> Option<String> {
    messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .find(|call| call.id == id)
        .map(|call| call.function.name.clone())
}

/// `usage` in OpenAI's shape from native counts.
pub fn usage_object(
    prompt: u64,
    completion: u64,
    total: Option<u64>,
    reasoning: Option<u64>,
    cached: Option<u64>,
) -> Value {
    let mut usage = serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total.unwrap_or(prompt + completion),
    });
    if let Some(reasoning) = reasoning {
        usage["completion_tokens_details"] = serde_json::json!({ "reasoning_tokens": reasoning });
    }
    if let Some(cached) = cached {
        usage["prompt_tokens_details"] = serde_json::json!({ "cached_tokens": cached });
    }
    usage
}

#[cfg(test)]
mod request_type_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_messages_and_tools() {
        let raw = json!({"model":"m","messages":[
            {"role":"system","content":"sys"},
            {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
            "stop":"END","max_tokens":5,"max_completion_tokens":7}).to_string();
        let req = ChatRequest::parse(raw.as_bytes()).unwrap();
        let messages = req.messages().unwrap();
        assert_eq!(messages.len(), 4);
        assert!(messages[1].content.as_ref().unwrap().has_images());
        assert_eq!(messages[1].content.as_ref().unwrap().text(), "look");
        assert_eq!(tool_name_for_call(&messages, "c1").as_deref(), Some("f"));
        assert_eq!(req.tools().unwrap()[0].function.name, "f");
        assert_eq!(req.stop(), vec!["END"]);
        assert_eq!(req.max_tokens(), Some(7));
    }

    #[test]
    fn bad_message_shape_is_400() {
        let raw = json!({"model":"m","messages":[{"role":"user","content":5}]}).to_string();
        let err = ChatRequest::parse(raw.as_bytes())
            .unwrap()
            .messages()
            .unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(err.to_body()["error"]["param"], "messages[0]");
    }

    #[test]
    fn data_urls() {
        assert_eq!(
            parse_data_url("data:image/jpeg;base64,/9j/"),
            Some(DataUrl {
                mime_type: "image/jpeg",
                base64: "/9j/"
            })
        );
        assert_eq!(parse_data_url("https://x/y.png"), None);
        assert_eq!(parse_data_url("data:text/plain,hello"), None);
    }
}
