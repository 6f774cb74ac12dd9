//! Access keys: many keys, each with its own models, browser origins, rate limits, token
//! quotas and expiry, handed out through the admin API (`/api/keys`). Stored in D1 as a
//! SHA-256 hash (the key itself is shown once, at creation), looked up through a short
//! per-isolate cache. Everything here is pure: the runtime runs the statements.

use crate::config::AllowedOrigins;
use crate::error::GatewayError;
use crate::limits::Limits;
use crate::log::{SqlValue, Statement};
use crate::upstreams::glob_match;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Every access key starts with this, so the gateway knows a credential is one of its own.
pub const KEY_PREFIX: &str = "sk-gw-";
/// The characters of a key's hint shown before the `…` (the prefix and four more).
const HINT_HEAD: usize = KEY_PREFIX.len() + 4;
const MAX_NAME_CHARS: usize = 100;
const MAX_PATTERNS: usize = 64;
const MAX_PATTERN_CHARS: usize = 200;
/// Larger limits are surely typos; 10^12 tokens is far beyond any real budget.
const MAX_LIMIT: u64 = 1_000_000_000_000;

pub fn is_access_key(credential: &str) -> bool {
    credential.starts_with(KEY_PREFIX)
}

/// Whether an access-key credential has the shape `new_secret` makes: anything else is
/// refused without a database read.
pub fn is_well_formed(credential: &str) -> bool {
    credential.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A new key from 32 random bytes: the prefix and 43 base64url characters (256 bits).
pub fn new_secret(random: &[u8; 32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(KEY_PREFIX.len() + 43);
    out.push_str(KEY_PREFIX);
    let mut bits = 0u32;
    let mut count = 0u32;
    for byte in random {
        bits = (bits << 8) | u32::from(*byte);
        count += 8;
        while count >= 6 {
            count -= 6;
            out.push(ALPHABET[((bits >> count) & 63) as usize] as char);
        }
    }
    if count > 0 {
        out.push(ALPHABET[((bits << (6 - count)) & 63) as usize] as char);
    }
    out
}

/// A key id from 8 random bytes.
pub fn new_id(random: &[u8; 8]) -> String {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("key_{hex}")
}

/// What D1 stores instead of the key.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Enough of a key to recognise it, never enough to use it: `sk-gw-AbCd…wxyz`.
pub fn hint(secret: &str) -> String {
    let head = secret.get(..HINT_HEAD).unwrap_or(secret);
    let tail = secret
        .char_indices()
        .rev()
        .nth(3)
        .map(|(i, _)| &secret[i..])
        .unwrap_or("");
    format!("{head}…{tail}")
}

/// One access key as the gateway knows it (never the key itself, nor its hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub name: String,
    pub hint: String,
    /// Model patterns the key may call; empty is every model.
    pub models: Vec<String>,
    /// Browser origins the key works from; empty is any caller.
    pub origins: Vec<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub tpd: Option<u64>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AccessKey {
    pub fn limits(&self) -> Limits {
        Limits {
            rpm: self.rpm,
            tpm: self.tpm,
            tpd: self.tpd,
        }
    }

    /// Disabled or expired keys are refused like unknown ones (401), saying which.
    pub fn check_usable(&self, now_s: i64) -> Result<(), GatewayError> {
        if !self.enabled {
            return Err(GatewayError::Unauthorized {
                message: format!("The access key `{}` is disabled", self.name),
                code: "key_disabled",
            });
        }
        if self.expires_at.is_some_and(|at| at <= now_s) {
            return Err(GatewayError::Unauthorized {
                message: format!("The access key `{}` has expired", self.name),
                code: "key_expired",
            });
        }
        Ok(())
    }

    /// A key limited to origins works only from those origins: a call without an `Origin`
    /// (not from a browser page) is refused too.
    pub fn check_origin(&self, origin: Option<&str>) -> Result<(), GatewayError> {
        if self.origins.is_empty() {
            return Ok(());
        }
        let allowed = AllowedOrigins::List(self.origins.clone());
        match origin {
            Some(origin) if allowed.allows(origin.trim_end_matches('/')) => Ok(()),
            Some(origin) => Err(GatewayError::Forbidden {
                message: format!(
                    "The access key `{}` does not work from origin `{}`",
                    self.name,
                    crate::error::excerpt(origin, 200)
                ),
                code: "origin_not_allowed",
            }),
            None => Err(GatewayError::Forbidden {
                message: format!(
                    "The access key `{}` only works from its browser origins; this request has no Origin header",
                    self.name
                ),
                code: "origin_not_allowed",
            }),
        }
    }

    pub fn check_model(&self, model: &str) -> Result<(), GatewayError> {
        if self.allows_model(model) {
            return Ok(());
        }
        Err(GatewayError::Forbidden {
            message: format!(
                "The access key `{}` may not use model `{}`",
                self.name,
                crate::error::excerpt(model, 200)
            ),
            code: "model_not_allowed",
        })
    }

    /// A `*` does not reach across a `/` unless the pattern has one itself: `o*` allows
    /// `o3`, not `openrouter/anthropic/claude-opus-4`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty()
            || self
                .models
                .iter()
                .any(|p| (p.contains('/') || !model.contains('/')) && glob_match(p, model))
    }

    /// The admin API's view of the key, with its usage when known.
    pub fn view(&self, usage: Option<&KeyUsage>) -> Value {
        let mut view = json!({
            "object": "gateway.key",
            "id": self.id,
            "name": self.name,
            "hint": self.hint,
            "models": self.models,
            "origins": self.origins,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "tpd": self.tpd,
            "expires_at": self.expires_at,
            "enabled": self.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        });
        if let Some(usage) = usage {
            view["usage"] = json!({
                "calls": usage.calls,
                "tokens": usage.tokens,
                "errors": usage.errors,
                "last_used_at": usage.last_used_ms.map(|ms| ms.div_euclid(1000)),
            });
        }
        view
    }

    pub fn apply(&mut self, patch: KeyPatch, now_s: i64) {
        if let Some(name) = patch.name {
            self.name = name;
        }
        if let Some(models) = patch.models {
            self.models = models;
        }
        if let Some(origins) = patch.origins {
            self.origins = origins;
        }
        if let Some(rpm) = patch.rpm {
            self.rpm = rpm;
        }
        if let Some(tpm) = patch.tpm {
            self.tpm = tpm;
        }
        if let Some(tpd) = patch.tpd {
            self.tpd = tpd;
        }
        if let Some(expires_at) = patch.expires_at {
            self.expires_at = expires_at;
        }
        if let Some(enabled) = patch.enabled {
            self.enabled = enabled;
        }
        self.updated_at = now_s;
    }
}

/// A key's calls as the request log counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUsage {
    pub calls: i64,
    pub tokens: i64,
    pub errors: i64,
    pub last_used_ms: Option<i64>,
}

/// The tokens a finished call is charged: its usage (`total_tokens`, else prompt plus
/// completion). Without usage (a stream whose client did not ask for it), a call that was
/// answered is estimated at four bytes of request and answer per token.
pub fn tokens_to_charge(
    status: i64,
    [total, prompt, completion]: [Option<i64>; 3],
    request_bytes: usize,
    answer_bytes: usize,
) -> u64 {
    let reported = total.or(match (prompt, completion) {
        (None, None) => None,
        (p, c) => Some(p.unwrap_or(0).saturating_add(c.unwrap_or(0))),
    });
    match reported {
        Some(tokens) => u64::try_from(tokens).unwrap_or(0),
        None if (200..400).contains(&status) => crate::dialects::estimate_tokens(request_bytes)
            .saturating_add(crate::dialects::estimate_tokens(answer_bytes)),
        None => 0,
    }
}

// ---- admin API bodies -----------------------------------------------------------------------

/// A validated `PATCH /api/keys/{id}`: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    pub origins: Option<Vec<String>>,
    pub rpm: Option<Option<u64>>,
    pub tpm: Option<Option<u64>>,
    pub tpd: Option<Option<u64>>,
    pub expires_at: Option<Option<i64>>,
    pub enabled: Option<bool>,
}

const FIELDS: &[&str] = &[
    "name",
    "models",
    "origins",
    "rpm",
    "tpm",
    "tpd",
    "expires_at",
    "enabled",
];

fn object(body: &[u8]) -> Result<Map<String, Value>, GatewayError> {
    let object = crate::openai::json_object(
        body,
        "a key's `name` and optional `models`, `origins`, `rpm`, `tpm`, `tpd`, `expires_at`",
    )?;
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(GatewayError::invalid_param(
            format!(
                "Unknown field `{}`: a key takes {}",
                crate::error::excerpt(unknown, 60),
                FIELDS.join(", ")
            ),
            unknown,
        ));
    }
    Ok(object)
}

impl KeyPatch {
    pub fn parse(body: &[u8], now_s: i64) -> Result<KeyPatch, GatewayError> {
        KeyPatch::from_object(&object(body)?, now_s)
    }

    fn from_object(object: &Map<String, Value>, now_s: i64) -> Result<KeyPatch, GatewayError> {
        let mut patch = KeyPatch::default();
        for (field, value) in object {
            match field.as_str() {
                "name" => patch.name = Some(name(value)?),
                "models" => patch.models = Some(models(value)?),
                "origins" => patch.origins = Some(origins(value)?),
                "rpm" => patch.rpm = Some(limit(value, "rpm")?),
                "tpm" => patch.tpm = Some(limit(value, "tpm")?),
                "tpd" => patch.tpd = Some(limit(value, "tpd")?),
                "expires_at" => patch.expires_at = Some(expires_at(value, now_s)?),
                _ => {
                    patch.enabled = Some(value.as_bool().ok_or_else(|| {
                        GatewayError::invalid_param("`enabled` must be true or false", "enabled")
                    })?)
                }
            }
        }
        Ok(patch)
    }
}

/// A new key from a `POST /api/keys` body: `name` is required.
pub fn parse_new(
    body: &[u8],
    id: String,
    secret: &str,
    now_s: i64,
) -> Result<AccessKey, GatewayError> {
    let object = object(body)?;
    if object.get("name").is_none_or(Value::is_null) {
        return Err(GatewayError::invalid_param("A key needs a `name`", "name"));
    }
    let patch = KeyPatch::from_object(&object, now_s)?;
    let mut key = AccessKey {
        id,
        name: String::new(),
        hint: hint(secret),
        models: Vec::new(),
        origins: Vec::new(),
        rpm: None,
        tpm: None,
        tpd: None,
        expires_at: None,
        enabled: true,
        created_at: now_s,
        updated_at: now_s,
    };
    key.apply(patch, now_s);
    Ok(key)
}

fn name(value: &Value) -> Result<String, GatewayError> {
    let bad = || {
        GatewayError::invalid_param(
            format!("`name` must be text of 1 to {MAX_NAME_CHARS} characters without control characters"),
            "name",
        )
    };
    let name = value.as_str().ok_or_else(bad)?.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(bad());
    }
    Ok(name.to_string())
}

fn string_list<'a>(value: &'a Value, field: &str) -> Result<Vec<&'a str>, GatewayError> {
    let bad = || {
        GatewayError::invalid_param(
            format!("`{field}` must be a list of at most {MAX_PATTERNS} strings"),
            field,
        )
    };
    if value.is_null() {
        return Ok(Vec::new());
    }
    let items = value.as_array().ok_or_else(bad)?;
    if items.len() > MAX_PATTERNS {
        return Err(bad());
    }
    items
        .iter()
        .map(|item| item.as_str().map(str::trim).ok_or_else(bad))
        .collect()
}

fn models(value: &Value) -> Result<Vec<String>, GatewayError> {
    let mut patterns = Vec::new();
    for pattern in string_list(value, "models")? {
        if pattern.is_empty()
            || pattern.chars().count() > MAX_PATTERN_CHARS
            || pattern.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(GatewayError::invalid_param(
                format!(
                    "`models`: `{}` is not a model name or pattern such as `gpt-4o*`",
                    crate::error::excerpt(pattern, 60)
                ),
                "models",
            ));
        }
        if pattern == "*" {
            return Ok(Vec::new());
        }
        patterns.push(pattern.to_string());
    }
    Ok(patterns)
}

fn origins(value: &Value) -> Result<Vec<String>, GatewayError> {
    let entries = string_list(value, "origins")?;
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    if entries
        .iter()
        .any(|e| e.contains(',') || e.chars().count() > MAX_PATTERN_CHARS)
    {
        return Err(GatewayError::invalid_param(
            "`origins`: one origin per list item, such as `https://app.example.com`",
            "origins",
        ));
    }
    match AllowedOrigins::parse(&entries.join(",")) {
        Ok(AllowedOrigins::Any) => Ok(Vec::new()),
        Ok(AllowedOrigins::List(list)) => Ok(list),
        Err(problem) => Err(GatewayError::invalid_param(
            format!("`origins`: {problem}"),
            "origins",
        )),
    }
}

fn limit(value: &Value, field: &str) -> Result<Option<u64>, GatewayError> {
    if value.is_null() {
        return Ok(None);
    }
    match value.as_u64() {
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(Some(n)),
        _ => Err(GatewayError::invalid_param(
            format!("`{field}` must be a whole number from 1 to {MAX_LIMIT}, or null for no limit"),
            field,
        )),
    }
}

/// 9999-12-31T23:59:59Z: later "seconds" are surely milliseconds.
const LATEST_EXPIRY: i64 = 253_402_300_799;

fn expires_at(value: &Value, now_s: i64) -> Result<Option<i64>, GatewayError> {
    let at = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_i64(),
        Value::String(text) => parse_timestamp(text.trim()),
        _ => None,
    };
    if at.is_some_and(|at| at > LATEST_EXPIRY) {
        return Err(GatewayError::invalid_param(
            "`expires_at` is after the year 9999: it takes Unix seconds, not milliseconds",
            "expires_at",
        ));
    }
    let Some(at) = at else {
        return Err(GatewayError::invalid_param(
            "`expires_at` must be Unix seconds or an RFC 3339 time such as `2027-01-31T00:00:00Z`",
            "expires_at",
        ));
    };
    if at <= now_s {
        return Err(GatewayError::invalid_param(
            "`expires_at` is in the past (to stop a key now, set `enabled` to false)",
            "expires_at",
        ));
    }
    Ok(Some(at))
}

/// Unix seconds of `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM)`, years 1970 to
/// 9999. Every field is range-checked before any arithmetic, so nothing can overflow.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    // At most `digits` ASCII digits.
    let number = |s: &str, digits: usize| -> Option<i64> {
        (!s.is_empty() && s.len() <= digits && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (year, month, day) = (
        number(parts.next()?, 4)?,
        number(parts.next()?, 2)?,
        number(parts.next()?, 2)?,
    );
    if parts.next().is_some()
        || !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
    {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    if let Some(time) = time {
        let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
            (clock, 0)
        } else {
            let at = time.rfind(['+', '-'])?;
            let (clock, zone) = time.split_at(at);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            let (h, m) = (number(h, 2)?, number(m, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            (clock, sign * (h * 3600 + m * 60))
        };
        let clock = match clock.split_once('.') {
            Some((whole, fraction))
                if !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()) =>
            {
                whole
            }
            Some(_) => return None,
            None => clock,
        };
        let mut fields = clock.split(':');
        let hours = number(fields.next()?, 2)?;
        let minutes = number(fields.next()?, 2)?;
        let secs = fields.next().map_or(Some(0), |s| number(s, 2))?;
        if fields.next().is_some() || hours > 23 || minutes > 59 || secs > 60 {
            return None;
        }
        seconds += hours * 3600 + minutes * 60 + secs - offset;
    }
    Some(seconds)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ---- D1 -------------------------------------------------------------------------------------

/// A row of `access_keys`, as D1 returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub key_hash: String,
    pub hint: String,
    pub models: String,
    pub origins: String,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub tpd: Option<i64>,
    pub expires_at: Option<i64>,
    pub enabled: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub calls: Option<i64>,
    #[serde(default)]
    pub tokens: Option<i64>,
    #[serde(default)]
    pub errors: Option<i64>,
    #[serde(default)]
    pub last_used_ms: Option<i64>,
}

impl KeyRow {
    /// The key of a row. A row that does not read back as written (not JSON lists, a limit
    /// below 1) fails closed: the key comes out disabled, never unrestricted.
    pub fn key(&self) -> AccessKey {
        let mut intact = true;
        let mut list = |text: &str| {
            serde_json::from_slice::<Vec<String>>(text.as_bytes()).unwrap_or_else(|_| {
                intact = false;
                Vec::new()
            })
        };
        let (models, origins) = (list(&self.models), list(&self.origins));
        let mut limit = |n: Option<i64>| {
            n.map(|n| {
                u64::try_from(n)
                    .ok()
                    .filter(|n| *n >= 1)
                    .unwrap_or_else(|| {
                        intact = false;
                        1
                    })
            })
        };
        let (rpm, tpm, tpd) = (limit(self.rpm), limit(self.tpm), limit(self.tpd));
        AccessKey {
            id: self.id.clone(),
            name: self.name.clone(),
            hint: self.hint.clone(),
            models,
            origins,
            rpm,
            tpm,
            tpd,
            expires_at: self.expires_at,
            enabled: self.enabled != 0 && intact,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    pub fn usage(&self) -> KeyUsage {
        KeyUsage {
            calls: self.calls.unwrap_or(0),
            tokens: self.tokens.unwrap_or(0),
            errors: self.errors.unwrap_or(0),
            last_used_ms: self.last_used_ms,
        }
    }
}

const KEY_COLUMNS: &str = "id, name, key_hash, hint, models, origins, rpm, tpm, tpd, expires_at, enabled, created_at, updated_at";

fn limit_value(limit: Option<u64>) -> SqlValue {
    limit.map_or(SqlValue::Null, |n| SqlValue::Int(n as i64))
}

fn key_values(key: &AccessKey) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(key.name.clone()),
        SqlValue::Text(key.hint.clone()),
        SqlValue::Text(Value::from(key.models.clone()).to_string()),
        SqlValue::Text(Value::from(key.origins.clone()).to_string()),
        limit_value(key.rpm),
        limit_value(key.tpm),
        limit_value(key.tpd),
        key.expires_at.map_or(SqlValue::Null, SqlValue::Int),
        SqlValue::Int(i64::from(key.enabled)),
        SqlValue::Int(key.created_at),
        SqlValue::Int(key.updated_at),
    ]
}

pub fn insert_statement(key: &AccessKey, key_hash: &str) -> Statement {
    let mut params = vec![
        SqlValue::Text(key.id.clone()),
        SqlValue::Text(key_hash.to_string()),
    ];
    params.extend(key_values(key));
    Statement {
        sql: "INSERT INTO access_keys (id, key_hash, name, hint, models, origins, rpm, tpm, tpd, expires_at, enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)".into(),
        params,
    }
}

/// Writes every field of `key` back; returns the row (with its hash, for the cache).
pub fn update_statement(key: &AccessKey) -> Statement {
    let mut params = key_values(key);
    params.push(SqlValue::Text(key.id.clone()));
    Statement {
        sql: format!("UPDATE access_keys SET name = ?1, hint = ?2, models = ?3, origins = ?4, rpm = ?5, tpm = ?6, tpd = ?7, expires_at = ?8, enabled = ?9, created_at = ?10, updated_at = ?11 WHERE id = ?12 RETURNING {KEY_COLUMNS}"),
        params,
    }
}

pub fn delete_statement(id: &str) -> Statement {
    Statement {
        sql: "DELETE FROM access_keys WHERE id = ?1 RETURNING key_hash".into(),
        params: vec![SqlValue::Text(id.to_string())],
    }
}

pub fn by_hash_statement(key_hash: &str) -> Statement {
    Statement {
        sql: format!("SELECT {KEY_COLUMNS} FROM access_keys WHERE key_hash = ?1"),
        params: vec![SqlValue::Text(key_hash.to_string())],
    }
}

/// Keys with their usage from the request log, newest first; one key with `id`.
pub fn list_statement(id: Option<&str>) -> Statement {
    let columns: String = KEY_COLUMNS
        .split(", ")
        .map(|c| format!("k.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (filter, params) = match id {
        Some(id) => ("WHERE k.id = ?1", vec![SqlValue::Text(id.to_string())]),
        None => ("", Vec::new()),
    };
    Statement {
        sql: format!(
            "SELECT {columns}, COUNT(r.id) AS calls, COALESCE(SUM(r.total_tokens), 0) AS tokens, \
             COALESCE(SUM(CASE WHEN r.status >= 400 OR r.error IS NOT NULL THEN 1 ELSE 0 END), 0) AS errors, \
             MAX(r.created_ms) AS last_used_ms \
             FROM access_keys k LEFT JOIN requests r ON r.key_id = k.id {filter} \
             GROUP BY k.id ORDER BY k.created_at DESC, k.id DESC"
        ),
        params,
    }
}

// ---- the per-isolate cache ------------------------------------------------------------------

/// Entries kept at most, of each kind: a flood of made-up keys only ever costs this much
/// memory, and never pushes the real keys out.
pub const CACHE_CAPACITY: usize = 1024;

/// Keys by hash as found in D1 at a time, and credentials found unknown, kept apart.
#[derive(Debug, Default)]
pub struct KeyCache {
    found: HashMap<String, (AccessKey, i64)>,
    unknown: HashMap<String, i64>,
}

impl KeyCache {
    /// `Some(found)` while the entry is fresh, `None` when D1 must be asked.
    pub fn get(&self, key_hash: &str, now_ms: i64, ttl_ms: i64) -> Option<Option<AccessKey>> {
        if let Some((key, at)) = self.found.get(key_hash) {
            return (now_ms - at < ttl_ms).then(|| Some(key.clone()));
        }
        let at = self.unknown.get(key_hash)?;
        (now_ms - at < ttl_ms).then_some(None)
    }

    /// What D1 said at `at_ms` (or what the admin API just wrote). An entry newer than that
    /// is kept: a read that started before an admin change cannot undo it.
    pub fn put(&mut self, key_hash: &str, key: Option<AccessKey>, at_ms: i64, ttl_ms: i64) {
        let found_at = self.found.get(key_hash).map(|(_, at)| *at);
        let unknown_at = self.unknown.get(key_hash).copied();
        if found_at.into_iter().chain(unknown_at).any(|at| at > at_ms) {
            return;
        }
        self.found.remove(key_hash);
        self.unknown.remove(key_hash);
        match key {
            Some(key) => {
                if self.found.len() >= CACHE_CAPACITY {
                    self.found.retain(|_, (_, at)| at_ms - *at < ttl_ms);
                }
                if self.found.len() < CACHE_CAPACITY {
                    self.found.insert(key_hash.to_string(), (key, at_ms));
                }
            }
            None => {
                if self.unknown.len() >= CACHE_CAPACITY {
                    self.unknown.retain(|_, at| at_ms - *at < ttl_ms);
                    if self.unknown.len() >= CACHE_CAPACITY {
                        self.unknown.clear();
                    }
                }
                self.unknown.insert(key_hash.to_string(), at_ms);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.found.len() + self.unknown.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn key(body: &str) -> AccessKey {
        parse_new(body.as_bytes(), "key_1".into(), "sk-gw-abcdEFGHijkl", NOW).unwrap()
    }

    #[test]
    fn secrets_ids_hashes_and_hints() {
        let secret = new_secret(&[0xff; 32]);
        assert_eq!(secret.len(), KEY_PREFIX.len() + 43);
        assert!(secret.starts_with("sk-gw-____"));
        assert_ne!(new_secret(&[1; 32]), new_secret(&[2; 32]));
        assert!(is_access_key(&secret));
        assert_eq!(new_id(&[0xab; 8]), "key_abababababababab");
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hint("sk-gw-abcdEFGHijkl"), "sk-gw-abcd…ijkl");
        assert!(!hint(&secret).contains(&secret[10..secret.len() - 4]));
    }

    #[test]
    fn a_new_key_takes_every_field() {
        let k = key(
            r#"{"name":" team a ","models":["gpt-*","claude-sonnet-4-5"],"origins":["https://App.example.com/"],
               "rpm":3,"tpm":1000,"tpd":null,"expires_at":"2027-01-31T00:00:00Z"}"#,
        );
        assert_eq!(k.name, "team a");
        assert_eq!(k.models, ["gpt-*", "claude-sonnet-4-5"]);
        assert_eq!(k.origins, ["https://app.example.com"]);
        assert_eq!(
            k.limits(),
            Limits {
                rpm: Some(3),
                tpm: Some(1000),
                tpd: None
            }
        );
        assert_eq!(k.expires_at, Some(1_801_353_600));
        assert!(k.enabled);
        assert_eq!(k.hint, "sk-gw-abcd…ijkl");
        let view = k.view(None);
        assert_eq!(view["object"], "gateway.key");
        assert!(view.get("usage").is_none());
        assert!(!view.to_string().contains("sk-gw-abcdEFGHijkl"));
    }

    #[test]
    fn bad_bodies_name_their_field() {
        for (body, param) in [
            (r#"{}"#, "name"),
            (r#"{"name":""}"#, "name"),
            (r#"{"name":"a\u0007"}"#, "name"),
            (r#"{"name":"a","rpm":0}"#, "rpm"),
            (r#"{"name":"a","tpm":1.5}"#, "tpm"),
            (r#"{"name":"a","tpd":"9"}"#, "tpd"),
            (r#"{"name":"a","models":"gpt-*"}"#, "models"),
            (r#"{"name":"a","models":["gpt 4"]}"#, "models"),
            (r#"{"name":"a","origins":["app.example.com"]}"#, "origins"),
            (
                r#"{"name":"a","origins":["https://a.com,https://b.com"]}"#,
                "origins",
            ),
            (r#"{"name":"a","expires_at":"tomorrow"}"#, "expires_at"),
            (r#"{"name":"a","expires_at":1000}"#, "expires_at"),
            (r#"{"name":"a","rpms":3}"#, "rpms"),
            (r#"{"name":"a","enabled":"yes"}"#, "enabled"),
        ] {
            let error = parse_new(body.as_bytes(), "key_1".into(), "sk-gw-x", NOW).unwrap_err();
            assert_eq!(error.status(), 400, "{body}");
            assert_eq!(error.to_body()["error"]["param"], param, "{body}");
        }
        assert_eq!(
            parse_new(b"[1]", "k".into(), "s", NOW)
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn star_means_no_restriction() {
        let k = key(r#"{"name":"a","models":["*"],"origins":["*"]}"#);
        assert!(k.models.is_empty() && k.origins.is_empty());
        assert!(k.check_model("anything").is_ok());
        assert!(k.check_origin(None).is_ok());
    }

    #[test]
    fn patches_change_only_what_they_name() {
        let mut k = key(r#"{"name":"a","rpm":3,"tpm":100}"#);
        let patch =
            KeyPatch::parse(br#"{"enabled":false,"rpm":null,"models":["gpt-*"]}"#, NOW).unwrap();
        k.apply(patch, NOW + 5);
        assert!(!k.enabled);
        assert_eq!((k.rpm, k.tpm), (None, Some(100)));
        assert_eq!(k.models, ["gpt-*"]);
        assert_eq!(k.updated_at, NOW + 5);
        assert_eq!(
            k.check_usable(NOW).unwrap_err().to_body()["error"]["code"],
            "key_disabled"
        );
    }

    #[test]
    fn refusals() {
        let k = key(
            r#"{"name":"web","models":["gpt-4o*"],"origins":["https://*.example.com"],"expires_at":1790000100}"#,
        );
        assert!(k.check_usable(NOW).is_ok());
        let expired = k.check_usable(NOW + 100).unwrap_err();
        assert_eq!(
            (
                expired.status(),
                expired.to_body()["error"]["code"].as_str()
            ),
            (401, Some("key_expired"))
        );
        assert!(k.check_model("gpt-4o-mini").is_ok());
        let model = k.check_model("o3").unwrap_err();
        assert_eq!(
            (model.status(), model.to_body()["error"]["code"].as_str()),
            (403, Some("model_not_allowed"))
        );
        assert!(k.check_origin(Some("https://app.example.com")).is_ok());
        for origin in [Some("https://evil.com"), None] {
            let error = k.check_origin(origin).unwrap_err();
            assert_eq!(error.status(), 403);
            assert_eq!(error.to_body()["error"]["code"], "origin_not_allowed");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_timestamp("2027-01-31T02:00:00+02:00"),
            Some(1_801_353_600)
        );
        assert_eq!(
            parse_timestamp("2027-01-30T19:00:00.250-05:00"),
            Some(1_801_353_600)
        );
        assert_eq!(parse_timestamp("2027-01-31T00:00Z"), Some(1_801_353_600));
        for bad in [
            "",
            "2027-13-01",
            "2027-01-31T25:00:00Z",
            "2027-01-31T00:00:00",
            "x-1-1",
            "2027-01-31T00:00:00.x1Z",
            "9223372036854775807-01-01",
            "99999999999999-01-01",
            "10000-01-01",
            "1969-12-31",
            "2027-02-29",
            "2027-04-31",
            "2027-01-01T00:00+9999999999999999:00",
            "2027-01-01T00:00+24:00",
            "2027-01-01T00:00:00.Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn rows_round_trip_through_statements() {
        let k = key(r#"{"name":"a","models":["m-*"],"rpm":3}"#);
        let insert = insert_statement(&k, "hash1");
        assert_eq!(insert.params.len(), 13);
        assert_eq!(insert.sql.matches('?').count(), 13);
        let update = update_statement(&k);
        assert_eq!(update.params.len(), 12);
        let row: KeyRow = serde_json::from_value(json!({
            "id": "key_1", "name": "a", "key_hash": "hash1", "hint": k.hint, "models": "[\"m-*\"]",
            "origins": "[]", "rpm": 3, "tpm": null, "tpd": null, "expires_at": null, "enabled": 1,
            "created_at": NOW, "updated_at": NOW, "calls": 4, "tokens": 40, "errors": 1, "last_used_ms": 1_790_000_001_999i64
        }))
        .unwrap();
        assert_eq!(row.key(), k);
        let view = row.key().view(Some(&row.usage()));
        assert_eq!(view["usage"]["last_used_at"], 1_790_000_001);
        assert_eq!(view["usage"]["calls"], 4);
        assert!(list_statement(Some("key_1"))
            .sql
            .contains("WHERE k.id = ?1"));
    }

    #[test]
    fn well_formed_keys_and_model_patterns() {
        assert!(is_well_formed(&new_secret(&[7; 32])));
        let long = format!("sk-gw-{}", "a".repeat(44));
        let odd = format!("sk-gw-{}!", "a".repeat(42));
        for bad in ["sk-gw-", "sk-gw-x", "sk-gw-not-a-real-key", &long, &odd] {
            assert!(!is_well_formed(bad), "{bad}");
        }
        let k = key(r#"{"name":"a","models":["o*","openrouter/*"]}"#);
        assert!(k.allows_model("o3-mini"));
        assert!(k.allows_model("openrouter/anthropic/claude"));
        let o = key(r#"{"name":"a","models":["o*"]}"#);
        assert!(!o.allows_model("openrouter/anthropic/claude-opus-4"));
        let millis = parse_new(
            br#"{"name":"a","expires_at":1801353600000}"#,
            "k".into(),
            "s",
            NOW,
        );
        assert_eq!(
            millis.unwrap_err().to_body()["error"]["param"],
            "expires_at"
        );
        assert_eq!(parse_timestamp("2028-02-29"), Some(1_835_395_200));
    }

    #[test]
    fn corrupt_rows_fail_closed() {
        let row = |models: &str, rpm: Option<i64>| -> KeyRow {
            serde_json::from_value(json!({
                "id": "key_1", "name": "a", "key_hash": "h", "hint": "sk-gw-…", "models": models,
                "origins": "[]", "rpm": rpm, "tpm": null, "tpd": null, "expires_at": null, "enabled": 1,
                "created_at": NOW, "updated_at": NOW
            }))
            .unwrap()
        };
        assert!(row("[]", Some(3)).key().enabled);
        assert!(!row("garbage", None).key().enabled);
        assert!(!row("[]", Some(-5)).key().enabled);
    }

    #[test]
    fn charged_tokens_come_from_usage_else_an_estimate() {
        assert_eq!(
            tokens_to_charge(200, [Some(30), Some(10), Some(20)], 400, 400),
            30
        );
        assert_eq!(tokens_to_charge(200, [None, Some(10), None], 400, 400), 10);
        assert_eq!(tokens_to_charge(200, [None, None, None], 401, 80), 101 + 20);
        assert_eq!(tokens_to_charge(502, [None, None, None], 400, 80), 0);
        assert_eq!(tokens_to_charge(429, [Some(-3), None, None], 0, 0), 0);
        assert_eq!(
            tokens_to_charge(200, [None, Some(i64::MAX), Some(1)], 0, 0),
            i64::MAX as u64
        );
    }

    #[test]
    fn the_cache_expires_and_stays_bounded() {
        let mut cache = KeyCache::default();
        let k = key(r#"{"name":"a"}"#);
        cache.put("h1", Some(k.clone()), 1_000, 30_000);
        cache.put("h2", None, 1_000, 30_000);
        assert_eq!(cache.get("h1", 30_999, 30_000), Some(Some(k.clone())));
        assert_eq!(cache.get("h2", 2_000, 30_000), Some(None));
        assert_eq!(cache.get("h1", 31_000, 30_000), None);
        assert_eq!(cache.get("h3", 1_000, 30_000), None);
        cache.put("h1", Some(k.clone()), 40_000, 30_000);
        for i in 0..CACHE_CAPACITY * 2 {
            cache.put(&format!("flood{i}"), None, 40_000, 30_000);
        }
        assert!(cache.len() <= CACHE_CAPACITY + 1);
        assert_eq!(
            cache.get("h1", 40_001, 30_000),
            Some(Some(k.clone())),
            "a flood of unknown credentials leaves real keys alone"
        );
        // A read that started before an admin change does not undo it.
        cache.put("h1", None, 50_000, 30_000);
        cache.put("h1", Some(k), 45_000, 30_000);
        assert_eq!(cache.get("h1", 50_001, 30_000), Some(None));
    }
}
