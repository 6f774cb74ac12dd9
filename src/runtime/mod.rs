//! The Workers binding: entry point, env, and turning plans and errors into Responses.
//! Every failure becomes an OpenAI error response here; the fetch handler never fails.

mod access;
mod glue;
mod live;
mod logging;
mod reply;
mod responses;
mod upstream;

use crate::auth;
use crate::config::{AllowedOrigins, Config};
use crate::cors;
use crate::dialects::{anthropic, Dialect};
use crate::error::GatewayError;
use crate::log::{self as request_log, LogRecord};
use crate::models;
use crate::openai::ChatRequest;
use crate::proxy::{self, ResponseMode};
use crate::route::{request_detail_id, route, Route};
use crate::router;
use crate::scrub::Scrubber;
use crate::status;
use glue::header_lines;
use logging::LogTap;
use reply::Reply;
use std::rc::Rc;
use worker::{event, Context, D1Database, Env};

const INDEX_HTML: &str = include_str!("../ui/index.html");
const DASHBOARD_HTML: &str = include_str!("../ui/dashboard.html");
const DASHBOARD_DISABLED_HTML: &str = include_str!("../ui/dashboard-disabled.html");
const DASHBOARD_JS: &str = include_str!("../ui/dashboard.js");
const APP_JS: &str = include_str!("../ui/app.js");
const BASE_CSS: &str = include_str!("../ui/base.css");

/// Pages show untrusted content (answers, logged bodies): they run only the gateway's own
/// script files, no inline script, and talk only to the gateway.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(
    req: worker::web_sys::Request,
    env: Env,
    ctx: Context,
) -> worker::Result<worker::web_sys::Response> {
    let req = Inbound::new(req);
    let config = isolate_config(&env);
    let config: &Result<Config, GatewayError> = &config;
    let origin = header(&req, "Origin");
    let requested_headers = header(&req, "Access-Control-Request-Headers");
    let request_id = new_request_id();
    let scrubber = Rc::new(request_scrubber(&req, config.as_ref().ok()));
    let route = route(req.method(), req.path());
    // An API call gets a tap when something needs it: it writes the log row (logging on)
    // and charges an access key's tokens when the call is done.
    let tap = match (&route, config) {
        (Ok(Route::Chat | Route::Embeddings | Route::Messages | Route::Responses), Ok(config))
            if config.log.enabled
                || presented_credential(&req).is_some_and(|c| crate::keys::is_access_key(&c)) =>
        {
            let api = match route {
                Ok(Route::Embeddings) => "embeddings",
                Ok(Route::Messages) => "messages",
                Ok(Route::Responses) => "responses",
                _ => "chat",
            };
            start_log(&req, &env, &ctx, config, &request_id, &scrubber, api)
        }
        _ => None,
    };

    let call = Call {
        env: &env,
        config,
        request_id: &request_id,
        tap: tap.as_ref(),
        scrubber: &scrubber,
        gateway_headers: Default::default(),
        caller: Default::default(),
    };
    // Errors take the shape of the API the client speaks.
    let error_shape = match route {
        Ok(Route::Messages | Route::CountTokens) => Dialect::Anthropic {
            id: String::new(),
            model: String::new(),
        },
        _ => Dialect::Chat,
    };
    let (mut response, preflight) = match handle(req, route, &call).await {
        Ok(outcome) => outcome,
        Err(error) => {
            if let Some(tap) = &tap {
                if is_refusal(&error) {
                    tap.refuse();
                }
                tap.error(error.to_string());
                tap.response_body(&error.to_body().to_string());
            }
            (error_response(&error, &scrubber, &error_shape), false)
        }
    };
    // Without valid settings the origin list is unknown; let browsers read the config error.
    let allowed = config
        .as_ref()
        .map(|c| c.allowed_origins.clone())
        .unwrap_or(AllowedOrigins::Any);
    for (name, value) in cors::cors_headers(
        &allowed,
        origin.as_deref(),
        preflight,
        requested_headers.as_deref(),
    ) {
        response.headers.set(name, &value);
    }
    for (name, value) in call.gateway_headers.borrow().iter() {
        response.headers.set(name, value);
    }
    response.headers.set("X-Request-Id", &request_id);
    response.headers.set("X-Gateway-Version", crate::VERSION);
    if let Some(tap) = tap {
        let streaming = response
            .headers
            .get("Content-Type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let sent = tap
            .stores()
            .then(|| request_log::redact_headers(&response.headers.listed(), &scrubber));
        let status = response.status;
        tap.update(|r| {
            r.status = i64::from(status);
            if let Some(sent) = sent {
                r.response_headers = sent;
            }
        });
        if !streaming {
            tap.finished();
        }
        // A streaming response holds its own tap; the record is written when it ends.
    }
    Ok(response.into_js())
}

thread_local! {
    /// The settings, parsed and validated once per isolate: vars and secrets cannot change
    /// while an isolate lives (a new deployment or secret starts new isolates).
    static CONFIG: std::cell::OnceCell<Rc<Result<Config, GatewayError>>> =
        const { std::cell::OnceCell::new() };
}

thread_local! {
    /// The configured secrets' scrubber, built once per isolate with its settings; each
    /// request extends it with the credential its client presented.
    static CONFIGURED_SECRETS: std::cell::OnceCell<Scrubber> = const { std::cell::OnceCell::new() };
}

fn isolate_config(env: &Env) -> Rc<Result<Config, GatewayError>> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| Rc::new(Config::from_lookup(|name| env_text(env, name))))
            .clone()
    })
}

/// A var or secret as text: strings as they are; a TOML array or table in `[vars]`
/// (`UPSTREAMS`, `ROUTES`) arrives as an object and is read as its JSON.
fn env_text(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env.as_ref(), &wasm_bindgen::JsValue::from_str(name)).ok()?;
    if value.is_undefined() || value.is_null() {
        return None;
    }
    if let Some(text) = value.as_string() {
        return Some(text);
    }
    if let Some(flag) = value.as_bool() {
        return Some(flag.to_string());
    }
    if let Some(number) = value.as_f64() {
        return Some(number.to_string());
    }
    js_sys::JSON::stringify(&value)
        .ok()
        .and_then(|text| text.as_string())
}

/// What one request's handlers share.
struct Call<'a> {
    env: &'a Env,
    config: &'a Result<Config, GatewayError>,
    request_id: &'a str,
    tap: Option<&'a LogTap>,
    scrubber: &'a Rc<Scrubber>,
    /// Headers the gateway adds to this call's response, answer or error.
    gateway_headers: std::cell::RefCell<Vec<(String, String)>>,
    /// Who is calling, once authorized.
    caller: std::cell::RefCell<Option<Rc<access::Caller>>>,
}

impl Call<'_> {
    /// The credential the client presented, as the client's own key for public-mode
    /// upstreams: never an access key, the gateway's own credential.
    fn client_key(&self, presented: Option<String>) -> Option<String> {
        presented.filter(|_| {
            self.caller
                .borrow()
                .as_ref()
                .is_none_or(|c| c.key.is_none())
        })
    }
}

/// Every secret in play for this request: the configured keys and tokens, and whatever
/// credential the client sent (its own key, in public mode).
fn request_scrubber(req: &Inbound, config: Option<&Config>) -> Scrubber {
    let presented: Vec<String> = ["Authorization", "X-Api-Key", "X-Goog-Api-Key", "Api-Key"]
        .iter()
        .filter_map(|name| header(req, name))
        .map(|value| match value.trim().split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.to_string(),
            _ => value,
        })
        .collect();
    let presented = presented.iter().map(String::as_str);
    match config {
        Some(config) => CONFIGURED_SECRETS.with(|cell| {
            cell.get_or_init(|| Scrubber::new(config.secrets()))
                .with(presented)
        }),
        None => Scrubber::new(presented),
    }
}

/// A call refused before its caller was admitted — a missing or wrong credential, a
/// disabled, expired or deleted access key, a key used from a foreign origin, a used-up rate
/// limit: counted in the log, never stored as a row, so a flood of them cannot push real
/// rows out. What passes admission is bounded by the caller's limits and logged.
fn is_refusal(error: &GatewayError) -> bool {
    matches!(
        error,
        GatewayError::Unauthorized {
            code: "missing_api_key" | "invalid_api_key" | "key_disabled" | "key_expired",
            ..
        } | GatewayError::Forbidden {
            code: "origin_not_allowed",
            ..
        } | GatewayError::RateLimited { .. }
    )
}

/// Starts the record of an API call; it is written when logging is on and the `DB` binding
/// exists.
fn start_log(
    req: &Inbound,
    env: &Env,
    ctx: &Context,
    config: &Config,
    request_id: &str,
    scrubber: &Rc<Scrubber>,
    api: &str,
) -> Option<LogTap> {
    let db = match env.d1("DB") {
        Ok(db) if config.log.enabled => Some(db),
        Ok(_) => None,
        Err(_) => {
            if config.log.enabled {
                worker::console_warn!("request log: no D1 binding `DB`; calls are not logged");
            }
            None
        }
    };
    // Nothing is stored without a database: keep no bodies either.
    let settings = crate::config::LogSettings {
        bodies: config.log.bodies && db.is_some(),
        ..config.log.clone()
    };
    if db.is_none() {
        // Only the charge of an access key's tokens needs this tap: no row is built.
        let record = LogRecord {
            status: 0,
            ..LogRecord::default()
        };
        return Some(LogTap::start(
            ctx,
            None,
            &settings,
            record,
            scrubber.clone(),
        ));
    }
    let headers = req.header_entries();
    let client_ip = header(req, "CF-Connecting-IP")
        .or_else(|| header(req, "X-Real-IP"))
        .or_else(|| {
            header(req, "X-Forwarded-For")
                .and_then(|v| v.split(',').next().map(|s| s.trim().to_string()))
        });
    let record = LogRecord {
        request_id: request_id.to_string(),
        created_at: now_iso(),
        created_ms: now_ms() as i64,
        method: req.method().to_string(),
        path: req.path().to_string(),
        client_ip,
        origin: header(req, "Origin"),
        user_agent: header(req, "User-Agent"),
        request_headers: request_log::redact_headers(headers, scrubber),
        status: 0,
        api: Some(api.to_string()),
        ..LogRecord::default()
    };
    Some(LogTap::start(ctx, db, &settings, record, scrubber.clone()))
}

/// Returns the response and whether it answers a preflight.
async fn handle(
    mut req: Inbound,
    route: Result<Route, GatewayError>,
    call: &Call<'_>,
) -> Result<(Reply, bool), GatewayError> {
    let (env, config) = (call.env, call.config);
    let route = route?;
    let response = match route {
        Route::Preflight => return Ok((Reply::empty().with_status(204), true)),
        Route::Health => json_response(&status::health(&now_iso()), 200)?,
        Route::Status => {
            let config = config_ok(config)?;
            let key_health = |u: &crate::upstreams::Upstream| {
                upstream::key_book(|book| book.counts(&u.name, u.keys.len(), now_ms()))
            };
            json_response(&status::status(config, &now_iso(), &key_health), 200)?
        }
        Route::Page => page_response(INDEX_HTML),
        Route::Chat => chat(&mut req, config_ok(config)?, call).await?,
        Route::Embeddings => embeddings(&mut req, config_ok(config)?, call).await?,
        Route::Messages => messages(&mut req, config_ok(config)?, call).await?,
        Route::Responses => responses::create(&mut req, config_ok(config)?, call).await?,
        Route::ResponseGet | Route::ResponseDelete => {
            responses::stored(&req, route, config_ok(config)?, call).await?
        }
        Route::CountTokens => {
            let config = config_ok(config)?;
            let (raw_body, _) = client_body(&mut req, config, call).await?;
            let counted = anthropic::count_tokens(&raw_body)?;
            // An access key counts tokens only for the models it may call.
            if let (Some(caller), Ok(body)) = (
                call.caller.borrow().clone(),
                serde_json::from_slice::<serde_json::Value>(&raw_body),
            ) {
                caller.check_model(body["model"].as_str().unwrap_or_default())?;
            }
            json_response(&counted, 200)?
        }
        Route::Models => models(&req, config_ok(config)?, call).await?,
        Route::KeyList | Route::KeyCreate | Route::KeyGet | Route::KeyUpdate | Route::KeyDelete => {
            access::admin(&mut req, route, config_ok(config)?, call).await?
        }
        Route::Dashboard => {
            let config = config_ok(config)?;
            // The page itself is static (its sign-in form keeps the token in
            // sessionStorage); its API calls check the token.
            match auth::admin_enabled(config.log.admin_token.as_deref()) {
                Ok(_) => page_response(DASHBOARD_HTML),
                // A browser gets a page saying how to enable it; API clients the JSON error.
                Err(_) if wants_html(&req) => {
                    page_response(DASHBOARD_DISABLED_HTML).with_status(403)
                }
                Err(error) => return Err(error),
            }
        }
        Route::DashboardScript => asset_response(DASHBOARD_JS, "text/javascript; charset=utf-8"),
        Route::PageScript => asset_response(APP_JS, "text/javascript; charset=utf-8"),
        Route::Stylesheet => asset_response(BASE_CSS, "text/css; charset=utf-8"),
        Route::RequestList | Route::RequestDetail | Route::Stats => {
            let config = config_ok(config)?;
            auth::check_admin(
                config.log.admin_token.as_deref(),
                presented_credential(&req).as_deref(),
            )?;
            let db = env.d1("DB").map_err(|_| {
                GatewayError::Unavailable(
                    "The request log needs a D1 binding named `DB` (see wrangler.toml)".into(),
                )
            })?;
            log_api(&req, route, &db).await?
        }
    };
    Ok((response, false))
}

fn config_ok(config: &Result<Config, GatewayError>) -> Result<&Config, GatewayError> {
    config.as_ref().map_err(Clone::clone)
}

/// Authorizes the caller (see `access`) and keeps it in the call.
async fn authorize(
    req: &Inbound,
    config: &Config,
    call: &Call<'_>,
) -> Result<Rc<access::Caller>, GatewayError> {
    let caller = Rc::new(access::authorize(req, config, call.env).await?);
    if let (Some(tap), Some(key)) = (call.tap, &caller.key) {
        let (id, name) = (key.id.clone(), key.name.clone());
        tap.update(|r| {
            r.key_id = Some(id);
            r.key_name = Some(name);
        });
    }
    *call.caller.borrow_mut() = Some(caller.clone());
    Ok(caller)
}

/// The client's body, read whole within `MAX_REQUEST_BYTES`, once the caller is authorized
/// and admitted by its rate limits.
async fn client_body(
    req: &mut Inbound,
    config: &Config,
    call: &Call<'_>,
) -> Result<(Vec<u8>, Option<String>), GatewayError> {
    let tap = call.tap;
    // A wrong credential is refused before the body is read.
    let caller = authorize(req, config, call).await?;
    let presented = caller.presented.clone();
    if let Some(length) = header(req, "Content-Length").and_then(|v| v.trim().parse::<usize>().ok())
    {
        if length > config.max_request_bytes {
            return Err(GatewayError::PayloadTooLarge {
                limit: config.max_request_bytes,
            });
        }
    }
    // The limiter's round trip runs while the body arrives.
    let (admitted, raw_body) = futures::join!(access::admit(&caller, call), req.bytes());
    admitted?;
    let raw_body = raw_body
        .map_err(|e| GatewayError::invalid(format!("Could not read the request body: {e}")))?;
    if raw_body.len() > config.max_request_bytes {
        return Err(GatewayError::PayloadTooLarge {
            limit: config.max_request_bytes,
        });
    }
    if let Some(tap) = tap {
        tap.request_size(raw_body.len());
        let body = tap.body_text(&String::from_utf8_lossy(&raw_body));
        tap.update(|r| r.request_body = body);
    }
    Ok((raw_body, presented))
}

/// A call's candidates as targets, the planner over them and its first attempt.
struct Plan {
    targets: Vec<upstream::Target>,
    planner: router::Planner,
    first: router::Attempt,
    /// Index in `config.upstreams` of the first candidate's upstream.
    first_upstream: usize,
}

fn plan(
    config: &Config,
    call: &Call<'_>,
    model: &str,
    presented: Option<&str>,
) -> Result<Plan, GatewayError> {
    // Whitespace or control characters are refused before routing looks at the id.
    crate::adapters::validate_body_model(model)?;
    let caller = call.caller.borrow().clone();
    if let Some(caller) = &caller {
        caller.check_model(model)?;
    }
    let gateway_auth = caller
        .as_ref()
        .map_or(config.auth_token.is_some(), |c| c.gateway_auth(config));
    let presented = call.client_key(presented.map(str::to_string));
    let presented = presented.as_deref();
    let candidates = router::candidates(config, model, &mut || js_sys::Math::random())?;
    let mut targets = Vec::with_capacity(candidates.len());
    let mut sources = Vec::with_capacity(candidates.len());
    for candidate in &candidates {
        let upstream = &config.upstreams[candidate.upstream];
        // A model id goes into upstream URLs and bodies: anything odd stops here.
        upstream.adapter().validate_model(&candidate.model)?;
        sources.push(router::key_source(gateway_auth, upstream, presented, model));
        targets.push(upstream::Target {
            upstream: upstream.name.clone(),
            adapter: upstream.adapter(),
            base_url: upstream.base_url.clone(),
            model: candidate.model.clone(),
            keys: upstream.keys.clone(),
            timeout_ms: upstream.timeout_ms.unwrap_or(config.upstream_timeout_ms),
            headers: upstream.headers.clone(),
        });
    }
    let names = targets.iter().map(|t| t.upstream.clone()).collect();
    let (planner, first) = upstream::key_book(|book| {
        router::Planner::start(names, sources, config.retry, book, now_ms())
    })?;
    Ok(Plan {
        targets,
        planner,
        first,
        first_upstream: candidates[0].upstream,
    })
}

/// Which upstream answered (or failed last), also on errors.
fn note_served(call: &Call<'_>, served: upstream::Served) {
    call.gateway_headers.borrow_mut().extend([
        ("X-Gateway-Upstream".to_string(), served.upstream),
        (
            "X-Gateway-Attempts".to_string(),
            served.attempts.to_string(),
        ),
    ]);
}

async fn chat(req: &mut Inbound, config: &Config, call: &Call<'_>) -> Result<Reply, GatewayError> {
    let (raw_body, presented) = client_body(req, config, call).await?;
    let request = ChatRequest::parse(&raw_body)?;
    run_chat(
        req,
        config,
        call,
        raw_body,
        presented,
        request,
        Dialect::Chat,
        None,
    )
    .await
}

/// `POST /v1/messages`: Anthropic Messages, as a chat call underneath.
async fn messages(
    req: &mut Inbound,
    config: &Config,
    call: &Call<'_>,
) -> Result<Reply, GatewayError> {
    let (raw_body, presented) = client_body(req, config, call).await?;
    let translated = anthropic::to_chat(&raw_body, config.unsupported_tools)?;
    note_dropped_tools(call, &translated.dropped_tools);
    let chat_body =
        serde_json::to_vec(&translated.chat).map_err(|e| GatewayError::Internal(e.to_string()))?;
    let request = ChatRequest::parse(&chat_body)?;
    let dialect = Dialect::Anthropic {
        id: format!("msg_{}", call.request_id),
        model: translated.model,
    };
    run_chat(
        req, config, call, chat_body, presented, request, dialect, None,
    )
    .await
}

/// The dropped hosted/server tools: a response header and a log column.
fn note_dropped_tools(call: &Call<'_>, dropped: &[String]) {
    if dropped.is_empty() {
        return;
    }
    let list = dropped.join(",");
    if let Some(tap) = call.tap {
        let list = list.clone();
        tap.update(|r| r.dropped_tools = Some(list));
    }
    call.gateway_headers
        .borrow_mut()
        .push(("X-Gateway-Dropped-Tools".to_string(), list));
}

/// A chat request through the router, answered in `dialect`. `raw_body` is the chat body
/// as forwarded to OpenAI-compatible upstreams (the client's own bytes for chat);
/// `finish` runs after a successful answer is complete, before its end goes out.
#[allow(clippy::too_many_arguments)]
async fn run_chat(
    req: &mut Inbound,
    config: &Config,
    call: &Call<'_>,
    raw_body: Vec<u8>,
    presented: Option<String>,
    request: ChatRequest,
    dialect: Dialect,
    mut finish: Option<upstream::StreamEnd>,
) -> Result<Reply, GatewayError> {
    let tap = call.tap;
    if let Some(tap) = tap {
        tap.update(|r| {
            r.model = Some(request.model.clone());
            r.stream = request.stream;
        });
    }
    let plan = plan(config, call, &request.model, presented.as_deref())?;
    // The first candidate's upstream decides the response mode of the whole call.
    let first_upstream = &config.upstreams[plan.first_upstream];
    let fake = proxy::wants_fake_stream(
        first_upstream
            .fake_stream
            .as_ref()
            .unwrap_or(&config.fake_stream),
        &request,
        header(req, proxy::FAKE_STREAM_HEADER).as_deref(),
    );
    // A native Responses stream is relayed as it comes: it cannot be replayed from a
    // chat completion.
    let fake = fake && dialect != Dialect::NativeResponses;
    let mode = ResponseMode::for_request(request.stream, fake);
    if let Some(tap) = tap {
        tap.update(|r| {
            r.provider = Some(first_upstream.kind.id.to_string());
            r.upstream = Some(first_upstream.name.clone());
            r.fake_stream = mode == ResponseMode::FakeStream;
        });
    }
    let first = plan.first;
    let exchange = new_exchange(
        req, config, call, plan, presented, raw_body, request, dialect,
    );
    *exchange.stream_end.borrow_mut() = match mode {
        ResponseMode::Json => None,
        _ => finish.take(),
    };
    let (result, served) = match mode {
        ResponseMode::Json => {
            let (result, served) = exchange.json(first).await;
            if let (Ok(_), Some(finish)) = (&result, finish) {
                finish().await;
            }
            (result, served)
        }
        ResponseMode::Passthrough => exchange.passthrough(first).await,
        ResponseMode::FakeStream => {
            let mut response = exchange.fake_stream(first);
            response.headers.set("X-Gateway-Fake-Stream", "true");
            return Ok(response);
        }
    };
    note_served(call, served);
    result
}

/// The exchange of one call over its plan's targets.
#[allow(clippy::too_many_arguments)]
fn new_exchange(
    req: &Inbound,
    config: &Config,
    call: &Call<'_>,
    plan: Plan,
    presented: Option<String>,
    raw_body: Vec<u8>,
    request: ChatRequest,
    dialect: Dialect,
) -> upstream::Exchange {
    upstream::Exchange {
        log: call.tap.cloned(),
        targets: plan.targets,
        planner: std::cell::RefCell::new(plan.planner),
        client_key: call.client_key(presented),
        options: config.provider_options.clone(),
        client_headers: req.header_entries().to_vec(),
        raw_body,
        heartbeat_ms: config.heartbeat_interval_ms,
        chunk_chars: config.fake_stream_chunk_chars,
        chunk_delay_ms: config.fake_stream_chunk_delay_ms,
        request,
        embeddings: None,
        request_id: call.request_id.to_string(),
        scrubber: call.scrubber.clone(),
        max_response_bytes: config.max_response_bytes,
        client_signal: Some(req.inner().signal()),
        dialect,
        stream_end: std::cell::RefCell::new(None),
    }
}

/// `POST /v1/embeddings`: routed, key-pooled, retried and logged like a chat call.
async fn embeddings(
    req: &mut Inbound,
    config: &Config,
    call: &Call<'_>,
) -> Result<Reply, GatewayError> {
    let tap = call.tap;
    let (raw_body, presented) = client_body(req, config, call).await?;
    let request = crate::embeddings::EmbeddingRequest::parse(&raw_body)?;
    if let Some(tap) = tap {
        tap.update(|r| r.model = Some(request.model.clone()));
    }
    let plan = plan(config, call, &request.model, presented.as_deref())?;
    let first_upstream = &config.upstreams[plan.first_upstream];
    if let Some(tap) = tap {
        tap.update(|r| {
            r.provider = Some(first_upstream.kind.id.to_string());
            r.upstream = Some(first_upstream.name.clone());
        });
    }
    let first = plan.first;
    let mut exchange = new_exchange(
        req,
        config,
        call,
        plan,
        presented,
        raw_body,
        ChatRequest {
            body: serde_json::Map::new(),
            model: request.model.clone(),
            stream: false,
            include_usage: false,
        },
        Dialect::Chat,
    );
    exchange.embeddings = Some(request);
    let (result, served) = exchange.embeddings(first).await;
    note_served(call, served);
    result
}

/// `GET/POST /v1/models`: configured models of every usable provider, merged with what
/// the upstreams list. An upstream list that fails is left out, never fails the call.
async fn models(req: &Inbound, config: &Config, call: &Call<'_>) -> Result<Reply, GatewayError> {
    let caller = authorize(req, config, call).await?;
    // It fans out to every upstream: counted like any other call.
    access::admit(&caller, call).await?;
    let presented = caller.client_key();
    let listed = models::listed_upstreams(config);
    // A client's own key goes only to the catch-all upstream its chat calls would reach.
    let catch_all = listed
        .iter()
        .find(|u| u.keys.is_empty() && u.patterns.iter().any(|p| p == "*"))
        .map(|u| u.name.clone());
    let fetches = listed.iter().map(|upstream| {
        let key = if upstream.keys.is_empty() {
            (!caller.gateway_auth(config) && catch_all.as_deref() == Some(upstream.name.as_str()))
                .then(|| presented.clone())
                .flatten()
        } else {
            let index = upstream::key_book(|book| {
                book.pick(&upstream.name, upstream.keys.len(), now_ms(), &[], true)
            });
            index.map(|i| upstream.keys[i].clone())
        };
        let request = key.and_then(|key| {
            let mut request = upstream
                .adapter()
                .models_request(&upstream.base_url, &key)?;
            request.headers.extend(upstream.headers.iter().cloned());
            Some(request)
        });
        async move {
            match request {
                Some(request) => upstream::fetch_model_ids(upstream.adapter(), &request).await,
                None => Ok(Vec::new()),
            }
        }
    });
    let fetched = futures::future::join_all(fetches)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, GatewayError>>()?;
    let pairs: Vec<_> = listed.into_iter().zip(fetched).collect();
    let mut list = models::model_list(config, &pairs);
    // An access key sees the models it may call.
    if let (Some(key), Some(data)) = (&caller.key, list["data"].as_array_mut()) {
        data.retain(|m| m["id"].as_str().is_some_and(|id| key.allows_model(id)));
    }
    json_response(&list, 200)
}

/// Whether the client is a browser navigating to a page (it accepts HTML).
fn wants_html(req: &Inbound) -> bool {
    header(req, "Accept").is_some_and(|accept| accept.contains("text/html"))
}

fn presented_credential(req: &Inbound) -> Option<String> {
    auth::client_credential(
        header(req, "Authorization").as_deref(),
        header(req, "X-Api-Key").as_deref(),
    )
}

pub(crate) fn header(req: &Inbound, name: &str) -> Option<String> {
    req.header(name).map(str::to_string)
}

/// A `Headers` object's entries, read in one crossing into JS instead of one per header.
pub(crate) fn header_list(headers: &worker::web_sys::Headers) -> Vec<(String, String)> {
    crate::headers::parse_lines(&header_lines(headers))
}

/// The client's request, its method, path and headers read once: each read from the JS
/// object is a crossing into JS (and back) of its own. (`worker::Request` would also read
/// the `cf` object, which the gateway never needs.)
pub(crate) struct Inbound {
    req: worker::web_sys::Request,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Inbound {
    fn new(req: worker::web_sys::Request) -> Inbound {
        let headers = header_list(&req.headers());
        let path = proxy::path_of_url(&req.url()).to_string();
        Inbound {
            method: req.method(),
            path,
            headers,
            req,
        }
    }

    pub(crate) fn method(&self) -> &str {
        &self.method
    }

    /// The URL's path, percent-encoded as it came.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The query's name/value pairs, decoded.
    pub(crate) fn query(&self) -> Vec<(String, String)> {
        proxy::query_pairs(&self.req.url())
    }

    pub(crate) fn inner(&self) -> &worker::web_sys::Request {
        &self.req
    }

    /// The whole body, in one `arrayBuffer()`.
    pub(crate) async fn bytes(&mut self) -> worker::Result<Vec<u8>> {
        let buffer = js_sys::futures::JsFuture::from(self.req.array_buffer()?).await?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }

    /// A header's value (names compare case-insensitively; the runtime joins repeats).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header, names lower-case, as the runtime gives them.
    pub(crate) fn header_entries(&self) -> &[(String, String)] {
        &self.headers
    }
}

/// A JS rejection's message: an `Error`'s message, a string as it is, anything else as
/// wasm-bindgen shows it.
pub(crate) fn js_message(value: &wasm_bindgen::JsValue) -> String {
    use wasm_bindgen::JsCast;
    match value.dyn_ref::<js_sys::Error>() {
        Some(error) => String::from(error.message()),
        None => value.as_string().unwrap_or_else(|| format!("{value:?}")),
    }
}

pub(crate) fn internal(e: worker::Error) -> GatewayError {
    GatewayError::Internal(e.to_string())
}

pub(crate) fn json_response(value: &serde_json::Value, status: u16) -> Result<Reply, GatewayError> {
    Ok(Reply::json(value)?.with_status(status))
}

/// The error boundary: every error body passes the scrubber, and an upstream error keeps
/// the upstream headers worth passing back.
pub(crate) fn error_response(
    error: &GatewayError,
    scrubber: &Scrubber,
    dialect: &Dialect,
) -> Reply {
    let body = scrubber.text(&dialect.error_body(error).to_string());
    let mut response = Reply::bytes(body.into_bytes(), "application/json");
    for (name, value) in error.headers() {
        response.headers.append(name, value);
    }
    if let GatewayError::MethodNotAllowed { allow, .. } = error {
        response.headers.set("Allow", allow);
    }
    response.with_status(error.status())
}

fn page_response(html: &str) -> Reply {
    let mut response = Reply::text(html, "text/html; charset=utf-8");
    response.headers.set("Content-Security-Policy", PAGE_CSP);
    response.headers.set("X-Content-Type-Options", "nosniff");
    response.headers.set("Referrer-Policy", "no-referrer");
    response.headers.set("Cache-Control", "no-store");
    response
}

fn asset_response(text: &str, content_type: &str) -> Reply {
    let mut response = Reply::text(text, content_type);
    response.headers.set("X-Content-Type-Options", "nosniff");
    response.headers.set("Cache-Control", "no-cache");
    response
}

/// The request log's JSON API.
async fn log_api(req: &Inbound, route: Route, db: &D1Database) -> Result<Reply, GatewayError> {
    let storage = |e: worker::Error| {
        GatewayError::Unavailable(format!("The request log could not be read: {e}"))
    };
    let query = req.query();
    match route {
        Route::RequestList => {
            let list = request_log::ListQuery::parse(&query)?;
            let (count, page) = list.statements();
            let total = logging::first::<i64>(db, &count, Some("total"))
                .await
                .map_err(storage)?
                .unwrap_or(0);
            let rows = logging::rows::<request_log::SummaryRow>(db, &page)
                .await
                .map_err(storage)?;
            json_response(&request_log::list_body(&list, total, rows), 200)
        }
        Route::RequestDetail => {
            let id = request_detail_id(req.path())
                .unwrap_or_default()
                .to_string();
            let statement = request_log::detail_statement(&id);
            let row =
                logging::first::<serde_json::Map<String, serde_json::Value>>(db, &statement, None)
                    .await
                    .map_err(storage)?
                    .ok_or_else(|| GatewayError::Missing {
                        message: format!("No logged request with id `{id}`"),
                    })?;
            json_response(&request_log::detail_body(row), 200)
        }
        _ => {
            let window = query
                .iter()
                .find(|(k, _)| k == "window")
                .map(|(_, v)| v.as_str());
            let (window, window_ms) = request_log::parse_window(window)?;
            let now = now_ms() as i64;
            let statement = request_log::stats_statement(window_ms.map(|ms| now - ms));
            let rows = logging::rows::<request_log::StatRow>(db, &statement)
                .await
                .map_err(storage)?;
            let refusals = request_log::refusals_statement(window_ms.map(|ms| now - ms));
            let refused = logging::first::<i64>(db, &refusals, Some("refused"))
                .await
                .map_err(storage)?
                .unwrap_or(0);
            json_response(
                &request_log::stats_body(&rows, refused, &window, window_ms, now),
                200,
            )
        }
    }
}

fn now_iso() -> String {
    js_sys::Date::new_0().to_iso_string().into()
}

pub(crate) fn now_ms() -> f64 {
    js_sys::Date::now()
}

pub(crate) fn now_seconds() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

/// 16 random bytes as hex; falls back to the clock if no randomness is available.
pub(crate) fn new_request_id() -> String {
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_err() {
        let now = js_sys::Date::now() as u64;
        bytes[..8].copy_from_slice(&now.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
