//! The envelope every `chat.completion.chunk` of one response shares.

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
