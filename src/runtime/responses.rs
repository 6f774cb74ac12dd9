//! `/v1/responses`: the Responses API as a chat call underneath, with stored responses in D1
//! (`store`, `previous_response_id`, `GET`/`DELETE /v1/responses/{id}`).

use super::logging;
use super::Reply;
use super::{
    client_body, json_response, note_dropped_tools, now_ms, now_seconds, run_chat, upstream, Call,
    Inbound,
};
use crate::config::Config;
use crate::dialects::responses::{self as dialect, ResponseMeta, ResponseSink};
use crate::dialects::Dialect;
use crate::error::GatewayError;
use crate::log::SqlValue;
use crate::openai::ChatRequest;
use crate::response_store::{self as store, StoredResponse};
use crate::route::{response_id, Route};
use crate::scrub::Scrubber;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{console_error, D1Database};

fn database(call: &Call<'_>) -> Option<D1Database> {
    call.env.d1("DB").ok()
}

fn storage_error(e: worker::Error) -> GatewayError {
    GatewayError::Unavailable(format!("The response store could not be read: {e}"))
}

#[derive(serde::Deserialize)]
struct Row {
    messages: String,
    response: String,
}

/// `POST /v1/responses`.
pub(super) async fn create(
    req: &mut Inbound,
    config: &Config,
    call: &Call<'_>,
) -> Result<Reply, GatewayError> {
    let (raw_body, presented) = client_body(req, config, call).await?;
    // Upstreams that serve the Responses API themselves get the request as it came, hosted
    // tools and file ids included.
    if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&raw_body) {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if serves_responses_natively(config, model) {
            return native(req, config, call, raw_body, presented, body).await;
        }
    }
    let parsed = dialect::parse(&raw_body, config.unsupported_tools)?;
    note_dropped_tools(call, &parsed.dropped_tools);
    let owner = store::owner(presented.as_deref());
    let db = database(call);
    let previous = match &parsed.previous_response_id {
        None => Vec::new(),
        Some(id) => {
            let db = db.as_ref().ok_or_else(|| {
                GatewayError::Unavailable(
                    "previous_response_id needs the response store: a D1 binding named `DB` (see wrangler.toml)".into(),
                )
            })?;
            let row = logging::first::<Row>(db, &store::load(id, &owner, now_ms() as i64), None)
                .await
                .map_err(storage_error)?;
            let found = row.and_then(|row| store::conversation(&row.messages));
            found.ok_or_else(|| GatewayError::InvalidRequest {
                message: format!(
                    "Previous response with id '{}' not found (stored responses expire after RESPONSES_TTL_HOURS, belong to the credential that created them, and are not kept with `store: false` or past {} bytes).",
                    crate::error::excerpt(id, 80),
                    store::MAX_ROW_BYTES
                ),
                param: Some("previous_response_id".into()),
                code: Some("previous_response_not_found"),
            })?
        }
    };
    let chat = parsed.chat_body(&previous)?;
    let chat_body = serde_json::to_vec(&chat).map_err(|e| GatewayError::Internal(e.to_string()))?;
    let request = ChatRequest::parse(&chat_body)?;
    let sink: ResponseSink = Rc::new(RefCell::new(None));
    let meta = ResponseMeta {
        id: format!("resp_{}", call.request_id),
        model: parsed.model.clone(),
        created_at: now_seconds(),
        echo: parsed.echo.clone(),
    };
    let dialect = Dialect::Responses {
        meta: Box::new(meta),
        sink: sink.clone(),
    };
    // `store: false` keeps nothing; without D1 nothing can be kept.
    let finish = match (parsed.echo.store, db) {
        (true, Some(db)) => {
            let mut conversation = previous;
            conversation.extend(parsed.input_messages.iter().cloned());
            let ttl_ms = config.responses_ttl_ms as i64;
            let scrubber = call.scrubber.clone();
            let save: upstream::StreamEnd = Box::new(move || {
                Box::pin(async move {
                    save_response(&db, &sink, owner, conversation, ttl_ms, &scrubber).await
                })
            });
            Some(save)
        }
        _ => None,
    };
    run_chat(
        req, config, call, chat_body, presented, request, dialect, finish,
    )
    .await
}

/// Whether every upstream that may serve `model` serves the Responses API itself
/// (`native_responses`): then calls are passed through untranslated.
fn serves_responses_natively(config: &Config, model: &str) -> bool {
    crate::adapters::validate_body_model(model).is_ok()
        && crate::router::candidates(config, model, &mut || 0.0).is_ok_and(|candidates| {
            !candidates.is_empty()
                && candidates
                    .iter()
                    .all(|c| config.upstreams[c.upstream].native_responses)
        })
}

/// The client's Responses request as it came, to the upstreams' own `/responses`: answers,
/// streams and stored state are theirs. Routed, pooled, retried and logged like chat.
async fn native(
    req: &mut Inbound,
    config: &Config,
    call: &Call<'_>,
    raw_body: Vec<u8>,
    presented: Option<String>,
    body: serde_json::Map<String, Value>,
) -> Result<Reply, GatewayError> {
    let request = ChatRequest {
        model: body["model"].as_str().unwrap_or_default().to_string(),
        stream: body.get("stream") == Some(&Value::Bool(true)),
        body,
        include_usage: false,
    };
    if let Some(tap) = call.tap {
        let api = "responses (native)".to_string();
        tap.update(|r| r.api = Some(api));
    }
    run_chat(
        req,
        config,
        call,
        raw_body,
        presented,
        request,
        Dialect::NativeResponses,
        None,
    )
    .await
}

/// Stores the finished Response (a failed one is not kept); a storage error only reaches
/// the Worker's log, never the client's answer.
async fn save_response(
    db: &D1Database,
    sink: &ResponseSink,
    owner: String,
    conversation: Vec<Value>,
    ttl_ms: i64,
    scrubber: &Scrubber,
) {
    let Some(response) = sink.borrow_mut().take() else {
        return;
    };
    let now = now_ms() as i64;
    let stored = StoredResponse::new(response, owner, conversation, now, ttl_ms);
    let mut insert = stored.insert();
    // What is stored goes out again (GET, and upstream on `previous_response_id`): no
    // secret is kept, exactly as in the request log.
    let mut size = 0;
    for param in &mut insert.params {
        if let SqlValue::Text(text) = param {
            *text = scrubber.text(text);
            size += text.len();
        }
    }
    if size > store::MAX_ROW_BYTES {
        console_error!(
            "response store: {} is not stored: its conversation is {size} bytes, more than {}",
            stored.id,
            store::MAX_ROW_BYTES
        );
        return;
    }
    let mut statements = vec![insert];
    if js_sys::Math::random() * store::TRIM_EVERY < 1.0 {
        statements.push(store::trim(now));
    }
    let mut prepared = Vec::with_capacity(statements.len());
    for statement in &statements {
        match logging::prepare(db, statement) {
            Ok(p) => prepared.push(p),
            Err(e) => {
                console_error!("{}", scrubber.text(&format!("response store: {e}")));
                return;
            }
        }
    }
    if let Err(e) = db.batch(prepared).await {
        console_error!(
            "{}",
            scrubber.text(&format!("response store: saving {} failed: {e}", stored.id))
        );
    }
}

/// `GET` and `DELETE /v1/responses/{id}`: only for the credential that created it.
pub(super) async fn stored(
    req: &Inbound,
    route: Route,
    config: &Config,
    call: &Call<'_>,
) -> Result<Reply, GatewayError> {
    let caller = super::authorize(req, config, call).await?;
    super::access::admit(&caller, call).await?;
    let presented = caller.presented.clone();
    let id = response_id(req.path()).unwrap_or_default().to_string();
    let owner = store::owner(presented.as_deref());
    let db = database(call).ok_or_else(|| {
        GatewayError::Unavailable(
            "Stored responses need a D1 binding named `DB` (see wrangler.toml)".into(),
        )
    })?;
    let missing = || GatewayError::Missing {
        message: format!(
            "Response with id '{}' not found.",
            crate::error::excerpt(&id, 80)
        ),
    };
    if route == Route::ResponseDelete {
        let deleted = logging::first::<String>(&db, &store::delete(&id, &owner), Some("id"))
            .await
            .map_err(storage_error)?;
        if deleted.is_none() {
            return Err(missing());
        }
        return json_response(
            &serde_json::json!({ "id": id, "object": "response", "deleted": true }),
            200,
        );
    }
    let row = logging::first::<Row>(&db, &store::load(&id, &owner, now_ms() as i64), None)
        .await
        .map_err(storage_error)?
        .ok_or_else(missing)?;
    let response: Value = serde_json::from_slice(row.response.as_bytes()).map_err(|_| missing())?;
    json_response(&response, 200)
}
