//! Shared helpers for the provider unit tests.

use super::{CallContext, Provider, ProviderOptions};
use crate::openai::ChatRequest;
use crate::sse::{SseItem, SseParser};
use crate::stream::translate::{StreamAdapter, Translated};
use serde_json::Value;

pub fn request(body: Value) -> ChatRequest {
    ChatRequest::parse(body.to_string().as_bytes()).unwrap()
}

/// Runs `f` with a call context for `req` (base URL `https://up.test`, key `up-key`,
/// request id `req1`, time 100).
pub fn with_ctx<T>(req: &ChatRequest, stream: bool, f: impl FnOnce(&CallContext) -> T) -> T {
    let options = ProviderOptions {
        gemini_safety_threshold: "auto".into(),
        demo_think_ms: 0,
    };
    let raw = serde_json::to_vec(&req.body).unwrap();
    let ctx = CallContext {
        request: req,
        raw_body: &raw,
        upstream_model: &req.model,
        base_url: "https://up.test",
        key: "up-key",
        stream,
        request_id: "req1",
        now_seconds: 100,
        client_headers: &[],
        options: &options,
        endpoint: Default::default(),
    };
    f(&ctx)
}

/// A stream translator for `req`, already wrapped for SSE input.
pub fn translated(provider: &dyn Provider, req: &ChatRequest) -> Translated {
    with_ctx(req, true, |ctx| {
        Translated::new(provider.stream_translator(ctx).unwrap())
    })
}

/// Feeds `raw` upstream SSE through the provider's translator; returns the chunk objects
/// (asserting the stream ends with `[DONE]`) and the text the log would keep.
pub fn run_stream(provider: &dyn Provider, req: &ChatRequest, raw: &[u8]) -> (Vec<Value>, String) {
    let mut adapter = translated(provider, req);
    let mut bytes = adapter.push(raw);
    bytes.extend(adapter.finish(None));
    let data: Vec<String> = SseParser::new()
        .push(&bytes)
        .into_iter()
        .filter_map(|i| match i {
            SseItem::Event { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let chunks = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (chunks, adapter.content().to_string())
}

/// The native embeddings batches `provider` builds for `body` (upstream model `model`,
/// base URL `https://up.test`, key `up-key`), as (url, JSON body, inputs).
pub fn embedding_batches(
    provider: &dyn Provider,
    body: Value,
    model: &str,
) -> Result<Vec<(String, Value, usize)>, crate::error::GatewayError> {
    let raw = body.to_string();
    let request = crate::embeddings::EmbeddingRequest::parse(raw.as_bytes()).unwrap();
    let ctx = super::EmbeddingContext {
        request: &request,
        raw_body: raw.as_bytes(),
        upstream_model: model,
        base_url: "https://up.test",
        key: "up-key",
        client_headers: &[],
    };
    Ok(provider
        .embeddings_requests(&ctx)?
        .into_iter()
        .map(|b| {
            let json = serde_json::from_slice(b.request.body.as_deref().unwrap()).unwrap();
            (b.request.url, json, b.inputs)
        })
        .collect())
}
