//! How one chat call is answered: the response mode, the fake-stream decision, and which
//! upstream response headers are passed back. Pure; the runtime carries it out.

use crate::config::FakeStreamMode;
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

pub use crate::adapters::FAKE_STREAM_HEADER;

/// Whether this call is fake-streamed.
pub fn wants_fake_stream(
    mode: &FakeStreamMode,
    request: &ChatRequest,
    override_header: Option<&str>,
) -> bool {
    if !request.stream {
        return false;
    }
    match override_header.map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if matches!(v.as_str(), "1" | "true" | "on" | "yes" | "always") => true,
        Some(v) if matches!(v.as_str(), "0" | "false" | "off" | "no" | "never") => false,
        _ => mode.applies_to(&request.model),
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

/// The upstream headers passed back to the client, on answers and errors alike. The
/// upstream's `x-request-id` becomes `X-Upstream-Request-Id` (the gateway sets its own).
pub fn forwarded_headers(
    upstream: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    upstream
        .into_iter()
        .filter_map(|(name, value)| {
            if name.eq_ignore_ascii_case("x-request-id") {
                Some(("X-Upstream-Request-Id".to_string(), value))
            } else {
                forwarded_response_header(&name).then_some((name, value))
            }
        })
        .collect()
}

/// The host a redirect points to, for the `upstream_redirect` error: never its path, query
/// or user info. A relative `Location` stays on the upstream's own host.
pub fn redirect_host(location: Option<&str>, upstream_url: &str) -> String {
    fn authority(url: &str) -> Option<&str> {
        let rest = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .or_else(|| url.strip_prefix("//"))?;
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        (!host.is_empty()).then_some(host)
    }
    let location = location.map(str::trim).unwrap_or_default();
    if location.is_empty() {
        return "(no Location header)".into();
    }
    authority(location)
        .or_else(|| authority(upstream_url))
        .unwrap_or("(unknown host)")
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect()
}

/// The path of an already-serialized WHATWG URL (what the runtime gives as a request's
/// `url`), without reparsing: such a URL never has an empty path, so the first `/` after the
/// host begins it, and a `?` or `#` inside it would be percent-encoded.
pub fn path_of_url(url: &str) -> &str {
    let Some(host_start) = url.find("://").map(|i| i + 3) else {
        return "/";
    };
    match url[host_start..].find('/') {
        Some(i) => {
            let path = &url[host_start + i..];
            &path[..path.find(['?', '#']).unwrap_or(path.len())]
        }
        None => "/",
    }
}

/// The query of a serialized URL as `application/x-www-form-urlencoded` pairs, decoded as
/// browsers do (`+` is a space, `%XX` a byte, invalid UTF-8 replaced): what the log API's
/// filters need, without a URL parser (and its Unicode tables) in the bundle.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    let without_fragment = &url[..url.find('#').unwrap_or(url.len())];
    let Some((_, query)) = without_fragment.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(|h| hex_pair(h[0], h[1])) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn config(fake: &str) -> crate::config::Config {
        crate::config::Config::from_lookup(|name| match name {
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
        let c = config("o1*").fake_stream;
        assert!(wants_fake_stream(&c, &stream_req, None));
        assert!(!wants_fake_stream(&c, &plain_req, Some("true")));
        assert!(!wants_fake_stream(&c, &stream_req, Some("false")));
        assert!(wants_fake_stream(
            &config("off").fake_stream,
            &stream_req,
            Some("true")
        ));
        assert!(!wants_fake_stream(
            &config("gpt*").fake_stream,
            &stream_req,
            None
        ));
        assert!(!wants_fake_stream(
            &config("off").fake_stream,
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

    #[test]
    fn redirect_names_only_the_host() {
        let upstream = "https://api.example.com/v1/chat/completions";
        assert_eq!(
            redirect_host(
                Some("https://user:pw@evil.test:8443/steal?key=sk-1#x"),
                upstream
            ),
            "evil.test:8443"
        );
        assert_eq!(redirect_host(Some("//cdn.test/a"), upstream), "cdn.test");
        assert_eq!(
            redirect_host(Some("/elsewhere?key=1"), upstream),
            "api.example.com"
        );
        assert_eq!(redirect_host(None, upstream), "(no Location header)");
    }

    #[test]
    fn upstream_request_id_is_renamed() {
        let kept = forwarded_headers(vec![
            ("x-request-id".to_string(), "up-1".to_string()),
            ("retry-after".to_string(), "3".to_string()),
            (
                "x-ratelimit-remaining-requests".to_string(),
                "0".to_string(),
            ),
            ("set-cookie".to_string(), "a=b".to_string()),
        ]);
        assert_eq!(
            kept,
            vec![
                ("X-Upstream-Request-Id".to_string(), "up-1".to_string()),
                ("retry-after".to_string(), "3".to_string()),
                (
                    "x-ratelimit-remaining-requests".to_string(),
                    "0".to_string()
                ),
            ]
        );
    }

    #[test]
    fn query_pairs_decode_as_forms_do() {
        assert_eq!(
            query_pairs("https://gw.example/api/requests?status=error&q=a+b%20c&key=k%2F1#x"),
            vec![
                ("status".to_string(), "error".to_string()),
                ("q".to_string(), "a b c".to_string()),
                ("key".to_string(), "k/1".to_string()),
            ]
        );
        assert_eq!(
            query_pairs("https://gw.example/a?flag&&x=%zz&y=%e2%82%ac&z=%"),
            vec![
                ("flag".to_string(), String::new()),
                ("x".to_string(), "%zz".to_string()),
                ("y".to_string(), "€".to_string()),
                ("z".to_string(), "%".to_string()),
            ]
        );
        assert_eq!(query_pairs("https://gw.example/a"), vec![]);
        assert_eq!(query_pairs("https://gw.example/a#?x=1"), vec![]);
        assert_eq!(query_pairs("https://gw.example/a?%ff=1")[0].0, "\u{fffd}");
    }

    #[test]
    fn path_of_url_takes_the_path_without_query_or_fragment() {
        assert_eq!(
            path_of_url("https://gw.example/v1/chat/completions?x=1"),
            "/v1/chat/completions"
        );
        assert_eq!(
            path_of_url("http://127.0.0.1:8787/api/keys/k1#top"),
            "/api/keys/k1"
        );
        assert_eq!(path_of_url("https://gw.example/"), "/");
        assert_eq!(path_of_url("https://gw.example"), "/");
        assert_eq!(path_of_url("https://gw.example/a%3Fb"), "/a%3Fb");
        assert_eq!(path_of_url("not a url"), "/");
    }
}
