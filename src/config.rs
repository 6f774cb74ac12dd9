//! Settings from Worker vars and secrets, parsed and validated in one place.
//! `Config::from_lookup` takes any `name -> value` function so it is tested natively.

use crate::adapters::ProviderOptions;
use crate::dialects::UnsupportedTools;
use crate::error::GatewayError;
use crate::upstreams::{
    demo_upstream, legacy_upstreams, parse_routes, parse_upstreams, ModelRoute, Upstream,
};
pub use crate::upstreams::{glob_match, normalize_base_url, split_list, FakeStreamMode};

pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 3000;
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 300_000;
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;
/// The largest upstream answer the gateway reads; an isolate has 128 MB in all.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
pub const DEFAULT_FAKE_STREAM_CHUNK_CHARS: usize = 12;

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

/// How hard a call tries before the client gets its error (see `crate::router`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// `MAX_ATTEMPTS` (default 3): upstream requests per call, over keys and targets.
    pub max_attempts: u32,
    /// `KEY_COOLDOWN_MS` (default 60000): a 429 without `retry-after` rests its key this long.
    pub key_cooldown_ms: u64,
    /// `KEY_DISABLE_MS` (default 600000): a key answered with 401/403 is skipped this long.
    pub key_disable_ms: u64,
    /// `RETRY_MAX_WAIT_MS` (default 10000): the longest wait before retrying the same key.
    pub retry_max_wait_ms: u64,
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
    /// `LOG_SAMPLE_RATE` (0–1, default 1) in parts per million: the share of successful
    /// calls written; errors are always written.
    pub sample_ppm: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub log: LogSettings,
    /// `UNSUPPORTED_TOOLS`: drop (default) or refuse hosted/server tools no upstream runs.
    pub unsupported_tools: UnsupportedTools,
    /// `RESPONSES_TTL_HOURS`: how long a stored Response can be read and continued.
    pub responses_ttl_ms: u64,
    /// In routing priority order: the first whose patterns match a model serves it.
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<ModelRoute>,
    pub retry: RetrySettings,
    /// Whether the upstreams come from `UPSTREAMS` (else from the legacy variables).
    pub upstreams_configured: bool,
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
    /// `KEY_CACHE_TTL_MS` (default 30000): how long an isolate trusts an access key it read.
    pub key_cache_ttl_ms: u64,
    /// `PUBLIC_RPM`: requests per minute per client IP in public mode (no `AUTH_TOKEN`).
    pub public_rpm: Option<u64>,
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

        let (mut upstreams, upstreams_configured) = match get("UPSTREAMS") {
            Some(raw) => (
                parse_upstreams(&raw, &|name| get(name), &mut problems),
                true,
            ),
            None => (legacy_upstreams(&|name| get(name), &mut problems), false),
        };
        let demo = match get("DEMO_UPSTREAM").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => true,
            Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => false,
            Some(v) => {
                problems.push(format!("DEMO_UPSTREAM: `{v}` is not true or false"));
                false
            }
        };
        if demo && !upstreams.iter().any(|u| u.kind.id == "demo") {
            // Before a catch-all upstream, which would otherwise take the demo models.
            let at = upstreams
                .iter()
                .position(|u| u.patterns.iter().any(|p| p == "*"))
                .unwrap_or(upstreams.len());
            upstreams.insert(at, demo_upstream());
        }
        let routes = match get("ROUTES") {
            Some(raw) => parse_routes(&raw, &upstreams, &mut problems),
            None => Vec::new(),
        };

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
        let responses_ttl_ms = number("RESPONSES_TTL_HOURS", 24, 1, 8760) * 3_600_000;
        let demo_think_ms = number("DEMO_THINK_MS", 1000, 0, 60_000);
        let key_cache_ttl_ms = number("KEY_CACHE_TTL_MS", 30_000, 0, 3_600_000);
        let public_rpm = get("PUBLIC_RPM")
            .is_some()
            .then(|| number("PUBLIC_RPM", 0, 1, 1_000_000));
        let retry = RetrySettings {
            max_attempts: number("MAX_ATTEMPTS", 3, 1, 10) as u32,
            key_cooldown_ms: number("KEY_COOLDOWN_MS", 60_000, 0, 86_400_000),
            key_disable_ms: number("KEY_DISABLE_MS", 600_000, 0, 86_400_000),
            retry_max_wait_ms: number("RETRY_MAX_WAIT_MS", 10_000, 0, 600_000),
        };

        let log_max_body_bytes = number("LOG_MAX_BODY_BYTES", 65_536, 256, 1_000_000) as usize;
        let max_rows = number("MAX_REQUESTS_HISTORY", 1000, 1, 1_000_000) as i64;
        let sample_ppm = match get("LOG_SAMPLE_RATE") {
            None => 1_000_000,
            Some(raw) => match raw.parse::<f64>() {
                Ok(rate) if (0.0..=1.0).contains(&rate) => (rate * 1_000_000.0).round() as u32,
                _ => {
                    problems.push(format!(
                        "LOG_SAMPLE_RATE: `{raw}` is not a number from 0 to 1"
                    ));
                    1_000_000
                }
            },
        };
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
            sample_ppm,
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
        let unsupported_tools = UnsupportedTools::parse(get("UNSUPPORTED_TOOLS").as_deref())
            .unwrap_or_else(|why| {
                problems.push(why);
                UnsupportedTools::Drop
            });
        let allowed_origins = match get("ALLOWED_ORIGINS") {
            None => AllowedOrigins::Any,
            Some(raw) => AllowedOrigins::parse(&raw).unwrap_or_else(|why| {
                problems.push(format!("ALLOWED_ORIGINS: {why}"));
                AllowedOrigins::List(Vec::new())
            }),
        };

        if get("AUTH_TOKEN").is_some_and(|t| crate::keys::is_access_key(&t)) {
            problems.push(format!(
                "AUTH_TOKEN must not start with `{}`: that prefix marks access keys",
                crate::keys::KEY_PREFIX
            ));
        }
        if !problems.is_empty() {
            return Err(GatewayError::Config(problems.join("; ")));
        }
        Ok(Config {
            log: LogSettings {
                admin_token: get("ADMIN_TOKEN"),
                ..log
            },
            upstreams,
            routes,
            retry,
            upstreams_configured,
            provider_options: ProviderOptions {
                gemini_safety_threshold: get("GEMINI_SAFETY_THRESHOLD")
                    .unwrap_or_else(|| "auto".into()),
                demo_think_ms,
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
            unsupported_tools,
            responses_ttl_ms,
            key_cache_ttl_ms,
            public_rpm,
        })
    }

    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// Every configured key, for the scrubber.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.upstreams
            .iter()
            .flat_map(|u| u.keys.iter().map(String::as_str))
            .chain(self.auth_token.as_deref())
            .chain(self.log.admin_token.as_deref())
    }
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
    fn access_key_settings() {
        let defaults = config(&[]).unwrap();
        assert_eq!(
            (defaults.key_cache_ttl_ms, defaults.public_rpm),
            (30_000, None)
        );
        assert_eq!(defaults.log.sample_ppm, 1_000_000);
        let sampled = config(&[("LOG_SAMPLE_RATE", "0.25")]).unwrap();
        assert_eq!(sampled.log.sample_ppm, 250_000);
        assert!(config(&[("LOG_SAMPLE_RATE", "1.5")])
            .unwrap_err()
            .to_string()
            .contains("LOG_SAMPLE_RATE"));
        let set = config(&[("KEY_CACHE_TTL_MS", "0"), ("PUBLIC_RPM", "60")]).unwrap();
        assert_eq!((set.key_cache_ttl_ms, set.public_rpm), (0, Some(60)));
        for (name, value) in [
            ("PUBLIC_RPM", "0"),
            ("PUBLIC_RPM", "many"),
            ("KEY_CACHE_TTL_MS", "-1"),
            ("AUTH_TOKEN", "sk-gw-looks-like-an-access-key"),
        ] {
            let error = config(&[(name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{name}={value}");
        }
    }

    #[test]
    fn the_demo_upstream_is_on_only_when_asked() {
        let names = |c: &Config| {
            c.upstreams
                .iter()
                .map(|u| u.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&config(&[]).unwrap()),
            vec!["gemini", "dashscope", "openai"]
        );
        let on = config(&[("DEMO_UPSTREAM", "true"), ("DEMO_THINK_MS", "250")]).unwrap();
        // Before the catch-all, which would otherwise take the demo models.
        assert_eq!(names(&on), vec!["gemini", "dashscope", "demo", "openai"]);
        assert_eq!(on.provider_options.demo_think_ms, 250);
        let first = crate::router::candidates(&on, "demo-chat", &mut || 0.0).unwrap();
        assert_eq!(on.upstreams[first[0].upstream].name, "demo");
        // Listed by /v1/models even with an access token and no key.
        let guarded = config(&[("DEMO_UPSTREAM", "1"), ("AUTH_TOKEN", "t")]).unwrap();
        assert!(crate::models::listed_upstreams(&guarded)
            .iter()
            .any(|u| u.name == "demo"));
        let upstreams = r#"[{"name":"any","kind":"openai","base_url":"https://x.test/v1"}]"#;
        let configured = config(&[("DEMO_UPSTREAM", "on"), ("UPSTREAMS", upstreams)]).unwrap();
        assert_eq!(names(&configured), vec!["demo", "any"]);
        let own = r#"[{"name":"play","kind":"demo"}]"#;
        let explicit = config(&[("DEMO_UPSTREAM", "true"), ("UPSTREAMS", own)]).unwrap();
        assert_eq!(
            names(&explicit),
            vec!["play"],
            "a configured demo upstream is not doubled"
        );
        let error = config(&[("DEMO_UPSTREAM", "maybe")]).unwrap_err();
        assert!(error.to_string().contains("DEMO_UPSTREAM"));
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.upstream("openai").unwrap().base_url,
            "https://api.openai.com/v1"
        );
        assert_eq!(
            c.upstream("gemini").unwrap().base_url,
            "https://generativelanguage.googleapis.com"
        );
        assert_eq!(
            c.upstream("dashscope").unwrap().base_url,
            "https://dashscope.aliyuncs.com"
        );
        assert!(!c.upstreams_configured && c.routes.is_empty());
        assert_eq!(
            c.retry,
            RetrySettings {
                max_attempts: 3,
                key_cooldown_ms: 60_000,
                key_disable_ms: 600_000,
                retry_max_wait_ms: 10_000
            }
        );
        assert_eq!(c.heartbeat_interval_ms, 3000);
        assert_eq!(c.fake_stream, FakeStreamMode::Always);
        assert_eq!(c.allowed_origins, AllowedOrigins::Any);
        assert_eq!(c.auth_token, None);
        assert!(c.upstreams.iter().all(|u| u.keys.is_empty()));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = config(&[("OPENAI_API_KEY", "  "), ("AUTH_TOKEN", "")]).unwrap();
        assert!(c.upstream("openai").unwrap().keys.is_empty());
        assert_eq!(c.auth_token, None);
    }

    #[test]
    fn base_url_forms() {
        for (raw, want) in [
            ("https://api.example.com", "https://api.example.com/v1"),
            ("https://api.example.com/", "https://api.example.com/v1"),
            ("https://api.example.com/v1", "https://api.example.com/v1"),
            ("https://api.example.com/v1/", "https://api.example.com/v1"),
            (
                "http://127.0.0.1:9000/openai/v1",
                "http://127.0.0.1:9000/openai/v1",
            ),
        ] {
            let c = config(&[("SOURCE_API_URL", raw)]).unwrap();
            assert_eq!(c.upstream("openai").unwrap().base_url, want, "{raw}");
        }
    }

    #[test]
    fn upstreams_replace_the_legacy_variables() {
        let c = config(&[
            (
                "UPSTREAMS",
                r#"[{"name":"deepseek","kind":"openai","base_url":"https://api.deepseek.com/v1","keys":"DEEPSEEK_KEYS"}]"#,
            ),
            ("ROUTES", r#"{"chat":["deepseek/deepseek-chat"]}"#),
            ("DEEPSEEK_KEYS", "sk-1,sk-2"),
            ("OPENAI_API_KEY", "sk-legacy"),
            ("MAX_ATTEMPTS", "5"),
            ("AUTH_TOKEN", "tok"),
        ])
        .unwrap();
        assert!(c.upstreams_configured);
        assert_eq!(c.upstreams.len(), 1);
        assert_eq!(c.routes[0].name, "chat");
        assert_eq!(c.retry.max_attempts, 5);
        let secrets: Vec<&str> = c.secrets().collect();
        assert_eq!(secrets, vec!["sk-1", "sk-2", "tok"]);
        let err = config(&[
            ("ROUTES", r#"{"chat":["nobody/x"]}"#),
            ("MAX_ATTEMPTS", "0"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ROUTES `chat`: target `nobody/x` names no upstream"),
            "{err}"
        );
        assert!(err.contains("MAX_ATTEMPTS"), "{err}");
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
