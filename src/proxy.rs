//! How one chat call is answered: the response mode, the fake-stream decision, and which
//! upstream response headers are passed back. Pure; the runtime carries it out.

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

impl ResponseMode {
    pub fn for_request(stream: bool, fake_stream: bool) -> ResponseMode {
        match (stream, fake_stream) {
            (false, _) => ResponseMode::Json,
            (true, false) => ResponseMode::Passthrough,
            (true, true) => ResponseMode::FakeStream,
        }
    }
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

/// Upstream response headers worth passing back (rate limits, request ids, timings).
pub fn forwarded_response_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "x-request-id"
        || name.starts_with("x-ratelimit-")
        || name.starts_with("openai-")
        || name == "retry-after"
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
    fn modes() {
        assert_eq!(ResponseMode::for_request(false, true), ResponseMode::Json);
        assert_eq!(
            ResponseMode::for_request(true, false),
            ResponseMode::Passthrough
        );
        assert_eq!(
            ResponseMode::for_request(true, true),
            ResponseMode::FakeStream
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
