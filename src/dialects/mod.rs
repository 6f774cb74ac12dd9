//! Dialects: the other APIs clients speak to the gateway — Anthropic Messages
//! (`/v1/messages`) and OpenAI Responses (`/v1/responses`). Each becomes an internal chat
//! request at the edge, goes through the same router and adapters, and its answer (JSON, or
//! the chat stream the gateway would send) is rewritten into the dialect's own shape.
//! Pure: the runtime only moves bytes.

pub mod anthropic;
pub mod responses;

#[cfg(test)]
mod test_support {
    use crate::sse::{SseItem, SseParser};
    use serde_json::Value;

    /// The named events of a rewritten stream, as (name, data) pairs.
    pub fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        SseParser::new()
            .push(bytes)
            .into_iter()
            .filter_map(|item| match item {
                SseItem::Event { event, data, .. } => Some((
                    event.unwrap_or_default(),
                    serde_json::from_str(&data).unwrap(),
                )),
                SseItem::Comment(_) => None,
            })
            .collect()
    }
}

use crate::error::GatewayError;
use crate::openai::ChatCompletion;
use crate::sse::{SseItem, SseParser};

/// The API a call's client speaks, and what its answer needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Dialect {
    Chat,
    /// Anthropic Messages: the message id to give and the model name the client asked for.
    Anthropic {
        id: String,
        model: String,
    },
    /// OpenAI Responses: what the Response object repeats, and where the finished one goes.
    Responses {
        meta: Box<responses::ResponseMeta>,
        sink: responses::ResponseSink,
    },
    /// OpenAI Responses passed through untranslated to an upstream that serves them
    /// (`native_responses`).
    NativeResponses,
}

impl Dialect {
    /// Whether upstream answers are passed on as they came (no rewriting).
    pub fn is_chat(&self) -> bool {
        matches!(self, Dialect::Chat | Dialect::NativeResponses)
    }

    /// The OpenAI-compatible endpoint calls in this dialect go to.
    pub fn endpoint(&self) -> crate::adapters::Endpoint {
        match self {
            Dialect::NativeResponses => crate::adapters::Endpoint::Responses,
            _ => crate::adapters::Endpoint::Chat,
        }
    }

    /// A chat completion in the dialect's JSON shape.
    pub fn render(&self, completion: &ChatCompletion) -> Result<Vec<u8>, GatewayError> {
        let value = match self {
            Dialect::Chat | Dialect::NativeResponses => serde_json::to_value(completion)
                .map_err(|e| GatewayError::Internal(e.to_string()))?,
            Dialect::Anthropic { id, model } => {
                anthropic::message_from_completion(completion, model, id)
            }
            Dialect::Responses { meta, sink } => {
                let response = responses::response_from_completion(completion, meta);
                *sink.borrow_mut() = Some(response.clone());
                response
            }
        };
        serde_json::to_vec(&value).map_err(|e| GatewayError::Internal(e.to_string()))
    }

    /// The rewriter of the chat stream into the dialect's events (none for chat).
    pub fn rewriter(&self) -> Option<StreamRewriter> {
        match self {
            Dialect::Chat | Dialect::NativeResponses => None,
            Dialect::Anthropic { id, model } => Some(StreamRewriter::new(Box::new(
                anthropic::AnthropicStream::new(id, model),
            ))),
            Dialect::Responses { meta, sink } => Some(StreamRewriter::new(Box::new(
                responses::ResponsesStream::new((**meta).clone(), sink.clone()),
            ))),
        }
    }

    /// An error in the dialect's shape.
    pub fn error_body(&self, error: &GatewayError) -> serde_json::Value {
        match self {
            Dialect::Chat | Dialect::NativeResponses => error.to_body(),
            Dialect::Anthropic { .. } => anthropic::error_body(error),
            Dialect::Responses { .. } => responses::error_body(error),
        }
    }
}

/// Whether tools the gateway cannot run upstream (hosted or server tools) are dropped or
/// refused (`UNSUPPORTED_TOOLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnsupportedTools {
    #[default]
    Drop,
    Reject,
}

impl UnsupportedTools {
    /// `tools[index]`, of a type no upstream runs: refused (400 `unsupported_tool`), or
    /// dropped and its type noted once in `dropped`.
    pub fn refuse_or_drop(
        self,
        index: usize,
        kind: &str,
        dropped: &mut Vec<String>,
    ) -> Result<(), GatewayError> {
        if self == UnsupportedTools::Reject {
            return Err(GatewayError::InvalidRequest {
                message: format!(
                    "tools[{index}] is of type `{}`, which the gateway cannot run upstream (UNSUPPORTED_TOOLS=reject)",
                    crate::error::excerpt(kind, 60)
                ),
                param: Some(format!("tools[{index}]")),
                code: Some("unsupported_tool"),
            });
        }
        if !dropped.iter().any(|t| t == kind) {
            dropped.push(kind.to_string());
        }
        Ok(())
    }

    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim).unwrap_or("") {
            "" | "drop" => Ok(UnsupportedTools::Drop),
            "reject" => Ok(UnsupportedTools::Reject),
            other => Err(format!(
                "UNSUPPORTED_TOOLS must be `drop` or `reject`, not `{}`",
                crate::error::excerpt(other, 40)
            )),
        }
    }
}

/// Re-encodes the gateway's chat stream — `chat.completion.chunk` events, heartbeat
/// comments, error events and `[DONE]` — as another API's events.
pub trait StreamDialect {
    /// The frames for one item of the chat stream.
    fn item(&mut self, item: &SseItem, out: &mut Vec<u8>);
    /// The frames that end the stream; called once, also when `[DONE]` never came.
    fn end(&mut self, out: &mut Vec<u8>);
}

/// Feeds chat-stream bytes (in any chunking) through a dialect.
pub struct StreamRewriter {
    parser: SseParser,
    dialect: Box<dyn StreamDialect>,
    ended: bool,
}

impl StreamRewriter {
    pub fn new(dialect: Box<dyn StreamDialect>) -> Self {
        StreamRewriter {
            parser: SseParser::new(),
            dialect,
            ended: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for item in self.parser.push(bytes) {
            self.feed(&item, &mut out);
        }
        out
    }

    /// Whether the chat stream's end (`[DONE]`) has been rewritten already.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for item in self.parser.finish() {
            self.feed(&item, &mut out);
        }
        if !self.ended {
            self.ended = true;
            self.dialect.end(&mut out);
        }
        out
    }

    fn feed(&mut self, item: &SseItem, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if matches!(item, SseItem::Event { data, .. } if data.trim() == crate::sse::encode::DONE) {
            self.ended = true;
            self.dialect.end(out);
            return;
        }
        self.dialect.item(item, out);
    }
}

/// A tool call of the chat stream, collected from its deltas. Both dialects send each call
/// whole once the stream ends: upstreams may interleave the arguments of parallel calls, and
/// neither an Anthropic block nor a Responses item can reopen once another started.
#[derive(Debug, Default)]
pub(crate) struct PendingCall {
    pub chat_index: u64,
    pub id: String,
    pub name: String,
    pub arguments: String,
    /// A Gemini thought signature (`extra_content.google.thought_signature`).
    pub signature: Option<String>,
}

/// Adds one `delta.tool_calls[]` entry to the calls collected so far.
pub(crate) fn collect_call(calls: &mut Vec<PendingCall>, call: &serde_json::Value) {
    use serde_json::Value;
    let chat_index = call["index"].as_u64().unwrap_or(0);
    let position = match calls.iter().position(|c| c.chat_index == chat_index) {
        Some(position) => position,
        None => {
            calls.push(PendingCall {
                chat_index,
                ..PendingCall::default()
            });
            calls.len() - 1
        }
    };
    let pending = &mut calls[position];
    if let Some(id) = call["id"].as_str().filter(|id| !id.is_empty()) {
        pending.id = id.to_string();
    }
    if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
        pending.name.push_str(name);
    }
    if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str) {
        pending.arguments.push_str(arguments);
    }
    if let Some(sig) = call
        .pointer("/extra_content/google/thought_signature")
        .and_then(Value::as_str)
    {
        pending.signature = Some(sig.to_string());
    }
}

/// `event: <name>\ndata: <json>\n\n`, the framing both dialects use.
pub(crate) fn named_event(name: &str, value: &serde_json::Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&crate::sse::json_data(value));
}

/// Rough token count of some text: about four bytes per token, the usual rule of thumb
/// for English and code (and conservative for CJK text, where a character is 3 bytes).
pub fn estimate_tokens(text_bytes: usize) -> u64 {
    (text_bytes as u64).div_ceil(4)
}
