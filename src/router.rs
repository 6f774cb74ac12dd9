//! The router: which upstreams may serve a model (candidates), and what to do after each
//! failed attempt (which key next, which target, how long to wait). Pure: the runtime
//! executes the plan and owns the clock, the randomness and the per-isolate key state.

use crate::auth;
use crate::config::{Config, RetrySettings};
use crate::error::GatewayError;
use crate::upstreams::{Strategy, Upstream};
use std::collections::HashMap;

/// One upstream that may serve the call, with the model name it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    pub model: String,
}

/// The upstreams that may serve `model`, in the order to try them: a route's targets, else
/// the upstream its `name/` prefix names, else the first upstream whose patterns match.
/// `random` yields numbers in [0, 1) for weighted routes.
pub fn candidates(
    config: &Config,
    model: &str,
    random: &mut dyn FnMut() -> f64,
) -> Result<Vec<Candidate>, GatewayError> {
    let upstreams = &config.upstreams;
    let route = config.routes.iter().find(|r| r.name == model).or_else(|| {
        config
            .routes
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(model))
    });
    if let Some(route) = route {
        let mut targets: Vec<Candidate> = route
            .targets
            .iter()
            .map(|t| Candidate {
                upstream: t.upstream,
                model: upstreams[t.upstream].upstream_model(&t.model).to_string(),
            })
            .collect();
        if route.strategy == Strategy::Weighted {
            targets = weighted_order(targets, |c| upstreams[c.upstream].weight, random);
        }
        return Ok(targets);
    }
    if let Some((prefix, rest)) = model.split_once('/') {
        if let Some(index) = upstreams
            .iter()
            .position(|u| u.name.eq_ignore_ascii_case(prefix))
        {
            if rest.trim().is_empty() {
                return Err(GatewayError::InvalidRequest {
                    message: format!("The model `{model}` names the upstream but no model"),
                    param: Some("model".into()),
                    code: Some("model_not_found"),
                });
            }
            return Ok(vec![Candidate {
                upstream: index,
                model: upstreams[index].upstream_model(rest).to_string(),
            }]);
        }
    }
    upstreams
        .iter()
        .position(|u| u.serves(model))
        .map(|index| {
            vec![Candidate {
                upstream: index,
                model: upstreams[index].upstream_model(model).to_string(),
            }]
        })
        .ok_or_else(|| GatewayError::InvalidRequest {
            message: format!(
                "The model `{model}` is not served by this gateway: no route has that name and no upstream's model patterns match it (use an `upstream/model` prefix, a ROUTES entry or an upstream's `models`)"
            ),
            param: Some("model".into()),
            code: Some("model_not_found"),
        })
}

/// A weighted random order without replacement: heavier items tend to come first.
fn weighted_order<T>(
    mut items: Vec<T>,
    weight: impl Fn(&T) -> u32,
    random: &mut dyn FnMut() -> f64,
) -> Vec<T> {
    let mut ordered = Vec::with_capacity(items.len());
    while !items.is_empty() {
        let total: u64 = items.iter().map(|i| u64::from(weight(i).max(1))).sum();
        let mut point = (random().clamp(0.0, 0.999_999) * total as f64) as u64;
        let mut chosen = items.len() - 1;
        for (index, item) in items.iter().enumerate() {
            let w = u64::from(weight(item).max(1));
            if point < w {
                chosen = index;
                break;
            }
            point -= w;
        }
        ordered.push(items.remove(chosen));
    }
    ordered
}

/// Which key a candidate's calls use.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// The upstream's key pool of this many keys.
    Pool(usize),
    /// The client's own key (public mode).
    Client,
    /// No key can be used: the error says why (naming the secret to set).
    Missing(GatewayError),
}

/// The key source of `upstream` for a call, following the access rules of `auth`.
pub fn key_source(
    gateway_auth: bool,
    upstream: &Upstream,
    presented: Option<&str>,
    model: &str,
) -> KeySource {
    if !upstream.keys.is_empty() {
        return KeySource::Pool(upstream.keys.len());
    }
    // The demo upstream needs no key, and no client key ever goes to it.
    if upstream.kind.id == "demo" {
        return KeySource::Client;
    }
    match auth::client_key_allowed(gateway_auth, upstream, presented, model) {
        Ok(()) => KeySource::Client,
        Err(error) => KeySource::Missing(error),
    }
}

/// What kind of failure an attempt ended with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// Connection errors, timeouts, 408, 500, 502, 503, 504.
    Retryable,
    /// 429, with the wait the upstream asked for.
    RateLimited { retry_after_ms: Option<u64> },
    /// 401/403: this key is refused.
    KeyRejected,
    /// Anything else goes to the client as it is.
    Final,
}

pub fn classify(error: &GatewayError) -> Failure {
    match error {
        GatewayError::UpstreamUnreachable(_) | GatewayError::UpstreamTimeout { .. } => {
            Failure::Retryable
        }
        GatewayError::Upstream { status, .. } => match status {
            408 | 500 | 502 | 503 | 504 => Failure::Retryable,
            429 => Failure::RateLimited {
                retry_after_ms: retry_after_ms(error.headers()),
            },
            401 | 403 => Failure::KeyRejected,
            _ => Failure::Final,
        },
        _ => Failure::Final,
    }
}

/// `retry-after-ms`, else `retry-after` in seconds (an HTTP date is ignored).
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if let Some(ms) = find("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return (ms.is_finite() && ms >= 0.0).then_some(ms as u64);
    }
    find("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| (s * 1000.0) as u64)
}

/// The first backoff on the same key; it doubles per retry, with jitter.
pub const BACKOFF_BASE_MS: u64 = 250;

/// Health of every pooled key, per isolate and best effort: keys are taken round-robin,
/// skipping keys cooling down (429) or disabled (401/403) until their time is up.
#[derive(Debug, Default)]
pub struct KeyBook {
    pools: HashMap<String, Pool>,
}

#[derive(Debug, Default)]
struct Pool {
    next: usize,
    /// Key index → until when (ms since epoch) it is cooling or disabled.
    cooling: HashMap<usize, f64>,
    disabled: HashMap<usize, f64>,
}

impl Pool {
    fn free_at(&self, key: usize) -> f64 {
        let cool = self.cooling.get(&key).copied().unwrap_or(0.0);
        let off = self.disabled.get(&key).copied().unwrap_or(0.0);
        cool.max(off)
    }
}

impl KeyBook {
    /// The next key of a pool of `len` keys that is not in `exclude`: the next free one in
    /// round-robin order, else (`any`) the one free soonest.
    pub fn pick(
        &mut self,
        upstream: &str,
        len: usize,
        now: f64,
        exclude: &[usize],
        any: bool,
    ) -> Option<usize> {
        let pool = self.pools.entry(upstream.to_string()).or_default();
        let order = (0..len).map(|i| (pool.next + i) % len);
        let free = order
            .clone()
            .find(|k| !exclude.contains(k) && pool.free_at(*k) <= now);
        let chosen = free.or_else(|| {
            any.then(|| {
                order
                    .filter(|k| !exclude.contains(k))
                    .min_by(|a, b| pool.free_at(*a).total_cmp(&pool.free_at(*b)))
            })
            .flatten()
        })?;
        pool.next = (chosen + 1) % len.max(1);
        Some(chosen)
    }

    pub fn cool(&mut self, upstream: &str, key: usize, until: f64) {
        let pool = self.pools.entry(upstream.to_string()).or_default();
        let entry = pool.cooling.entry(key).or_insert(0.0);
        *entry = entry.max(until);
    }

    pub fn disable(&mut self, upstream: &str, key: usize, until: f64) {
        let pool = self.pools.entry(upstream.to_string()).or_default();
        pool.disabled.insert(key, until);
    }

    /// How many of a pool's keys are cooling down and how many are disabled right now.
    pub fn counts(&self, upstream: &str, len: usize, now: f64) -> (usize, usize) {
        let Some(pool) = self.pools.get(upstream) else {
            return (0, 0);
        };
        let count = |map: &HashMap<usize, f64>| {
            map.iter()
                .filter(|(k, until)| **k < len && **until > now)
                .count()
        };
        (count(&pool.cooling), count(&pool.disabled))
    }
}

/// One attempt to make: which candidate, which pooled key (`None`: the client's key), and
/// how long to wait first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub candidate: usize,
    pub key: Option<usize>,
    pub wait_ms: u64,
}

/// The attempt loop's decisions for one call.
#[derive(Debug)]
pub struct Planner {
    names: Vec<String>,
    sources: Vec<KeySource>,
    settings: RetrySettings,
    made: u32,
    current: Attempt,
    /// Keys already tried, per candidate.
    tried: Vec<Vec<usize>>,
    same_target_retries: u32,
}

impl Planner {
    /// The first attempt: the first candidate with a usable, free key (else the first with
    /// any key). Fails with the first candidate's key error when none has a key at all.
    /// `names` are the candidates' upstream names (the key book's keys).
    pub fn start(
        names: Vec<String>,
        sources: Vec<KeySource>,
        settings: RetrySettings,
        book: &mut KeyBook,
        now: f64,
    ) -> Result<(Planner, Attempt), GatewayError> {
        let mut planner = Planner {
            tried: vec![Vec::new(); names.len()],
            names,
            sources,
            settings,
            made: 0,
            current: Attempt {
                candidate: 0,
                key: None,
                wait_ms: 0,
            },
            same_target_retries: 0,
        };
        let first = planner
            .next_candidate(None, book, now, false)
            .or_else(|| planner.next_candidate(None, book, now, true));
        match first {
            Some(attempt) => {
                planner.begin(attempt);
                Ok((planner, attempt))
            }
            None => Err(planner
                .sources
                .iter()
                .find_map(|s| match s {
                    KeySource::Missing(error) => Some(error.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| GatewayError::Internal("a route has no targets".into()))),
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.made
    }

    fn begin(&mut self, attempt: Attempt) {
        self.made += 1;
        if attempt.candidate != self.current.candidate || attempt.key != self.current.key {
            self.same_target_retries = 0;
        }
        if let Some(key) = attempt.key {
            if !self.tried[attempt.candidate].contains(&key) {
                self.tried[attempt.candidate].push(key);
            }
        }
        self.current = attempt;
    }

    /// The first candidate after `after` (or from the start) that has a key; a pooled key
    /// must be free unless `any`.
    fn next_candidate(
        &self,
        after: Option<usize>,
        book: &mut KeyBook,
        now: f64,
        any: bool,
    ) -> Option<Attempt> {
        let from = after.map_or(0, |a| a + 1);
        (from..self.sources.len()).find_map(|candidate| {
            let key = match &self.sources[candidate] {
                KeySource::Missing(_) => return None,
                KeySource::Client => None,
                KeySource::Pool(len) => {
                    Some(book.pick(&self.names[candidate], *len, now, &[], any)?)
                }
            };
            Some(Attempt {
                candidate,
                key,
                wait_ms: 0,
            })
        })
    }

    /// Another free key of the current candidate's pool, not yet tried in this call.
    fn next_key(&self, book: &mut KeyBook, now: f64) -> Option<Attempt> {
        let candidate = self.current.candidate;
        let KeySource::Pool(len) = self.sources[candidate] else {
            return None;
        };
        let key = book.pick(
            &self.names[candidate],
            len,
            now,
            &self.tried[candidate],
            false,
        )?;
        Some(Attempt {
            candidate,
            key: Some(key),
            wait_ms: 0,
        })
    }

    /// The same target again after `wait_ms`, unless that is longer than allowed.
    fn same_again(&self, wait_ms: u64) -> Option<Attempt> {
        (wait_ms <= self.settings.retry_max_wait_ms).then_some(Attempt {
            wait_ms,
            ..self.current
        })
    }

    fn backoff_ms(&self, random: f64) -> u64 {
        let exponential = BACKOFF_BASE_MS.saturating_mul(1 << self.same_target_retries.min(16));
        let capped = exponential.min(self.settings.retry_max_wait_ms);
        // Jitter: a factor from 0.5 to 1, so retries of many calls do not line up.
        (capped as f64 * (0.5 + 0.5 * random.clamp(0.0, 1.0))) as u64
    }

    /// After the current attempt failed with `error`: records what it says about its key
    /// and decides the next attempt, or `None` to give the client this error.
    pub fn after_failure(
        &mut self,
        error: &GatewayError,
        book: &mut KeyBook,
        now: f64,
        random: f64,
    ) -> Option<Attempt> {
        let failure = classify(error);
        let name = self.names[self.current.candidate].clone();
        match (failure, self.current.key) {
            (Failure::RateLimited { retry_after_ms }, Some(key)) => {
                let cool = retry_after_ms.unwrap_or(self.settings.key_cooldown_ms);
                book.cool(&name, key, now + cool as f64);
            }
            (Failure::KeyRejected, Some(key)) => {
                book.disable(&name, key, now + self.settings.key_disable_ms as f64);
            }
            _ => {}
        }
        if self.made >= self.settings.max_attempts {
            return None;
        }
        let next = match failure {
            Failure::Final => None,
            Failure::KeyRejected => self.next_key(book, now),
            Failure::RateLimited { retry_after_ms } => self
                .next_key(book, now)
                .or_else(|| self.next_candidate(Some(self.current.candidate), book, now, false))
                .or_else(|| {
                    let wait = retry_after_ms.unwrap_or_else(|| self.backoff_ms(random));
                    self.same_again(wait)
                }),
            Failure::Retryable => self
                .next_candidate(Some(self.current.candidate), book, now, false)
                .or_else(|| self.next_candidate(Some(self.current.candidate), book, now, true))
                .or_else(|| self.same_again(self.backoff_ms(random))),
        };
        if let Some(attempt) = next {
            let same =
                attempt.candidate == self.current.candidate && attempt.key == self.current.key;
            self.begin(attempt);
            if same {
                self.same_target_retries += 1;
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap as Map;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: Map<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned()).unwrap()
    }

    fn routed() -> Config {
        config(&[
            (
                "UPSTREAMS",
                r#"[{"name":"deepseek","kind":"openai","base_url":"https://api.deepseek.com/v1","keys":"DS_KEYS","models":["deepseek-*"],"weight":9},
                    {"name":"openrouter","kind":"openai","base_url":"https://openrouter.ai/api/v1","keys":"OR_KEYS","model_map":{"fast":"meta-llama/llama-3.1-8b"}},
                    {"name":"gem","kind":"gemini","keys":"GEM_KEYS","models":["gemini-*"]}]"#,
            ),
            (
                "ROUTES",
                r#"{"chat":["deepseek/deepseek-chat","openrouter/deepseek/deepseek-chat"],
                    "spread":{"targets":["openrouter/a","deepseek/b"],"strategy":"weighted"}}"#,
            ),
            ("DS_KEYS", "d1,d2"),
            ("OR_KEYS", "o1"),
        ])
    }

    fn ids(c: &Config, list: &[Candidate]) -> Vec<String> {
        list.iter()
            .map(|x| format!("{}/{}", c.upstreams[x.upstream].name, x.model))
            .collect()
    }

    #[test]
    fn candidates_from_routes_prefixes_and_patterns() {
        let c = routed();
        let mut r = || 0.5;
        let list = candidates(&c, "chat", &mut r).unwrap();
        assert_eq!(
            ids(&c, &list),
            vec![
                "deepseek/deepseek-chat",
                "openrouter/deepseek/deepseek-chat"
            ]
        );
        let list = candidates(&c, "openrouter/fast", &mut r).unwrap();
        assert_eq!(ids(&c, &list), vec!["openrouter/meta-llama/llama-3.1-8b"]);
        let list = candidates(&c, "deepseek-reasoner", &mut r).unwrap();
        assert_eq!(ids(&c, &list), vec!["deepseek/deepseek-reasoner"]);
        // No cross-upstream fallback without a route: the first match only.
        let list = candidates(&c, "gemini-2.5-pro", &mut r).unwrap();
        assert_eq!(ids(&c, &list), vec!["openrouter/gemini-2.5-pro"]);
        let err = candidates(&c, "gem/", &mut r).unwrap_err();
        assert_eq!(err.to_body()["error"]["code"], "model_not_found");
        // Weighted: deepseek (weight 9) first unless the draw lands in openrouter's 1/10.
        let mut low = || 0.05;
        assert_eq!(
            ids(&c, &candidates(&c, "spread", &mut low).unwrap()),
            vec!["openrouter/a", "deepseek/b"]
        );
        let mut high = || 0.5;
        assert_eq!(
            ids(&c, &candidates(&c, "spread", &mut high).unwrap()),
            vec!["deepseek/b", "openrouter/a"]
        );
    }

    #[test]
    fn unmatched_model_is_named() {
        let c = config(&[(
            "UPSTREAMS",
            r#"[{"name":"a","kind":"openai","models":["gpt-*"]}]"#,
        )]);
        let err = candidates(&c, "claude-3", &mut || 0.0).unwrap_err();
        assert!(err.to_string().contains("claude-3"));
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn classification() {
        let upstream = |status: u16, headers: &[(&str, &str)]| GatewayError::Upstream {
            status,
            error: serde_json::Map::new(),
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        for status in [408, 500, 502, 503, 504] {
            assert_eq!(
                classify(&upstream(status, &[])),
                Failure::Retryable,
                "{status}"
            );
        }
        for status in [400, 404, 413, 422, 501] {
            assert_eq!(classify(&upstream(status, &[])), Failure::Final, "{status}");
        }
        assert_eq!(classify(&upstream(401, &[])), Failure::KeyRejected);
        assert_eq!(classify(&upstream(403, &[])), Failure::KeyRejected);
        assert_eq!(
            classify(&upstream(429, &[("Retry-After", "2")])),
            Failure::RateLimited {
                retry_after_ms: Some(2000)
            }
        );
        assert_eq!(
            classify(&upstream(
                429,
                &[("retry-after-ms", "150"), ("retry-after", "1")]
            )),
            Failure::RateLimited {
                retry_after_ms: Some(150)
            }
        );
        assert_eq!(
            classify(&upstream(
                429,
                &[("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT")]
            )),
            Failure::RateLimited {
                retry_after_ms: None
            }
        );
        assert_eq!(
            classify(&GatewayError::UpstreamTimeout { after_ms: 1 }),
            Failure::Retryable
        );
        assert_eq!(
            classify(&GatewayError::UpstreamUnreachable("refused".into())),
            Failure::Retryable
        );
        for final_error in [
            GatewayError::UpstreamMalformed("x".into()),
            GatewayError::UpstreamRedirect {
                status: 302,
                host: "x".into(),
            },
            GatewayError::ResponseTooLarge { limit: 1 },
            GatewayError::invalid("x"),
        ] {
            assert_eq!(classify(&final_error), Failure::Final);
        }
    }

    fn settings() -> RetrySettings {
        RetrySettings {
            max_attempts: 3,
            key_cooldown_ms: 60_000,
            key_disable_ms: 600_000,
            retry_max_wait_ms: 10_000,
        }
    }

    fn status(status: u16, retry_after: Option<&str>) -> GatewayError {
        GatewayError::Upstream {
            status,
            error: serde_json::Map::new(),
            headers: retry_after
                .map(|v| vec![("retry-after".to_string(), v.to_string())])
                .unwrap_or_default(),
        }
    }

    fn start(
        names: &[&str],
        sources: Vec<KeySource>,
        settings: RetrySettings,
        book: &mut KeyBook,
    ) -> (Planner, Attempt) {
        Planner::start(
            names.iter().map(|n| n.to_string()).collect(),
            sources,
            settings,
            book,
            0.0,
        )
        .unwrap()
    }

    fn at(candidate: usize, key: Option<usize>, wait_ms: u64) -> Attempt {
        Attempt {
            candidate,
            key,
            wait_ms,
        }
    }

    #[test]
    fn table_of_decisions() {
        // (first failure, second failure, expected second attempt, expected third attempt)
        // over candidates a (2 keys) and b (1 key), random 1.0 (no jitter).
        type Row = (GatewayError, Option<Attempt>);
        let rows: Vec<(&str, Vec<Row>)> = vec![
            (
                "503 → next target at once, then same target with backoff",
                vec![
                    (status(503, None), Some(at(1, Some(0), 0))),
                    (status(503, None), Some(at(1, Some(0), 250))),
                ],
            ),
            (
                "timeout → next target",
                vec![(
                    GatewayError::UpstreamTimeout { after_ms: 1 },
                    Some(at(1, Some(0), 0)),
                )],
            ),
            (
                "429 → next key of the same upstream at once, then next target",
                vec![
                    (status(429, Some("1")), Some(at(0, Some(1), 0))),
                    (status(429, Some("1")), Some(at(1, Some(0), 0))),
                ],
            ),
            (
                "401 → next key, then no key left: the client gets it",
                vec![
                    (status(401, None), Some(at(0, Some(1), 0))),
                    (status(401, None), None),
                ],
            ),
            ("400 → never retried", vec![(status(400, None), None)]),
            (
                "malformed 200 → never retried",
                vec![(GatewayError::UpstreamMalformed("x".into()), None)],
            ),
        ];
        for (what, steps) in rows {
            let mut book = KeyBook::default();
            let (mut planner, first) = start(
                &["a", "b"],
                vec![KeySource::Pool(2), KeySource::Pool(1)],
                settings(),
                &mut book,
            );
            assert_eq!(first, at(0, Some(0), 0), "{what}");
            for (error, want) in steps {
                let got = planner.after_failure(&error, &mut book, 0.0, 1.0);
                assert_eq!(got, want, "{what}");
            }
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let mut book = KeyBook::default();
        let (mut planner, _) = start(
            &["a", "b", "c", "d"],
            vec![KeySource::Client; 4],
            settings(),
            &mut book,
        );
        assert!(planner
            .after_failure(&status(503, None), &mut book, 0.0, 0.0)
            .is_some());
        assert!(planner
            .after_failure(&status(503, None), &mut book, 0.0, 0.0)
            .is_some());
        assert_eq!(planner.attempts(), 3);
        assert_eq!(
            planner.after_failure(&status(503, None), &mut book, 0.0, 0.0),
            None
        );
    }

    #[test]
    fn rate_limit_waits_on_the_only_key_within_the_cap() {
        let mut book = KeyBook::default();
        let (mut planner, _) = start(&["a"], vec![KeySource::Pool(1)], settings(), &mut book);
        assert_eq!(
            planner.after_failure(&status(429, Some("2")), &mut book, 0.0, 0.5),
            Some(at(0, Some(0), 2000))
        );
        // A wait longer than RETRY_MAX_WAIT_MS is not worth it: the 429 goes to the client.
        let mut book = KeyBook::default();
        let (mut planner, _) = start(&["a"], vec![KeySource::Pool(1)], settings(), &mut book);
        assert_eq!(
            planner.after_failure(&status(429, Some("30")), &mut book, 0.0, 0.5),
            None
        );
        // Backoff doubles on the same key and keeps within the jitter band.
        let mut book = KeyBook::default();
        let many = RetrySettings {
            max_attempts: 5,
            ..settings()
        };
        let (mut planner, _) = start(&["a"], vec![KeySource::Client], many, &mut book);
        let waits: Vec<u64> = (0..4)
            .filter_map(|_| planner.after_failure(&status(502, None), &mut book, 0.0, 1.0))
            .map(|a| a.wait_ms)
            .collect();
        assert_eq!(waits, vec![250, 500, 1000, 2000]);
        let (mut planner, _) = start(&["a"], vec![KeySource::Client], settings(), &mut book);
        let jittered = planner
            .after_failure(&status(502, None), &mut book, 0.0, 0.0)
            .unwrap();
        assert_eq!(jittered.wait_ms, 125);
    }

    #[test]
    fn key_state_carries_over_between_calls() {
        let mut book = KeyBook::default();
        let (mut planner, first) = start(&["a"], vec![KeySource::Pool(3)], settings(), &mut book);
        assert_eq!(first.key, Some(0));
        // Key 0 refused: disabled; key 1 rate-limited for 5 s.
        let second = planner
            .after_failure(&status(401, None), &mut book, 1000.0, 0.0)
            .unwrap();
        assert_eq!(second.key, Some(1));
        let third = planner
            .after_failure(&status(429, Some("5")), &mut book, 1000.0, 0.0)
            .unwrap();
        assert_eq!(third.key, Some(2));
        assert_eq!(book.counts("a", 3, 1000.0), (1, 1));
        // The next calls use key 2 only until the cooldown is over; key 0 stays off.
        for _ in 0..3 {
            let (_, a) = Planner::start(
                vec!["a".into()],
                vec![KeySource::Pool(3)],
                settings(),
                &mut book,
                2000.0,
            )
            .unwrap();
            assert_eq!(a.key, Some(2));
        }
        let (_, a) = Planner::start(
            vec!["a".into()],
            vec![KeySource::Pool(3)],
            settings(),
            &mut book,
            7000.0,
        )
        .unwrap();
        assert_eq!(a.key, Some(1));
        assert_eq!(book.counts("a", 3, 7000.0), (0, 1));
        assert_eq!(book.counts("a", 3, 700_000.0), (0, 0));
    }

    #[test]
    fn round_robin_and_all_cooling() {
        let mut book = KeyBook::default();
        let picks: Vec<usize> = (0..5)
            .filter_map(|_| book.pick("p", 3, 0.0, &[], false))
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1]);
        book.cool("p", 0, 100.0);
        book.cool("p", 1, 50.0);
        book.cool("p", 2, 200.0);
        assert_eq!(book.pick("p", 3, 10.0, &[], false), None);
        // Every key cooling: the one free soonest still serves rather than nothing.
        assert_eq!(book.pick("p", 3, 10.0, &[], true), Some(1));
        // A candidate whose keys all cool is passed over for one with a free key.
        let mut book = KeyBook::default();
        book.cool("a", 0, 1e12);
        let (_, first) = start(
            &["a", "b"],
            vec![KeySource::Pool(1), KeySource::Pool(1)],
            settings(),
            &mut book,
        );
        assert_eq!(first, at(1, Some(0), 0));
    }

    #[test]
    fn missing_keys_skip_the_candidate_or_name_the_secret() {
        let missing = GatewayError::Unauthorized {
            message: "set the DS_KEYS secret".into(),
            code: "missing_server_key",
        };
        let mut book = KeyBook::default();
        let (_, first) = start(
            &["a", "b"],
            vec![KeySource::Missing(missing.clone()), KeySource::Client],
            settings(),
            &mut book,
        );
        assert_eq!(first, at(1, None, 0));
        let err = Planner::start(
            vec!["a".into()],
            vec![KeySource::Missing(missing.clone())],
            settings(),
            &mut book,
            0.0,
        )
        .unwrap_err();
        assert_eq!(err, missing);
    }
}
