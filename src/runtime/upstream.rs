//! Executes a provider's upstream call: the fetch with timeout and abort, and the three ways of
//! answering (JSON, streaming relay, fake stream driven by heartbeat timers).

use super::logging::LogTap;
use super::{internal, now_ms, now_seconds};
use crate::error::{excerpt, GatewayError};
use crate::openai::{ChatCompletion, ChatRequest};
use crate::providers::{CallContext, HttpRequest, Provider, ProviderOptions};
use crate::proxy::forwarded_response_header;
use crate::stream::aggregate::looks_like_sse;
use crate::stream::fake;
use crate::stream::relay::Relay;
use crate::stream::translate::{StreamAdapter, Translated};
use futures::future::{select, Either};
use futures::{Stream, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::time::Duration;
use worker::{
    AbortController, ByteStream, Delay, Fetch, Headers, Method, Request, RequestInit, Response,
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
    /// The key sent upstream, kept only to scrub it from any upstream error text.
    pub key: String,
    pub request: ChatRequest,
    pub request_id: String,
}

/// Aborts the upstream fetch when dropped while armed: a client that goes away drops the
/// response stream, and with it this guard, so the upstream stops working for nobody.
struct AbortOnDrop(Option<AbortController>);

impl AbortOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(controller) = self.0.take() {
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

    /// Builds the native request and sends it; returns the upstream response (any status)
    /// and the armed abort guard.
    async fn send(&self, stream: bool) -> Result<(Response, AbortOnDrop), GatewayError> {
        let request = self.provider.chat_request(&self.context(stream))?;
        send_request(&request, self.timeout_ms)
            .await
            .map_err(|e| e.redact(Some(&self.key)))
    }

    /// Reads the whole body within the timeout.
    async fn read_body(&self, response: &mut Response) -> Result<Vec<u8>, GatewayError> {
        match within(self.timeout_ms, response.bytes()).await {
            None => Err(GatewayError::UpstreamTimeout {
                after_ms: self.timeout_ms,
            }),
            Some(Err(e)) => Err(GatewayError::UpstreamUnreachable(format!(
                "the connection broke while reading the answer ({e})"
            ))),
            Some(Ok(bytes)) => Ok(bytes),
        }
    }

    /// An upstream error status becomes an OpenAI error with the same status.
    async fn check_status(&self, response: &mut Response) -> Result<(), GatewayError> {
        let status = response.status_code();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = self.read_body(response).await.unwrap_or_default();
        Err(self
            .provider
            .parse_error(status, &body)
            .redact(Some(&self.key)))
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
            let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return Err(GatewayError::UpstreamMalformed(format!(
                    "expected JSON, got: {}",
                    excerpt(&String::from_utf8_lossy(&body), 200)
                )));
            };
            (body, parsed.get("usage").cloned())
        } else {
            let completion = self
                .provider
                .parse_completion(&body, &self.context(false))
                .map_err(|e| e.redact(Some(&self.key)))?;
            let usage = completion.usage.clone();
            let body = serde_json::to_vec(&completion)
                .map_err(|e| GatewayError::Internal(e.to_string()))?;
            (body, usage)
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
            let frames = self.replay(self.provider.parse_completion(&body, &self.context(false)));
            return sse_response(replay_stream(frames, self.log.clone()), headers);
        }
        let adapter: Box<dyn StreamAdapter> =
            match self.provider.stream_translator(&self.context(true)) {
                Some(translator) => Box::new(Translated::new(translator)),
                None => Box::new(Relay::new()),
            };
        let body = upstream.stream().map_err(internal)?;
        let timing = (self.timeout_ms, self.heartbeat_ms);
        let stream = relay_stream(body, adapter, guard, timing, self.log.clone());
        sse_response(stream, headers)
    }

    /// Fake streaming: the 200 goes out at once, heartbeats flow while the non-streaming
    /// upstream call runs, then the answer is replayed as chunks.
    pub fn fake_stream(self) -> Result<Response, GatewayError> {
        let heartbeat = Duration::from_millis(self.heartbeat_ms);
        let chunk_delay = self.chunk_delay_ms;
        let log = self.log.clone();
        let pending: Pin<Box<dyn Future<Output = VecDeque<Vec<u8>>>>> = Box::pin(async move {
            let result = async {
                let (mut upstream, mut guard) = self.send(false).await?;
                self.check_status(&mut upstream).await?;
                let body = self.read_body(&mut upstream).await?;
                guard.disarm();
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
                                let first_frame = frames.pop_front()?;
                                Some((first_frame, FakeState::Replaying(frames)))
                            }
                        }
                    }
                    FakeState::Replaying(mut frames) => {
                        let Some(frame) = frames.pop_front() else {
                            if let Some(log) = &log {
                                log.finished();
                            }
                            return None;
                        };
                        if chunk_delay > 0 {
                            Delay::from(Duration::from_millis(chunk_delay)).await;
                        }
                        Some((frame, FakeState::Replaying(frames)))
                    }
                }
            }
        })
        .map(Ok);
        sse_response(Box::pin(stream), Headers::new())
    }

    /// The frames that replay a completion, or report its failure.
    fn replay(&self, result: Result<ChatCompletion, GatewayError>) -> VecDeque<Vec<u8>> {
        if let Some(log) = &self.log {
            match &result {
                Ok(completion) => {
                    let text = completion
                        .choices
                        .first()
                        .map(|c| c.message.text())
                        .unwrap_or_default();
                    log.response_body(&text);
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
                fake::replay_frames(&completion, &meta, self.chunk_chars).into()
            }
            Err(error) => VecDeque::from([fake::error_frames(&error.redact(Some(&self.key)))]),
        }
    }
}

enum FakeState {
    Waiting {
        pending: Pin<Box<dyn Future<Output = VecDeque<Vec<u8>>>>>,
        first: bool,
    },
    Replaying(VecDeque<Vec<u8>>),
}

/// Relays the upstream body through an adapter (OpenAI relay or native translation), with
/// an idle timeout between reads.
/// While the upstream is silent, a heartbeat comment goes out every `heartbeat_ms`, as in
/// fake streams, so slow reasoning models do not trip client or proxy idle timeouts.
fn relay_stream(
    body: ByteStream,
    adapter: Box<dyn StreamAdapter>,
    guard: AbortOnDrop,
    timing: (u64, u64),
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
    }
    let (idle_timeout_ms, heartbeat_ms) = timing;
    let state = RelayState {
        body,
        relay: adapter,
        guard,
        finished: false,
        log,
        last_read_ms: now_ms(),
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
                Some(Some(Ok(bytes))) => state.relay.push(&bytes),
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
fn replay_stream(frames: VecDeque<Vec<u8>>, log: Option<LogTap>) -> BoxedBytes {
    let stream = futures::stream::unfold((frames, log), |(mut frames, log)| async move {
        match frames.pop_front() {
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

fn sse_response(stream: BoxedBytes, headers: Headers) -> Result<Response, GatewayError> {
    let _ = headers.set("Content-Type", "text/event-stream; charset=utf-8");
    let _ = headers.set("Cache-Control", "no-cache, no-transform");
    let _ = headers.set("X-Accel-Buffering", "no");
    Ok(Response::from_stream(stream)
        .map_err(internal)?
        .with_headers(headers))
}

fn forwarded_headers(upstream: &Headers) -> Headers {
    let headers = Headers::new();
    for (name, value) in upstream.entries() {
        if name.eq_ignore_ascii_case("x-request-id") {
            // The gateway sets its own X-Request-Id; the upstream's stays readable.
            let _ = headers.append("X-Upstream-Request-Id", &value);
        } else if forwarded_response_header(&name) {
            let _ = headers.append(&name, &value);
        }
    }
    headers
}

/// Sends one upstream request within `timeout_ms`.
async fn send_request(
    request: &HttpRequest,
    timeout_ms: u64,
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
    .with_headers(headers);
    if let Some(body) = &request.body {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let js_request = Request::new_with_init(&request.url, &init).map_err(|e| {
        GatewayError::Config(format!(
            "a base URL setting gives an invalid upstream URL ({e})"
        ))
    })?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let guard = AbortOnDrop(Some(controller));
    let fetch = Fetch::Request(js_request);
    match within(timeout_ms, fetch.send_with_signal(&signal)).await {
        None => Err(GatewayError::UpstreamTimeout {
            after_ms: timeout_ms,
        }),
        Some(Err(e)) => Err(GatewayError::UpstreamUnreachable(e.to_string())),
        Some(Ok(response)) => Ok((response, guard)),
    }
}

/// Model ids from an upstream's list endpoint; empty when it fails in any way.
pub async fn fetch_model_ids(provider: &dyn Provider, request: &HttpRequest) -> Vec<String> {
    const MODELS_TIMEOUT_MS: u64 = 5000;
    let Ok((mut response, _guard)) = send_request(request, MODELS_TIMEOUT_MS).await else {
        return Vec::new();
    };
    if !(200..300).contains(&response.status_code()) {
        return Vec::new();
    }
    match within(MODELS_TIMEOUT_MS, response.bytes()).await {
        Some(Ok(body)) => provider.parse_models(&body),
        _ => Vec::new(),
    }
}
