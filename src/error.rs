//! The one error type of the gateway. Every failure a client can see is a `GatewayError`,
//! which knows its HTTP status and renders itself as an OpenAI error object:
//! `{"error":{"message","type","param","code"}}`.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum GatewayError {
    /// The request is malformed or misses something (400).
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<&'static str>,
    },
    /// Missing or wrong credentials (401).
    Unauthorized { message: String, code: &'static str },
    /// The feature is turned off on this gateway (403).
    Forbidden { message: String, code: &'static str },
    /// A resource that does not exist (404).
    Missing { message: String },
    /// A part of the gateway that is not available right now (503).
    Unavailable(String),
    /// No route for this path (404).
    NotFound { method: String, path: String },
    /// The path exists, the method does not (405).
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    /// The request body exceeds the configured limit (413).
    PayloadTooLarge { limit: usize },
    /// A Worker setting is invalid; the message names the variable (500).
    Config(String),
    /// Something inside the gateway failed (500).
    Internal(String),
    /// The upstream could not be reached (502).
    UpstreamUnreachable(String),
    /// The upstream answered with something that is not what the protocol promises (502).
    UpstreamMalformed(String),
    /// The upstream finished without anything usable: no text, no tool call (502).
    EmptyResponse(String),
    /// The upstream did not answer in time (504).
    UpstreamTimeout { after_ms: u64 },
    /// The upstream answered with a redirect, which the gateway never follows: it could
    /// carry the upstream key to another host (502).
    UpstreamRedirect { status: u16, host: String },
    /// The upstream's answer is larger than `MAX_RESPONSE_BYTES` (502).
    ResponseTooLarge { limit: usize },
    /// An access key's (or, in public mode, a client IP's) limit is used up (429), with the
    /// `retry-after` that says when the next call is admitted.
    RateLimited {
        message: String,
        /// `requests` or `tokens`, as OpenAI's own 429s say.
        kind: &'static str,
        headers: Vec<(String, String)>,
    },
    /// The upstream answered with an error status; its OpenAI-shaped error object is kept,
    /// with the upstream headers worth passing back (`retry-after`, rate limits, ids).
    Upstream {
        status: u16,
        error: Map<String, Value>,
        headers: Vec<(String, String)>,
    },
}

impl GatewayError {
    pub fn invalid(message: impl Into<String>) -> Self {
        GatewayError::InvalidRequest {
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub fn invalid_param(message: impl Into<String>, param: &str) -> Self {
        GatewayError::InvalidRequest {
            message: message.into(),
            param: Some(param.to_string()),
            code: None,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            GatewayError::InvalidRequest { .. } => 400,
            GatewayError::Unauthorized { .. } => 401,
            GatewayError::Forbidden { .. } => 403,
            GatewayError::NotFound { .. } | GatewayError::Missing { .. } => 404,
            GatewayError::Unavailable(_) => 503,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::PayloadTooLarge { .. } => 413,
            GatewayError::Config(_) | GatewayError::Internal(_) => 500,
            GatewayError::UpstreamUnreachable(_)
            | GatewayError::UpstreamMalformed(_)
            | GatewayError::EmptyResponse(_)
            | GatewayError::UpstreamRedirect { .. }
            | GatewayError::ResponseTooLarge { .. } => 502,
            GatewayError::UpstreamTimeout { .. } => 504,
            GatewayError::RateLimited { .. } => 429,
            GatewayError::Upstream { status, .. } => *status,
        }
    }

    /// The `error` object itself (without the `{"error": ...}` envelope).
    pub fn to_error_object(&self) -> Map<String, Value> {
        let (message, kind, param, code): (String, &str, Option<String>, Option<&str>) = match self
        {
            GatewayError::InvalidRequest {
                message,
                param,
                code,
            } => (
                message.clone(),
                "invalid_request_error",
                param.clone(),
                *code,
            ),
            GatewayError::Unauthorized { message, code } => {
                (message.clone(), "authentication_error", None, Some(*code))
            }
            GatewayError::Forbidden { message, code } => {
                (message.clone(), "permission_error", None, Some(*code))
            }
            GatewayError::Missing { message } => (
                message.clone(),
                "invalid_request_error",
                None,
                Some("not_found"),
            ),
            GatewayError::Unavailable(message) => {
                (message.clone(), "server_error", None, Some("unavailable"))
            }
            GatewayError::NotFound { method, path } => (
                format!("Invalid URL ({method} {path})"),
                "invalid_request_error",
                None,
                Some("not_found"),
            ),
            GatewayError::MethodNotAllowed {
                method,
                path,
                allow,
            } => (
                format!("Method {method} is not allowed on {path}; use {allow}"),
                "invalid_request_error",
                None,
                Some("method_not_allowed"),
            ),
            GatewayError::PayloadTooLarge { limit } => (
                format!("Request body is larger than the gateway's limit of {limit} bytes"),
                "invalid_request_error",
                None,
                Some("request_too_large"),
            ),
            GatewayError::Config(message) => (
                format!("Gateway configuration error: {message}"),
                "server_error",
                None,
                Some("invalid_configuration"),
            ),
            GatewayError::Internal(message) => (
                format!("Internal gateway error: {message}"),
                "server_error",
                None,
                Some("internal_error"),
            ),
            GatewayError::UpstreamUnreachable(message) => (
                format!("Upstream is unreachable: {message}"),
                "upstream_error",
                None,
                Some("upstream_unreachable"),
            ),
            GatewayError::UpstreamMalformed(message) => (
                format!("Upstream sent a malformed response: {message}"),
                "upstream_error",
                None,
                Some("upstream_malformed_response"),
            ),
            GatewayError::EmptyResponse(message) => (
                message.clone(),
                "upstream_error",
                None,
                Some("empty_response"),
            ),
            GatewayError::UpstreamTimeout { after_ms } => (
                format!("Upstream did not answer within {after_ms} ms"),
                "upstream_error",
                None,
                Some("upstream_timeout"),
            ),
            GatewayError::UpstreamRedirect { status, host } => (
                format!("The upstream answered HTTP {status} with a redirect to {host}; the gateway does not follow upstream redirects"),
                "upstream_error",
                None,
                Some("upstream_redirect"),
            ),
            GatewayError::ResponseTooLarge { limit } => (
                format!("The upstream answer is larger than the gateway's limit of {limit} bytes (MAX_RESPONSE_BYTES)"),
                "upstream_error",
                None,
                Some("response_too_large"),
            ),
            GatewayError::RateLimited { message, kind, .. } => {
                (message.clone(), *kind, None, Some("rate_limit_exceeded"))
            }
            GatewayError::Upstream { error, .. } => return error.clone(),
        };
        let mut object = Map::new();
        object.insert("message".into(), Value::String(message));
        object.insert("type".into(), Value::String(kind.into()));
        object.insert("param".into(), param.map_or(Value::Null, Value::String));
        object.insert(
            "code".into(),
            code.map_or(Value::Null, |c| Value::String(c.into())),
        );
        object
    }

    /// A limit of the gateway's own refused the call; `retry_after_s` goes in `retry-after`.
    pub fn rate_limited(message: String, kind: &'static str, retry_after_s: u64) -> Self {
        GatewayError::RateLimited {
            message,
            kind,
            headers: vec![("retry-after".to_string(), retry_after_s.to_string())],
        }
    }

    /// An invalid model id (400 `invalid_model`).
    pub fn invalid_model(message: impl Into<String>) -> Self {
        GatewayError::InvalidRequest {
            message: message.into(),
            param: Some("model".into()),
            code: Some("invalid_model"),
        }
    }

    /// Upstream response headers to send with this error (empty for the gateway's own).
    pub fn headers(&self) -> &[(String, String)] {
        match self {
            GatewayError::Upstream { headers, .. } | GatewayError::RateLimited { headers, .. } => {
                headers
            }
            _ => &[],
        }
    }

    /// Adds upstream headers to an upstream error; a header already set is kept.
    pub fn with_headers(mut self, extra: impl IntoIterator<Item = (String, String)>) -> Self {
        if let GatewayError::Upstream { headers, .. } = &mut self {
            for (name, value) in extra {
                if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                    headers.push((name, value));
                }
            }
        }
        self
    }

    /// The full OpenAI error body.
    pub fn to_body(&self) -> Value {
        json!({ "error": self.to_error_object() })
    }

    /// Builds the error for an upstream that answered `status` with `body`. An OpenAI-shaped
    /// error object is kept as it is; anything else is wrapped with a short excerpt.
    pub fn from_upstream(status: u16, body: &[u8]) -> Self {
        let status = if (400..=599).contains(&status) {
            status
        } else {
            502
        };
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        if let Some(Value::Object(mut envelope)) = parsed {
            match envelope.remove("error") {
                Some(Value::Object(error)) if error.contains_key("message") => {
                    return GatewayError::Upstream {
                        status,
                        error,
                        headers: Vec::new(),
                    };
                }
                Some(Value::String(message)) => {
                    return GatewayError::Upstream {
                        status,
                        error: upstream_error_object(message, status),
                        headers: Vec::new(),
                    }
                }
                _ => {}
            }
        }
        let excerpt = excerpt(&String::from_utf8_lossy(body), 300);
        let message = if excerpt.is_empty() {
            format!("Upstream returned HTTP {status}")
        } else {
            format!("Upstream returned HTTP {status}: {excerpt}")
        };
        GatewayError::Upstream {
            status,
            error: upstream_error_object(message, status),
            headers: Vec::new(),
        }
    }
}

fn upstream_error_object(message: String, status: u16) -> Map<String, Value> {
    upstream_error_fields(
        message,
        status,
        Value::String(format!("upstream_http_{status}")),
    )
}

/// An upstream error in OpenAI's shape, its `type` chosen from the status. Providers use it
/// for their native errors, with their own error code as `code`.
pub fn upstream_error(status: u16, message: String, code: Value) -> GatewayError {
    GatewayError::Upstream {
        status,
        error: upstream_error_fields(message, status, code),
        headers: Vec::new(),
    }
}

fn upstream_error_fields(message: String, status: u16, code: Value) -> Map<String, Value> {
    let kind = match status {
        401 | 403 => "authentication_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "upstream_error",
    };
    let mut object = Map::new();
    object.insert("message".into(), Value::String(message));
    object.insert("type".into(), Value::String(kind.into()));
    object.insert("param".into(), Value::Null);
    object.insert("code".into(), code);
    object
}

/// At most `max_chars` characters of `text`, on one line, never cutting a character.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let object = self.to_error_object();
        let message = object
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error");
        write!(f, "{} ({})", message, self.status())
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_status_and_openai_shape() {
        let cases: Vec<(GatewayError, u16, &str)> = vec![
            (GatewayError::invalid("bad"), 400, "invalid_request_error"),
            (
                GatewayError::rate_limited("slow down".into(), "requests", 7),
                429,
                "requests",
            ),
            (
                GatewayError::Unauthorized {
                    message: "no".into(),
                    code: "invalid_api_key",
                },
                401,
                "authentication_error",
            ),
            (
                GatewayError::NotFound {
                    method: "GET".into(),
                    path: "/x".into(),
                },
                404,
                "invalid_request_error",
            ),
            (
                GatewayError::MethodNotAllowed {
                    method: "GET".into(),
                    path: "/v1/chat/completions".into(),
                    allow: "POST, OPTIONS",
                },
                405,
                "invalid_request_error",
            ),
            (
                GatewayError::PayloadTooLarge { limit: 10 },
                413,
                "invalid_request_error",
            ),
            (GatewayError::Config("X".into()), 500, "server_error"),
            (
                GatewayError::UpstreamUnreachable("refused".into()),
                502,
                "upstream_error",
            ),
            (
                GatewayError::UpstreamMalformed("not json".into()),
                502,
                "upstream_error",
            ),
            (
                GatewayError::UpstreamTimeout { after_ms: 5 },
                504,
                "upstream_error",
            ),
        ];
        for (error, status, kind) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            let body = error.to_body();
            let object = body["error"].as_object().expect("error object");
            assert_eq!(object["type"], kind);
            assert!(object["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(object.contains_key("param"));
            assert!(object.contains_key("code"));
        }
    }

    #[test]
    fn upstream_openai_error_is_kept_as_is() {
        let body = br#"{"error":{"message":"Rate limit","type":"requests","param":null,"code":"rate_limit_exceeded","extra":1}}"#;
        let error = GatewayError::from_upstream(429, body);
        assert_eq!(error.status(), 429);
        let parsed: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(error.to_body(), parsed);
    }

    #[test]
    fn upstream_non_json_error_is_wrapped() {
        let error = GatewayError::from_upstream(503, b"<html>Service Unavailable</html>");
        assert_eq!(error.status(), 503);
        let body = error.to_body();
        assert_eq!(body["error"]["code"], "upstream_http_503");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Service Unavailable"));
    }

    #[test]
    fn upstream_string_error_is_wrapped() {
        let error = GatewayError::from_upstream(400, br#"{"error":"model missing"}"#);
        assert_eq!(error.to_body()["error"]["message"], "model missing");
        assert_eq!(error.to_body()["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn odd_upstream_status_becomes_502() {
        assert_eq!(GatewayError::from_upstream(302, b"").status(), 502);
    }

    #[test]
    fn redirect_and_size_errors() {
        let redirect = GatewayError::UpstreamRedirect {
            status: 307,
            host: "evil.example:8443".into(),
        };
        assert_eq!(redirect.status(), 502);
        let body = redirect.to_body();
        assert_eq!(body["error"]["code"], "upstream_redirect");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("307") && message.contains("evil.example:8443"));
        let big = GatewayError::ResponseTooLarge { limit: 1024 }.to_body();
        assert_eq!(big["error"]["code"], "response_too_large");
        assert!(big["error"]["message"].as_str().unwrap().contains("1024"));
    }

    #[test]
    fn upstream_headers_are_kept_once() {
        let error = GatewayError::from_upstream(429, b"{}")
            .with_headers([("retry-after".to_string(), "7".to_string())])
            .with_headers([("Retry-After".to_string(), "9".to_string())]);
        assert_eq!(
            error.headers(),
            &[("retry-after".to_string(), "7".to_string())]
        );
        assert!(GatewayError::invalid("x")
            .with_headers([("a".into(), "b".into())])
            .headers()
            .is_empty());
    }

    #[test]
    fn excerpt_never_cuts_a_character() {
        assert_eq!(excerpt("héllo wörld", 4), "héll…");
        assert_eq!(excerpt("你好世界", 2), "你好…");
        assert_eq!(excerpt(" short\n", 10), "short");
    }
}
