//! The plan for one chat call: how the client is answered and what goes upstream.
//! Pure: the runtime only executes the plan.

use crate::config::Config;
use crate::openai::ChatRequest;

/// How the gateway answers the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Non-streaming: the upstream JSON as it is.
    Json,
    /// Streaming upstream, relayed event by event.
    Passthrough,
    /// Non-streaming upstream, heartbeats while waiting, then a chunked replay.
    FakeStream,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamCall {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub mode: ResponseMode,
}

/// Request header a client may send to force fake streaming on (`true`) or off (`false`)
/// for one call, whatever `FAKE_STREAM` says.
pub const FAKE_STREAM_HEADER: &str = "x-fake-stream";

/// Whether this call is fake-streamed.
pub fn wants_fake_stream(
    config: &Config,
    request: &ChatRequest,
    override_header: Option<&str>,
) -> bool {
    if !request.stream {
        return false;
    }
    match override_header.map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if matches!(v.as_str(), "1" | "true" | "on" | "yes" | "always") => true,
        Some(v) if matches!(v.as_str(), "0" | "false" | "off" | "no" | "never") => false,
        _ => config.fake_stream.applies_to(&request.model),
    }
}

/// Client headers never sent upstream: hop-by-hop, credentials (replaced by the upstream
/// key), browser and edge metadata, and the gateway's own controls.
const NOT_FORWARDED: &[&str] = &[
    "authorization",
    "x-api-key",
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
    FAKE_STREAM_HEADER,
];

fn forwarded_request_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !(NOT_FORWARDED.contains(&name.as_str())
        || name.starts_with("cf-")
        || name.starts_with("x-forwarded-")
        || name.starts_with("sec-")
        || name.starts_with("proxy-"))
}

/// Upstream response headers worth passing back (rate limits, request ids, timings).
pub fn forwarded_response_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "x-request-id"
        || name.starts_with("x-ratelimit-")
        || name.starts_with("openai-")
        || name == "retry-after"
}

pub fn plan_openai_call(
    config: &Config,
    request: &ChatRequest,
    raw_body: &[u8],
    client_headers: &[(String, String)],
    upstream_key: &str,
    fake_stream: bool,
) -> UpstreamCall {
    let mode = match (request.stream, fake_stream) {
        (false, _) => ResponseMode::Json,
        (true, false) => ResponseMode::Passthrough,
        (true, true) => ResponseMode::FakeStream,
    };
    let body = match mode {
        // Forward the client's exact bytes: nothing is reformatted or lost.
        ResponseMode::Json | ResponseMode::Passthrough => raw_body.to_vec(),
        ResponseMode::FakeStream => {
            serde_json::to_vec(&request.non_streaming_body()).unwrap_or_else(|_| raw_body.to_vec())
        }
    };
    let mut headers: Vec<(String, String)> = client_headers
        .iter()
        .filter(|(name, _)| forwarded_request_header(name))
        .cloned()
        .collect();
    headers.push(("Authorization".into(), format!("Bearer {upstream_key}")));
    headers.push(("Content-Type".into(), "application/json".into()));
    headers.push((
        "Accept".into(),
        if mode == ResponseMode::Passthrough {
            "text/event-stream".into()
        } else {
            "application/json".into()
        },
    ));
    UpstreamCall {
        url: config.chat_completions_url(),
        headers,
        body,
        mode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn config(fake: &str) -> Config {
        Config::from_lookup(|name| match name {
            "FAKE_STREAM" => Some(fake.to_string()),
            "SOURCE_API_URL" => Some("http://127.0.0.1:9/v1".into()),
            _ => None,
        })
        .unwrap()
    }

    fn request(v: Value) -> (ChatRequest, Vec<u8>) {
        let raw = v.to_string().into_bytes();
        (ChatRequest::parse(&raw).unwrap(), raw)
    }

    #[test]
    fn fake_stream_decision() {
        let (stream_req, _) =
            request(json!({"model":"o1-mini","messages":[{"role":"user"}],"stream":true}));
        let (plain_req, _) = request(json!({"model":"o1-mini","messages":[{"role":"user"}]}));
        let c = config("o1*");
        assert!(wants_fake_stream(&c, &stream_req, None));
        assert!(!wants_fake_stream(&c, &plain_req, Some("true")));
        assert!(!wants_fake_stream(&c, &stream_req, Some("false")));
        assert!(wants_fake_stream(&config("off"), &stream_req, Some("true")));
        assert!(!wants_fake_stream(&config("gpt*"), &stream_req, None));
        assert!(!wants_fake_stream(
            &config("off"),
            &stream_req,
            Some("maybe")
        ));
    }

    #[test]
    fn plans() {
        let c = config("always");
        let headers = vec![
            ("Authorization".to_string(), "Bearer client".to_string()),
            ("OpenAI-Organization".to_string(), "org-1".to_string()),
            ("X-Stainless-Lang".to_string(), "js".to_string()),
            ("CF-Connecting-IP".to_string(), "1.2.3.4".to_string()),
            ("Cookie".to_string(), "a=b".to_string()),
            ("X-Fake-Stream".to_string(), "true".to_string()),
        ];
        let (req, raw) = request(
            json!({"model":"m","messages":[{"role":"user"}],"stream":true,"stream_options":{"include_usage":true},"top_k":3}),
        );
        let call = plan_openai_call(&c, &req, &raw, &headers, "sk-up", true);
        assert_eq!(call.url, "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(call.mode, ResponseMode::FakeStream);
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(body["stream"], false);
        assert_eq!(body["top_k"], 3);
        assert!(body.get("stream_options").is_none());
        let names: Vec<String> = call
            .headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        assert!(names.contains(&"openai-organization".to_string()));
        assert!(names.contains(&"x-stainless-lang".to_string()));
        assert!(!names.contains(&"cf-connecting-ip".to_string()));
        assert!(!names.contains(&"cookie".to_string()));
        assert!(!names.contains(&"x-fake-stream".to_string()));
        let auth: Vec<&String> = call
            .headers
            .iter()
            .filter(|(k, _)| k == "Authorization")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(auth, vec!["Bearer sk-up"]);

        let call = plan_openai_call(&c, &req, &raw, &headers, "sk-up", false);
        assert_eq!(call.mode, ResponseMode::Passthrough);
        assert_eq!(call.body, raw, "passthrough forwards the exact bytes");
        let (req, raw) = request(json!({"model":"m","messages":[{"role":"user"}]}));
        assert_eq!(
            plan_openai_call(&c, &req, &raw, &[], "k", false).mode,
            ResponseMode::Json
        );
    }

    #[test]
    fn response_headers() {
        assert!(forwarded_response_header("x-ratelimit-remaining-requests"));
        assert!(forwarded_response_header("X-Request-Id"));
        assert!(!forwarded_response_header("set-cookie"));
        assert!(!forwarded_response_header("content-length"));
    }
}
