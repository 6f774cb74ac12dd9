//! Exact SSE frames. A data payload with line breaks becomes several `data:` lines,
//! so no payload can end an event early or inject a field.

use serde::Serialize;

pub const DONE: &str = "[DONE]";

/// `data: <payload>\n\n`, one `data:` line per payload line.
pub fn data(payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    push_lines(&mut out, b"data: ", payload);
    out.push(b'\n');
    out
}

/// Each line of `text` (split at every CR and LF) as `<prefix><line>\n`. Bytes, not chars:
/// both breaks are ASCII, and this runs for every relayed event.
fn push_lines(out: &mut Vec<u8>, prefix: &[u8], text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for at in memchr::memchr2_iter(b'\n', b'\r', bytes) {
        out.extend_from_slice(prefix);
        out.extend_from_slice(&bytes[start..at]);
        out.push(b'\n');
        start = at + 1;
    }
    out.extend_from_slice(prefix);
    out.extend_from_slice(&bytes[start..]);
    out.push(b'\n');
}

/// A JSON value as one `data:` event (serde_json never writes raw line breaks).
pub fn json_data<T: Serialize>(value: &T) -> Vec<u8> {
    match serde_json::to_string(value) {
        Ok(text) => data(&text),
        // Serializing a serde_json::Value or plain struct cannot fail; stay total anyway.
        Err(_) => data("{}"),
    }
}

/// `: <text>\n\n`, ignored by every SSE client; keeps connections and proxies awake.
pub fn comment(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 4);
    push_lines(&mut out, b": ", text);
    out.push(b'\n');
    out
}

/// The OpenAI end-of-stream marker.
pub fn done() -> Vec<u8> {
    data(DONE)
}

/// Re-encodes a parsed event with its name and id, for relaying.
pub fn event(name: Option<&str>, id: Option<&str>, payload: &str) -> Vec<u8> {
    let one_line = |field: &&str| memchr::memchr2(b'\n', b'\r', field.as_bytes()).is_none();
    let mut out = Vec::with_capacity(payload.len() + 32);
    if let Some(name) = name.filter(one_line) {
        push_lines(&mut out, b"event: ", name);
    }
    if let Some(id) = id.filter(one_line) {
        push_lines(&mut out, b"id: ", id);
    }
    push_lines(&mut out, b"data: ", payload);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bytes() {
        assert_eq!(data("foobar"), b"data: foobar\n\n");
        assert_eq!(data("a\nb"), b"data: a\ndata: b\n\n");
        assert_eq!(done(), b"data: [DONE]\n\n");
        assert_eq!(comment("heartbeat"), b": heartbeat\n\n");
        assert_eq!(comment("x\ny"), b": x\n: y\n\n");
        assert_eq!(
            json_data(&serde_json::json!({"a":"x\ny"})),
            b"data: {\"a\":\"x\\ny\"}\n\n"
        );
        assert_eq!(
            event(Some("result"), Some("7"), "{}"),
            b"event: result\nid: 7\ndata: {}\n\n"
        );
        assert_eq!(event(Some("bad\nname"), None, "{}"), b"data: {}\n\n");
        assert_eq!(event(None, Some("a\rb"), "x"), b"data: x\n\n");
        // Every CR and LF breaks a line, as `str::split` on both did.
        assert_eq!(data("a\r\nb\rc"), b"data: a\ndata: \ndata: b\ndata: c\n\n");
        assert_eq!(data(""), b"data: \n\n");
        assert_eq!(data("é\n"), "data: é\ndata: \n\n".as_bytes());
    }
}
