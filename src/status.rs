//! The `/health` and `/api/status` bodies. Never includes a key, only whether one is set.

use crate::config::{AllowedOrigins, Config};
use crate::upstreams::Upstream;
use serde_json::{json, Value};

pub fn health(timestamp: &str) -> Value {
    json!({ "status": "ok", "timestamp": timestamp })
}

/// `key_health` tells, per upstream, how many of its keys are cooling down and disabled
/// right now (per-isolate state).
pub fn status(
    config: &Config,
    timestamp: &str,
    key_health: &dyn Fn(&Upstream) -> (usize, usize),
) -> Value {
    let openai = config.upstream("openai");
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
            // Access keys themselves are never listed here, nor counted.
            "access_keys": {
                "enabled": config.log.admin_token.is_some(),
                "cache_ttl_ms": config.key_cache_ttl_ms,
                "public_rpm": config.public_rpm,
            },
            "log_sample_rate": f64::from(config.log.sample_ppm) / 1_000_000.0,
        },
        "environment": {
            "has_api_key": openai.is_some_and(|u| !u.keys.is_empty()),
            "source_api_url": openai.map(|u| u.base_url.as_str()),
            "key_mode": match (config.auth_token.is_some(), openai.is_some_and(|u| !u.keys.is_empty())) {
                (true, _) => "access-token",
                (false, true) => "server-key",
                (false, false) => "client-key-passthrough",
            },
            "providers": config.upstreams.iter().map(|u| json!({
                "id": u.name,
                "base_url": u.base_url,
                "has_api_key": !u.keys.is_empty(),
                "model_patterns": u.patterns,
            })).collect::<Vec<_>>(),
            "upstream_timeout_ms": config.upstream_timeout_ms,
            "max_request_bytes": config.max_request_bytes,
            "max_response_bytes": config.max_response_bytes,
        },
        "upstreams_from": if config.upstreams_configured { "UPSTREAMS" } else { "legacy variables" },
        "upstreams": config.upstreams.iter().map(|u| {
            let (cooling, disabled) = key_health(u);
            json!({
                "name": u.name,
                "kind": u.kind.id,
                "host": u.host(),
                "keys": u.keys.len(),
                "keys_secret": u.keys_secret,
                "keys_cooling": cooling,
                "keys_disabled": disabled,
                "model_patterns": u.patterns,
                "model_map": u.model_map.iter().map(|(a, b)| (a.clone(), json!(b))).collect::<serde_json::Map<_, _>>(),
                "timeout_ms": u.timeout_ms.unwrap_or(config.upstream_timeout_ms),
                "weight": u.weight,
            })
        }).collect::<Vec<_>>(),
        "routes": config.routes.iter().map(|r| json!({
            "name": r.name,
            "strategy": r.strategy.as_str(),
            "targets": r.targets.iter().map(|t| format!("{}/{}", config.upstreams[t.upstream].name, t.model)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "retry": {
            "max_attempts": config.retry.max_attempts,
            "key_cooldown_ms": config.retry.key_cooldown_ms,
            "key_disable_ms": config.retry.key_disable_ms,
            "retry_max_wait_ms": config.retry.retry_max_wait_ms,
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
        let body = status(&config, "2026-01-01T00:00:00Z", &|u| {
            (usize::from(u.name == "openai"), 0)
        });
        let text = body.to_string();
        assert!(!text.contains("very-secret") && !text.contains("tok-secret"));
        assert_eq!(body["environment"]["providers"][0]["id"], "gemini");
        assert_eq!(body["environment"]["providers"][0]["has_api_key"], true);
        assert_eq!(body["environment"]["providers"][1]["has_api_key"], false);
        assert_eq!(body["environment"]["has_api_key"], true);
        assert_eq!(body["environment"]["key_mode"], "access-token");
        assert_eq!(body["features"]["fake_stream"], "always");
        assert_eq!(
            body["features"]["access_keys"],
            json!({"enabled": false, "cache_ttl_ms": 30000, "public_rpm": null})
        );
        assert_eq!(body["features"]["log_sample_rate"], 1.0);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["upstreams"][2]["name"], "openai");
        assert_eq!(body["upstreams"][2]["host"], "api.openai.com");
        assert_eq!(body["upstreams"][2]["keys"], 1);
        assert_eq!(body["upstreams"][2]["keys_cooling"], 1);
        assert_eq!(body["upstreams"][2]["keys_secret"], "OPENAI_API_KEY");
        assert_eq!(body["retry"]["max_attempts"], 3);
        assert_eq!(health("t")["status"], "ok");
    }
}
