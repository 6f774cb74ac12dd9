//! Executes a provider's upstream call: the fetch with timeout and abort, and the three ways of
//! answering (JSON, streaming relay, fake stream driven by heartbeat timers).

use super::logging::LogTap;
use super::{internal, now_ms, now_seconds};
use crate::error::{excerpt, GatewayError};
use crate::openai::{ChatCompletion, ChatRequest};
use crate::providers::{CallContext, HttpRequest, Provider, ProviderOptions};
use crate::proxy;
use crate::scrub::Scrubber;
use crate::stream::aggregate::looks_like_sse;
use crate::stream::fake;
use crate::stream::relay::Relay;
use crate::stream::translate::{StreamAdapter, Translated};
use futures::future::{select, Either};
use futures::{Stream, StreamExt};
use std::borrow::Cow;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use worker::web_sys;
use worker::{
    AbortSignal, ByteStream, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
    Response,
};

pub struct Exchange {
    /// The call's request-log record, when logging is on.
    pub log: Option<LogTap>,
    pub provider: &'static dyn Provider,
    pub base_url: String,
    pub upstream_model: String,
    pub options: ProviderOptions,
    pub client_headers: Vec<(String, String)>,
    pub raw_body: Vec<u8>,
    pub timeout_ms: u64,
    pub heartbeat_ms: u64,
    pub chunk_chars: usize,
    pub chunk_delay_ms: u64,
    /// The key sent upstream.
    pub key: String,
    pub request: ChatRequest,
    pub request_id: String,
    /// Every secret in play for this request; applied to everything that goes out.
    pub scrubber: Rc<Scrubber>,
    pub max_response_bytes: usize,
    /// The client request's signal: it fires when the client goes away.
    pub client_signal: Option<web_sys::AbortSignal>,
}

/// Aborts the upstream fetch when dropped while armed: a client that goes away drops the
/// response stream, and with it this guard, so the upstream stops working for nobody. A
/// non-streaming call has no stream to drop; the client request's signal aborts it instead.
struct AbortOnDrop {
    controller: Option<web_sys::AbortController>,
    client: Option<(web_sys::AbortSignal, Closure<dyn FnMut()>)>,
}

impl AbortOnDrop {
    /// An armed guard and the signal to fetch with.
    fn new(
        client_signal: Option<&web_sys::AbortSignal>,
    ) -> Result<(AbortOnDrop, AbortSignal), GatewayError> {
        let controller = web_sys::AbortController::new()
            .map_err(|_| GatewayError::Internal("could not create an AbortController".into()))?;
        let signal = AbortSignal::from(controller.signal());
        let client = client_signal.map(|signal| {
            let on_abort = controller.clone();
            let closure = Closure::<dyn FnMut()>::new(move || on_abort.abort());
            signal.set_onabort(Some(closure.as_ref().unchecked_ref()));
            (signal.clone(), closure)
        });
        let guard = AbortOnDrop {
            controller: Some(controller),
            client,
        };
        Ok((guard, signal))
    }

    fn release_client(&mut self) {
        if let Some((signal, _closure)) = self.client.take() {
            signal.set_onabort(None);
        }
    }

    fn disarm(&mut self) {
        self.release_client();
        self.controller = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.release_client();
        if let Some(controller) = self.controller.take() {
            controller.abort();
        }
    }
}

type BoxedBytes = Pin<Box<dyn Stream<Item = worker::Result<Vec<u8>>>>>;

/// Runs `future` for at most `ms` milliseconds.
async fn within<T>(ms: u64, future: impl Future<Output = T>) -> Option<T> {
    let future = pin!(future);
    let delay = Delay::from(Duration::from_millis(ms));
    match select(future, delay).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

impl Exchange {
    fn context(&self, stream: bool) -> CallContext<'_> {
        CallContext {
            request: &self.request,
            raw_body: &self.raw_body,
            upstream_model: &self.upstream_model,
            base_url: &self.base_url,
            key: &self.key,
            stream,
            request_id: &self.request_id,
            now_seconds: now_seconds(),
            client_headers: &self.client_headers,
            options: &self.options,
        }
    }

    /// Builds the native request and sends it; returns the upstream response (any status
    /// but a redirect) and the armed abort guard.
    async fn send(&self, stream: bool) -> Result<(Response, AbortOnDrop), GatewayError> {
        let request = self.provider.chat_request(&self.context(stream))?;
        send_request(&request, self.timeout_ms, self.client_signal.as_ref()).await
    }

    /// Reads the whole body within the timeout and `MAX_RESPONSE_BYTES`.
    async fn read_body(&self, response: &mut Response) -> Result<Vec<u8>, GatewayError> {
        read_limited(response, self.timeout_ms, self.max_response_bytes).await
    }

    /// An upstream error status becomes an OpenAI error with the same status and the
    /// upstream headers worth passing back (`retry-after`, rate limits, request id).
    async fn check_status(&self, response: &mut Response) -> Result<(), GatewayError> {
        let status = response.status_code();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let headers = proxy::forwarded_headers(response.headers().entries());
        // An error body is short; a huge one is cut rather than read whole.
        let body = read_limited(response, self.timeout_ms, ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        Err(self
            .provider
            .parse_error(status, &body)
            .with_headers(headers))
    }

    /// Non-streaming: the upstream JSON as it is (OpenAI-compatible upstreams) or
    /// translated from the native answer.
    pub async fn json(&self) -> Result<Response, GatewayError> {
        let (mut upstream, mut guard) = self.send(false).await?;
        if let Some(log) = &self.log {
            log.first_byte();
        }
        self.check_status(&mut upstream).await?;
        let body = self.read_body(&mut upstream).await?;
        guard.disarm();
        let headers = forwarded_headers(upstream.headers());
        let _ = headers.set("Content-Type", "application/json");
        // An upstream that streamed anyway is folded into one completion below.
        let (body, usage) = if self.provider.passes_json_through() && !looks_like_sse(&body) {
            // Only `usage` is decoded; the answer itself is passed on as it came.
            #[derive(serde::Deserialize)]
            struct UsageOnly {
                #[serde(default)]
                usage: Option<serde_json::Value>,
            }
            let Ok(parsed) = serde_json::from_slice::<UsageOnly>(&body) else {
                return Err(GatewayError::UpstreamMalformed(format!(
                    "expected JSON, got: {}",
                    excerpt(&String::from_utf8_lossy(&body[..body.len().min(600)]), 200)
                )));
            };
            (body, parsed.usage)
        } else {
            let completion = self
                .provider
                .parse_completion(&body, &self.context(false))?;
            drop(body);
            let usage = completion.usage.clone();
            let body = serde_json::to_vec(&completion)
                .map_err(|e| GatewayError::Internal(e.to_string()))?;
            (body, usage)
        };
        let body = match self.scrubber.known(&body) {
            Cow::Borrowed(_) => body,
            Cow::Owned(scrubbed) => scrubbed,
        };
        if let Some(log) = &self.log {
            log.response_body(&String::from_utf8_lossy(&body));
            log.usage(usage.as_ref());
        }
        Ok(Response::from_bytes(body)
            .map_err(internal)?
            .with_status(200)
            .with_headers(headers))
    }

    /// Streaming passthrough: complete events are relayed as they arrive.
    pub async fn passthrough(self) -> Result<Response, GatewayError> {
        let (mut upstream, guard) = self.send(true).await?;
        self.check_status(&mut upstream).await?;
        let headers = forwarded_headers(upstream.headers());
        let content_type = upstream
            .headers()
            .get("Content-Type")
            .ok()
            .flatten()
            .unwrap_or_default();
        if !content_type
            .to_ascii_lowercase()
            .contains("text/event-stream")
        {
            // The upstream ignored `stream: true` and answered in one piece: replay it.
            let body = self.read_body(&mut upstream).await?;
            let scrubbed = self.scrubber.known(&body);
            let frames = self.replay(
                self.provider
                    .parse_completion(&scrubbed, &self.context(false)),
            );
            let scrubber = self.scrubber.clone();
            return sse_response(replay_stream(frames, self.log.clone()), headers, scrubber);
        }
        let adapter: Box<dyn StreamAdapter> =
            match self.provider.stream_translator(&self.context(true)) {
                Some(translator) => Box::new(Translated::new(translator)),
                None => Box::new(Relay::new()),
            };
        let body = upstream.stream().map_err(internal)?;
        let limits = RelayLimits {
            idle_timeout_ms: self.timeout_ms,
            heartbeat_ms: self.heartbeat_ms,
            max_bytes: self.max_response_bytes,
        };
        let stream = relay_stream(body, adapter, guard, limits, self.log.clone());
        sse_response(stream, headers, self.scrubber.clone())
    }

    /// Fake streaming: the 200 goes out at once, heartbeats flow while the non-streaming
    /// upstream call runs, then the answer is replayed as chunks, made one at a time.
    pub fn fake_stream(self) -> Result<Response, GatewayError> {
        let heartbeat = Duration::from_millis(self.heartbeat_ms);
        let chunk_delay = self.chunk_delay_ms;
        let log = self.log.clone();
        let scrubber = self.scrubber.clone();
        let pending: Pin<Box<dyn Future<Output = Frames>>> = Box::pin(async move {
            let result = async {
                let (mut upstream, mut guard) = self.send(false).await?;
                self.check_status(&mut upstream).await?;
                let body = self.read_body(&mut upstream).await?;
                guard.disarm();
                // Secrets go before the answer is cut into chunks that could split them.
                let body = self.scrubber.known(&body);
                self.provider.parse_completion(&body, &self.context(false))
            }
            .await;
            self.replay(result)
        });
        let state = FakeState::Waiting {
            pending,
            first: true,
        };
        let stream = futures::stream::unfold(state, move |state| {
            let log = log.clone();
            async move {
                match state {
                    FakeState::Waiting { mut pending, first } => {
                        if first {
                            // An immediate first frame flushes headers through any buffering proxy.
                            return Some((
                                fake::heartbeat(),
                                FakeState::Waiting {
                                    pending,
                                    first: false,
                                },
                            ));
                        }
                        let ready = match select(pending.as_mut(), Delay::from(heartbeat)).await {
                            Either::Left((frames, _)) => Some(frames),
                            Either::Right(_) => None,
                        };
                        match ready {
                            None => Some((
                                fake::heartbeat(),
                                FakeState::Waiting {
                                    pending,
                                    first: false,
                                },
                            )),
                            Some(mut frames) => {
                                if let Some(log) = &log {
                                    log.first_byte();
                                }
                                let first_frame = frames.next()?;
                                Some((first_frame, FakeState::Replaying(frames)))
                            }
                        }
                    }
                    FakeState::Replaying(mut frames) => {
                        let Some(mut frame) = frames.next() else {
                            if let Some(log) = &log {
                                log.finished();
                            }
                            return None;
                        };
                        if chunk_delay > 0 {
                            Delay::from(Duration::from_millis(chunk_delay)).await;
                        } else {
                            // Without a delay between chunks, frames go out in batches: one
                            // stream item per frame would cost more than the frame itself.
                            while frame.len() < COALESCE_BYTES {
                                match frames.next() {
                                    Some(next) => frame.extend_from_slice(&next),
                                    None => break,
                                }
                            }
                        }
                        Some((frame, FakeState::Replaying(frames)))
                    }
                }
            }
        })
        .map(Ok);
        sse_response(Box::pin(stream), Headers::new(), scrubber)
    }

    /// The frames that replay a completion, or report its failure; made lazily.
    fn replay(&self, result: Result<ChatCompletion, GatewayError>) -> Frames {
        if let Some(log) = &self.log {
            match &result {
                Ok(completion) => {
                    if let Some(choice) = completion.choices.first() {
                        log.response_body(&choice.message.text_ref());
                    }
                    log.usage(completion.usage.as_ref());
                }
                Err(error) => log.error(error.to_string()),
            }
        }
        match result {
            Ok(completion) => {
                let meta = fake::meta_for(
                    &completion,
                    &self.request.model,
                    self.request.include_usage,
                    &format!("chatcmpl-{}", self.request_id),
                    now_seconds(),
                );
                Box::new(fake::Replay::new(completion, meta, self.chunk_chars))
            }
            Err(error) => Box::new(std::iter::once(fake::error_frames(&error))),
        }
    }
}

/// SSE frames made one at a time.
type Frames = Box<dyn Iterator<Item = Vec<u8>>>;

/// Frames batched into one stream item when there is no delay between chunks.
const COALESCE_BYTES: usize = 16 * 1024;

/// How much of an upstream error body is read.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

enum FakeState {
    Waiting {
        pending: Pin<Box<dyn Future<Output = Frames>>>,
        first: bool,
    },
    Replaying(Frames),
}

struct RelayLimits {
    idle_timeout_ms: u64,
    heartbeat_ms: u64,
    max_bytes: usize,
}

/// Relays the upstream body through an adapter (OpenAI relay or native translation), with
/// an idle timeout between reads.
/// While the upstream is silent, a heartbeat comment goes out every `heartbeat_ms`, as in
/// fake streams, so slow reasoning models do not trip client or proxy idle timeouts.
fn relay_stream(
    body: ByteStream,
    adapter: Box<dyn StreamAdapter>,
    guard: AbortOnDrop,
    limits: RelayLimits,
    log: Option<LogTap>,
) -> BoxedBytes {
    struct RelayState {
        body: ByteStream,
        relay: Box<dyn StreamAdapter>,
        guard: AbortOnDrop,
        finished: bool,
        log: Option<LogTap>,
        /// When the upstream last sent bytes.
        last_read_ms: f64,
        bytes_read: usize,
    }
    let RelayLimits {
        idle_timeout_ms,
        heartbeat_ms,
        max_bytes,
    } = limits;
    let state = RelayState {
        body,
        relay: adapter,
        guard,
        finished: false,
        log,
        last_read_ms: now_ms(),
        bytes_read: 0,
    };
    let stream = futures::stream::unfold(state, move |mut state| async move {
        loop {
            if state.finished {
                return None;
            }
            let read = {
                let next = pin!(state.body.next());
                let tick = Delay::from(Duration::from_millis(heartbeat_ms));
                match select(next, tick).await {
                    Either::Left((item, _)) => Some(item),
                    Either::Right(_) => None,
                }
            };
            let next = match read {
                Some(item) => {
                    state.last_read_ms = now_ms();
                    Some(item)
                }
                None if now_ms() - state.last_read_ms < idle_timeout_ms as f64 => {
                    // Dropping the pending read keeps its data: the stream holds the read.
                    return Some((Ok(fake::heartbeat()), state));
                }
                None => None,
            };
            let out = match next {
                Some(Some(Ok(bytes))) if state.bytes_read + bytes.len() > max_bytes => {
                    state.finished = true;
                    state
                        .relay
                        .finish(Some(GatewayError::ResponseTooLarge { limit: max_bytes }))
                }
                Some(Some(Ok(bytes))) => {
                    state.bytes_read += bytes.len();
                    state.relay.push(&bytes)
                }
                Some(None) => {
                    state.finished = true;
                    state.guard.disarm();
                    state.relay.finish(None)
                }
                Some(Some(Err(e))) => {
                    state.finished = true;
                    state
                        .relay
                        .finish(Some(GatewayError::UpstreamUnreachable(format!(
                            "the upstream stream broke ({e})"
                        ))))
                }
                None => {
                    state.finished = true;
                    state.relay.finish(Some(GatewayError::UpstreamTimeout {
                        after_ms: idle_timeout_ms,
                    }))
                }
            };
            if state.relay.is_done() && !state.finished {
                // After [DONE] nothing more is relayed; release the upstream.
                state.finished = true;
                state.guard.disarm();
            }
            if let Some(log) = &state.log {
                if !out.is_empty() {
                    log.first_byte();
                }
                if state.finished {
                    let relay = &state.relay;
                    log.stream_done(relay.content(), relay.usage(), relay.error());
                }
            }
            if !out.is_empty() {
                return Some((Ok(out), state));
            }
        }
    });
    Box::pin(stream)
}

/// Frames computed in one go (an upstream that ignored `stream: true`), logged as a stream.
fn replay_stream(frames: Frames, log: Option<LogTap>) -> BoxedBytes {
    let stream = futures::stream::unfold((frames, log), |(mut frames, log)| async move {
        match frames.next() {
            Some(frame) => {
                if let Some(log) = &log {
                    log.first_byte();
                }
                Some((Ok(frame), (frames, log)))
            }
            None => {
                if let Some(log) = &log {
                    log.finished();
                }
                None
            }
        }
    });
    Box::pin(stream)
}

/// The SSE boundary: every frame a client receives passes the scrubber here.
fn sse_response(
    stream: BoxedBytes,
    headers: Headers,
    scrubber: Rc<Scrubber>,
) -> Result<Response, GatewayError> {
    let _ = headers.set("Content-Type", "text/event-stream; charset=utf-8");
    let _ = headers.set("Cache-Control", "no-cache, no-transform");
    let _ = headers.set("X-Accel-Buffering", "no");
    let stream = stream.map(move |item| {
        item.map(|bytes| {
            let scrubbed = match scrubber.sse(&bytes) {
                Cow::Owned(scrubbed) => Some(scrubbed),
                Cow::Borrowed(_) => None,
            };
            scrubbed.unwrap_or(bytes)
        })
    });
    Ok(Response::from_stream(stream)
        .map_err(internal)?
        .with_headers(headers))
}

fn forwarded_headers(upstream: &Headers) -> Headers {
    let headers = Headers::new();
    for (name, value) in proxy::forwarded_headers(upstream.entries()) {
        let _ = headers.append(&name, &value);
    }
    headers
}

/// Reads a whole body within `timeout_ms`, refusing one larger than `limit` (by its
/// `Content-Length` before reading, and by counting while reading).
async fn read_limited(
    response: &mut Response,
    timeout_ms: u64,
    limit: usize,
) -> Result<Vec<u8>, GatewayError> {
    let declared = response
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(GatewayError::ResponseTooLarge { limit });
    }
    let Ok(mut stream) = response.stream() else {
        // No body at all.
        return Ok(Vec::new());
    };
    let read = async move {
        let mut body = Vec::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                GatewayError::UpstreamUnreachable(format!(
                    "the connection broke while reading the answer ({e})"
                ))
            })?;
            if body.len() + chunk.len() > limit {
                return Err(GatewayError::ResponseTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    within(timeout_ms, read)
        .await
        .unwrap_or(Err(GatewayError::UpstreamTimeout {
            after_ms: timeout_ms,
        }))
}

/// Sends one upstream request within `timeout_ms`. Redirects are never followed: one
/// could carry the upstream key to another host.
async fn send_request(
    request: &HttpRequest,
    timeout_ms: u64,
    client_signal: Option<&web_sys::AbortSignal>,
) -> Result<(Response, AbortOnDrop), GatewayError> {
    let headers = Headers::new();
    for (name, value) in &request.headers {
        // A header value the runtime refuses is dropped rather than failing the call.
        let _ = headers.append(name, value);
    }
    let mut init = RequestInit::new();
    init.with_method(if request.method == "GET" {
        Method::Get
    } else {
        Method::Post
    })
    .with_headers(headers)
    .with_redirect(RequestRedirect::Manual);
    if let Some(body) = &request.body {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let js_request = Request::new_with_init(&request.url, &init).map_err(|_| {
        GatewayError::Config("a base URL setting gives an invalid upstream URL".into())
    })?;
    let (guard, signal) = AbortOnDrop::new(client_signal)?;
    let fetch = Fetch::Request(js_request);
    match within(timeout_ms, fetch.send_with_signal(&signal)).await {
        None => Err(GatewayError::UpstreamTimeout {
            after_ms: timeout_ms,
        }),
        Some(Err(e)) => Err(GatewayError::UpstreamUnreachable(e.to_string())),
        Some(Ok(response)) if (300..400).contains(&response.status_code()) => {
            let location = response.headers().get("Location").ok().flatten();
            Err(GatewayError::UpstreamRedirect {
                status: response.status_code(),
                host: proxy::redirect_host(location.as_deref(), &request.url),
            })
        }
        Some(Ok(response)) => Ok((response, guard)),
    }
}

/// Model ids from an upstream's list endpoint; empty when it fails in any way but a
/// redirect, which is reported: it means the upstream tried to move the key elsewhere.
pub async fn fetch_model_ids(
    provider: &dyn Provider,
    request: &HttpRequest,
) -> Result<Vec<String>, GatewayError> {
    const MODELS_TIMEOUT_MS: u64 = 5000;
    const MODELS_BODY_LIMIT: usize = 8 * 1024 * 1024;
    // The guard lives to the end: dropping it would abort the body read.
    let (mut response, _guard) = match send_request(request, MODELS_TIMEOUT_MS, None).await {
        Ok(sent) => sent,
        Err(error @ GatewayError::UpstreamRedirect { .. }) => return Err(error),
        Err(_) => return Ok(Vec::new()),
    };
    if !(200..300).contains(&response.status_code()) {
        return Ok(Vec::new());
    }
    match read_limited(&mut response, MODELS_TIMEOUT_MS, MODELS_BODY_LIMIT).await {
        Ok(body) => Ok(provider.parse_models(&body)),
        Err(_) => Ok(Vec::new()),
    }
}
