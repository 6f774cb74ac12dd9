//! The envelope every `chat.completion.chunk` of one response shares.

use crate::sse;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct ChunkMeta {
    pub id: String,
    pub created: i64,
    pub model: String,
    pub system_fingerprint: Option<Value>,
    /// With `stream_options.include_usage`, every chunk carries `"usage": null` and a
    /// final chunk with empty `choices` carries the usage, as OpenAI does.
    pub include_usage: bool,
}

impl ChunkMeta {
    pub fn chunk(&self, choices: Vec<Value>) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), Value::String(self.id.clone()));
        object.insert(
            "object".into(),
            Value::String("chat.completion.chunk".into()),
        );
        object.insert("created".into(), Value::from(self.created));
        object.insert("model".into(), Value::String(self.model.clone()));
        if let Some(fingerprint) = &self.system_fingerprint {
            object.insert("system_fingerprint".into(), fingerprint.clone());
        }
        object.insert("choices".into(), Value::Array(choices));
        if self.include_usage {
            object.insert("usage".into(), Value::Null);
        }
        Value::Object(object)
    }

    /// One choice delta.
    pub fn delta(&self, index: u32, delta: Value, finish_reason: Option<&str>) -> Value {
        self.chunk(vec![json!({
            "index": index,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        })])
    }

    /// The closing usage chunk (`choices: []`).
    pub fn usage_chunk(&self, usage: Value) -> Value {
        let mut chunk = self.chunk(Vec::new());
        chunk["usage"] = usage;
        chunk
    }
}

/// One `chat.completion.chunk` of a translated stream, on its way to its frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    Json(Value),
    /// A text delta of one choice (`field`: `content` or `reasoning_content`), the bulk of
    /// a stream: written straight into its frame by `TextFrames`.
    Text {
        index: u32,
        field: &'static str,
        text: String,
    },
}

impl Chunk {
    /// The choice it is a delta of.
    pub fn index(&self) -> Option<u64> {
        match self {
            Chunk::Json(chunk) => chunk["choices"][0]["index"].as_u64(),
            Chunk::Text { index, .. } => Some(u64::from(*index)),
        }
    }

    /// As a chunk object.
    pub fn into_json(self, meta: &ChunkMeta) -> Value {
        match self {
            Chunk::Json(chunk) => chunk,
            Chunk::Text { index, field, text } => meta.delta(index, json!({ field: text }), None),
        }
    }
}

/// The chunk envelope cut around its `choices`, so that a text delta is written straight
/// into its frame: a `Value` per delta, serialized, costs more than the frame itself.
#[derive(Debug, Clone, Default)]
pub struct TextFrames {
    /// The envelope the cut was made from (re-cut if it changes, as a DashScope chunk id
    /// does before the first chunk).
    cut_from: Option<ChunkMeta>,
    /// The envelope up to `"choices":[`, and what follows the choices.
    prefix: String,
    suffix: String,
}

impl TextFrames {
    /// The frame of one chunk.
    pub fn frame(&mut self, meta: &ChunkMeta, chunk: &Chunk) -> Vec<u8> {
        match chunk {
            Chunk::Json(chunk) => sse::json_data(chunk),
            Chunk::Text { index, field, text } => self.text(meta, *index, field, text),
        }
    }

    /// The frame of a text delta.
    pub fn text(&mut self, meta: &ChunkMeta, index: u32, field: &str, piece: &str) -> Vec<u8> {
        if self.cut_from.as_ref() != Some(meta) {
            self.cut(meta);
        }
        if self.prefix.is_empty() {
            return sse::json_data(&meta.delta(index, json!({ field: piece }), None));
        }
        // Written piece by piece: `format!` and a separate escaped string per frame cost more
        // than the frame.
        let mut out = Vec::with_capacity(self.prefix.len() + self.suffix.len() + piece.len() + 96);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(b"{\"index\":");
        // Writing into a Vec cannot fail; the fallbacks keep the frame valid JSON anyway.
        if serde_json::to_writer(&mut out, &index).is_err() {
            out.push(b'0');
        }
        out.extend_from_slice(b",\"delta\":{");
        if serde_json::to_writer(&mut out, field).is_err() {
            out.extend_from_slice(b"\"content\"");
        }
        out.push(b':');
        if serde_json::to_writer(&mut out, piece).is_err() {
            out.extend_from_slice(b"\"\"");
        }
        out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null}");
        out.extend_from_slice(self.suffix.as_bytes());
        out.extend_from_slice(b"\n\n");
        out
    }

    fn cut(&mut self, meta: &ChunkMeta) {
        let envelope = serde_json::to_string(&meta.chunk(Vec::new())).unwrap_or_default();
        (self.prefix, self.suffix) = match envelope.rfind("\"choices\":[]") {
            Some(at) => {
                let cut = at + "\"choices\":[".len();
                (envelope[..cut].to_string(), envelope[cut..].to_string())
            }
            None => (String::new(), String::new()),
        };
        self.cut_from = Some(meta.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_equal_the_generic_encoding() {
        let mut meta = ChunkMeta {
            id: "chatcmpl-1".into(),
            created: 7,
            model: "m".into(),
            system_fingerprint: Some(json!("fp")),
            include_usage: true,
        };
        let mut frames = TextFrames::default();
        for (index, field, piece) in [
            (0, "content", "plain"),
            (
                2,
                "reasoning_content",
                "quotes \" and \\ and \n and \u{1F30D}",
            ),
            (1, "content", ""),
        ] {
            let chunk = Chunk::Text {
                index,
                field,
                text: piece.into(),
            };
            assert_eq!(
                frames.frame(&meta, &chunk),
                sse::json_data(&chunk.clone().into_json(&meta)),
                "{piece}"
            );
        }
        // The envelope changes (a chunk id fixed later): frames follow it.
        meta.id = "chatcmpl-2".into();
        let chunk = Chunk::Text {
            index: 0,
            field: "content",
            text: "x".into(),
        };
        assert_eq!(
            frames.frame(&meta, &chunk),
            sse::json_data(&chunk.into_json(&meta))
        );
    }
}
