//! Adapters: pure wire translation, one file per upstream kind. An adapter turns an OpenAI
//! request into its kind's native request and the native answers (JSON, stream events,
//! errors) back into OpenAI shapes; the runtime only moves bytes.
//!
//! Adding a kind: write `adapters/<kind>.rs` implementing `Provider`, add one line to
//! `PROVIDERS`. Configured instances of a kind are upstreams (`crate::upstreams`); the
//! legacy variables (`<PREFIX>_API_KEY`, `<PREFIX>_BASE_URL`, `<PREFIX>_MODELS`,
//! `<PREFIX>_MODEL_PATTERNS`) come from its `ProviderSpec`.

pub mod dashscope;
pub mod demo;
pub mod gemini;
pub mod gemini_schema;
pub mod openai;
#[cfg(test)]
mod test_support;

use crate::embeddings::{EmbeddingRequest, Embeddings};
use crate::error::GatewayError;
use crate::openai::{ChatCompletion, ChatRequest};
use crate::stream::translate::EventTranslator;
use crate::stream::ChunkMeta;
use serde_json::{Map, Value};

/// Every provider, in routing priority order: the first whose patterns match a model
/// serves it, so the catch-all OpenAI-compatible provider comes last.
pub static PROVIDERS: &[&dyn Provider] = &[
    &gemini::Gemini,
    &dashscope::DashScope,
    &demo::Demo,
    &openai::OpenAi,
];

/// What a provider declares about its settings.
#[derive(Debug, PartialEq, Eq)]
pub struct ProviderSpec {
    /// Name used in `provider/model` prefixes, `/v1/models` and `/api/status`.
    pub id: &'static str,
    /// The Worker variable holding its base URL.
    pub base_url_var: &'static str,
    pub default_base_url: &'static str,
    /// Prefix of its other variables: `<PREFIX>_API_KEY`, `_MODELS`, `_MODEL_PATTERNS`.
    pub env_prefix: &'static str,
    pub default_patterns: &'static [&'static str],
    pub default_models: &'static [&'static str],
    /// Path suffixes users often include in a base URL; removed so paths are added once.
    pub base_url_suffixes: &'static [&'static str],
    /// Whether an `UPSTREAMS` base URL is used as written (SDK-style, as in OpenAI's SDKs:
    /// `https://api.deepseek.com/v1`), rather than reduced to its host.
    pub base_url_as_written: bool,
    /// Appended to the legacy `<base_url_var>` once its suffixes are removed.
    pub legacy_base_path: &'static str,
    /// Shown in `/v1/models` as `owned_by`.
    pub owned_by: &'static str,
}

/// Request header a client may send to force fake streaming on (`true`) or off (`false`)
/// for one call; never forwarded upstream.
pub const FAKE_STREAM_HEADER: &str = "x-fake-stream";

/// One HTTP request to send upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// Everything a provider needs to build a call and read its answer.
#[derive(Debug, Clone)]
pub struct CallContext<'a> {
    pub request: &'a ChatRequest,
    /// The client's raw body (forwarded as is where the wire format allows).
    pub raw_body: &'a [u8],
    /// The model name the provider knows (any `provider/` prefix removed).
    pub upstream_model: &'a str,
    pub base_url: &'a str,
    pub key: &'a str,
    /// Whether the upstream call streams.
    pub stream: bool,
    /// Used for ids the native API does not give (`chatcmpl-…`, `call_…`).
    pub request_id: &'a str,
    pub now_seconds: i64,
    /// Client headers the provider may forward (OpenAI-compatible upstreams).
    pub client_headers: &'a [(String, String)],
    pub options: &'a ProviderOptions,
    /// Which OpenAI-compatible endpoint the call goes to.
    pub endpoint: Endpoint,
}

/// The OpenAI-compatible endpoint of a call: Chat Completions, or (for an upstream with
/// `native_responses`) the Responses API, passed through untranslated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endpoint {
    #[default]
    Chat,
    Responses,
}

/// Provider-specific settings beyond the common ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderOptions {
    /// `GEMINI_SAFETY_THRESHOLD`: `auto`, `none` (send no safety settings) or a threshold.
    pub gemini_safety_threshold: String,
    /// `DEMO_THINK_MS`: how long the demo upstream thinks before answering.
    pub demo_think_ms: u64,
}

/// One native embeddings call and how many of the inputs it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingBatch {
    pub request: HttpRequest,
    pub inputs: usize,
}

/// Everything a provider needs to build an embeddings call.
#[derive(Debug, Clone)]
pub struct EmbeddingContext<'a> {
    pub request: &'a EmbeddingRequest,
    pub raw_body: &'a [u8],
    pub upstream_model: &'a str,
    pub base_url: &'a str,
    pub key: &'a str,
    pub client_headers: &'a [(String, String)],
}

impl CallContext<'_> {
    /// The client's chat body for an OpenAI-shaped upstream: in this call's stream mode,
    /// with the model name the upstream knows.
    pub fn openai_body(&self) -> Map<String, Value> {
        let mut body = if self.stream {
            self.request.body.clone()
        } else {
            self.request.non_streaming_body()
        };
        body.insert(
            "model".into(),
            Value::String(self.upstream_model.to_string()),
        );
        body
    }

    /// The envelope for chunks of a translated or replayed stream.
    pub fn chunk_meta(&self, id: Option<&str>) -> ChunkMeta {
        ChunkMeta {
            id: id
                .map(str::to_string)
                .unwrap_or_else(|| format!("chatcmpl-{}", self.request_id)),
            created: self.now_seconds,
            model: self.request.model.clone(),
            system_fingerprint: None,
            include_usage: self.request.include_usage,
        }
    }
}

pub trait Provider: Sync {
    fn spec(&self) -> &'static ProviderSpec;

    /// The native chat request.
    fn chat_request(&self, ctx: &CallContext) -> Result<HttpRequest, GatewayError>;

    /// A native non-streaming answer as an OpenAI completion.
    fn parse_completion(
        &self,
        body: &[u8],
        ctx: &CallContext,
    ) -> Result<ChatCompletion, GatewayError>;

    /// A native error answer as an OpenAI error with a fitting status.
    fn parse_error(&self, status: u16, body: &[u8]) -> GatewayError;

    /// Translates native stream events; `None` when the upstream already speaks OpenAI SSE
    /// and is relayed as is.
    fn stream_translator(&self, ctx: &CallContext) -> Option<Box<dyn EventTranslator>>;

    /// Refuses a model id this provider must not receive (400 `invalid_model`), before
    /// any upstream call. The default suits kinds that send the model in the body.
    fn validate_model(&self, model: &str) -> Result<(), GatewayError> {
        validate_body_model(model)
    }

    /// The upstream's model list request, if it has one.
    fn models_request(&self, base_url: &str, key: &str) -> Option<HttpRequest>;

    /// Model ids from the upstream's model list answer.
    fn parse_models(&self, body: &[u8]) -> Vec<String>;

    /// Whether a non-streaming answer (chat or embeddings) can be returned byte for byte.
    fn passes_json_through(&self) -> bool {
        false
    }

    /// The native embeddings calls for a request, in input order: several when the
    /// provider takes fewer inputs per call than the client sent.
    fn embeddings_requests(
        &self,
        ctx: &EmbeddingContext,
    ) -> Result<Vec<EmbeddingBatch>, GatewayError> {
        let _ = ctx;
        Err(GatewayError::invalid_param(
            format!(
                "upstreams of kind `{}` have no embeddings API",
                self.spec().id
            ),
            "model",
        ))
    }

    /// One native embeddings answer for `expected` inputs.
    fn parse_embeddings(&self, body: &[u8], expected: usize) -> Result<Embeddings, GatewayError> {
        let _ = (body, expected);
        Err(GatewayError::Internal(format!(
            "upstreams of kind `{}` have no embeddings answer",
            self.spec().id
        )))
    }
}

/// An upstream that answered a different number of vectors than inputs sent.
pub(crate) fn check_vector_count(got: usize, expected: usize) -> Result<(), GatewayError> {
    if got == expected {
        Ok(())
    } else {
        Err(GatewayError::UpstreamMalformed(format!(
            "the upstream answered {got} embeddings for {expected} inputs"
        )))
    }
}

pub fn provider_by_id(id: &str) -> Option<&'static dyn Provider> {
    PROVIDERS
        .iter()
        .copied()
        .find(|p| p.spec().id.eq_ignore_ascii_case(id))
}

/// Removes a trailing `/` and any of the provider's known suffixes from a base URL.
pub fn strip_base_suffixes(base: &str, suffixes: &[&str]) -> String {
    let mut base = base.trim_end_matches('/').to_string();
    for suffix in suffixes {
        if base
            .to_ascii_lowercase()
            .ends_with(&suffix.to_ascii_lowercase())
        {
            base.truncate(base.len() - suffix.len());
            base = base.trim_end_matches('/').to_string();
        }
    }
    base
}

/// Longest model id accepted.
pub const MAX_MODEL_LEN: usize = 256;

/// A model id sent in a JSON body: any printable text without whitespace, so ids such as
/// `deepseek/deepseek-chat:free` pass, and nothing that could split a header or a log line.
pub fn validate_body_model(model: &str) -> Result<(), GatewayError> {
    if model.is_empty() {
        return Err(GatewayError::invalid_model("The model id is empty"));
    }
    if model.len() > MAX_MODEL_LEN {
        return Err(GatewayError::invalid_model(format!(
            "The model id is longer than {MAX_MODEL_LEN} bytes"
        )));
    }
    if model.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(GatewayError::invalid_model(format!(
            "The model id `{}` contains whitespace or control characters",
            crate::error::excerpt(model, 100)
        )));
    }
    Ok(())
}

/// Parses a JSON body or reports what it was instead.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, GatewayError> {
    serde_json::from_slice(body).map_err(|e| {
        GatewayError::UpstreamMalformed(format!(
            "expected {what} ({e}): {}",
            crate::error::excerpt(&String::from_utf8_lossy(body), 200)
        ))
    })
}

/// Function-call arguments (a JSON string in OpenAI's format) as a JSON object.
pub(crate) fn arguments_object(
    arguments: &str,
    param: &str,
) -> Result<serde_json::Value, GatewayError> {
    if arguments.trim().is_empty() {
        return Ok(serde_json::json!({}));
    }
    // Bytes, not `from_str`: one JSON reader in the bundle.
    serde_json::from_slice(arguments.as_bytes()).map_err(|e| {
        GatewayError::invalid_param(
            format!("tool call arguments are not valid JSON: {e}"),
            param,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_found() {
        let ids: Vec<&str> = PROVIDERS.iter().map(|p| p.spec().id).collect();
        assert_eq!(ids, vec!["gemini", "dashscope", "demo", "openai"]);
        assert!(provider_by_id("Gemini").is_some());
        assert!(provider_by_id("nope").is_none());
    }

    #[test]
    fn body_models() {
        for ok in [
            "gpt-4o",
            "deepseek/deepseek-chat:free",
            "meta-llama/llama-3.1-8b@v2",
            "qwen-max",
        ] {
            assert!(validate_body_model(ok).is_ok(), "{ok}");
        }
        let long = "m".repeat(MAX_MODEL_LEN + 1);
        for bad in ["", "gpt 4o", "gpt\n4o", "gpt\u{0}x", long.as_str()] {
            let error = validate_body_model(bad).unwrap_err();
            assert_eq!(error.to_body()["error"]["code"], "invalid_model", "{bad:?}");
            assert_eq!(error.to_body()["error"]["param"], "model");
        }
    }

    #[test]
    fn base_suffixes() {
        assert_eq!(
            strip_base_suffixes("https://x.com/v1beta/", &["/v1beta"]),
            "https://x.com"
        );
        assert_eq!(
            strip_base_suffixes("https://x.com/api/v1", &["/api/v1"]),
            "https://x.com"
        );
        assert_eq!(
            strip_base_suffixes("https://x.com", &["/api/v1"]),
            "https://x.com"
        );
    }
}
