//! The request log: what is recorded for each proxied call, how secrets are kept out of it,
//! and the SQL for storing, listing, searching and summarising it. Pure; the runtime runs
//! the statements against D1.

use crate::auth::key_fingerprint;
use crate::error::GatewayError;
use crate::scrub::Scrubber;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A value bound to a SQL statement (crossing to D1 as JSON: null, a number, a string).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SqlValue {
    Null,
    Int(i64),
    Text(String),
}

impl From<Option<String>> for SqlValue {
    fn from(v: Option<String>) -> Self {
        v.map_or(SqlValue::Null, SqlValue::Text)
    }
}

impl From<Option<i64>> for SqlValue {
    fn from(v: Option<i64>) -> Self {
        v.map_or(SqlValue::Null, SqlValue::Int)
    }
}

/// One SQL statement and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

impl Statement {
    /// Roughly what the statement weighs on the wire: its text and its text parameters.
    pub fn size(&self) -> usize {
        let params: usize = self
            .params
            .iter()
            .map(|p| match p {
                SqlValue::Text(text) => text.len(),
                _ => 8,
            })
            .sum();
        self.sql.len() + params
    }
}

/// Most statements sent to D1 in one batch. Each may count toward the 50 queries a Workers
/// Free invocation may make, and the invocation that sends a batch may also send the one
/// before it (found full or stale), each retried group by group if it fails: 4 × 10 = 40.
pub const BATCH_MAX_STATEMENTS: usize = 10;
/// Most bytes of SQL and parameters in one batch (a single larger group still goes, alone).
pub const BATCH_MAX_BYTES: usize = 1 << 20;

/// The log's writes that calls ending close together send to D1 as one batch (group
/// commit): one D1 call for many rows instead of one each. A group is one call's
/// statements; it stays whole, and is retried on its own if the batch fails.
#[derive(Debug, Default)]
pub struct Batch {
    statements: Vec<Statement>,
    /// Where each group ends in `statements`.
    ends: Vec<usize>,
    bytes: usize,
}

impl Batch {
    /// Whether `group` fits: an empty batch takes anything.
    pub fn admits(&self, group: &[Statement]) -> bool {
        let bytes: usize = group.iter().map(Statement::size).sum();
        self.ends.is_empty()
            || (self.statements.len() + group.len() <= BATCH_MAX_STATEMENTS
                && self.bytes + bytes <= BATCH_MAX_BYTES)
    }

    /// Adds a group; returns its index.
    pub fn push(&mut self, group: Vec<Statement>) -> usize {
        self.bytes += group.iter().map(Statement::size).sum::<usize>();
        self.statements.extend(group);
        self.ends.push(self.statements.len());
        self.ends.len() - 1
    }

    /// Each group's statements, in the order they were added.
    fn groups(&self) -> impl Iterator<Item = &[Statement]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.statements[start..end])
    }

    fn group_count(&self) -> usize {
        self.ends.len()
    }

    /// Runs the batch with `run` (one D1 call). D1 runs a batch as one transaction, so when
    /// it fails nothing of it was stored: then each group is run alone, and only a group
    /// that fails alone fails. Each group's outcome, in order.
    pub async fn run<'a, F, Fut>(&'a self, run: F) -> Vec<Result<(), String>>
    where
        F: Fn(&'a [Statement]) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        match run(&self.statements).await {
            Ok(()) => vec![Ok(()); self.group_count()],
            Err(e) if self.group_count() == 1 => vec![Err(e)],
            Err(_) => {
                let mut outcomes = Vec::with_capacity(self.group_count());
                for group in self.groups() {
                    outcomes.push(run(group).await);
                }
                outcomes
            }
        }
    }
}

/// Everything stored for one call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub request_id: String,
    pub created_at: String,
    pub created_ms: i64,
    pub method: String,
    pub path: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub stream: bool,
    pub fake_stream: bool,
    pub status: i64,
    pub first_byte_ms: Option<i64>,
    pub total_ms: Option<i64>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub client_ip: Option<String>,
    pub origin: Option<String>,
    pub user_agent: Option<String>,
    /// JSON object of header name → value, secrets replaced by fingerprints.
    pub request_headers: String,
    pub response_headers: String,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    /// The upstream of the last attempt.
    pub upstream: Option<String>,
    /// Upstream requests made for this call.
    pub attempts: i64,
    /// JSON array of `AttemptEntry`, one per attempt, in order.
    pub attempt_log: Option<String>,
    /// The API the client spoke: `chat`, `embeddings`, `messages` or `responses`.
    pub api: Option<String>,
    /// Tool types dropped because no upstream can run them, comma-separated.
    pub dropped_tools: Option<String>,
    /// When the first content reached the client (`first_byte_ms` may be a heartbeat).
    pub first_token_ms: Option<i64>,
    /// The access key the call was made with (never the key: its id and name).
    pub key_id: Option<String>,
    pub key_name: Option<String>,
}

/// One upstream attempt of a call, as the log keeps it: never the key, only a hash prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptEntry {
    pub upstream: String,
    /// The model name the upstream was asked for.
    pub model: String,
    /// `sha256:` and the first 8 hex digits of the key's hash.
    pub key: Option<String>,
    /// The upstream's HTTP status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub ms: i64,
}

/// The short key label of an attempt: enough to tell keys of a pool apart, nothing more.
pub fn key_label(key: &str) -> String {
    let fingerprint = crate::auth::key_fingerprint(key);
    fingerprint["sha256:".len()..]
        .get(..8)
        .map(|hex| format!("sha256:{hex}"))
        .unwrap_or(fingerprint)
}

const COLUMNS: &[&str] = &[
    "request_id",
    "created_at",
    "created_ms",
    "method",
    "path",
    "provider",
    "model",
    "stream",
    "fake_stream",
    "status",
    "first_byte_ms",
    "total_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "client_ip",
    "origin",
    "user_agent",
    "request_headers",
    "response_headers",
    "request_body",
    "response_body",
    "error",
    "upstream",
    "attempts",
    "attempt_log",
    "api",
    "dropped_tools",
    "first_token_ms",
    "key_id",
    "key_name",
];

impl LogRecord {
    /// The row's INSERT, skipped if a row with this request id is already there: a batch that
    /// D1 reported failed may have been stored all the same (say, the connection broke after
    /// the commit), and its retry must not write the row twice. Request ids are random.
    pub fn insert(&self) -> Statement {
        // Built once: every logged call inserts with the same text.
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("?{i}")).collect();
            format!(
                "INSERT INTO requests ({}) SELECT {} WHERE NOT EXISTS (SELECT 1 FROM requests WHERE request_id = ?1)",
                COLUMNS.join(", "),
                placeholders.join(", ")
            )
        });
        Statement {
            sql: sql.clone(),
            params: vec![
                SqlValue::Text(self.request_id.clone()),
                SqlValue::Text(self.created_at.clone()),
                SqlValue::Int(self.created_ms),
                SqlValue::Text(self.method.clone()),
                SqlValue::Text(self.path.clone()),
                self.provider.clone().into(),
                self.model.clone().into(),
                SqlValue::Int(self.stream as i64),
                SqlValue::Int(self.fake_stream as i64),
                SqlValue::Int(self.status),
                self.first_byte_ms.into(),
                self.total_ms.into(),
                self.prompt_tokens.into(),
                self.completion_tokens.into(),
                self.total_tokens.into(),
                self.client_ip.clone().into(),
                self.origin.clone().into(),
                self.user_agent.clone().into(),
                SqlValue::Text(self.request_headers.clone()),
                SqlValue::Text(self.response_headers.clone()),
                self.request_body.clone().into(),
                self.response_body.clone().into(),
                self.error.clone().into(),
                self.upstream.clone().into(),
                SqlValue::Int(self.attempts),
                self.attempt_log.clone().into(),
                self.api.clone().into(),
                self.dropped_tools.clone().into(),
                self.first_token_ms.into(),
                self.key_id.clone().into(),
                self.key_name.clone().into(),
            ],
        }
    }

    /// Every text column through the scrubber, just before the row is written: whatever a
    /// client or upstream put in a body, header or error, no known secret and no
    /// `Bearer`/`key=` credential is stored.
    pub fn scrub(&mut self, scrubber: &Scrubber) {
        for text in [
            &mut self.path,
            &mut self.request_headers,
            &mut self.response_headers,
        ] {
            *text = scrubber.text(text);
        }
        for text in [
            &mut self.model,
            &mut self.client_ip,
            &mut self.origin,
            &mut self.user_agent,
            &mut self.request_body,
            &mut self.response_body,
            &mut self.error,
            &mut self.attempt_log,
            &mut self.key_name,
        ]
        .into_iter()
        .flatten()
        {
            *text = scrubber.text(text);
        }
    }

    /// Token counts from an OpenAI `usage` object.
    pub fn set_usage(&mut self, usage: &Value) {
        let get = |name: &str| usage.get(name).and_then(Value::as_i64);
        self.prompt_tokens = get("prompt_tokens");
        self.completion_tokens = get("completion_tokens");
        self.total_tokens = get("total_tokens");
    }
}

/// Whether a finished call becomes a row under `LOG_SAMPLE_RATE` (`sample_ppm` parts per
/// million): an error always does, a success when `random` (0 ≤ r < 1) falls in the sample.
pub fn sampled(record: &LogRecord, sample_ppm: u32, random: f64) -> bool {
    let failed = record.status >= 400 || record.error.is_some();
    failed || random * 1_000_000.0 < f64::from(sample_ppm)
}

/// How often an isolate trims the log to `MAX_REQUESTS_HISTORY`: every `n`-th row it writes
/// (the first one included), so most calls cost one statement. Between trims the table holds
/// at most `n - 1` rows more per isolate; a small history is trimmed on every write.
pub fn trim_every(max_rows: i64) -> u64 {
    (max_rows / 50).clamp(1, 20) as u64
}

/// Keeps at most `max_rows` rows, dropping the oldest.
pub fn retention(max_rows: i64) -> Statement {
    Statement {
        sql: "DELETE FROM requests WHERE id <= (SELECT id FROM requests ORDER BY id DESC LIMIT 1 OFFSET ?1)"
            .into(),
        params: vec![SqlValue::Int(max_rows)],
    }
}

/// Requests refused for a missing or wrong access token are only counted, per minute, so
/// a flood of them cannot evict real rows through `MAX_REQUESTS_HISTORY`.
pub fn refusal_statements(now_ms: i64) -> [Statement; 2] {
    let minute = now_ms - now_ms.rem_euclid(60_000);
    [
        Statement {
            sql: "INSERT INTO refusals (minute_ms, count) VALUES (?1, 1) ON CONFLICT(minute_ms) DO UPDATE SET count = count + 1".into(),
            params: vec![SqlValue::Int(minute)],
        },
        Statement {
            sql: "DELETE FROM refusals WHERE minute_ms < ?1".into(),
            params: vec![SqlValue::Int(minute - REFUSAL_RETENTION_MS)],
        },
    ]
}

/// Refusal counts are kept for the longest stats window.
pub const REFUSAL_RETENTION_MS: i64 = 30 * 86_400_000;

/// The refusals counted since `since_ms` (whole minutes, so a window may include up to a
/// minute more).
pub fn refusals_statement(since_ms: Option<i64>) -> Statement {
    let since = since_ms.unwrap_or(0);
    Statement {
        sql: "SELECT COALESCE(SUM(count), 0) AS refused FROM refusals WHERE minute_ms >= ?1".into(),
        params: vec![SqlValue::Int(since - since.rem_euclid(60_000))],
    }
}

/// Header names that look like credentials: stored as a short hash, never as they are.
/// Rate-limit headers (`x-ratelimit-remaining-tokens`) are counters, not credentials.
fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name.contains("ratelimit") {
        return false;
    }
    ["auth", "key", "token", "secret", "cookie", "session"]
        .iter()
        .any(|part| name.contains(part))
}

/// Headers as a JSON object for the log: every credential-like header, and every header
/// whose value holds a known secret, becomes a `sha256:` fingerprint (the auth scheme is
/// kept so `Bearer` stays readable).
pub fn redact_headers(headers: &[(String, String)], scrubber: &Scrubber) -> String {
    let mut object = Map::new();
    for (name, value) in headers {
        let shown = if is_secret_header(name) || scrubber.contains_secret(value) {
            match value.trim().split_once(' ') {
                Some((scheme, secret))
                    if scheme.eq_ignore_ascii_case("bearer")
                        || scheme.eq_ignore_ascii_case("basic") =>
                {
                    format!("{scheme} {}", key_fingerprint(secret.trim()))
                }
                _ => key_fingerprint(value.trim()),
            }
        } else {
            value.clone()
        };
        object.insert(name.to_ascii_lowercase(), Value::String(shown));
    }
    Value::Object(object).to_string()
}

/// At most `max_bytes` bytes of `text`, cut on a character boundary, with a marker.
pub fn truncate_body(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut cut = max_bytes;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… [truncated, {} bytes in all]", &text[..cut], text.len())
}

// ---- listing --------------------------------------------------------------------------------

/// A validated `/api/requests` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub page: i64,
    pub page_size: i64,
    pub search: Option<String>,
    pub status: Option<StatusFilter>,
    pub model: Option<String>,
    pub upstream: Option<String>,
    /// An access key id.
    pub key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Success,
    Error,
    Exact(i64),
    /// `2xx`, `4xx`, `5xx`: the hundred.
    Class(i64),
}

pub const MAX_PAGE_SIZE: i64 = 200;

impl ListQuery {
    pub fn parse(pairs: &[(String, String)]) -> Result<ListQuery, GatewayError> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let number = |name: &str, default: i64, max: i64| -> Result<i64, GatewayError> {
            match get(name) {
                None => Ok(default),
                Some(raw) => raw
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        GatewayError::invalid_param(
                            format!("`{name}` must be a whole number from 1 to {max}"),
                            name,
                        )
                    }),
            }
        };
        let status = match get("status") {
            None => None,
            Some(raw) => Some(match raw.to_ascii_lowercase().as_str() {
                "success" | "ok" => StatusFilter::Success,
                "error" | "failed" => StatusFilter::Error,
                class if class.len() == 3 && class.ends_with("xx") => {
                    let digit = class[..1]
                        .parse::<i64>()
                        .ok()
                        .filter(|d| (1..=5).contains(d));
                    StatusFilter::Class(digit.ok_or_else(|| {
                        GatewayError::invalid_param("unknown status class", "status")
                    })?)
                }
                code => StatusFilter::Exact(
                    code.parse::<i64>()
                        .ok()
                        .filter(|c| (100..=599).contains(c))
                        .ok_or_else(|| {
                            GatewayError::invalid_param(
                                "`status` must be success, error, 2xx/4xx/5xx or a status code",
                                "status",
                            )
                        })?,
                ),
            }),
        };
        Ok(ListQuery {
            page: number("page", 1, 1_000_000)?,
            page_size: number("page_size", 20, MAX_PAGE_SIZE)?,
            search: get("search"),
            status,
            model: get("model"),
            upstream: get("upstream"),
            key: get("key"),
        })
    }

    fn filters(&self) -> (String, Vec<SqlValue>) {
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<SqlValue> = Vec::new();
        if let Some(search) = &self.search {
            params.push(SqlValue::Text(format!("%{}%", escape_like(search))));
            let n = params.len();
            clauses.push(format!(
                "(path LIKE ?{n} ESCAPE '\\' OR model LIKE ?{n} ESCAPE '\\' OR method LIKE ?{n} ESCAPE '\\' OR request_body LIKE ?{n} ESCAPE '\\' OR response_body LIKE ?{n} ESCAPE '\\' OR request_id LIKE ?{n} ESCAPE '\\')"
            ));
        }
        if let Some(model) = &self.model {
            params.push(SqlValue::Text(model.clone()));
            clauses.push(format!("model = ?{}", params.len()));
        }
        if let Some(upstream) = &self.upstream {
            params.push(SqlValue::Text(upstream.clone()));
            clauses.push(format!("upstream = ?{}", params.len()));
        }
        if let Some(key) = &self.key {
            params.push(SqlValue::Text(key.clone()));
            clauses.push(format!("key_id = ?{}", params.len()));
        }
        match self.status {
            None => {}
            Some(StatusFilter::Success) => clauses.push("(status < 400 AND error IS NULL)".into()),
            Some(StatusFilter::Error) => {
                clauses.push("(status >= 400 OR error IS NOT NULL)".into())
            }
            Some(StatusFilter::Exact(code)) => {
                params.push(SqlValue::Int(code));
                clauses.push(format!("status = ?{}", params.len()));
            }
            Some(StatusFilter::Class(digit)) => {
                params.push(SqlValue::Int(digit * 100));
                params.push(SqlValue::Int(digit * 100 + 99));
                clauses.push(format!(
                    "status BETWEEN ?{} AND ?{}",
                    params.len() - 1,
                    params.len()
                ));
            }
        }
        let clause = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        (clause, params)
    }

    /// The count statement and the page statement.
    pub fn statements(&self) -> (Statement, Statement) {
        let (clause, params) = self.filters();
        let count = Statement {
            sql: format!("SELECT COUNT(*) AS total FROM requests{clause}"),
            params: params.clone(),
        };
        let mut page_params = params;
        page_params.push(SqlValue::Int(self.page_size));
        page_params.push(SqlValue::Int((self.page - 1) * self.page_size));
        let n = page_params.len();
        let list = Statement {
            sql: format!(
                "SELECT {SUMMARY_COLUMNS} FROM requests{clause} ORDER BY id DESC LIMIT ?{} OFFSET ?{n}",
                n - 1
            ),
            params: page_params,
        };
        (count, list)
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub const SUMMARY_COLUMNS: &str = "id, request_id, created_at, created_ms, method, path, provider, model, stream, fake_stream, status, first_byte_ms, total_ms, prompt_tokens, completion_tokens, total_tokens, error, upstream, attempts, api, first_token_ms, key_id, key_name";

/// One row of the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub id: i64,
    pub request_id: String,
    pub created_at: String,
    pub created_ms: i64,
    pub method: String,
    pub path: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub stream: i64,
    pub fake_stream: i64,
    pub status: i64,
    pub first_byte_ms: Option<i64>,
    pub total_ms: Option<i64>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub error: Option<String>,
    pub upstream: Option<String>,
    pub attempts: Option<i64>,
    #[serde(default)]
    pub api: Option<String>,
    #[serde(default)]
    pub first_token_ms: Option<i64>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub key_name: Option<String>,
}

pub fn list_body(query: &ListQuery, total: i64, rows: Vec<SummaryRow>) -> Value {
    json!({
        "object": "list",
        "data": rows,
        "page": query.page,
        "page_size": query.page_size,
        "total": total,
        "total_pages": (total + query.page_size - 1) / query.page_size,
    })
}

/// `/api/request/{id}`: by row id or by request id.
pub fn detail_statement(id: &str) -> Statement {
    match id.parse::<i64>() {
        Ok(n) => Statement {
            sql: "SELECT * FROM requests WHERE id = ?1".into(),
            params: vec![SqlValue::Int(n)],
        },
        Err(_) => Statement {
            sql: "SELECT * FROM requests WHERE request_id = ?1".into(),
            params: vec![SqlValue::Text(id.to_string())],
        },
    }
}

/// A full row: stored JSON header maps become objects, and a JSON body is parsed so the
/// dashboard can pretty-print it (the raw text stays in `*_body`).
pub fn detail_body(mut row: Map<String, Value>) -> Value {
    for key in ["request_headers", "response_headers", "attempt_log"] {
        if let Some(Value::String(text)) = row.get(key) {
            if let Ok(parsed) = serde_json::from_slice::<Value>(text.as_bytes()) {
                row.insert(key.into(), parsed);
            }
        }
    }
    for key in ["stream", "fake_stream"] {
        if let Some(n) = row.get(key).and_then(Value::as_f64) {
            row.insert(key.into(), Value::Bool(n != 0.0));
        }
    }
    Value::Object(row)
}

// ---- statistics ----------------------------------------------------------------------------

/// The columns statistics are computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatRow {
    pub created_ms: i64,
    pub provider: Option<String>,
    #[serde(default)]
    pub upstream: Option<String>,
    pub model: Option<String>,
    pub status: i64,
    pub total_ms: Option<i64>,
    pub first_byte_ms: Option<i64>,
    #[serde(default)]
    pub first_token_ms: Option<i64>,
    pub total_tokens: Option<i64>,
    pub error: Option<String>,
}

impl StatRow {
    fn ok(&self) -> bool {
        self.status < 400 && self.error.is_none()
    }
}

/// A stats window: `1h`, `24h`, `7d`, `30d` or `all`.
pub fn parse_window(raw: Option<&str>) -> Result<(String, Option<i64>), GatewayError> {
    let raw = raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("24h");
    let ms = match raw {
        "1h" => Some(3_600_000),
        "24h" | "1d" => Some(86_400_000),
        "7d" => Some(7 * 86_400_000),
        "30d" => Some(30 * 86_400_000),
        "all" => None,
        _ => {
            return Err(GatewayError::invalid_param(
                "`window` must be 1h, 24h, 7d, 30d or all",
                "window",
            ))
        }
    };
    Ok((raw.to_string(), ms))
}

pub fn stats_statement(since_ms: Option<i64>) -> Statement {
    Statement {
        sql: "SELECT created_ms, provider, upstream, model, status, total_ms, first_byte_ms, first_token_ms, total_tokens, error FROM requests WHERE created_ms >= ?1 ORDER BY created_ms".into(),
        params: vec![SqlValue::Int(since_ms.unwrap_or(0))],
    }
}

/// The `p`-th percentile (0–100) of sorted values, nearest-rank.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn average(values: &[i64]) -> Option<f64> {
    (!values.is_empty())
        .then(|| (values.iter().sum::<i64>() as f64 / values.len() as f64 * 10.0).round() / 10.0)
}

fn group_counts(rows: &[StatRow], key: impl Fn(&StatRow) -> Option<&String>) -> Vec<Value> {
    let mut groups: Vec<(String, Vec<&StatRow>)> = Vec::new();
    for row in rows {
        let name = key(row).cloned().unwrap_or_else(|| "(none)".into());
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, members)) => members.push(row),
            None => groups.push((name, vec![row])),
        }
    }
    groups.sort_unstable_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    groups
        .into_iter()
        .map(|(name, members)| {
            let latencies: Vec<i64> = members.iter().filter_map(|r| r.total_ms).collect();
            json!({
                "name": name,
                "count": members.len(),
                "errors": members.iter().filter(|r| !r.ok()).count(),
                "avg_latency_ms": average(&latencies),
            })
        })
        .collect()
}

pub const TIMELINE_BUCKETS: i64 = 24;

pub fn stats_body(
    rows: &[StatRow],
    refused: i64,
    window: &str,
    window_ms: Option<i64>,
    now_ms: i64,
) -> Value {
    let total = rows.len();
    let ok = rows.iter().filter(|r| r.ok()).count();
    let mut latencies: Vec<i64> = rows.iter().filter_map(|r| r.total_ms).collect();
    latencies.sort_unstable();
    let first_bytes: Vec<i64> = rows.iter().filter_map(|r| r.first_byte_ms).collect();
    let first_tokens: Vec<i64> = rows.iter().filter_map(|r| r.first_token_ms).collect();
    let start = match window_ms {
        Some(ms) => now_ms - ms,
        None => rows.first().map_or(now_ms, |r| r.created_ms),
    };
    let span = (now_ms - start).max(1);
    let bucket_ms = (span + TIMELINE_BUCKETS - 1) / TIMELINE_BUCKETS;
    let timeline: Vec<Value> = (0..TIMELINE_BUCKETS)
        .map(|i| {
            let from = start + i * bucket_ms;
            let members: Vec<&StatRow> = rows
                .iter()
                .filter(|r| {
                    r.created_ms >= from
                        && (r.created_ms < from + bucket_ms
                            || (i == TIMELINE_BUCKETS - 1 && r.created_ms <= now_ms))
                })
                .collect();
            let lat: Vec<i64> = members.iter().filter_map(|r| r.total_ms).collect();
            json!({
                "start_ms": from,
                "count": members.len(),
                "errors": members.iter().filter(|r| !r.ok()).count(),
                "avg_latency_ms": average(&lat),
            })
        })
        .collect();
    json!({
        "window": window,
        "total": total,
        "success": ok,
        "errors": total - ok,
        "success_rate": if total == 0 { Value::Null } else { json!(((ok as f64 / total as f64) * 1000.0).round() / 10.0) },
        "avg_latency_ms": average(&latencies),
        "p50_latency_ms": percentile(&latencies, 50.0),
        "p95_latency_ms": percentile(&latencies, 95.0),
        "avg_first_byte_ms": average(&first_bytes),
        "avg_first_token_ms": average(&first_tokens),
        "total_tokens": rows.iter().filter_map(|r| r.total_tokens).sum::<i64>(),
        "refused": refused,
        "by_model": group_counts(rows, |r| r.model.as_ref()),
        "by_provider": group_counts(rows, |r| r.provider.as_ref()),
        "by_upstream": group_counts(rows, |r| r.upstream.as_ref()),
        "timeline": timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn secrets_become_fingerprints() {
        let scrubber = Scrubber::new(["gw-access-token-1"]);
        let stored = redact_headers(
            &pairs(&[
                ("Authorization", "Bearer sk-live-secret-123"),
                ("X-Goog-Api-Key", "AIzaSecret"),
                ("Cookie", "session=abc"),
                ("X-Auth-Token", "tok-in-clear-1"),
                ("Api-Key", "apikey-in-clear"),
                ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
                ("X-Session-Id", "sess-1234"),
                ("X-Client-Secret", "cs-1234"),
                ("X-Custom", "carries gw-access-token-1 inside"),
                ("x-ratelimit-remaining-tokens", "999"),
                ("Content-Type", "application/json"),
            ]),
            &scrubber,
        );
        for clear in [
            "sk-live-secret-123",
            "AIzaSecret",
            "session=abc",
            "tok-in-clear-1",
            "apikey-in-clear",
            "dXNlcjpwYXNz",
            "sess-1234",
            "cs-1234",
            "gw-access-token-1",
        ] {
            assert!(!stored.contains(clear), "{clear} in {stored}");
        }
        let parsed: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(
            parsed["authorization"],
            format!("Bearer {}", key_fingerprint("sk-live-secret-123"))
        );
        assert!(parsed["x-goog-api-key"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"));
        assert!(parsed["proxy-authorization"]
            .as_str()
            .unwrap()
            .starts_with("Basic sha256:"));
        assert_eq!(parsed["content-type"], "application/json");
        assert_eq!(parsed["x-ratelimit-remaining-tokens"], "999");
    }

    #[test]
    fn every_text_column_is_scrubbed() {
        let scrubber = Scrubber::new(["sk-server/key+1"]);
        let mut record = LogRecord {
            request_body: Some("{\"k\":\"sk-server/key+1\"}".into()),
            response_body: Some("echo sk-server%2Fkey%2B1".into()),
            error: Some("Upstream said: Authorization: Bearer abcdefghijkl".into()),
            user_agent: Some("ua key=zzzzzzzzzz".into()),
            path: "/v1/chat/completions".into(),
            ..Default::default()
        };
        record.scrub(&scrubber);
        let all = serde_json::to_string(&record).unwrap();
        for leaked in ["sk-server", "abcdefghijkl", "zzzzzzzzzz"] {
            assert!(!all.contains(leaked), "{leaked} in {all}");
        }
        assert_eq!(record.path, "/v1/chat/completions");
    }

    #[test]
    fn refusals_count_per_minute() {
        let [upsert, prune] = refusal_statements(125_000);
        assert_eq!(upsert.params, vec![SqlValue::Int(120_000)]);
        assert!(upsert.sql.contains("ON CONFLICT"));
        assert_eq!(
            prune.params,
            vec![SqlValue::Int(120_000 - REFUSAL_RETENTION_MS)]
        );
        assert_eq!(
            refusals_statement(Some(61_000)).params,
            vec![SqlValue::Int(60_000)]
        );
    }

    #[test]
    fn truncation_is_utf8_safe() {
        assert_eq!(truncate_body("short", 10), "short");
        let cut = truncate_body("héllo wörld", 2);
        assert!(
            cut.starts_with('h') && cut.contains("truncated, 13 bytes"),
            "{cut}"
        );
        let cut = truncate_body("你好世界", 4);
        assert!(cut.starts_with("你…"), "{cut}");
    }

    #[test]
    fn insert_binds_every_column() {
        let record = LogRecord {
            request_id: "r".into(),
            model: Some("m".into()),
            stream: true,
            status: 200,
            ..Default::default()
        };
        let statement = record.insert();
        assert_eq!(statement.params.len(), COLUMNS.len());
        assert!(statement.sql.contains(&format!("?{}", COLUMNS.len())));
        assert_eq!(statement.params[7], SqlValue::Int(1));
        assert_eq!(retention(1000).params, vec![SqlValue::Int(1000)]);
    }

    #[test]
    fn batches_keep_groups_whole_and_bounded() {
        let statement = |text: &str| Statement {
            sql: "INSERT".into(),
            params: vec![SqlValue::Text(text.into()), SqlValue::Int(1)],
        };
        assert_eq!(statement("abc").size(), "INSERT".len() + 3 + 8);
        let mut batch = Batch::default();
        assert!(batch.admits(&[]));
        assert_eq!(batch.push(vec![statement("a"), statement("b")]), 0);
        assert_eq!(batch.push(vec![statement("c")]), 1);
        let groups: Vec<Vec<&SqlValue>> = batch
            .groups()
            .map(|g| g.iter().map(|s| &s.params[0]).collect())
            .collect();
        let text = |t: &str| SqlValue::Text(t.into());
        assert_eq!(groups, vec![vec![&text("a"), &text("b")], vec![&text("c")]]);
        assert_eq!(batch.statements.len(), 3);
        // Statement count: 3 + (cap − 3) fits, one more does not.
        let many: Vec<Statement> = (0..BATCH_MAX_STATEMENTS - 3)
            .map(|_| statement("x"))
            .collect();
        assert!(batch.admits(&many));
        batch.push(many);
        assert!(!batch.admits(&[statement("y")]));
        // Bytes: a group past the limit waits for a batch of its own, which takes it alone.
        let big = statement(&"z".repeat(BATCH_MAX_BYTES));
        let mut small = Batch::default();
        small.push(vec![statement("a")]);
        assert!(!small.admits(std::slice::from_ref(&big)));
        let mut alone = Batch::default();
        assert!(alone.admits(std::slice::from_ref(&big)));
        alone.push(vec![big]);
        assert!(!alone.admits(&[statement("a")]));
        assert_eq!(alone.group_count(), 1);
    }

    /// Polls a future that never waits (the fake D1 below answers at once).
    fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("the fake D1 never waits"),
        }
    }

    #[test]
    fn a_failed_batch_is_retried_group_by_group() {
        let row = |text: &str| Statement {
            sql: "INSERT".into(),
            params: vec![SqlValue::Text(text.into())],
        };
        let mut batch = Batch::default();
        batch.push(vec![row("a"), row("trim")]);
        batch.push(vec![row("bad")]);
        batch.push(vec![row("c")]);
        // A fake D1: a call holding the "bad" row fails as a whole (one transaction).
        let calls = std::cell::RefCell::new(Vec::<usize>::new());
        let run = |statements: &[Statement]| {
            calls.borrow_mut().push(statements.len());
            let bad = statements
                .iter()
                .any(|s| s.params[0] == SqlValue::Text("bad".into()));
            async move {
                if bad {
                    Err("too big".to_string())
                } else {
                    Ok(())
                }
            }
        };
        let outcomes = ready(batch.run(run));
        assert_eq!(outcomes, vec![Ok(()), Err("too big".to_string()), Ok(())]);
        assert_eq!(
            *calls.borrow(),
            vec![4, 2, 1, 1],
            "one batch, then each group alone"
        );

        // A batch that succeeds is one call; a lone group's failure is reported as it came.
        calls.borrow_mut().clear();
        let mut good = Batch::default();
        good.push(vec![row("a")]);
        good.push(vec![row("c")]);
        assert_eq!(ready(good.run(run)), vec![Ok(()), Ok(())]);
        assert_eq!(*calls.borrow(), vec![2]);
        let mut lone = Batch::default();
        lone.push(vec![row("bad")]);
        assert_eq!(ready(lone.run(run)), vec![Err("too big".to_string())]);
    }

    #[test]
    fn small_histories_are_trimmed_on_every_write() {
        assert_eq!(trim_every(6), 1);
        assert_eq!(trim_every(100), 2);
        assert_eq!(trim_every(1000), 20);
        assert_eq!(trim_every(1_000_000), 20);
    }

    #[test]
    fn sampling_keeps_every_error() {
        let ok = LogRecord {
            status: 200,
            ..LogRecord::default()
        };
        assert!(sampled(&ok, 1_000_000, 0.999_999));
        assert!(!sampled(&ok, 0, 0.0));
        assert!(sampled(&ok, 250_000, 0.249));
        assert!(!sampled(&ok, 250_000, 0.25));
        let failed = LogRecord {
            status: 502,
            ..LogRecord::default()
        };
        assert!(sampled(&failed, 0, 0.9));
        let broke = LogRecord {
            status: 200,
            error: Some("the client disconnected".into()),
            ..LogRecord::default()
        };
        assert!(sampled(&broke, 0, 0.9));
    }

    #[test]
    fn upstream_filter_and_attempt_entries() {
        let q = ListQuery::parse(&pairs(&[("upstream", "deepseek"), ("model", "chat")])).unwrap();
        let (count, list) = q.statements();
        assert!(
            count.sql.contains("model = ?1 AND upstream = ?2"),
            "{}",
            count.sql
        );
        assert_eq!(count.params[1], SqlValue::Text("deepseek".into()));
        assert!(list.sql.contains("upstream, attempts"), "{}", list.sql);
        let by_key = ListQuery::parse(&pairs(&[("key", "key_1"), ("status", "error")])).unwrap();
        let (count, list) = by_key.statements();
        assert!(
            count.sql.contains("key_id = ?1 AND (status >= 400"),
            "{}",
            count.sql
        );
        assert!(list.sql.contains("key_id, key_name"), "{}", list.sql);
        let label = key_label("sk-pool-key-1");
        assert!(label.starts_with("sha256:") && label.len() == "sha256:".len() + 8);
        assert!(crate::auth::key_fingerprint("sk-pool-key-1").starts_with(&label));
        assert_ne!(label, key_label("sk-pool-key-2"));
        let entry = AttemptEntry {
            upstream: "deepseek".into(),
            model: "deepseek-chat".into(),
            key: Some(label),
            status: Some(503),
            error: Some("mock error".into()),
            ms: 12,
        };
        let mut row = Map::new();
        row.insert(
            "attempt_log".into(),
            Value::String(serde_json::to_string(&vec![entry]).unwrap()),
        );
        let detail = detail_body(row);
        assert_eq!(detail["attempt_log"][0]["status"], 503);
        assert_eq!(detail["attempt_log"][0]["upstream"], "deepseek");
    }

    #[test]
    fn list_query_and_sql() {
        let q = ListQuery::parse(&pairs(&[
            ("page", "3"),
            ("page_size", "10"),
            ("search", "50%_off"),
            ("status", "4xx"),
            ("model", "gpt-4o"),
        ]))
        .unwrap();
        assert_eq!(q.status, Some(StatusFilter::Class(4)));
        let (count, list) = q.statements();
        assert_eq!(count.params[0], SqlValue::Text("%50\\%\\_off%".into()));
        assert!(
            count.sql.contains("status BETWEEN ?3 AND ?4"),
            "{}",
            count.sql
        );
        assert_eq!(
            list.params[list.params.len() - 2..],
            [SqlValue::Int(10), SqlValue::Int(20)]
        );
        assert!(
            list.sql.ends_with("ORDER BY id DESC LIMIT ?5 OFFSET ?6"),
            "{}",
            list.sql
        );

        let plain = ListQuery::parse(&[]).unwrap();
        assert_eq!((plain.page, plain.page_size), (1, 20));
        assert!(!plain.statements().0.sql.contains("WHERE"));
        for bad in [
            ("page", "0"),
            ("page_size", "1000"),
            ("status", "abc"),
            ("status", "9xx"),
            ("page", "x"),
        ] {
            assert_eq!(
                ListQuery::parse(&pairs(&[bad])).unwrap_err().status(),
                400,
                "{bad:?}"
            );
        }
        assert_eq!(
            ListQuery::parse(&pairs(&[("status", "error")]))
                .unwrap()
                .status,
            Some(StatusFilter::Error)
        );
        assert_eq!(
            ListQuery::parse(&pairs(&[("status", "502")]))
                .unwrap()
                .status,
            Some(StatusFilter::Exact(502))
        );
        let body = list_body(&plain, 41, vec![]);
        assert_eq!(body["total_pages"], 3);
    }

    #[test]
    fn detail_by_id_or_request_id() {
        assert_eq!(detail_statement("12").params, vec![SqlValue::Int(12)]);
        assert!(detail_statement("abc").sql.contains("request_id"));
        let mut row = Map::new();
        row.insert("request_headers".into(), json!("{\"a\":\"b\"}"));
        row.insert("stream".into(), json!(1.0));
        let body = detail_body(row);
        assert_eq!(body["request_headers"]["a"], "b");
        assert_eq!(body["stream"], true);
    }

    #[test]
    fn percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn stats() {
        let row = |ms: i64, model: &str, status: i64, total: i64, error: Option<&str>| StatRow {
            created_ms: ms,
            provider: Some("openai".into()),
            upstream: Some(if status < 400 { "main" } else { "backup" }.into()),
            model: Some(model.into()),
            status,
            total_ms: Some(total),
            first_byte_ms: Some(total / 2),
            first_token_ms: Some(total * 3 / 4),
            total_tokens: Some(10),
            error: error.map(str::to_string),
        };
        let rows = vec![
            row(1_000, "a", 200, 100, None),
            row(2_000, "a", 200, 300, None),
            row(3_000, "b", 502, 50, Some("bad")),
            row(3_500, "b", 200, 200, Some("stream cut")),
        ];
        let body = stats_body(&rows, 7, "1h", Some(3_600_000), 4_000);
        assert_eq!(body["total"], 4);
        assert_eq!(body["success"], 2);
        assert_eq!(body["success_rate"], 50.0);
        assert_eq!(body["avg_latency_ms"], 162.5);
        // First byte (a fake stream's heartbeat) and first token are averaged apart.
        assert!(body["avg_first_token_ms"].as_f64() > body["avg_first_byte_ms"].as_f64());
        assert_eq!(body["p50_latency_ms"], 100);
        assert_eq!(body["p95_latency_ms"], 300);
        assert_eq!(body["total_tokens"], 40);
        assert_eq!(body["refused"], 7);
        assert_eq!(body["by_model"][0]["name"], "a");
        assert_eq!(body["by_model"][1]["errors"], 2);
        assert_eq!(body["by_provider"][0]["count"], 4);
        assert_eq!(body["by_upstream"][0]["name"], "main");
        assert_eq!(body["by_upstream"][0]["count"], 3);
        assert_eq!(body["by_upstream"][1]["errors"], 1);
        let timeline = body["timeline"].as_array().unwrap();
        assert_eq!(timeline.len() as i64, TIMELINE_BUCKETS);
        assert_eq!(
            timeline
                .iter()
                .map(|b| b["count"].as_u64().unwrap())
                .sum::<u64>(),
            4
        );
        assert!(parse_window(Some("2w")).is_err());
        assert_eq!(
            parse_window(None).unwrap(),
            ("24h".to_string(), Some(86_400_000))
        );
        let empty = stats_body(&[], 0, "all", None, 10);
        assert_eq!(empty["success_rate"], Value::Null);
    }
}
