//! The `/health` and `/api/status` bodies. Never includes a key, only whether one is set.

use crate::config::{AllowedOrigins, Config};
use serde_json::{json, Value};

pub fn health(timestamp: &str) -> Value {
    json!({ "status": "ok", "timestamp": timestamp })
}

pub fn status(config: &Config, timestamp: &str) -> Value {
    let openai = config.provider("openai");
    json!({
        "status": "ok",
        "message": "edge-llm-gateway is running",
        "timestamp": timestamp,
        "version": crate::VERSION,
        "git_revision": crate::GIT_REVISION,
        "features": {
            "chat_completions": true,
            "streaming_passthrough": true,
            "fake_stream": config.fake_stream.describe(),
            "heartbeat_interval_ms": config.heartbeat_interval_ms,
            "fake_stream_chunk_chars": config.fake_stream_chunk_chars,
            "cors": match &config.allowed_origins {
                AllowedOrigins::Any => json!("*"),
                AllowedOrigins::List(list) => json!(list),
            },
            "access_token_required": config.auth_token.is_some(),
        },
        "environment": {
            "has_api_key": openai.is_some_and(|p| p.api_key.is_some()),
            "source_api_url": openai.map(|p| p.base_url.as_str()),
            "key_mode": match (config.auth_token.is_some(), openai.is_some_and(|p| p.api_key.is_some())) {
                (true, _) => "access-token",
                (false, true) => "server-key",
                (false, false) => "client-key-passthrough",
            },
            "providers": config.providers.iter().map(|p| json!({
                "id": p.spec.id,
                "base_url": p.base_url,
                "has_api_key": p.api_key.is_some(),
                "model_patterns": p.patterns,
            })).collect::<Vec<_>>(),
            "upstream_timeout_ms": config.upstream_timeout_ms,
            "max_request_bytes": config.max_request_bytes,
            "max_response_bytes": config.max_response_bytes,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_never_shows_keys() {
        let config = Config::from_lookup(|name| match name {
            "OPENAI_API_KEY" => Some("sk-very-secret".into()),
            "GEMINI_API_KEY" => Some("gm-very-secret".into()),
            "AUTH_TOKEN" => Some("tok-secret".into()),
            _ => None,
        })
        .unwrap();
        let body = status(&config, "2026-01-01T00:00:00Z");
        let text = body.to_string();
        assert!(!text.contains("very-secret") && !text.contains("tok-secret"));
        assert_eq!(body["environment"]["providers"][0]["id"], "gemini");
        assert_eq!(body["environment"]["providers"][0]["has_api_key"], true);
        assert_eq!(body["environment"]["providers"][1]["has_api_key"], false);
        assert_eq!(body["environment"]["has_api_key"], true);
        assert_eq!(body["environment"]["key_mode"], "access-token");
        assert_eq!(body["features"]["fake_stream"], "always");
        assert_eq!(body["status"], "ok");
        assert_eq!(health("t")["status"], "ok");
    }
}
