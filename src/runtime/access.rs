//! Who is calling — the master token, an access key (D1, cached per isolate), or a client in
//! public mode — and the limiter Durable Object that counts their calls and tokens, the same
//! for every isolate and location. The decisions are in `crate::keys` and `crate::limits`.

use super::glue::{decode, durable_call, storage_delete, storage_get, storage_put};
use super::{
    header, js_message, json_response, logging, now_ms, now_seconds, presented_credential, Call,
    Inbound,
};
use crate::auth;
use crate::config::Config;
use crate::error::GatewayError;
use crate::keys::{self, AccessKey, KeyCache, KeyPatch, KeyRow};
use crate::limits::{self, Counters, LimiterOp, LimiterReply, Limits};
use crate::route::{key_id, Route};
use crate::scrub::Scrubber;
use std::cell::RefCell;
use worker::{
    console_error, durable_object, D1Database, DurableObject, Env, ObjectNamespace, Request,
    Response, State,
};

/// The Durable Object namespace binding of the limiter (wrangler.toml).
pub const LIMITER_BINDING: &str = "LIMITER";

thread_local! {
    static KEY_CACHE: RefCell<KeyCache> = RefCell::new(KeyCache::default());
}

/// The caller of one request, once authorized.
pub struct Caller {
    /// The credential presented, whatever it is.
    pub presented: Option<String>,
    /// The access key, when the credential is one.
    pub key: Option<AccessKey>,
    /// The limiter object this call counts in, and under which limits.
    limiter: Option<(String, Limits)>,
}

impl Caller {
    /// The client's own key, for public-mode upstreams: never an access key or the token.
    pub fn client_key(&self) -> Option<String> {
        if self.key.is_some() {
            return None;
        }
        self.presented.clone()
    }

    /// Whether the gateway itself authenticated the caller (token or access key), so only
    /// server keys go upstream.
    pub fn gateway_auth(&self, config: &Config) -> bool {
        config.auth_token.is_some() || self.key.is_some()
    }

    pub fn check_model(&self, model: &str) -> Result<(), GatewayError> {
        match &self.key {
            Some(key) => key.check_model(model),
            None => Ok(()),
        }
    }
}

/// Authorizes a request: an access key (`sk-gw-…`) must be known, enabled, unexpired and
/// used from one of its origins; anything else is checked against `AUTH_TOKEN`.
pub async fn authorize(req: &Inbound, config: &Config, env: &Env) -> Result<Caller, GatewayError> {
    let presented = presented_credential(req);
    let Some(secret) = presented.as_deref().filter(|p| keys::is_access_key(p)) else {
        auth::check_access(config.auth_token.as_deref(), presented.as_deref())?;
        // Public mode: PUBLIC_RPM per client IP.
        let limiter = match (config.auth_token.as_ref(), config.public_rpm) {
            (None, Some(rpm)) => {
                let ip = header(req, "CF-Connecting-IP").unwrap_or_default();
                Some((
                    format!("ip:{}", limits::client_bucket(&ip)),
                    Limits {
                        rpm: Some(rpm),
                        ..Limits::default()
                    },
                ))
            }
            _ => None,
        };
        return Ok(Caller {
            presented,
            key: None,
            limiter,
        });
    };
    let unknown = || GatewayError::Unauthorized {
        message: "The access key is not valid for this gateway (unknown or deleted)".into(),
        code: "invalid_api_key",
    };
    // A made-up credential costs no database read.
    if !keys::is_well_formed(secret) {
        return Err(unknown());
    }
    let db = key_db(env)?;
    let key = lookup(&db, secret, config).await?.ok_or_else(unknown)?;
    key.check_usable(now_seconds())?;
    key.check_origin(header(req, "Origin").as_deref())?;
    let limits = key.limits();
    let limiter = limits.any().then(|| (limiter_name(&key), limits));
    Ok(Caller {
        presented,
        key: Some(key),
        limiter,
    })
}

/// One limiter object per key: its id names it.
fn limiter_name(key: &AccessKey) -> String {
    format!("key:{}", key.id)
}

fn key_db(env: &Env) -> Result<D1Database, GatewayError> {
    env.d1("DB").map_err(|_| {
        GatewayError::Unavailable("Access keys need the D1 binding `DB` (see wrangler.toml)".into())
    })
}

/// The key behind `secret`, from this isolate's cache while it is fresh, else from D1.
async fn lookup(
    db: &D1Database,
    secret: &str,
    config: &Config,
) -> Result<Option<AccessKey>, GatewayError> {
    let key_hash = keys::hash(secret);
    let ttl = config.key_cache_ttl_ms as i64;
    let now = now_ms() as i64;
    if let Some(found) = KEY_CACHE.with(|c| c.borrow().get(&key_hash, now, ttl)) {
        return Ok(found);
    }
    let row = logging::first::<KeyRow>(db, &keys::by_hash_statement(&key_hash), None)
        .await
        .map_err(|e| {
            GatewayError::Unavailable(format!("The access keys could not be read: {e}"))
        })?;
    let key = row.map(|row| row.key());
    remember(&key_hash, key.clone(), now, ttl);
    Ok(key)
}

/// What D1 said of a key hash at `at_ms` (or what the admin API just wrote), in this
/// isolate's cache.
fn remember(key_hash: &str, key: Option<AccessKey>, at_ms: i64, ttl_ms: i64) {
    KEY_CACHE.with(|c| c.borrow_mut().put(key_hash, key, at_ms, ttl_ms));
}

/// Counts the call in its limiter object (one round trip), or refuses it with 429. The
/// tokens are charged through the call's log tap when it is done.
pub async fn admit(caller: &Caller, call: &Call<'_>) -> Result<(), GatewayError> {
    let Some((name, limits)) = &caller.limiter else {
        return Ok(());
    };
    let namespace = limiter_namespace(call.env)?;
    let reply = limiter_call(&namespace, name, &LimiterOp::Admit { limits: *limits }).await?;
    if let Some(refused) = reply.refused {
        let who = match &caller.key {
            Some(key) => format!("access key `{}`", key.name),
            None => "this client address (PUBLIC_RPM)".to_string(),
        };
        let kind = match refused.limit {
            limits::LimitKind::Rpm => "requests",
            _ => "tokens",
        };
        return Err(GatewayError::rate_limited(
            format!(
                "Rate limit reached for {who}: {} of {} {} used. Try again in {} s.",
                refused.used,
                refused.value,
                refused.limit.describe(),
                refused.retry_after_s
            ),
            kind,
            refused.retry_after_s,
        ));
    }
    if let Some(usage) = &reply.usage {
        call.gateway_headers
            .borrow_mut()
            .extend(limits::rate_headers(limits, usage));
    }
    if limits.counts_tokens() {
        if let Some(tap) = call.tap {
            tap.charge_to(Charge {
                namespace,
                name: name.clone(),
            });
        }
    }
    Ok(())
}

fn limiter_namespace(env: &Env) -> Result<ObjectNamespace, GatewayError> {
    env.durable_object(LIMITER_BINDING).map_err(|_| {
        GatewayError::Unavailable(format!(
            "Rate limits need the Durable Object binding `{LIMITER_BINDING}` (see wrangler.toml)"
        ))
    })
}

async fn limiter_call(
    namespace: &ObjectNamespace,
    name: &str,
    op: &LimiterOp,
) -> Result<LimiterReply, GatewayError> {
    let unavailable =
        |why: String| GatewayError::Unavailable(format!("The rate limiter is unavailable: {why}"));
    let body = serde_json::to_string(op).map_err(|e| GatewayError::Internal(e.to_string()))?;
    // Sent from glue.js, in one crossing (no `worker::Request` and its conversions).
    let answer = js_sys::futures::JsFuture::from(durable_call(namespace.as_ref(), name, &body))
        .await
        .map_err(|e| unavailable(js_message(&e)))?
        .as_string()
        .unwrap_or_default();
    let (status, text) = answer.split_once('\n').unwrap_or((answer.as_str(), ""));
    if status != "200" {
        return Err(GatewayError::Unavailable(format!(
            "The rate limiter answered {status}: {}",
            crate::error::excerpt(text, 200)
        )));
    }
    serde_json::from_slice(text.as_bytes()).map_err(|e| unavailable(e.to_string()))
}

/// Where a finished call's tokens go.
pub struct Charge {
    namespace: ObjectNamespace,
    name: String,
}

impl Charge {
    pub async fn tokens(self, tokens: u64, scrubber: &Scrubber) {
        if tokens == 0 {
            return;
        }
        if let Err(e) =
            limiter_call(&self.namespace, &self.name, &LimiterOp::Charge { tokens }).await
        {
            console_error!(
                "{}",
                scrubber.text(&format!("charging {tokens} tokens failed: {e}"))
            );
        }
    }
}

/// The limiter: one object per access key (or client IP), holding its sliding windows in
/// memory and in its storage, so every isolate everywhere sees the same counts.
#[durable_object]
pub struct KeyLimiter {
    /// The runtime's state object: its storage is read and written through glue.js, as JSON.
    state: worker::worker_sys::DurableObjectState,
    counters: RefCell<Option<Counters>>,
}

const COUNTERS: &str = "counters";

impl DurableObject for KeyLimiter {
    fn new(state: State, _env: Env) -> Self {
        KeyLimiter {
            state: state._inner(),
            counters: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        // Text and serde_json (`Request::json` would decode through serde-wasm-bindgen).
        let text = req.text().await?;
        let op: LimiterOp = match serde_json::from_slice(text.as_bytes()) {
            Ok(op) => op,
            Err(e) => return Response::error(format!("not a limiter operation: {e}"), 400),
        };
        if self.counters.borrow().is_none() {
            // A storage error fails the call (503), never starts the counts afresh.
            let stored: Option<Counters> = decode(storage_get(&self.state, COUNTERS)).await?;
            self.counters
                .borrow_mut()
                .get_or_insert_with(|| stored.unwrap_or_default());
        }
        let (reply, changed) = {
            let mut counters = self.counters.borrow_mut();
            let counters = counters.get_or_insert_with(Counters::default);
            let reply = limits::apply(counters, &op, now_ms() as i64);
            let changed = match op {
                LimiterOp::Usage => None,
                _ => Some(counters.clone()),
            };
            (reply, changed)
        };
        match changed {
            Some(counters) if counters.is_empty() => {
                js_sys::futures::JsFuture::from(storage_delete(&self.state, COUNTERS)).await?;
            }
            Some(counters) => {
                let json = serde_json::to_string(&counters)?;
                js_sys::futures::JsFuture::from(storage_put(&self.state, COUNTERS, &json)).await?;
            }
            None => {}
        }
        Response::from_json(&reply)
    }
}

// ---- the admin API --------------------------------------------------------------------------

/// `/api/keys` and `/api/keys/{id}` (behind `ADMIN_TOKEN`). A change takes effect at once in
/// this isolate; other isolates see it when their cached copy expires (`KEY_CACHE_TTL_MS`).
pub async fn admin(
    req: &mut Inbound,
    route: Route,
    config: &Config,
    call: &Call<'_>,
) -> Result<super::Reply, GatewayError> {
    auth::check_admin(
        config.log.admin_token.as_deref(),
        presented_credential(req).as_deref(),
    )?;
    let db = key_db(call.env)?;
    let storage = |e: worker::Error| {
        GatewayError::Unavailable(format!("The access keys could not be read or written: {e}"))
    };
    let now_s = now_seconds();
    let ttl = config.key_cache_ttl_ms as i64;
    let id = key_id(req.path()).unwrap_or_default().to_string();
    let missing = || GatewayError::Missing {
        message: format!("No access key with id `{}`", crate::error::excerpt(&id, 60)),
    };
    let load = || async {
        logging::first::<KeyRow>(&db, &keys::list_statement(Some(&id)), None)
            .await
            .map_err(storage)?
            .ok_or_else(missing)
    };
    match route {
        Route::KeyList => {
            let rows = logging::rows::<KeyRow>(&db, &keys::list_statement(None))
                .await
                .map_err(storage)?;
            let data: Vec<_> = rows
                .iter()
                .map(|r| r.key().view(Some(&r.usage())))
                .collect();
            json_response(&serde_json::json!({ "object": "list", "data": data }), 200)
        }
        Route::KeyCreate => {
            let body = admin_body(req, config).await?;
            let mut random = [0u8; 40];
            getrandom::fill(&mut random)
                .map_err(|e| GatewayError::Internal(format!("no randomness for a new key: {e}")))?;
            let secret = keys::new_secret(random[..32].try_into().unwrap_or(&[0; 32]));
            let id = keys::new_id(random[32..].try_into().unwrap_or(&[0; 8]));
            let key = keys::parse_new(&body, id, &secret, now_s)?;
            let key_hash = keys::hash(&secret);
            logging::run(&db, &keys::insert_statement(&key, &key_hash))
                .await
                .map_err(storage)?;
            remember(&key_hash, Some(key.clone()), now_ms() as i64, ttl);
            let mut view = key.view(Some(&keys::KeyUsage::default()));
            // The only time the key itself is ever shown.
            view["key"] = serde_json::Value::String(secret);
            let mut response = json_response(&view, 201)?;
            response.headers.set("Cache-Control", "no-store");
            Ok(response)
        }
        Route::KeyGet => {
            let row = load().await?;
            let key = row.key();
            let mut view = key.view(Some(&row.usage()));
            // What the key has used of its limits right now, from its limiter object.
            if key.limits().any() {
                let live = match limiter_namespace(call.env) {
                    Ok(namespace) => {
                        limiter_call(&namespace, &limiter_name(&key), &LimiterOp::Usage)
                            .await
                            .ok()
                            .and_then(|reply| reply.usage)
                    }
                    Err(_) => None,
                };
                view["limits_used"] = serde_json::to_value(live).unwrap_or_default();
            }
            json_response(&view, 200)
        }
        Route::KeyUpdate => {
            let body = admin_body(req, config).await?;
            let patch = KeyPatch::parse(&body, now_s)?;
            let row = load().await?;
            let mut key = row.key();
            key.apply(patch, now_s);
            let updated = logging::first::<KeyRow>(&db, &keys::update_statement(&key), None)
                .await
                .map_err(storage)?
                .ok_or_else(missing)?;
            remember(&updated.key_hash, Some(updated.key()), now_ms() as i64, ttl);
            json_response(&updated.key().view(Some(&row.usage())), 200)
        }
        _ => {
            let key_hash =
                logging::first::<String>(&db, &keys::delete_statement(&id), Some("key_hash"))
                    .await
                    .map_err(storage)?
                    .ok_or_else(missing)?;
            remember(&key_hash, None, now_ms() as i64, ttl);
            json_response(
                &serde_json::json!({ "id": id, "object": "gateway.key", "deleted": true }),
                200,
            )
        }
    }
}

async fn admin_body(req: &mut Inbound, config: &Config) -> Result<Vec<u8>, GatewayError> {
    let body = req
        .bytes()
        .await
        .map_err(|e| GatewayError::invalid(format!("Could not read the request body: {e}")))?;
    if body.len() > config.max_request_bytes {
        return Err(GatewayError::PayloadTooLarge {
            limit: config.max_request_bytes,
        });
    }
    Ok(body)
}
