//! Keeps secrets out of everything the gateway emits. One `Scrubber` is built per request
//! from every secret in play (server keys, the client's own key, AUTH_TOKEN, ADMIN_TOKEN)
//! and is applied at the boundary: error bodies, every SSE frame, every log column and
//! every console line.
//!
//! - Known secrets are replaced in every form an upstream is likely to echo: as they are,
//!   percent-encoded (a URL or query string) and JSON-escaped.
//! - Text that reports an error (error bodies, error events, the log, the console) also
//!   loses every `Bearer <token>` and `key=<token>` value, known or not.
//! - Answer content only loses the known secrets, so a model can still explain what a
//!   `Bearer` header is.

use memchr::memmem::Finder;
use std::borrow::Cow;
use std::rc::Rc;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not scrubbed: replacing every `abc` in an answer would
/// mangle it, and such a secret protects nothing anyway.
pub const MIN_SECRET_LEN: usize = 6;

/// Shortest value after `Bearer ` or `key=` that counts as a credential.
const MIN_GENERIC_TOKEN: usize = 8;

#[derive(Default, Clone)]
pub struct Scrubber {
    /// Every form of every secret, longest first so a longer form wins over its prefix.
    /// Shared: the configured secrets' scrubber is built once and extended per request.
    needles: Rc<Vec<Finder<'static>>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets themselves.
        write!(f, "Scrubber({} forms)", self.needles.len())
    }
}

impl Scrubber {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Scrubber {
        Scrubber::default().with(secrets)
    }

    /// This scrubber plus `secrets`; shares its searchers when they add no new form.
    pub fn with<'a>(&self, secrets: impl IntoIterator<Item = &'a str>) -> Scrubber {
        let mut forms: Vec<String> = Vec::new();
        for secret in secrets {
            let secret = secret.trim();
            if secret.len() < MIN_SECRET_LEN {
                continue;
            }
            for form in [
                secret.to_string(),
                percent_encode(secret),
                json_escape(secret),
            ] {
                let known = self.needles.iter().any(|n| n.needle() == form.as_bytes());
                if !known && !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
        if forms.is_empty() {
            return self.clone();
        }
        let mut needles: Vec<Finder<'static>> = self.needles.as_ref().clone();
        needles.extend(forms.iter().map(|f| Finder::new(f.as_bytes()).into_owned()));
        needles.sort_unstable_by_key(|n| std::cmp::Reverse(n.needle().len()));
        Scrubber {
            needles: Rc::new(needles),
        }
    }

    /// True when `value` contains a known secret in any of its forms.
    pub fn contains_secret(&self, value: &str) -> bool {
        self.needles
            .iter()
            .any(|n| n.find(value.as_bytes()).is_some())
    }

    /// Known secrets removed from answer bytes; borrows when there is nothing to remove.
    pub fn known<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let mut out: Cow<'a, [u8]> = Cow::Borrowed(bytes);
        for needle in self.needles.iter() {
            if needle.find(&out).is_none() {
                continue;
            }
            let replaced = replace_all(&out, needle, MASK.as_bytes());
            out = Cow::Owned(replaced);
        }
        out
    }

    /// Error, log and console text: known secrets and every `Bearer`/`key=` credential.
    pub fn text(&self, text: &str) -> String {
        let known = self.known(text.as_bytes());
        let generic = mask_generic_credentials(&known);
        // Only ASCII was replaced by ASCII at positions outside multi-byte characters.
        String::from_utf8(generic.into_owned())
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Client-bound SSE bytes made of whole events: known secrets everywhere, and the
    /// `text` treatment for events that carry an error object.
    pub fn sse<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let known = self.known(bytes);
        // Built once: a searcher built per frame costs more than the search.
        static ERROR_MEMBER: std::sync::OnceLock<Finder<'static>> = std::sync::OnceLock::new();
        let error_member = ERROR_MEMBER.get_or_init(|| Finder::new(b"\"error\""));
        if error_member.find(&known).is_none() {
            return known;
        }
        let mut out = Vec::with_capacity(known.len());
        for event in split_events(&known) {
            if is_error_event(event) {
                out.extend_from_slice(&mask_generic_credentials(event));
            } else {
                out.extend_from_slice(event);
            }
        }
        Cow::Owned(out)
    }
}

fn replace_all(haystack: &[u8], needle: &Finder, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut last = 0;
    for at in needle.find_iter(haystack) {
        // Overlapping matches of a repeated secret are covered by the first.
        if at < last {
            continue;
        }
        out.extend_from_slice(&haystack[last..at]);
        out.extend_from_slice(with);
        last = at + needle.needle().len();
    }
    out.extend_from_slice(&haystack[last..]);
    out
}

/// Splits SSE bytes after each blank line, keeping the separators with their event.
fn split_events(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = memchr::memmem::find(rest, b"\n\n").map_or(rest.len(), |i| i + 2);
        let (event, tail) = rest.split_at(cut);
        rest = tail;
        Some(event)
    })
}

/// An event whose data is a JSON object with an `error` member first, as OpenAI-style
/// chat error events are, or a Responses API `error` / `response.failed` event (`type`
/// first, as OpenAI sends them).
fn is_error_event(event: &[u8]) -> bool {
    event.split(|b| *b == b'\n').any(|line| {
        let Some(data) = line.strip_prefix(b"data:") else {
            return false;
        };
        let data = data.trim_ascii_start();
        data.strip_prefix(b"{").is_some_and(|rest| {
            let rest = rest.trim_ascii_start();
            rest.starts_with(b"\"error\"")
                || rest.starts_with(b"\"type\":\"error\"")
                || rest.starts_with(b"\"type\":\"response.failed\"")
        })
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=' | b'%')
}

/// Masks the value after every `Bearer ` (any case) and every `key=` (also `api_key=`,
/// `access_key=`…), when it looks like a credential.
fn mask_generic_credentials(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let value_start =
            if bytes.len() - i >= 7 && bytes[i..i + 7].eq_ignore_ascii_case(b"bearer ") {
                let mut j = i + 7;
                while j < bytes.len() && bytes[j] == b' ' {
                    j += 1;
                }
                Some(j)
            } else if bytes.len() - i >= 4
                && bytes[i..i + 4].eq_ignore_ascii_case(b"key=")
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')
            {
                Some(i + 4)
            } else {
                None
            };
        let Some(start) = value_start else {
            i += 1;
            continue;
        };
        let mut end = start;
        while end < bytes.len() && is_token_byte(bytes[end]) {
            end += 1;
        }
        let value = &bytes[start..end];
        if value.len() >= MIN_GENERIC_TOKEN && value != MASK.as_bytes() {
            let buffer = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
            buffer.extend_from_slice(&bytes[copied..start]);
            buffer.extend_from_slice(MASK.as_bytes());
            copied = end;
        }
        i = end.max(i + 1);
    }
    match out {
        None => Cow::Borrowed(bytes),
        Some(mut buffer) => {
            buffer.extend_from_slice(&bytes[copied..]);
            Cow::Owned(buffer)
        }
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn json_escape(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::relay::Relay;

    const KEY: &str = "sk-live-abc123/xyz+9";

    fn scrubber() -> Scrubber {
        Scrubber::new([KEY, "tok-admin-42", "short", ""])
    }

    #[test]
    fn known_secrets_in_every_form() {
        let s = scrubber();
        let text = format!(
            "raw {KEY}, url {}, json {}, twice {KEY}{KEY}",
            percent_encode(KEY),
            json_escape(KEY)
        );
        let out = s.text(&text);
        assert!(!out.contains("abc123"), "{out}");
        assert_eq!(out.matches(MASK).count(), 5, "{out}");
        // Too short to scrub.
        assert_eq!(s.text("a short text"), "a short text");
        assert!(s.contains_secret("Bearer tok-admin-42"));
        assert!(!s.contains_secret("tok-admin-4"));
    }

    #[test]
    fn a_shared_scrubber_extended_per_request() {
        let base = Scrubber::new(["tok-admin-42"]);
        // Nothing new (a configured token, or too short): the searchers are shared.
        let same = base.with(["tok-admin-42", "short"]);
        assert!(Rc::ptr_eq(&base.needles, &same.needles));
        // A longer secret that starts with a configured one wins over it, whichever came first.
        let extended = base.with(["tok-admin-42-and-more"]);
        assert_eq!(
            extended.text("x tok-admin-42-and-more y tok-admin-42 z"),
            "x *** y *** z"
        );
        assert_eq!(
            base.text("tok-admin-42-and-more"),
            "***-and-more",
            "the base is unchanged"
        );
        assert_eq!(
            extended.needles.len(),
            base.needles.len() + 1,
            "a secret without special characters has one form"
        );
    }

    #[test]
    fn lowercase_percent_encoding_is_caught_by_the_generic_key_rule() {
        let s = scrubber();
        let out = s.text("GET /v1?key=sk-live-abc123%2fxyz%2b9 failed");
        assert_eq!(out, "GET /v1?key=*** failed");
    }

    #[test]
    fn generic_bearer_and_key_forms() {
        let s = Scrubber::new([]);
        assert_eq!(
            s.text("header Authorization: Bearer unknown-token-1234 sent"),
            "header Authorization: Bearer *** sent"
        );
        assert_eq!(
            s.text("url https://x/y?alt=sse&key=AIzaSyUnknown_99&x=1"),
            "url https://x/y?alt=sse&key=***&x=1"
        );
        assert_eq!(s.text("api_key=abcdefgh12 ok"), "api_key=*** ok");
        // Words, not credentials, stay.
        assert_eq!(
            s.text("use the Bearer scheme; monkey=bananas1234"),
            "use the Bearer scheme; monkey=bananas1234"
        );
        assert_eq!(s.text("key=short"), "key=short");
        assert_eq!(s.text("ünïcödé Bearer ***"), "ünïcödé Bearer ***");
    }

    #[test]
    fn content_keeps_generic_forms_but_loses_known_secrets() {
        let s = scrubber();
        let frame = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"Bearer example-token-123 {KEY}\"}}}}]}}\n\n"
        );
        let out = String::from_utf8(s.sse(frame.as_bytes()).into_owned()).unwrap();
        assert!(out.contains("Bearer example-token-123"));
        assert!(!out.contains(KEY));
    }

    #[test]
    fn error_events_lose_generic_forms_too() {
        let s = scrubber();
        let frames = "data: {\"choices\":[{\"delta\":{\"content\":\"key=contentvalue1\"}}]}\n\ndata: {\"error\":{\"message\":\"bad key=leakedvalue99\"}}\n\ndata: [DONE]\n\n";
        let out = String::from_utf8(s.sse(frames.as_bytes()).into_owned()).unwrap();
        assert!(out.contains("key=contentvalue1"));
        assert!(out.contains("bad key=***"));
        assert!(out.ends_with("data: [DONE]\n\n"));
        assert!(matches!(s.sse(b"data: {}\n\n"), Cow::Borrowed(_)));
        // Responses API failures, as a native upstream sends them.
        let failed = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"message\":\"Bearer sk-otherkey12345678 refused\"}}}\n\nevent: error\ndata: {\"type\":\"error\",\"message\":\"key=leakedvalue77\"}\n\n";
        let out = String::from_utf8(s.sse(failed.as_bytes()).into_owned()).unwrap();
        assert!(
            !out.contains("sk-otherkey12345678") && !out.contains("leakedvalue77"),
            "{out}"
        );
    }

    #[test]
    fn a_secret_split_across_two_reads_is_caught() {
        let s = scrubber();
        let event = format!(
            "data: {{\"error\":{{\"message\":\"Incorrect API key provided: {KEY}\"}}}}\n\n"
        );
        let (first, second) = event.as_bytes().split_at(event.find("abc1").unwrap() + 2);
        let mut relay = Relay::new();
        let mut out = s.sse(&relay.push(first)).into_owned();
        out.extend_from_slice(&s.sse(&relay.push(second)));
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("abc1"), "{out}");
        assert!(out.contains("Incorrect API key provided: ***"), "{out}");
    }

    #[test]
    fn debug_never_shows_secrets() {
        assert!(!format!("{:?}", scrubber()).contains("abc"));
    }
}
