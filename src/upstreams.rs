//! Upstreams: configured instances of an adapter kind — a name, a base URL, a key pool, the
//! models it serves — and the routes that spread a public model name over several of them.
//! Parsed once from `UPSTREAMS` and `ROUTES` (or, without `UPSTREAMS`, from the legacy
//! per-provider variables); every problem is reported with the setting it comes from.

use crate::adapters::{
    provider_by_id, strip_base_suffixes, validate_body_model, Provider, ProviderSpec, PROVIDERS,
};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

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

/// One configured upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Unique, `[a-z0-9_-]+`; also a model prefix (`name/model`).
    pub name: String,
    pub kind: &'static ProviderSpec,
    /// OpenAI kind: the SDK-style base (`…/v1`); other kinds: the host.
    pub base_url: String,
    /// The key pool, in round-robin order. Empty: the client's own key is forwarded.
    pub keys: Vec<String>,
    /// The secret the keys come from, named in errors and in `/api/status`.
    pub keys_secret: Option<String>,
    /// `keys` names a secret: calls fail (401) while it is unset, rather than forwarding
    /// the client's key.
    pub keys_required: bool,
    /// Model patterns this upstream serves.
    pub patterns: Vec<String>,
    /// Client model name → the upstream's name for it.
    pub model_map: Vec<(String, String)>,
    /// Models listed by `/v1/models` besides what the upstream lists itself.
    pub list_models: Vec<String>,
    /// Replaces `UPSTREAM_TIMEOUT_MS` for this upstream.
    pub timeout_ms: Option<u64>,
    /// Replaces `FAKE_STREAM` for calls routed here.
    pub fake_stream: Option<FakeStreamMode>,
    /// Static extra request headers (never credentials).
    pub headers: Vec<(String, String)>,
    /// Share of calls under a `weighted` route.
    pub weight: u32,
    /// OpenAI kind: the upstream serves `/responses` itself, so `/v1/responses` calls are
    /// passed through untranslated.
    pub native_responses: bool,
}

impl Upstream {
    pub fn adapter(&self) -> &'static dyn Provider {
        // Upstreams are only built from kinds in PROVIDERS, so the id is always found.
        provider_by_id(self.kind.id).unwrap_or(PROVIDERS[PROVIDERS.len() - 1])
    }

    pub fn serves(&self, model: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, model))
    }

    /// The name this upstream knows `model` by.
    pub fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.model_map
            .iter()
            .find(|(from, _)| from == model)
            .map(|(_, to)| to.as_str())
            .unwrap_or(model)
    }

    /// The base URL's host (with port), for `/api/status`.
    pub fn host(&self) -> &str {
        let rest = self
            .base_url
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&self.base_url);
        rest.split(['/', '?', '#']).next().unwrap_or(rest)
    }
}

/// How a route spreads calls over its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// In order: the next target only when the one before failed.
    Fallback,
    /// A random order weighted by the upstreams' `weight`, then fallback in that order.
    Weighted,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Fallback => "fallback",
            Strategy::Weighted => "weighted",
        }
    }
}

/// One `upstream/model` target of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    /// Index into the upstream list.
    pub upstream: usize,
    pub model: String,
}

/// A public model name served by several targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    pub name: String,
    pub strategy: Strategy,
    pub targets: Vec<RouteTarget>,
}

/// Most targets a route may list: more could never be tried within `MAX_ATTEMPTS`.
pub const MAX_ROUTE_TARGETS: usize = 16;

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_list(self) -> Vec<String> {
        match self {
            OneOrMany::One(text) => split_list(&text),
            OneOrMany::Many(list) => list
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FlagOrModes {
    Flag(bool),
    Modes(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamEntry {
    name: String,
    kind: String,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    keys: Option<String>,
    #[serde(default)]
    models: Option<OneOrMany>,
    #[serde(default)]
    model_map: Option<BTreeMap<String, String>>,
    #[serde(default)]
    list_models: Option<OneOrMany>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    fake_stream: Option<FlagOrModes>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    native_responses: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RouteEntry {
    Targets(Vec<String>),
    Full(FullRoute),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullRoute {
    targets: Vec<String>,
    #[serde(default)]
    strategy: Option<String>,
}

/// Parses `UPSTREAMS` (a JSON array). `secret` reads the key secrets it names.
pub fn parse_upstreams(
    raw: &str,
    secret: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Vec<Upstream> {
    let entries: Vec<Value> = match serde_json::from_slice::<Value>(raw.as_bytes()) {
        Ok(Value::Array(entries)) => entries,
        Ok(_) => {
            problems.push("UPSTREAMS: expected a JSON array of upstreams".into());
            return Vec::new();
        }
        Err(e) => {
            problems.push(format!("UPSTREAMS: not valid JSON ({e})"));
            return Vec::new();
        }
    };
    if entries.is_empty() {
        problems.push("UPSTREAMS: the list is empty".into());
    }
    let mut upstreams: Vec<Upstream> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let label = entry
            .get("name")
            .and_then(Value::as_str)
            .map(|name| format!("UPSTREAMS[{index}] (`{name}`)"))
            .unwrap_or_else(|| format!("UPSTREAMS[{index}]"));
        let mut report = |why: String| problems.push(format!("{label}: {why}"));
        let entry: UpstreamEntry = match crate::from_json_value(&entry) {
            Ok(entry) => entry,
            Err(e) => {
                report(e.to_string());
                continue;
            }
        };
        match upstream_from_entry(entry, secret) {
            Ok(upstream) => {
                if upstreams.iter().any(|u| u.name == upstream.name) {
                    report("the name is used by an earlier upstream".into());
                    continue;
                }
                upstreams.push(upstream);
            }
            Err(why) => report(why),
        }
    }
    upstreams
}

fn upstream_from_entry(
    entry: UpstreamEntry,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Upstream, String> {
    let name = entry.name.trim().to_string();
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "`name` `{name}` must be 1–64 characters of a-z, 0-9, `-` and `_`"
        ));
    }
    let kind = PROVIDERS
        .iter()
        .map(|p| p.spec())
        .find(|spec| spec.id.eq_ignore_ascii_case(entry.kind.trim()))
        .ok_or_else(|| {
            let kinds: Vec<&str> = PROVIDERS.iter().map(|p| p.spec().id).collect();
            format!(
                "`kind` `{}` is unknown (expected one of {})",
                entry.kind,
                kinds.join(", ")
            )
        })?;
    let base_url = match entry.base_url.as_deref().map(str::trim) {
        None | Some("") => format!("{}{}", kind.default_base_url, kind.legacy_base_path),
        Some(raw) => {
            let url = normalize_base_url(raw).map_err(|why| format!("`base_url` {why}"))?;
            if kind.base_url_as_written {
                url
            } else {
                strip_base_suffixes(&url, kind.base_url_suffixes)
            }
        }
    };
    let (keys, keys_secret) = match entry.keys.as_deref().map(str::trim) {
        None | Some("") => (Vec::new(), None),
        Some(var) => {
            let valid = var.len() <= 128
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !var.as_bytes()[0].is_ascii_digit();
            if !valid {
                return Err(format!(
                    "`keys` must be the NAME of a secret holding the keys (letters, digits, `_`), not `{}`",
                    crate::error::excerpt(var, 12)
                ));
            }
            let keys = secret(var).map(|v| split_keys(&v)).unwrap_or_default();
            (keys, Some(var.to_string()))
        }
    };
    let keys_required = keys_secret.is_some();
    let patterns = entry
        .models
        .map(OneOrMany::into_list)
        .unwrap_or_else(|| vec!["*".to_string()]);
    let mut model_map = Vec::new();
    for (from, to) in entry.model_map.unwrap_or_default() {
        validate_body_model(&from).map_err(|e| format!("`model_map` key: {e}"))?;
        validate_body_model(&to).map_err(|e| format!("`model_map` value: {e}"))?;
        model_map.push((from, to));
    }
    let timeout_ms = match entry.timeout_ms {
        Some(ms) if !(100..=3_600_000).contains(&ms) => {
            return Err(format!("`timeout_ms` {ms} is not from 100 to 3600000"))
        }
        other => other,
    };
    let fake_stream = match entry.fake_stream {
        None => None,
        Some(FlagOrModes::Flag(true)) => Some(FakeStreamMode::Always),
        Some(FlagOrModes::Flag(false)) => Some(FakeStreamMode::Off),
        Some(FlagOrModes::Modes(raw)) => {
            Some(FakeStreamMode::parse(&raw).map_err(|why| format!("`fake_stream`: {why}"))?)
        }
    };
    let mut headers = Vec::new();
    for (header, value) in entry.headers.unwrap_or_default() {
        check_static_header(&header, &value)?;
        headers.push((header, value));
    }
    let weight = entry.weight.unwrap_or(1);
    if !(1..=1000).contains(&weight) {
        return Err(format!("`weight` {weight} is not from 1 to 1000"));
    }
    let native_responses = entry.native_responses.unwrap_or(false);
    if native_responses && kind.id != "openai" {
        return Err("`native_responses` is only for upstreams of kind `openai`".into());
    }
    Ok(Upstream {
        name,
        kind,
        base_url,
        keys,
        keys_secret,
        keys_required,
        patterns,
        model_map,
        list_models: entry
            .list_models
            .map(OneOrMany::into_list)
            .unwrap_or_default(),
        timeout_ms,
        fake_stream,
        headers,
        weight,
        native_responses,
    })
}

/// A static header must be a plain header and never a credential: keys live in secrets.
fn check_static_header(name: &str, value: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("`headers`: `{name}` is not a valid header name"));
    }
    let lower = name.to_ascii_lowercase();
    let credential = ["auth", "key", "token", "secret", "cookie", "session"]
        .iter()
        .any(|part| lower.contains(part));
    if credential || lower == "host" || lower == "content-length" {
        return Err(format!(
            "`headers`: `{name}` may not be set here (credentials belong in the `keys` secret)"
        ));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(format!("`headers`: the value of `{name}` has a line break"));
    }
    Ok(())
}

/// Today's per-provider variables as the upstreams `gemini`, `dashscope`, `openai`, in
/// that routing order; each `<PREFIX>_API_KEY` may hold a comma-separated key list.
/// The built-in demo upstream (`DEMO_UPSTREAM`): no network, no key, `demo`/`demo-*` models.
pub fn demo_upstream() -> Upstream {
    let spec = &crate::adapters::demo::SPEC;
    Upstream {
        name: spec.id.to_string(),
        kind: spec,
        base_url: spec.default_base_url.to_string(),
        keys: Vec::new(),
        keys_secret: None,
        keys_required: false,
        patterns: spec
            .default_patterns
            .iter()
            .map(|p| p.to_string())
            .collect(),
        model_map: Vec::new(),
        list_models: spec.default_models.iter().map(|m| m.to_string()).collect(),
        timeout_ms: None,
        fake_stream: None,
        headers: Vec::new(),
        weight: 1,
        native_responses: false,
    }
}

pub fn legacy_upstreams(
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Vec<Upstream> {
    PROVIDERS
        .iter()
        // The demo upstream is added by `DEMO_UPSTREAM`, not by the legacy variables.
        .filter(|provider| provider.spec().id != "demo")
        .map(|provider| {
            let spec = provider.spec();
            let base_url = match get(spec.base_url_var) {
                None => format!("{}{}", spec.default_base_url, spec.legacy_base_path),
                Some(raw) => match normalize_base_url(&raw) {
                    Ok(url) => format!(
                        "{}{}",
                        strip_base_suffixes(&url, spec.base_url_suffixes),
                        spec.legacy_base_path
                    ),
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
            let key_var = format!("{}_API_KEY", spec.env_prefix);
            Upstream {
                name: spec.id.to_string(),
                kind: spec,
                base_url,
                keys: get(&key_var).map(|v| split_keys(&v)).unwrap_or_default(),
                keys_secret: Some(key_var),
                keys_required: false,
                patterns: list("MODEL_PATTERNS", spec.default_patterns),
                model_map: Vec::new(),
                list_models: list("MODELS", spec.default_models),
                timeout_ms: None,
                fake_stream: None,
                headers: Vec::new(),
                weight: 1,
                native_responses: false,
            }
        })
        .collect()
}

/// Parses `ROUTES` (a JSON object: public name → targets) against the upstreams.
pub fn parse_routes(
    raw: &str,
    upstreams: &[Upstream],
    problems: &mut Vec<String>,
) -> Vec<ModelRoute> {
    let entries = match serde_json::from_slice::<Value>(raw.as_bytes()) {
        Ok(Value::Object(entries)) => entries,
        Ok(_) => {
            problems.push("ROUTES: expected a JSON object of model name → targets".into());
            return Vec::new();
        }
        Err(e) => {
            problems.push(format!("ROUTES: not valid JSON ({e})"));
            return Vec::new();
        }
    };
    let mut routes = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        let mut report = |why: String| problems.push(format!("ROUTES `{name}`: {why}"));
        if let Err(e) = validate_body_model(&name) {
            report(e.to_string());
            continue;
        }
        let (targets, strategy) = match crate::from_json_value::<RouteEntry>(&entry) {
            Ok(RouteEntry::Targets(targets)) => (targets, None),
            Ok(RouteEntry::Full(full)) => (full.targets, full.strategy),
            Err(_) => {
                report(
                    "expected a list of `upstream/model` targets or {\"targets\": [...], \"strategy\": \"fallback\" | \"weighted\"}"
                        .into(),
                );
                continue;
            }
        };
        let strategy = match strategy.as_deref().map(str::trim) {
            None | Some("fallback") => Strategy::Fallback,
            Some("weighted") => Strategy::Weighted,
            Some(other) => {
                report(format!(
                    "`strategy` `{other}` is unknown (expected fallback or weighted)"
                ));
                continue;
            }
        };
        if targets.is_empty() || targets.len() > MAX_ROUTE_TARGETS {
            report(format!("expected 1 to {MAX_ROUTE_TARGETS} targets"));
            continue;
        }
        let mut parsed = Vec::with_capacity(targets.len());
        for target in &targets {
            match parse_target(target, upstreams) {
                Ok(target) => parsed.push(target),
                Err(why) => report(why),
            }
        }
        if parsed.len() == targets.len() {
            routes.push(ModelRoute {
                name,
                strategy,
                targets: parsed,
            });
        }
    }
    routes
}

fn parse_target(target: &str, upstreams: &[Upstream]) -> Result<RouteTarget, String> {
    let target = target.trim();
    let Some((upstream, model)) = target.split_once('/') else {
        return Err(format!("target `{target}` must be `upstream/model`"));
    };
    let Some(index) = upstreams.iter().position(|u| u.name == upstream) else {
        let names: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
        return Err(format!(
            "target `{target}` names no upstream (`{upstream}`; upstreams: {})",
            names.join(", ")
        ));
    };
    validate_body_model(model).map_err(|e| format!("target `{target}`: {e}"))?;
    Ok(RouteTarget {
        upstream: index,
        model: model.to_string(),
    })
}

/// Keys of a pool secret: separated by commas or line breaks.
pub fn split_keys(raw: &str) -> Vec<String> {
    raw.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks a base URL and removes trailing slashes.
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
    if host_part.is_empty() || host_part.starts_with('/') || host_part.contains('@') {
        return Err(format!("`{raw}` has no host (or carries user info)"));
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

/// Glob match, case-insensitive for ASCII letters (model ids are ASCII), where `*` matches
/// any run of characters (including none).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // Bytes: a literal UTF-8 sequence can only match at a character boundary of valid UTF-8.
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    // Iterative matcher with backtracking to the last star: linear in practice, no recursion.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<usize> = None;
    let mut star_text = 0usize;
    while t < text.len() {
        if p < pattern.len() && pattern[p] != b'*' && pattern[p].eq_ignore_ascii_case(&text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
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
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(name: &str) -> Option<String> {
        match name {
            "DEEPSEEK_KEYS" => Some("sk-d1, sk-d2\nsk-d3\n".into()),
            "ZHIPU_KEYS" => Some("zk-1".into()),
            _ => None,
        }
    }

    fn parse(raw: &str) -> (Vec<Upstream>, Vec<String>) {
        let mut problems = Vec::new();
        let upstreams = parse_upstreams(raw, &secrets, &mut problems);
        (upstreams, problems)
    }

    #[test]
    fn sdk_style_base_urls_are_used_as_written() {
        let (ups, problems) = parse(
            r#"[
            {"name":"deepseek","kind":"openai","base_url":"https://api.deepseek.com/v1","keys":"DEEPSEEK_KEYS","models":["deepseek-*"]},
            {"name":"zhipu","kind":"openai","base_url":"https://open.bigmodel.cn/api/paas/v4/","keys":"ZHIPU_KEYS","models":"glm-*, cogview-*","model_map":{"glm":"glm-4-plus"}},
            {"name":"gem","kind":"gemini","base_url":"https://generativelanguage.googleapis.com/v1beta","keys":"GEM_KEYS"},
            {"name":"open","kind":"OpenAI","headers":{"HTTP-Referer":"https://x.dev","X-Title":"x"},"weight":3,"timeout_ms":5000,"fake_stream":"o1*"}
        ]"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(ups[0].base_url, "https://api.deepseek.com/v1");
        assert_eq!(ups[0].keys, vec!["sk-d1", "sk-d2", "sk-d3"]);
        assert!(ups[0].keys_required);
        assert_eq!(ups[1].base_url, "https://open.bigmodel.cn/api/paas/v4");
        assert_eq!(ups[1].patterns, vec!["glm-*", "cogview-*"]);
        assert_eq!(ups[1].upstream_model("glm"), "glm-4-plus");
        assert_eq!(ups[1].upstream_model("glm-4"), "glm-4");
        assert_eq!(ups[1].host(), "open.bigmodel.cn");
        // Gemini keeps the host only; its secret is unset, so its pool is empty but required.
        assert_eq!(ups[2].base_url, "https://generativelanguage.googleapis.com");
        assert!(ups[2].keys.is_empty() && ups[2].keys_required);
        assert_eq!(ups[2].keys_secret.as_deref(), Some("GEM_KEYS"));
        assert_eq!(ups[3].base_url, "https://api.openai.com/v1");
        assert_eq!(ups[3].patterns, vec!["*"]);
        assert!(ups[3].keys.is_empty() && !ups[3].keys_required);
        assert_eq!(ups[3].weight, 3);
        assert_eq!(ups[3].timeout_ms, Some(5000));
        assert_eq!(
            ups[3].fake_stream,
            Some(FakeStreamMode::Models(vec!["o1*".into()]))
        );
        assert_eq!(ups[3].headers.len(), 2);
    }

    #[test]
    fn bad_upstreams_are_named() {
        for (raw, want) in [
            ("{", "UPSTREAMS: not valid JSON"),
            ("{}", "expected a JSON array"),
            ("[]", "the list is empty"),
            (
                r#"[{"name":"a","kind":"claude"}]"#,
                "`kind` `claude` is unknown",
            ),
            (
                r#"[{"name":"A b","kind":"openai"}]"#,
                "must be 1–64 characters",
            ),
            (
                r#"[{"name":"a","kind":"openai"},{"name":"a","kind":"gemini"}]"#,
                "UPSTREAMS[1] (`a`): the name is used by an earlier upstream",
            ),
            (
                r#"[{"name":"a","kind":"openai","base_url":"ftp://x"}]"#,
                "`base_url` `ftp://x` must start with http://",
            ),
            (
                r#"[{"name":"g","kind":"gemini","native_responses":true}]"#,
                "`native_responses` is only for upstreams of kind `openai`",
            ),
            (
                r#"[{"name":"a","kind":"openai","base-url":"https://x"}]"#,
                "unknown field `base-url`",
            ),
            (
                r#"[{"name":"a","kind":"openai","keys":"sk-live-123"}]"#,
                "NAME of a secret",
            ),
            (
                r#"[{"name":"a","kind":"openai","headers":{"Authorization":"Bearer x"}}]"#,
                "may not be set here",
            ),
            (
                r#"[{"name":"a","kind":"openai","headers":{"X-Api-Key":"x"}}]"#,
                "may not be set here",
            ),
            (r#"[{"name":"a","kind":"openai","weight":0}]"#, "`weight` 0"),
            (
                r#"[{"name":"a","kind":"openai","timeout_ms":5}]"#,
                "`timeout_ms` 5",
            ),
            (r#"[{"kind":"openai"}]"#, "missing field `name`"),
        ] {
            let (_, problems) = parse(raw);
            let text = problems.join("; ");
            assert!(text.contains(want), "{raw}: {text}");
            assert!(text.starts_with("UPSTREAMS"), "{raw}: {text}");
        }
        // A key put where a secret name belongs is never echoed whole.
        let (_, problems) =
            parse(r#"[{"name":"a","kind":"openai","keys":"sk-live-1234567890abcdef"}]"#);
        assert!(!problems.join("").contains("sk-live-1234567890abcdef"));
    }

    #[test]
    fn routes() {
        let (ups, _) = parse(
            r#"[{"name":"deepseek","kind":"openai","keys":"DEEPSEEK_KEYS"},{"name":"openrouter","kind":"openai"}]"#,
        );
        let mut problems = Vec::new();
        let routes = parse_routes(
            r#"{"chat":["deepseek/deepseek-chat","openrouter/deepseek/deepseek-chat"],
                "spread":{"targets":["deepseek/a","openrouter/b"],"strategy":"weighted"}}"#,
            &ups,
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(routes[0].name, "chat");
        assert_eq!(routes[0].strategy, Strategy::Fallback);
        assert_eq!(
            routes[0].targets[1],
            RouteTarget {
                upstream: 1,
                model: "deepseek/deepseek-chat".into()
            }
        );
        assert_eq!(routes[1].strategy, Strategy::Weighted);
        for (raw, want) in [
            (r#"{"x":["nobody/m"]}"#, "names no upstream (`nobody`"),
            (r#"{"x":["deepseek"]}"#, "must be `upstream/model`"),
            (r#"{"x":[]}"#, "expected 1 to 16 targets"),
            (
                r#"{"x":{"targets":["deepseek/a"],"strategy":"random"}}"#,
                "`strategy` `random`",
            ),
            (r#"{"x":"deepseek/a"}"#, "expected a list"),
            (r#"["deepseek/a"]"#, "expected a JSON object"),
            ("nope", "ROUTES: not valid JSON"),
            (r#"{"a b":["deepseek/a"]}"#, "whitespace"),
        ] {
            let mut problems = Vec::new();
            parse_routes(raw, &ups, &mut problems);
            let text = problems.join("; ");
            assert!(text.contains(want), "{raw}: {text}");
            assert!(text.starts_with("ROUTES"), "{raw}: {text}");
        }
    }

    #[test]
    fn legacy_variables_become_three_upstreams() {
        let get = |name: &str| match name {
            "SOURCE_API_URL" => Some("http://127.0.0.1:9/v1/".to_string()),
            "OPENAI_API_KEY" => Some("sk-a,sk-b".to_string()),
            "GEMINI_BASE_URL" => Some("http://127.0.0.1:9/v1beta".to_string()),
            _ => None,
        };
        let mut problems = Vec::new();
        let ups = legacy_upstreams(&get, &mut problems);
        assert!(problems.is_empty());
        let names: Vec<&str> = ups.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, vec!["gemini", "dashscope", "openai"]);
        assert_eq!(ups[2].base_url, "http://127.0.0.1:9/v1");
        assert_eq!(ups[2].keys, vec!["sk-a", "sk-b"]);
        assert!(!ups[2].keys_required);
        assert_eq!(ups[0].base_url, "http://127.0.0.1:9");
        assert_eq!(ups[1].base_url, "https://dashscope.aliyuncs.com");
        assert_eq!(ups[1].host(), "dashscope.aliyuncs.com");
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
        assert!(glob_match("*型", "模型"));
        assert!(!glob_match("*型*", "模一"));
        assert!(glob_match("GPT-*", "gpt-4O"));
        assert!(glob_match("qwen*", "Qwen-Max"));
    }

    #[test]
    fn base_urls() {
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
            "https://user:pw@x.dev",
        ] {
            assert!(normalize_base_url(bad).is_err(), "{bad}");
        }
    }
}
