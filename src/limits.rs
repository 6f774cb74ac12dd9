//! Rate limits and token quotas of one access key (or one client IP in public mode), as the
//! limiter Durable Object keeps them: sliding windows of time buckets, so a limit means "in
//! any 60 seconds" (or 24 hours), never a reset at the top of the minute.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

pub const MINUTE_MS: i64 = 60_000;
pub const DAY_MS: i64 = 86_400_000;

/// The limits a call is admitted under; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub tpd: Option<u64>,
}

impl Limits {
    pub fn any(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.tpd.is_some()
    }

    /// Whether token use must be counted after the call.
    pub fn counts_tokens(&self) -> bool {
        self.tpm.is_some() || self.tpd.is_some()
    }
}

/// Which limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKind {
    Rpm,
    Tpm,
    Tpd,
}

impl LimitKind {
    pub fn describe(self) -> &'static str {
        match self {
            LimitKind::Rpm => "requests per minute",
            LimitKind::Tpm => "tokens per minute",
            LimitKind::Tpd => "tokens per day",
        }
    }
}

/// A refused call: the limit, its value, what is used, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub limit: LimitKind,
    pub value: u64,
    pub used: u64,
    pub retry_after_s: u64,
}

/// Amounts in buckets of `bucket_ms`, kept for `span_ms`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Window {
    /// (bucket start in ms, amount), oldest first.
    buckets: VecDeque<(i64, u64)>,
}

impl Window {
    fn expire(&mut self, span_ms: i64, now_ms: i64) {
        while self
            .buckets
            .front()
            .is_some_and(|(start, _)| *start <= now_ms - span_ms)
        {
            self.buckets.pop_front();
        }
    }

    fn add(&mut self, amount: u64, bucket_ms: i64, now_ms: i64) {
        let start = now_ms - now_ms.rem_euclid(bucket_ms);
        match self.buckets.back_mut() {
            // A clock that went back counts in the latest bucket: buckets stay in order.
            Some((last, value)) if *last >= start => *value = value.saturating_add(amount),
            _ => self.buckets.push_back((start, amount)),
        }
    }

    fn used(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |sum, (_, v)| sum.saturating_add(*v))
    }

    /// Seconds until the amount in the window is below `limit` again (at least 1).
    fn wait_below(&self, limit: u64, span_ms: i64, now_ms: i64) -> u64 {
        let mut used = self.used();
        for (start, amount) in &self.buckets {
            used = used.saturating_sub(*amount);
            if used < limit {
                let wait_ms = (start + span_ms - now_ms).max(0);
                return (wait_ms as u64).div_ceil(1000).max(1);
            }
        }
        1
    }
}

/// Everything counted for one key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Counters {
    requests: Window,
    tokens_minute: Window,
    tokens_day: Window,
}

/// The buckets: a second within a minute, five minutes within a day (at most 288).
const MINUTE_BUCKET_MS: i64 = 1_000;
const DAY_BUCKET_MS: i64 = 300_000;

/// What a key has used in the current windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub requests_minute: u64,
    pub tokens_minute: u64,
    pub tokens_day: u64,
}

impl Counters {
    fn expire(&mut self, now_ms: i64) {
        self.requests.expire(MINUTE_MS, now_ms);
        self.tokens_minute.expire(MINUTE_MS, now_ms);
        self.tokens_day.expire(DAY_MS, now_ms);
    }

    /// Admits one call and counts it, or says which limit refuses it. Token limits refuse
    /// once the window's tokens have reached the limit: a call's own tokens are only known
    /// after it, when they are charged.
    pub fn admit(&mut self, limits: &Limits, now_ms: i64) -> Result<Usage, Refusal> {
        self.expire(now_ms);
        let checks = [
            (LimitKind::Rpm, limits.rpm, &self.requests, MINUTE_MS),
            (LimitKind::Tpm, limits.tpm, &self.tokens_minute, MINUTE_MS),
            (LimitKind::Tpd, limits.tpd, &self.tokens_day, DAY_MS),
        ];
        // Requests: this call would be one too many. Tokens: the limit is reached. When
        // several refuse, the one that lasts longest says when to come back.
        let refusal = checks
            .into_iter()
            .filter_map(|(kind, limit, window, span)| {
                let limit = limit?;
                let used = window.used();
                (used >= limit).then(|| Refusal {
                    limit: kind,
                    value: limit,
                    used,
                    retry_after_s: window.wait_below(limit, span, now_ms),
                })
            })
            .max_by_key(|refusal| refusal.retry_after_s);
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        self.requests.add(1, MINUTE_BUCKET_MS, now_ms);
        Ok(self.usage())
    }

    /// Charges the tokens a finished call used.
    pub fn charge(&mut self, tokens: u64, now_ms: i64) -> Usage {
        self.expire(now_ms);
        if tokens > 0 {
            self.tokens_minute.add(tokens, MINUTE_BUCKET_MS, now_ms);
            self.tokens_day.add(tokens, DAY_BUCKET_MS, now_ms);
        }
        self.usage()
    }

    pub fn current(&mut self, now_ms: i64) -> Usage {
        self.expire(now_ms);
        self.usage()
    }

    fn usage(&self) -> Usage {
        Usage {
            requests_minute: self.requests.used(),
            tokens_minute: self.tokens_minute.used(),
            tokens_day: self.tokens_day.used(),
        }
    }

    /// Nothing is counted any more: the stored state can go.
    pub fn is_empty(&self) -> bool {
        self.requests.buckets.is_empty()
            && self.tokens_minute.buckets.is_empty()
            && self.tokens_day.buckets.is_empty()
    }
}

/// OpenAI's rate-limit headers for an admitted call: the key's own limits and what is left
/// of them in the current minute (this call counted).
pub fn rate_headers(limits: &Limits, usage: &Usage) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    let mut add = |name: &str, limit: Option<u64>, used: u64| {
        if let Some(limit) = limit {
            headers.push((format!("x-ratelimit-limit-{name}"), limit.to_string()));
            headers.push((
                format!("x-ratelimit-remaining-{name}"),
                limit.saturating_sub(used).to_string(),
            ));
        }
    };
    add("requests", limits.rpm, usage.requests_minute);
    add("tokens", limits.tpm, usage.tokens_minute);
    headers
}

/// The limiter a public-mode client counts in: its IPv4 address, or the /64 of its IPv6
/// address (one end site gets a whole /64, so single addresses would be free to rotate).
pub fn client_bucket(ip: &str) -> String {
    match ip.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => "unknown".to_string(),
    }
}

/// What the worker asks the limiter object (one JSON body per round trip).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LimiterOp {
    Admit { limits: Limits },
    Charge { tokens: u64 },
    Usage,
}

/// The limiter object's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimiterReply {
    pub usage: Option<Usage>,
    pub refused: Option<Refusal>,
}

/// Runs one operation on the counters: the whole logic of the limiter object.
pub fn apply(counters: &mut Counters, op: &LimiterOp, now_ms: i64) -> LimiterReply {
    match op {
        LimiterOp::Admit { limits } => match counters.admit(limits, now_ms) {
            Ok(usage) => LimiterReply {
                usage: Some(usage),
                refused: None,
            },
            Err(refusal) => LimiterReply {
                usage: None,
                refused: Some(refusal),
            },
        },
        LimiterOp::Charge { tokens } => LimiterReply {
            usage: Some(counters.charge(*tokens, now_ms)),
            refused: None,
        },
        LimiterOp::Usage => LimiterReply {
            usage: Some(counters.current(now_ms)),
            refused: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpm(n: u64) -> Limits {
        Limits {
            rpm: Some(n),
            ..Limits::default()
        }
    }

    #[test]
    fn rpm_refuses_the_call_one_too_many_until_the_first_leaves_the_window() {
        let mut c = Counters::default();
        let t0 = 1_000_000_500;
        for i in 0..3 {
            assert!(c.admit(&rpm(3), t0 + i * 10_000).is_ok(), "call {i}");
        }
        let refused = c.admit(&rpm(3), t0 + 30_000).unwrap_err();
        assert_eq!(refused.limit, LimitKind::Rpm);
        assert_eq!((refused.value, refused.used), (3, 3));
        // The first call's bucket (second t0 rounded down) leaves at t0 - 500 + 60 s.
        assert_eq!(refused.retry_after_s, 30);
        // A refused call is not counted.
        assert_eq!(c.current(t0 + 30_000).requests_minute, 3);
        assert!(c.admit(&rpm(3), t0 + 59_000).is_err());
        assert!(c.admit(&rpm(3), t0 + 59_600).is_ok());
        assert!(c.admit(&rpm(3), t0 + 59_700).is_err());
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let mut c = Counters::default();
        assert!(c.admit(&rpm(1), 59_999).is_ok());
        // Its bucket (second 59) leaves the window at 119 s: 1 ms later, rounded up.
        let refused = c.admit(&rpm(1), 118_999).unwrap_err();
        assert_eq!(refused.retry_after_s, 1);
    }

    #[test]
    fn token_limits_refuse_once_reached_and_wait_for_enough_to_expire() {
        let limits = Limits {
            tpm: Some(100),
            tpd: Some(250),
            ..Limits::default()
        };
        let mut c = Counters::default();
        let t0 = 10 * DAY_MS;
        assert!(c.admit(&limits, t0).is_ok());
        c.charge(60, t0);
        assert!(c.admit(&limits, t0 + 1_000).is_ok());
        c.charge(50, t0 + 20_000);
        let refused = c.admit(&limits, t0 + 30_000).unwrap_err();
        assert_eq!((refused.limit, refused.used), (LimitKind::Tpm, 110));
        // Below 100 once the 60 tokens of t0 leave: 30 s later.
        assert_eq!(refused.retry_after_s, 30);
        let after = t0 + 61_000;
        assert!(c.admit(&limits, after).is_ok());
        c.charge(200, after);
        let refused = c.admit(&limits, t0 + 200_000).unwrap_err();
        assert_eq!((refused.limit, refused.used), (LimitKind::Tpd, 310));
        // The day window drops whole five-minute buckets: t0's bucket leaves a day later.
        assert_eq!(refused.retry_after_s, ((DAY_MS - 200_000) / 1000) as u64);
        assert_eq!(c.current(t0 + 200_000).tokens_minute, 0);
    }

    #[test]
    fn the_longest_refusal_says_when_to_come_back() {
        let limits = Limits {
            rpm: None,
            tpm: Some(10),
            tpd: Some(10),
        };
        let mut c = Counters::default();
        c.charge(20, 0);
        let refused = c.admit(&limits, 1_000).unwrap_err();
        assert_eq!(refused.limit, LimitKind::Tpd);
        assert_eq!(refused.retry_after_s, ((DAY_MS - 1_000) / 1000) as u64);
    }

    #[test]
    fn a_clock_going_back_adds_no_bucket_out_of_order() {
        let mut c = Counters::default();
        c.charge(5, 10_500);
        c.charge(5, 9_000);
        assert_eq!(c.current(10_600).tokens_minute, 10);
        // Both leave together with the later bucket, never before it.
        assert_eq!(c.current(69_999).tokens_minute, 10);
        assert_eq!(c.current(70_000).tokens_minute, 0);
    }

    #[test]
    fn no_limits_count_requests_only_and_state_empties() {
        let mut c = Counters::default();
        let usage = c.admit(&Limits::default(), 5_000).unwrap();
        assert_eq!(usage.requests_minute, 1);
        assert!(!c.is_empty());
        c.current(5_000 + DAY_MS);
        assert!(c.is_empty());
    }

    #[test]
    fn public_clients_count_by_address_or_ipv6_64() {
        assert_eq!(client_bucket("203.0.113.7"), "203.0.113.7");
        assert_eq!(client_bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(client_bucket("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(client_bucket("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(client_bucket(""), "unknown");
        assert_eq!(client_bucket("not an ip"), "unknown");
    }

    #[test]
    fn rate_headers_say_what_is_left() {
        let limits = Limits {
            rpm: Some(3),
            tpm: Some(100),
            tpd: Some(1000),
        };
        let mut c = Counters::default();
        c.charge(150, 0);
        let usage = c.admit(&Limits::default(), 0).unwrap();
        let headers = rate_headers(&limits, &usage);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(get("x-ratelimit-remaining-requests"), Some("2"));
        assert_eq!(get("x-ratelimit-remaining-tokens"), Some("0"));
        assert_eq!(headers.len(), 4);
        assert!(rate_headers(&Limits::default(), &usage).is_empty());
    }

    #[test]
    fn ops_round_trip_as_json() {
        let op: LimiterOp =
            serde_json::from_str(r#"{"op":"admit","limits":{"rpm":3,"tpm":null,"tpd":null}}"#)
                .unwrap();
        assert_eq!(op, LimiterOp::Admit { limits: rpm(3) });
        let mut c = Counters::default();
        let reply = apply(&mut c, &LimiterOp::Charge { tokens: 7 }, 1_000);
        assert_eq!(reply.usage.unwrap().tokens_day, 7);
        let text = serde_json::to_string(&c).unwrap();
        let back: Counters = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
