//! Any OpenAI-compatible upstream: the request is forwarded as is and the answer, stream
//! or JSON, is already in OpenAI's shape.

use super::{
    CallContext, EmbeddingBatch, EmbeddingContext, Endpoint, HttpRequest, Provider, ProviderSpec,
};
use crate::error::GatewayError;
use crate::openai::ChatCompletion;
use crate::stream::aggregate;
use crate::stream::translate::EventTranslator;
use serde_json::Value;

pub struct OpenAi;

pub static SPEC: ProviderSpec = ProviderSpec {
    id: "openai",
    base_url_var: "SOURCE_API_URL",
    default_base_url: "https://api.openai.com",
    env_prefix: "OPENAI",
    default_patterns: &["*"],
    default_models: &[],
    base_url_suffixes: &["/v1"],
    base_url_as_written: true,
    legacy_base_path: "/v1",
    owned_by: "openai",
};

/// Client headers never sent upstream: hop-by-hop, credentials (replaced by the upstream
/// key), browser and edge metadata, and the gateway's own controls.
const NOT_FORWARDED: &[&str] = &[
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "accept",
    "accept-encoding",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "origin",
    "referer",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    super::FAKE_STREAM_HEADER,
];

pub fn forwarded_request_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !(NOT_FORWARDED.contains(&name.as_str())
        || name.starts_with("cf-")
        || name.starts_with("x-forwarded-")
        || name.starts_with("sec-")
        || name.starts_with("proxy-")
        // Anthropic clients' protocol headers (`anthropic-version`, `anthropic-beta`) mean
        // nothing to an OpenAI-compatible upstream.
        || name.starts_with("anthropic-"))
}

/// The headers of an upstream request: the client's forwardable ones, then the upstream key
/// and the JSON content type.
fn upstream_headers(
    client_headers: &[(String, String)],
    key: &str,
    accept: &str,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = client_headers
        .iter()
        .filter(|(name, _)| forwarded_request_header(name))
        .cloned()
        .collect();
    headers.push(("Authorization".into(), format!("Bearer {key}")));
    headers.push(("Content-Type".into(), "application/json".into()));
    headers.push(("Accept".into(), accept.into()));
    headers
}

impl Provider for OpenAi {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    fn chat_request(&self, ctx: &CallContext) -> Result<HttpRequest, GatewayError> {
        let prefixed = ctx.upstream_model != ctx.request.model;
        let body = if ctx.stream == ctx.request.stream && !prefixed {
            // Forward the client's exact bytes: nothing is reformatted or lost.
            ctx.raw_body.to_vec()
        } else {
            serde_json::to_vec(&ctx.openai_body())
                .map_err(|e| GatewayError::Internal(e.to_string()))?
        };
        let accept = if ctx.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let headers = upstream_headers(ctx.client_headers, ctx.key, accept);
        Ok(HttpRequest {
            method: "POST",
            url: match ctx.endpoint {
                Endpoint::Chat => format!("{}/chat/completions", ctx.base_url),
                Endpoint::Responses => format!("{}/responses", ctx.base_url),
            },
            headers,
            body: Some(body),
        })
    }

    fn parse_completion(
        &self,
        body: &[u8],
        _ctx: &CallContext,
    ) -> Result<ChatCompletion, GatewayError> {
        // Some OpenAI-compatible servers stream even when asked not to.
        if aggregate::looks_like_sse(body) {
            return aggregate::completion_from_sse(body);
        }
        ChatCompletion::parse(body)
    }

    fn parse_error(&self, status: u16, body: &[u8]) -> GatewayError {
        GatewayError::from_upstream(status, body)
    }

    fn embeddings_requests(
        &self,
        ctx: &EmbeddingContext,
    ) -> Result<Vec<EmbeddingBatch>, GatewayError> {
        let request = ctx.request;
        let body = if ctx.upstream_model == request.model && request.task_type.is_none() {
            ctx.raw_body.to_vec()
        } else {
            serde_json::to_vec(&request.upstream_body(ctx.upstream_model))
                .map_err(|e| GatewayError::Internal(e.to_string()))?
        };
        let headers = upstream_headers(ctx.client_headers, ctx.key, "application/json");
        Ok(vec![EmbeddingBatch {
            request: HttpRequest {
                method: "POST",
                url: format!("{}/embeddings", ctx.base_url),
                headers,
                body: Some(body),
            },
            inputs: request.input_count(),
        }])
    }

    fn stream_translator(&self, _ctx: &CallContext) -> Option<Box<dyn EventTranslator>> {
        None
    }

    fn models_request(&self, base_url: &str, key: &str) -> Option<HttpRequest> {
        Some(HttpRequest {
            method: "GET",
            url: format!("{base_url}/models"),
            headers: vec![("Authorization".into(), format!("Bearer {key}"))],
            body: None,
        })
    }

    fn parse_models(&self, body: &[u8]) -> Vec<String> {
        let Ok(list) = serde_json::from_slice::<Value>(body) else {
            return Vec::new();
        };
        list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect()
    }

    fn passes_json_through(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::ProviderOptions;
    use crate::openai::ChatRequest;
    use serde_json::json;

    fn ctx<'a>(
        req: &'a ChatRequest,
        raw: &'a [u8],
        model: &'a str,
        stream: bool,
        headers: &'a [(String, String)],
        options: &'a ProviderOptions,
    ) -> CallContext<'a> {
        CallContext {
            request: req,
            raw_body: raw,
            upstream_model: model,
            base_url: "http://up/v1",
            key: "sk-up",
            stream,
            request_id: "r1",
            now_seconds: 1,
            client_headers: headers,
            options,
            endpoint: Default::default(),
        }
    }

    #[test]
    fn forwards_exact_bytes_or_rewrites_when_needed() {
        let raw = json!({"model":"openai/gpt-x","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"top_k":3}).to_string().into_bytes();
        let req = ChatRequest::parse(&raw).unwrap();
        let headers = vec![
            ("OpenAI-Organization".to_string(), "org".to_string()),
            ("Cookie".to_string(), "x".to_string()),
            ("CF-Ray".to_string(), "x".to_string()),
            ("X-Fake-Stream".to_string(), "true".to_string()),
        ];
        let options = ProviderOptions::default();
        // Prefix removed, stream kept.
        let call = OpenAi
            .chat_request(&ctx(&req, &raw, "gpt-x", true, &headers, &options))
            .unwrap();
        let body: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["model"], "gpt-x");
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(call.url, "http://up/v1/chat/completions");
        let names: Vec<String> = call
            .headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        assert!(names.contains(&"openai-organization".into()));
        assert!(!names
            .iter()
            .any(|n| n == "cookie" || n == "cf-ray" || n == "x-fake-stream"));
        assert!(call
            .headers
            .contains(&("Authorization".into(), "Bearer sk-up".into())));
        // Non-streaming upstream for a streaming client (fake stream).
        let call = OpenAi
            .chat_request(&ctx(&req, &raw, "gpt-x", false, &headers, &options))
            .unwrap();
        let body: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["stream"], false);
        assert!(body.get("stream_options").is_none());
        assert_eq!(body["top_k"], 3);
        // Same model, same mode: the exact bytes.
        let call = OpenAi
            .chat_request(&ctx(&req, &raw, "openai/gpt-x", true, &headers, &options))
            .unwrap();
        assert_eq!(call.body.unwrap(), raw);
    }

    #[test]
    fn models() {
        let ids = OpenAi.parse_models(br#"{"object":"list","data":[{"id":"gpt-4o"},{"id":"o1"}]}"#);
        assert_eq!(ids, vec!["gpt-4o", "o1"]);
        assert!(OpenAi.parse_models(b"nope").is_empty());
    }
}
