//! CORS decisions: request headers in, response headers out.

use crate::config::AllowedOrigins;

/// Every method a route takes: `DELETE /v1/responses/{id}` and the key admin API too.
pub const ALLOWED_METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
/// Used when a preflight does not say which headers it wants.
pub const DEFAULT_ALLOWED_HEADERS: &str =
    "Authorization, Content-Type, X-Api-Key, X-Requested-With, X-Fake-Stream";
/// Response headers browser code may read.
/// What browsers may read: the gateway's own headers and the upstream headers it passes on
/// (browser SDKs read `retry-after` and the rate limits to back off).
pub const EXPOSED_HEADERS: &str = "X-Request-Id, X-Gateway-Fake-Stream, X-Gateway-Version, X-Gateway-Upstream, X-Gateway-Attempts, X-Gateway-Dropped-Tools, X-Upstream-Request-Id, Retry-After, X-RateLimit-Limit-Requests, X-RateLimit-Limit-Tokens, X-RateLimit-Remaining-Requests, X-RateLimit-Remaining-Tokens, X-RateLimit-Reset-Requests, X-RateLimit-Reset-Tokens, OpenAI-Processing-Ms, OpenAI-Version, OpenAI-Organization";
pub const PREFLIGHT_MAX_AGE_SECONDS: &str = "86400";

/// The CORS headers for a response. `origin` is the request's `Origin` header;
/// `requested_headers` is `Access-Control-Request-Headers` on a preflight (`None` otherwise).
pub fn cors_headers(
    allowed: &AllowedOrigins,
    origin: Option<&str>,
    preflight: bool,
    requested_headers: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    let allow_origin = match (allowed, origin) {
        (AllowedOrigins::Any, _) => Some("*".to_string()),
        (AllowedOrigins::List(_), Some(origin)) if allowed.allows(origin) => {
            Some(origin.to_string())
        }
        _ => None,
    };
    if matches!(allowed, AllowedOrigins::List(_)) {
        // The answer depends on the Origin, so caches must keep one copy per origin.
        headers.push(("Vary", "Origin".to_string()));
    }
    let Some(allow_origin) = allow_origin else {
        return headers;
    };
    headers.push(("Access-Control-Allow-Origin", allow_origin));
    if preflight {
        headers.push(("Access-Control-Allow-Methods", ALLOWED_METHODS.to_string()));
        let allow_headers = requested_headers
            .map(sanitize_header_list)
            .filter(|list| !list.is_empty())
            .unwrap_or_else(|| DEFAULT_ALLOWED_HEADERS.to_string());
        headers.push(("Access-Control-Allow-Headers", allow_headers));
        headers.push((
            "Access-Control-Max-Age",
            PREFLIGHT_MAX_AGE_SECONDS.to_string(),
        ));
    } else {
        headers.push(("Access-Control-Expose-Headers", EXPOSED_HEADERS.to_string()));
    }
    headers
}

/// Keeps only well-formed header names from a requested list, so nothing odd is echoed.
fn sanitize_header_list(raw: &str) -> String {
    raw.split(',')
        .map(str::trim)
        .filter(|name| {
            !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn any_origin_gets_star() {
        let h = cors_headers(&AllowedOrigins::Any, Some("https://x.dev"), false, None);
        assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some("*"));
        assert!(get(&h, "Access-Control-Expose-Headers").is_some());
        assert_eq!(get(&h, "Vary"), None);
    }

    #[test]
    fn listed_origin_is_echoed_others_get_nothing() {
        let allowed = AllowedOrigins::parse("https://app.example.com").unwrap();
        let ok = cors_headers(&allowed, Some("https://app.example.com"), false, None);
        assert_eq!(
            get(&ok, "Access-Control-Allow-Origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get(&ok, "Vary"), Some("Origin"));
        let denied = cors_headers(
            &allowed,
            Some("https://evil.example"),
            true,
            Some("authorization"),
        );
        assert_eq!(get(&denied, "Access-Control-Allow-Origin"), None);
        assert_eq!(get(&denied, "Access-Control-Allow-Headers"), None);
        let none = cors_headers(&allowed, None, false, None);
        assert_eq!(get(&none, "Access-Control-Allow-Origin"), None);
    }

    #[test]
    fn preflight_answers_requested_headers() {
        let h = cors_headers(
            &AllowedOrigins::Any,
            Some("https://x.dev"),
            true,
            Some("authorization, content-type, x-stainless-os"),
        );
        assert_eq!(
            get(&h, "Access-Control-Allow-Headers"),
            Some("authorization, content-type, x-stainless-os")
        );
        assert_eq!(
            get(&h, "Access-Control-Allow-Methods"),
            Some(ALLOWED_METHODS)
        );
        assert_eq!(get(&h, "Access-Control-Max-Age"), Some("86400"));
    }

    #[test]
    fn preflight_without_requested_headers_uses_defaults_and_drops_junk() {
        let h = cors_headers(&AllowedOrigins::Any, None, true, None);
        assert_eq!(
            get(&h, "Access-Control-Allow-Headers"),
            Some(DEFAULT_ALLOWED_HEADERS)
        );
        let h = cors_headers(
            &AllowedOrigins::Any,
            None,
            true,
            Some("bad header\r\n, ok-one"),
        );
        assert_eq!(get(&h, "Access-Control-Allow-Headers"), Some("ok-one"));
    }
}
