//! The Workers binding: entry point, env, and turning plans and errors into Responses.
//! Every failure becomes an OpenAI error response here; the fetch handler never fails.

mod upstream;

use crate::auth;
use crate::config::{AllowedOrigins, Config};
use crate::cors;
use crate::error::GatewayError;
use crate::models;
use crate::openai::ChatRequest;
use crate::proxy::{self, ResponseMode};
use crate::route::{route, Route};
use crate::status;
use worker::{event, Context, Env, Headers, Request, Response};

const INDEX_HTML: &str = include_str!("../ui/index.html");

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let config = Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()));
    let origin = header(&req, "Origin");
    let requested_headers = header(&req, "Access-Control-Request-Headers");
    let request_id = new_request_id();

    let (response, preflight) = match handle(req, &config, &request_id).await {
        Ok(outcome) => outcome,
        Err(error) => (error_response(&error), false),
    };
    // Without valid settings the origin list is unknown; let browsers read the config error.
    let allowed = config
        .as_ref()
        .map(|c| c.allowed_origins.clone())
        .unwrap_or(AllowedOrigins::Any);
    let headers = response.headers();
    for (name, value) in cors::cors_headers(
        &allowed,
        origin.as_deref(),
        preflight,
        requested_headers.as_deref(),
    ) {
        let _ = headers.set(name, &value);
    }
    let _ = headers.set("X-Request-Id", &request_id);
    let _ = headers.set("X-Gateway-Version", crate::VERSION);
    Ok(response)
}

/// Returns the response and whether it answers a preflight.
async fn handle(
    mut req: Request,
    config: &Result<Config, GatewayError>,
    request_id: &str,
) -> Result<(Response, bool), GatewayError> {
    let method = req.method().to_string();
    let path = req.path();
    let route = route(&method, &path)?;
    let timestamp = now_iso();
    let response = match route {
        Route::Preflight => {
            return Ok((with_status(Response::empty().map_err(internal)?, 204), true))
        }
        Route::Health => json_response(&status::health(&timestamp), 200)?,
        Route::Status => json_response(&status::status(config_ok(config)?, &timestamp), 200)?,
        Route::Page => page_response(INDEX_HTML)?,
        Route::Chat => chat(&mut req, config_ok(config)?, request_id).await?,
        Route::Models => models(&req, config_ok(config)?).await?,
    };
    Ok((response, false))
}

fn config_ok(config: &Result<Config, GatewayError>) -> Result<&Config, GatewayError> {
    config.as_ref().map_err(Clone::clone)
}

async fn chat(
    req: &mut Request,
    config: &Config,
    request_id: &str,
) -> Result<Response, GatewayError> {
    if let Some(length) = header(req, "Content-Length").and_then(|v| v.trim().parse::<usize>().ok())
    {
        if length > config.max_request_bytes {
            return Err(GatewayError::PayloadTooLarge {
                limit: config.max_request_bytes,
            });
        }
    }
    let raw_body = req
        .bytes()
        .await
        .map_err(|e| GatewayError::invalid(format!("Could not read the request body: {e}")))?;
    if raw_body.len() > config.max_request_bytes {
        return Err(GatewayError::PayloadTooLarge {
            limit: config.max_request_bytes,
        });
    }
    let request = ChatRequest::parse(&raw_body)?;
    let (settings, upstream_model) = config.route_model(&request.model)?;
    let presented = presented_credential(req);
    let key = auth::upstream_key(
        config.auth_token.as_deref(),
        settings.api_key.as_deref(),
        presented.as_deref(),
        auth::KeyTarget {
            provider: settings.spec.id,
            key_var: &settings.key_var(),
            model: &request.model,
        },
    )?;
    let fake = proxy::wants_fake_stream(
        config,
        &request,
        header(req, proxy::FAKE_STREAM_HEADER).as_deref(),
    );
    let mode = ResponseMode::for_request(request.stream, fake);
    let exchange = upstream::Exchange {
        provider: settings.provider(),
        base_url: settings.base_url.clone(),
        upstream_model: upstream_model.to_string(),
        options: config.provider_options.clone(),
        client_headers: req.headers().entries().collect(),
        raw_body,
        timeout_ms: config.upstream_timeout_ms,
        heartbeat_ms: config.heartbeat_interval_ms,
        chunk_chars: config.fake_stream_chunk_chars,
        chunk_delay_ms: config.fake_stream_chunk_delay_ms,
        key,
        request,
        request_id: request_id.to_string(),
    };
    let mut response = match mode {
        ResponseMode::Json => exchange.json().await?,
        ResponseMode::Passthrough => exchange.passthrough().await?,
        ResponseMode::FakeStream => exchange.fake_stream()?,
    };
    if mode == ResponseMode::FakeStream {
        let _ = response.headers_mut().set("X-Gateway-Fake-Stream", "true");
    }
    Ok(response)
}

/// `GET/POST /v1/models`: configured models of every usable provider, merged with what
/// the upstreams list. An upstream list that fails is left out, never fails the call.
async fn models(req: &Request, config: &Config) -> Result<Response, GatewayError> {
    let presented = presented_credential(req);
    auth::check_access(config.auth_token.as_deref(), presented.as_deref())?;
    let listed = models::listed_providers(config);
    let fetches = listed.iter().map(|settings| {
        // A client's own key is only ever sent where its chat calls would go by default.
        let key = settings.api_key.clone().or_else(|| {
            (config.auth_token.is_none() && settings.spec.id == "openai")
                .then(|| presented.clone())
                .flatten()
        });
        let request =
            key.and_then(|key| settings.provider().models_request(&settings.base_url, &key));
        async move {
            match request {
                Some(request) => upstream::fetch_model_ids(settings.provider(), &request).await,
                None => Vec::new(),
            }
        }
    });
    let fetched = futures::future::join_all(fetches).await;
    let pairs: Vec<_> = listed.into_iter().zip(fetched).collect();
    json_response(&models::model_list(config, &pairs), 200)
}

fn presented_credential(req: &Request) -> Option<String> {
    auth::client_credential(
        header(req, "Authorization").as_deref(),
        header(req, "X-Api-Key").as_deref(),
    )
}

pub(crate) fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

pub(crate) fn internal(e: worker::Error) -> GatewayError {
    GatewayError::Internal(e.to_string())
}

fn with_status(response: Response, status: u16) -> Response {
    response.with_status(status)
}

pub(crate) fn json_response(
    value: &serde_json::Value,
    status: u16,
) -> Result<Response, GatewayError> {
    Ok(Response::from_json(value)
        .map_err(internal)?
        .with_status(status))
}

pub(crate) fn error_response(error: &GatewayError) -> Response {
    let body = error.to_body().to_string();
    let headers = Headers::new();
    let _ = headers.set("Content-Type", "application/json");
    if let GatewayError::MethodNotAllowed { allow, .. } = error {
        let _ = headers.set("Allow", allow);
    }
    match Response::ok(body) {
        Ok(response) => response.with_status(error.status()).with_headers(headers),
        // Response::ok on a plain string does not fail; keep a last resort that cannot.
        Err(_) => Response::empty()
            .unwrap_or_else(|_| Response::builder().empty())
            .with_status(500),
    }
}

fn page_response(html: &str) -> Result<Response, GatewayError> {
    let response = Response::from_html(html).map_err(internal)?;
    let headers = response.headers();
    let _ = headers.set(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    );
    let _ = headers.set("X-Content-Type-Options", "nosniff");
    let _ = headers.set("Referrer-Policy", "no-referrer");
    Ok(response)
}

fn now_iso() -> String {
    js_sys::Date::new_0().to_iso_string().into()
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
