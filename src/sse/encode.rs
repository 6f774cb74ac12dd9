//! Exact SSE frames. A data payload with line breaks becomes several `data:` lines,
//! so no payload can end an event early or inject a field.

use serde::Serialize;

pub const DONE: &str = "[DONE]";

/// `data: <payload>\n\n`, one `data:` line per payload line.
pub fn data(payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    for line in payload.split(['\n', '\r']) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
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
    for line in text.split(['\n', '\r']) {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// The OpenAI end-of-stream marker.
pub fn done() -> Vec<u8> {
    data(DONE)
}

/// Re-encodes a parsed event with its name and id, for relaying.
pub fn event(name: Option<&str>, id: Option<&str>, payload: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(name) = name.filter(|n| !n.contains(['\n', '\r'])) {
        out.extend_from_slice(format!("event: {name}\n").as_bytes());
    }
    if let Some(id) = id.filter(|n| !n.contains(['\n', '\r'])) {
        out.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    out.extend_from_slice(&data(payload));
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
    }
}
