//! `POST /v1/embeddings`: the OpenAI request as the gateway reads it, and the OpenAI answer
//! built from the vectors a native provider returned. Pure; adapters do the wire formats.

use crate::error::GatewayError;
use serde::Serialize;
use serde_json::{Map, Value};

/// OpenAI's own limit on inputs per call.
pub const MAX_INPUTS: usize = 2048;

/// Native upstream calls one embeddings request may make (each is a Workers subrequest):
/// 250 texts on DashScope, 2500 on Gemini.
pub const MAX_BATCHES: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodingFormat {
    #[default]
    Float,
    /// Little-endian float32 bytes, base64: what the Node SDK asks for by default.
    Base64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingInput {
    Texts(Vec<String>),
    /// Token arrays (`[1, 2]` or `[[1, 2], [3]]`): only an OpenAI-compatible upstream can
    /// read them, so they are passed through as they came.
    Tokens {
        count: usize,
    },
}

#[derive(Debug, Clone)]
pub struct EmbeddingRequest {
    pub body: Map<String, Value>,
    pub model: String,
    pub input: EmbeddingInput,
    pub dimensions: Option<u32>,
    pub encoding: EncodingFormat,
    /// Gemini's `taskType` (`RETRIEVAL_QUERY`, …) or DashScope's `text_type`, as the
    /// non-standard `task_type` field.
    pub task_type: Option<String>,
}

impl EmbeddingRequest {
    pub fn parse(bytes: &[u8]) -> Result<EmbeddingRequest, GatewayError> {
        let body = crate::openai::json_object(bytes, "`model` and `input`")?;
        let model = crate::openai::required_model(&body)?;
        let input = parse_input(body.get("input"))?;
        let dimensions =
            match body.get("dimensions") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().filter(|d| (1..=65_536).contains(d)).ok_or_else(
                    || {
                        GatewayError::invalid_param(
                            "`dimensions` must be a positive integer",
                            "dimensions",
                        )
                    },
                )? as u32),
            };
        let encoding = match body.get("encoding_format") {
            None | Some(Value::Null) => EncodingFormat::Float,
            Some(Value::String(f)) if f == "float" => EncodingFormat::Float,
            Some(Value::String(f)) if f == "base64" => EncodingFormat::Base64,
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "`encoding_format` must be `float` or `base64`",
                    "encoding_format",
                ))
            }
        };
        let task_type = match body.get("task_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if !t.trim().is_empty() => Some(t.trim().to_string()),
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "`task_type` must be a non-empty string",
                    "task_type",
                ))
            }
        };
        Ok(EmbeddingRequest {
            body,
            model,
            input,
            dimensions,
            encoding,
            task_type,
        })
    }

    /// The inputs as text, for native providers that cannot take token arrays.
    pub fn texts(&self, upstream_kind: &str) -> Result<&[String], GatewayError> {
        match &self.input {
            EmbeddingInput::Texts(texts) => Ok(texts),
            EmbeddingInput::Tokens { .. } => Err(GatewayError::invalid_param(
                format!(
                    "`input` as token arrays can only go to an OpenAI-compatible upstream, not to {upstream_kind}: send text"
                ),
                "input",
            )),
        }
    }

    pub fn input_count(&self) -> usize {
        match &self.input {
            EmbeddingInput::Texts(texts) => texts.len(),
            EmbeddingInput::Tokens { count } => *count,
        }
    }

    /// The body for an OpenAI-compatible upstream: as sent, with the upstream's model name.
    pub fn upstream_body(&self, upstream_model: &str) -> Map<String, Value> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(upstream_model.to_string()));
        // Only native providers understand this extension.
        body.remove("task_type");
        body
    }
}

fn parse_input(input: Option<&Value>) -> Result<EmbeddingInput, GatewayError> {
    let bad = |message: &str| GatewayError::invalid_param(message, "input");
    let input = match input {
        None | Some(Value::Null) => {
            return Err(bad("Missing required parameter: `input`"));
        }
        Some(Value::String(text)) => vec![text],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(bad("`input` must not be an empty array"));
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_u64) => {
            return Ok(EmbeddingInput::Tokens { count: 1 });
        }
        Some(Value::Array(items))
            if items.iter().all(|i| {
                i.as_array()
                    .is_some_and(|t| !t.is_empty() && t.iter().all(Value::is_u64))
            }) =>
        {
            if items.len() > MAX_INPUTS {
                return Err(bad(&format!("`input` takes at most {MAX_INPUTS} items")));
            }
            return Ok(EmbeddingInput::Tokens { count: items.len() });
        }
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(text) => texts.push(text),
                    _ => {
                        return Err(GatewayError::invalid_param(
                            format!("input[{i}] must be a string (or every item a token array)"),
                            &format!("input[{i}]"),
                        ))
                    }
                }
            }
            texts
        }
        Some(_) => {
            return Err(bad(
                "`input` must be a string, an array of strings or token arrays",
            ))
        }
    };
    if input.len() > MAX_INPUTS {
        return Err(bad(&format!("`input` takes at most {MAX_INPUTS} items")));
    }
    if let Some(i) = input.iter().position(|t| t.is_empty()) {
        return Err(GatewayError::invalid_param(
            "an input must not be an empty string",
            &format!("input[{i}]"),
        ));
    }
    Ok(EmbeddingInput::Texts(input.into_iter().cloned().collect()))
}

/// Vectors from a native provider, in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embeddings {
    /// float32, as every provider computes them (half the memory of f64).
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the provider counted, when it reports them.
    pub prompt_tokens: Option<u64>,
}

impl Embeddings {
    /// Appends another batch's vectors; token counts add up.
    pub fn extend(&mut self, other: Embeddings) {
        self.vectors.extend(other.vectors);
        self.prompt_tokens = match (self.prompt_tokens, other.prompt_tokens) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
    }

    /// The OpenAI answer, `model` being the name the client asked for.
    pub fn to_openai(&self, model: &str, encoding: EncodingFormat) -> Vec<u8> {
        #[derive(Serialize)]
        struct Item<'a> {
            object: &'static str,
            index: usize,
            embedding: Vector<'a>,
        }
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Vector<'a> {
            Float(&'a [f32]),
            Base64(String),
        }
        #[derive(Serialize)]
        struct Usage {
            prompt_tokens: u64,
            total_tokens: u64,
        }
        #[derive(Serialize)]
        struct List<'a> {
            object: &'static str,
            data: Vec<Item<'a>>,
            model: &'a str,
            usage: Usage,
        }
        let tokens = self.prompt_tokens.unwrap_or(0);
        let list = List {
            object: "list",
            data: self
                .vectors
                .iter()
                .enumerate()
                .map(|(index, vector)| Item {
                    object: "embedding",
                    index,
                    embedding: match encoding {
                        EncodingFormat::Float => Vector::Float(vector),
                        EncodingFormat::Base64 => Vector::Base64(float32_base64(vector)),
                    },
                })
                .collect(),
            model,
            usage: Usage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        };
        // Plain structs of numbers and strings always serialize.
        serde_json::to_vec(&list).unwrap_or_default()
    }
}

/// A vector as OpenAI's `base64` encoding: little-endian float32 bytes, standard base64.
pub fn float32_base64(vector: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(vector.len() * 4);
    for value in vector {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    base64(&bytes)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let sextets = [n >> 18, n >> 12, n >> 6, n];
        for (i, sextet) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(sextet & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<EmbeddingRequest, GatewayError> {
        EmbeddingRequest::parse(body.to_string().as_bytes())
    }

    fn error_param(body: Value) -> (u16, Value) {
        let error = parse(body).unwrap_err();
        (error.status(), error.to_body()["error"]["param"].clone())
    }

    #[test]
    fn inputs() {
        let one = parse(json!({"model": "m", "input": "hello"})).unwrap();
        assert_eq!(one.input, EmbeddingInput::Texts(vec!["hello".into()]));
        assert_eq!(one.encoding, EncodingFormat::Float);
        let many = parse(json!({"model": "m", "input": ["a", "b"], "dimensions": 256,
            "encoding_format": "base64", "task_type": "RETRIEVAL_QUERY", "user": "u1"}))
        .unwrap();
        assert_eq!(many.input_count(), 2);
        assert_eq!(many.dimensions, Some(256));
        assert_eq!(many.encoding, EncodingFormat::Base64);
        assert_eq!(many.task_type.as_deref(), Some("RETRIEVAL_QUERY"));
        let body = many.upstream_body("text-embedding-3-small");
        assert_eq!(body["model"], "text-embedding-3-small");
        assert_eq!(body["user"], "u1");
        assert!(body.get("task_type").is_none());

        let tokens = parse(json!({"model": "m", "input": [1, 2, 3]})).unwrap();
        assert_eq!(tokens.input, EmbeddingInput::Tokens { count: 1 });
        let token_lists = parse(json!({"model": "m", "input": [[1, 2], [3]]})).unwrap();
        assert_eq!(token_lists.input, EmbeddingInput::Tokens { count: 2 });
        let error = token_lists.texts("gemini").unwrap_err();
        assert_eq!(error.status(), 400);
        assert!(error.to_string().contains("OpenAI-compatible"));
    }

    #[test]
    fn bad_requests_name_their_field() {
        let cases = [
            (json!({"input": "x"}), "model"),
            (json!({"model": 3, "input": "x"}), "model"),
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": []}), "input"),
            (json!({"model": "m", "input": 5}), "input"),
            (json!({"model": "m", "input": ["a", 5]}), "input[1]"),
            (json!({"model": "m", "input": ["a", ""]}), "input[1]"),
            (json!({"model": "m", "input": ""}), "input[0]"),
            (
                json!({"model": "m", "input": "x", "dimensions": 0}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "x", "dimensions": "8"}),
                "dimensions",
            ),
            (
                json!({"model": "m", "input": "x", "encoding_format": "int8"}),
                "encoding_format",
            ),
            (
                json!({"model": "m", "input": "x", "task_type": 1}),
                "task_type",
            ),
        ];
        for (body, param) in cases {
            assert_eq!(error_param(body.clone()), (400, json!(param)), "{body}");
        }
        let too_many: Vec<String> = (0..=MAX_INPUTS).map(|i| i.to_string()).collect();
        assert_eq!(
            error_param(json!({"model": "m", "input": too_many})),
            (400, json!("input"))
        );
        for raw in ["", "  ", "[1]", "{"] {
            assert_eq!(
                EmbeddingRequest::parse(raw.as_bytes())
                    .unwrap_err()
                    .status(),
                400
            );
        }
    }

    #[test]
    fn base64_is_little_endian_float32() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // 1.0f32 = 00 00 80 3f, -2.0f32 = 00 00 00 c0
        assert_eq!(
            float32_base64(&[1.0, -2.0]),
            base64(&[0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0])
        );
    }

    #[test]
    fn answers_in_openai_shape() {
        let mut embeddings = Embeddings {
            vectors: vec![vec![0.5, -0.25]],
            prompt_tokens: Some(3),
        };
        embeddings.extend(Embeddings {
            vectors: vec![vec![1.0, 0.0]],
            prompt_tokens: None,
        });
        let float: Value =
            serde_json::from_slice(&embeddings.to_openai("emb", EncodingFormat::Float)).unwrap();
        assert_eq!(
            float,
            json!({"object": "list", "data": [
                {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
                {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]}],
                "model": "emb", "usage": {"prompt_tokens": 3, "total_tokens": 3}})
        );
        let b64: Value =
            serde_json::from_slice(&embeddings.to_openai("emb", EncodingFormat::Base64)).unwrap();
        assert_eq!(b64["data"][1]["embedding"], float32_base64(&[1.0, 0.0]));
        let none = Embeddings::default();
        let empty: Value =
            serde_json::from_slice(&none.to_openai("emb", EncodingFormat::Float)).unwrap();
        assert_eq!(empty["usage"]["total_tokens"], 0);
    }
}
