//! Settings from Worker vars and secrets, parsed and validated in one place.
//! `Config::from_lookup` takes any `name -> value` function so it is tested natively.

use crate::error::GatewayError;
use crate::providers::{
    provider_by_id, strip_base_suffixes, Provider, ProviderOptions, ProviderSpec, PROVIDERS,
};

pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 3000;
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 300_000;
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// The largest upstream answer the gateway reads; an isolate has 128 MB in all.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_FAKE_STREAM_CHUNK_CHARS: usize = 12;

/// When a `stream: true` request is served by a non-streaming upstream call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeStreamMode {
    Off,
    Always,
    /// Model patterns (`*` matches any run of characters), compared case-insensitively.
    Models(Vec<String>),
}

impl FakeStreamMode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "off" | "false" | "no" | "0" | "none" => return Ok(FakeStreamMode::Off),
            "always" | "on" | "true" | "yes" | "1" | "*" => return Ok(FakeStreamMode::Always),
            _ => {}
        }
        let patterns: Vec<String> = split_list(trimmed);
        if patterns.is_empty() {
            return Err(
                "expected `off`, `always`, or a comma-separated list of model patterns".into(),
            );
        }
        Ok(FakeStreamMode::Models(patterns))
    }

    pub fn applies_to(&self, model: &str) -> bool {
        match self {
            FakeStreamMode::Off => false,
            FakeStreamMode::Always => true,
            FakeStreamMode::Models(patterns) => patterns.iter().any(|p| glob_match(p, model)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            FakeStreamMode::Off => "off".into(),
            FakeStreamMode::Always => "always".into(),
            FakeStreamMode::Models(patterns) => patterns.join(","),
        }
    }
}

/// Which browser origins may call the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    /// Exact origins, or patterns such as `https://*.example.com`.
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let entries = split_list(raw);
        if entries.is_empty() {
            return Err("expected `*` or a comma-separated list of origins".into());
        }
        if entries.iter().any(|e| e == "*") {
            return Ok(AllowedOrigins::Any);
        }
        let mut origins = Vec::with_capacity(entries.len());
        for entry in entries {
            let origin = entry.trim_end_matches('/').to_ascii_lowercase();
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(format!(
                    "`{entry}` is not an origin (expected e.g. https://app.example.com)"
                ));
            }
            origins.push(origin);
        }
        Ok(AllowedOrigins::List(origins))
    }

    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => {
                let origin = origin.to_ascii_lowercase();
                list.iter().any(|allowed| glob_match(allowed, &origin))
            }
        }
    }
}

/// One provider's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    pub spec: &'static ProviderSpec,
    /// Base URL without a trailing slash or version suffix.
    pub base_url: String,
    /// Server-side key (`<PREFIX>_API_KEY` secret).
    pub api_key: Option<String>,
    /// Models listed by `/v1/models` even when the upstream has no list.
    pub models: Vec<String>,
    /// Which model names this provider serves.
    pub patterns: Vec<String>,
}

impl ProviderSettings {
    pub fn provider(&self) -> &'static dyn Provider {
        // Settings are only ever built from PROVIDERS, so the id is always found.
        provider_by_id(self.spec.id).unwrap_or(PROVIDERS[PROVIDERS.len() - 1])
    }

    pub fn serves(&self, model: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, model))
    }

    pub fn key_var(&self) -> String {
        format!("{}_API_KEY", self.spec.env_prefix)
    }
}

/// The request log (D1 binding `DB`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `LOG_REQUESTS` (default true).
    pub enabled: bool,
    /// `LOG_BODIES` (default true): store request and response bodies.
    pub bodies: bool,
    /// `LOG_MAX_BODY_BYTES` (default 65536): longer bodies are cut.
    pub max_body_bytes: usize,
    /// `MAX_REQUESTS_HISTORY` (default 1000): rows kept, oldest dropped.
    pub max_rows: i64,
    /// `ADMIN_TOKEN` secret: enables the dashboard and its API.
    pub admin_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub log: LogSettings,
    /// In routing priority order, as in `PROVIDERS`.
    pub providers: Vec<ProviderSettings>,
    pub provider_options: ProviderOptions,
    pub heartbeat_interval_ms: u64,
    pub fake_stream: FakeStreamMode,
    pub fake_stream_chunk_chars: usize,
    pub fake_stream_chunk_delay_ms: u64,
    pub allowed_origins: AllowedOrigins,
    /// Proxy access token clients must present when set.
    pub auth_token: Option<String>,
    pub upstream_timeout_ms: u64,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
}

impl Config {
    /// Reads every setting through `lookup`; empty values count as unset. All problems are
    /// reported together, each naming its variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, GatewayError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut problems: Vec<String> = Vec::new();

        let mut providers = Vec::with_capacity(PROVIDERS.len());
        for provider in PROVIDERS {
            let spec = provider.spec();
            let base_url = match get(spec.base_url_var) {
                None => spec.default_base_url.to_string(),
                Some(raw) => match normalize_base_url(&raw) {
                    Ok(url) => strip_base_suffixes(&url, spec.base_url_suffixes),
                    Err(why) => {
                        problems.push(format!("{}: {why}", spec.base_url_var));
                        String::new()
                    }
                },
            };
            let list = |suffix: &str, default: &[&str]| {
                get(&format!("{}_{suffix}", spec.env_prefix))
                    .map(|raw| split_list(&raw))
                    .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
            };
            providers.push(ProviderSettings {
                spec,
                base_url,
                api_key: get(&format!("{}_API_KEY", spec.env_prefix)),
                models: list("MODELS", spec.default_models),
                patterns: list("MODEL_PATTERNS", spec.default_patterns),
            });
        }

        let mut number = |name: &str, default: u64, min: u64, max: u64| -> u64 {
            match get(name) {
                None => default,
                Some(raw) => match raw.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => n,
                    _ => {
                        problems.push(format!(
                            "{name}: `{raw}` is not a whole number from {min} to {max}"
                        ));
                        default
                    }
                },
            }
        };
        let heartbeat_interval_ms = number(
            "HEARTBEAT_INTERVAL_MS",
            DEFAULT_HEARTBEAT_INTERVAL_MS,
            50,
            600_000,
        );
        let upstream_timeout_ms = number(
            "UPSTREAM_TIMEOUT_MS",
            DEFAULT_UPSTREAM_TIMEOUT_MS,
            100,
            3_600_000,
        );
        let max_request_bytes = number(
            "MAX_REQUEST_BYTES",
            DEFAULT_MAX_REQUEST_BYTES as u64,
            1024,
            100 * 1024 * 1024,
        ) as usize;
        let max_response_bytes = number(
            "MAX_RESPONSE_BYTES",
            DEFAULT_MAX_RESPONSE_BYTES as u64,
            1024,
            100 * 1024 * 1024,
        ) as usize;
        let fake_stream_chunk_chars = number(
            "FAKE_STREAM_CHUNK_CHARS",
            DEFAULT_FAKE_STREAM_CHUNK_CHARS as u64,
            1,
            10_000,
        ) as usize;
        let fake_stream_chunk_delay_ms = number("FAKE_STREAM_CHUNK_DELAY_MS", 0, 0, 10_000);

        let log_max_body_bytes = number("LOG_MAX_BODY_BYTES", 65_536, 256, 1_000_000) as usize;
        let max_rows = number("MAX_REQUESTS_HISTORY", 1000, 1, 1_000_000) as i64;
        let mut flag = |name: &str, default: bool| match get(name).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => true,
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => false,
            Some(v) => {
                problems.push(format!("{name}: `{v}` is not true or false"));
                default
            }
        };
        let log = LogSettings {
            enabled: flag("LOG_REQUESTS", true),
            bodies: flag("LOG_BODIES", true),
            max_body_bytes: log_max_body_bytes,
            max_rows,
            admin_token: None,
        };
        let fake_stream = match get("FAKE_STREAM") {
            None => FakeStreamMode::Always,
            Some(raw) => FakeStreamMode::parse(&raw).unwrap_or_else(|why| {
                problems.push(format!("FAKE_STREAM: {why}"));
                FakeStreamMode::Off
            }),
        };
        let allowed_origins = match get("ALLOWED_ORIGINS") {
            None => AllowedOrigins::Any,
            Some(raw) => AllowedOrigins::parse(&raw).unwrap_or_else(|why| {
                problems.push(format!("ALLOWED_ORIGINS: {why}"));
                AllowedOrigins::List(Vec::new())
            }),
        };

        if !problems.is_empty() {
            return Err(GatewayError::Config(problems.join("; ")));
        }
        Ok(Config {
            log: LogSettings {
                admin_token: get("ADMIN_TOKEN"),
                ..log
            },
            providers,
            provider_options: ProviderOptions {
                gemini_safety_threshold: get("GEMINI_SAFETY_THRESHOLD")
                    .unwrap_or_else(|| "auto".into()),
            },
            heartbeat_interval_ms,
            fake_stream,
            fake_stream_chunk_chars,
            fake_stream_chunk_delay_ms,
            allowed_origins,
            auth_token: get("AUTH_TOKEN"),
            upstream_timeout_ms,
            max_request_bytes,
            max_response_bytes,
        })
    }

    pub fn provider(&self, id: &str) -> Option<&ProviderSettings> {
        self.providers.iter().find(|p| p.spec.id == id)
    }

    /// Which provider serves `model`, and the model name it knows: an explicit
    /// `provider/model` prefix wins, else the first provider whose patterns match.
    pub fn route_model<'a>(
        &self,
        model: &'a str,
    ) -> Result<(&ProviderSettings, &'a str), GatewayError> {
        if let Some((prefix, rest)) = model.split_once('/') {
            if let Some(settings) = self
                .providers
                .iter()
                .find(|p| p.spec.id.eq_ignore_ascii_case(prefix))
            {
                if rest.trim().is_empty() {
                    return Err(GatewayError::InvalidRequest {
                        message: format!("The model `{model}` names the provider but no model"),
                        param: Some("model".into()),
                        code: Some("model_not_found"),
                    });
                }
                return Ok((settings, rest));
            }
        }
        self.providers
            .iter()
            .find(|p| p.serves(model))
            .map(|p| (p, model))
            .ok_or_else(|| GatewayError::InvalidRequest {
                message: format!(
                    "The model `{model}` is not served by this gateway: no provider's model patterns match it (use a `provider/model` prefix or set <PROVIDER>_MODEL_PATTERNS)"
                ),
                param: Some("model".into()),
                code: Some("model_not_found"),
            })
    }
}

/// Checks a base URL and removes trailing slashes; each provider then removes the
/// version suffixes users often include (`/v1`, `/v1beta`, `/api/v1`).
pub fn normalize_base_url(raw: &str) -> Result<String, String> {
    let lower = raw.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!("`{raw}` must start with http:// or https://"));
    }
    if raw.contains(char::is_whitespace) || raw.contains('?') || raw.contains('#') {
        return Err(format!(
            "`{raw}` must be a plain base URL (no spaces, query or fragment)"
        ));
    }
    let host_part = raw.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    if host_part.is_empty() || host_part.starts_with('/') {
        return Err(format!("`{raw}` has no host"));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// Splits a comma- (or whitespace-) separated list, dropping empty entries.
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Case-insensitive glob match where `*` matches any run of characters (including none).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let text: Vec<char> = text.to_lowercase().chars().collect();
    // Iterative matcher with backtracking to the last star: linear in practice, no recursion.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<usize> = None;
    let mut star_text = 0usize;
    while t < text.len() {
        if p < pattern.len() && pattern[p] != '*' && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            star_text = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            star_text += 1;
            t = star_text;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == '*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, GatewayError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.provider("openai").unwrap().base_url,
            "https://api.openai.com"
        );
        assert_eq!(
            c.provider("gemini").unwrap().base_url,
            "https://generativelanguage.googleapis.com"
        );
        assert_eq!(
            c.provider("dashscope").unwrap().base_url,
            "https://dashscope.aliyuncs.com"
        );
        assert_eq!(c.heartbeat_interval_ms, 3000);
        assert_eq!(c.fake_stream, FakeStreamMode::Always);
        assert_eq!(c.allowed_origins, AllowedOrigins::Any);
        assert_eq!(c.auth_token, None);
        assert!(c.providers.iter().all(|p| p.api_key.is_none()));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = config(&[("OPENAI_API_KEY", "  "), ("AUTH_TOKEN", "")]).unwrap();
        assert_eq!(c.provider("openai").unwrap().api_key, None);
        assert_eq!(c.auth_token, None);
    }

    #[test]
    fn base_url_forms() {
        for (raw, want) in [
            ("https://api.example.com", "https://api.example.com"),
            ("https://api.example.com/", "https://api.example.com"),
            ("https://api.example.com/v1", "https://api.example.com"),
            ("https://api.example.com/v1/", "https://api.example.com"),
            (
                "http://127.0.0.1:9000/openai/v1",
                "http://127.0.0.1:9000/openai",
            ),
        ] {
            let c = config(&[("SOURCE_API_URL", raw)]).unwrap();
            assert_eq!(c.provider("openai").unwrap().base_url, want, "{raw}");
        }
        assert_eq!(
            normalize_base_url("https://x.dev/api/v1/").unwrap(),
            "https://x.dev/api/v1"
        );
        for bad in [
            "ftp://x",
            "api.openai.com",
            "https://",
            "https://a b",
            "https://x?y=1",
        ] {
            assert!(normalize_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_settings_are_all_named() {
        let err = config(&[
            ("HEARTBEAT_INTERVAL_MS", "fast"),
            ("SOURCE_API_URL", "nope"),
            ("ALLOWED_ORIGINS", "example.com"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("HEARTBEAT_INTERVAL_MS"), "{text}");
        assert!(text.contains("SOURCE_API_URL"), "{text}");
        assert!(text.contains("ALLOWED_ORIGINS"), "{text}");
        assert_eq!(err.status(), 500);
    }

    #[test]
    fn log_settings() {
        let c = config(&[]).unwrap();
        assert!(c.log.enabled && c.log.bodies);
        assert_eq!(
            (
                c.log.max_rows,
                c.log.max_body_bytes,
                c.log.admin_token.clone()
            ),
            (1000, 65_536, None)
        );
        let c = config(&[
            ("LOG_BODIES", "false"),
            ("MAX_REQUESTS_HISTORY", "5"),
            ("ADMIN_TOKEN", "adm"),
        ])
        .unwrap();
        assert!(!c.log.bodies);
        assert_eq!(c.log.max_rows, 5);
        assert_eq!(c.log.admin_token.as_deref(), Some("adm"));
        assert!(config(&[("LOG_REQUESTS", "maybe")])
            .unwrap_err()
            .to_string()
            .contains("LOG_REQUESTS"));
    }

    #[test]
    fn heartbeat_range_is_enforced() {
        assert!(config(&[("HEARTBEAT_INTERVAL_MS", "0")]).is_err());
        assert_eq!(
            config(&[("HEARTBEAT_INTERVAL_MS", "200")])
                .unwrap()
                .heartbeat_interval_ms,
            200
        );
    }

    #[test]
    fn fake_stream_modes() {
        assert_eq!(FakeStreamMode::parse("off").unwrap(), FakeStreamMode::Off);
        assert_eq!(
            FakeStreamMode::parse("ALWAYS").unwrap(),
            FakeStreamMode::Always
        );
        let mode = FakeStreamMode::parse("o1*, gemini-2.5-pro").unwrap();
        assert!(mode.applies_to("o1-preview"));
        assert!(mode.applies_to("O1"));
        assert!(mode.applies_to("gemini-2.5-pro"));
        assert!(!mode.applies_to("gemini-2.5-pro-exp"));
        assert!(!mode.applies_to("gpt-4o"));
        assert!(!FakeStreamMode::Off.applies_to("o1"));
        assert!(FakeStreamMode::Always.applies_to("anything"));
        assert!(FakeStreamMode::parse(" , ").is_err());
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", ""));
        assert!(glob_match("gpt-*", "gpt-4o"));
        assert!(glob_match("*mini*", "gpt-4o-mini-2024"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match(
            "https://*.example.com",
            "https://app.example.com"
        ));
        assert!(!glob_match("https://*.example.com", "https://example.org"));
        assert!(glob_match("模型*", "模型一"));
    }

    #[test]
    fn origins() {
        let list = AllowedOrigins::parse("https://a.example.com, http://127.0.0.1:3000/").unwrap();
        assert!(list.allows("https://a.example.com"));
        assert!(list.allows("HTTP://127.0.0.1:3000"));
        assert!(!list.allows("https://b.example.com"));
        assert!(!list.allows("null"));
        assert_eq!(
            AllowedOrigins::parse("*, https://x.y").unwrap(),
            AllowedOrigins::Any
        );
    }
}
