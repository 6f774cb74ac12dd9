//! Executes a provider's upstream call: the fetch with timeout and abort, and the three ways of
//! answering (JSON, streaming relay, fake stream driven by heartbeat timers).

use super::glue::{read_all, ChunkReader, UpstreamCall};
use super::live::{self, Frames};
use super::logging::LogTap;
use super::reply::Reply;
use super::{internal, now_ms, now_seconds};
use crate::adapters::{CallContext, EmbeddingContext, HttpRequest, Provider, ProviderOptions};
use crate::dialects::Dialect;
use crate::embeddings::{EmbeddingRequest, Embeddings};
use crate::error::{excerpt, GatewayError};
use crate::headers::HeaderList;
use crate::log::{key_label, AttemptEntry};
use crate::openai::{ChatCompletion, ChatRequest};
use crate::proxy;
use crate::router::{Attempt, KeyBook, Planner};
use crate::scrub::Scrubber;
use crate::stream::aggregate::looks_like_sse;
use crate::stream::fake;
use crate::stream::relay::Relay;
use crate::stream::translate::{StreamAdapter, Translated};
use futures::future::{select, Either};
use futures::{Stream, StreamExt};
use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsCast;
use worker::web_sys;
use worker::{Delay, Headers, Response};

/// One configured upstream as a call's candidate: where to send, with which keys.
pub struct Target {
    pub upstream: String,
    pub adapter: &'static dyn Provider,
    pub base_url: String,
    /// The model name this upstream knows.
    pub model: String,
    /// The upstream's key pool (empty: the client's own key).
    pub keys: Vec<String>,
    pub timeout_ms: u64,
    /// Static extra request headers from the upstream's settings.
    pub headers: Vec<(String, String)>,
}

/// One chat call: what all its attempts share, the candidate targets, and the planner
/// deciding each next attempt.
pub struct Exchange {
    /// The call's request-log record, when logging is on.
    pub log: Option<LogTap>,
    pub targets: Vec<Target>,
    pub planner: RefCell<Planner>,
    /// The client's own key, for targets without a pool (public mode).
    pub client_key: Option<String>,
    pub options: ProviderOptions,
    pub client_headers: Vec<(String, String)>,
    pub raw_body: Vec<u8>,
    pub heartbeat_ms: u64,
    pub chunk_chars: usize,
    pub chunk_delay_ms: u64,
    pub request: ChatRequest,
    /// The embeddings request, for `/v1/embeddings` calls (`request` then only names the model).
    pub embeddings: Option<EmbeddingRequest>,
    pub request_id: String,
    /// Every secret in play for this request; applied to everything that goes out.
    pub scrubber: Rc<Scrubber>,
    pub max_response_bytes: usize,
    /// The client request's signal: it fires when the client goes away.
    pub client_signal: Option<web_sys::AbortSignal>,
    /// The API the client speaks: answers and streams are rewritten into it.
    pub dialect: Dialect,
    /// Runs once a rewritten stream has produced its last bytes, before they go out (a
    /// Response is stored before its client sees `response.completed`).
    pub stream_end: RefCell<Option<StreamEnd>>,
}

/// Work a stream's end waits for.
pub type StreamEnd = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>>>;

/// Which upstream finally served (or last failed) a call, after how many attempts.
#[derive(Debug, Clone)]
pub struct Served {
    pub upstream: String,
    pub attempts: u32,
}

thread_local! {
    /// Key health per isolate (best effort: each isolate learns on its own).
    static KEYS: RefCell<KeyBook> = RefCell::new(KeyBook::default());
}

/// Runs `f` on this isolate's key book.
pub fn key_book<R>(f: impl FnOnce(&mut KeyBook) -> R) -> R {
    KEYS.with(|book| f(&mut book.borrow_mut()))
}

/// A rejection from src/runtime/glue.js as the gateway error it stands for.
fn glue_error(rejection: wasm_bindgen::JsValue, timeout_ms: u64, limit: usize) -> GatewayError {
    let text = rejection.as_string().unwrap_or_default();
    match text.as_str() {
        "timeout" => GatewayError::UpstreamTimeout {
            after_ms: timeout_ms,
        },
        "too_large" => GatewayError::ResponseTooLarge { limit },
        "bad_url" => {
            GatewayError::Config("a base URL setting gives an invalid upstream URL".into())
        }
        _ => GatewayError::UpstreamUnreachable(
            text.strip_prefix("broken: ").unwrap_or(&text).to_string(),
        ),
    }
}

/// Aborts the upstream fetch when dropped while armed: a client that goes away drops the
/// response stream, and with it this guard, so the upstream stops working for nobody. A
/// non-streaming call has no stream to drop; the client request's signal aborts it instead.
pub(super) struct AbortOnDrop {
    call: Option<UpstreamCall>,
}

impl AbortOnDrop {
    fn new(client_signal: Option<&web_sys::AbortSignal>) -> AbortOnDrop {
        AbortOnDrop {
            call: Some(UpstreamCall::new(client_signal)),
        }
    }

    pub(super) fn disarm(&mut self) {
        if let Some(call) = self.call.take() {
            call.release();
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.abort();
        }
    }
}

/// An upstream body's chunks as a `Stream`, read through glue.js's `ChunkReader`: one promise
/// per chunk. Dropped before its end, it reads the rest away (bounded; an aborted fetch ends it).
struct ByteStream {
    reader: Option<ChunkReader>,
    pending: Option<js_sys::futures::JsFuture>,
}

impl ByteStream {
    fn new(stream: &web_sys::ReadableStream) -> ByteStream {
        ByteStream {
            reader: Some(ChunkReader::new(stream)),
            pending: None,
        }
    }

    fn empty() -> ByteStream {
        ByteStream {
            reader: None,
            pending: None,
        }
    }

    /// The reader, for glue.js to go on reading (no read is pending between chunks).
    fn into_reader(mut self) -> Option<ChunkReader> {
        self.reader.take()
    }
}

impl Stream for ByteStream {
    type Item = Result<Vec<u8>, String>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(reader) = &this.reader else {
            return std::task::Poll::Ready(None);
        };
        let pending = this
            .pending
            .get_or_insert_with(|| js_sys::futures::JsFuture::from(reader.next()));
        let result = std::task::ready!(Pin::new(pending).poll(cx));
        this.pending = None;
        std::task::Poll::Ready(match result {
            Ok(chunk) if chunk.is_undefined() => {
                this.reader = None;
                None
            }
            Ok(chunk) => Some(Ok(js_sys::Uint8Array::new(&chunk).to_vec())),
            Err(error) => {
                this.reader = None;
                Some(Err(super::js_message(&error)))
            }
        })
    }
}

impl Drop for ByteStream {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.release();
        }
    }
}

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
    fn target(&self, attempt: Attempt) -> &Target {
        &self.targets[attempt.candidate]
    }

    fn key(&self, attempt: Attempt) -> &str {
        match attempt.key {
            Some(index) => &self.target(attempt).keys[index],
            None => self.client_key.as_deref().unwrap_or_default(),
        }
    }

    fn context(&self, attempt: Attempt, stream: bool) -> CallContext<'_> {
        let target = self.target(attempt);
        CallContext {
            request: &self.request,
            raw_body: &self.raw_body,
            upstream_model: &target.model,
            base_url: &target.base_url,
            key: self.key(attempt),
            stream,
            request_id: &self.request_id,
            now_seconds: now_seconds(),
            client_headers: &self.client_headers,
            options: &self.options,
            endpoint: self.dialect.endpoint(),
        }
    }

    /// Builds the native request and sends it; returns the upstream response (any status
    /// but a redirect) and the armed abort guard.
    async fn send(
        &self,
        attempt: Attempt,
        stream: bool,
    ) -> Result<(Response, AbortOnDrop), GatewayError> {
        let request = self
            .target(attempt)
            .adapter
            .chat_request(&self.context(attempt, stream))?;
        self.send_http(attempt, request).await
    }

    /// Sends one native request to the attempt's target, with its static headers.
    async fn send_http(
        &self,
        attempt: Attempt,
        mut request: HttpRequest,
    ) -> Result<(Response, AbortOnDrop), GatewayError> {
        let target = self.target(attempt);
        if request.url == crate::adapters::demo::DEMO_URL {
            return demo_response(&request, self.options.demo_think_ms).await;
        }
        request.headers.extend(target.headers.iter().cloned());
        send_request(&request, target.timeout_ms, self.client_signal.as_ref()).await
    }

    /// Sends one native request and reads its answer whole; an error status is an error.
    async fn send_whole(
        &self,
        attempt: Attempt,
        mut request: HttpRequest,
    ) -> Result<(Vec<(String, String)>, Vec<u8>), GatewayError> {
        let target = self.target(attempt);
        if request.url == crate::adapters::demo::DEMO_URL {
            let (mut upstream, mut guard) = self.send_http(attempt, request).await?;
            if let Some(log) = &self.log {
                log.first_byte();
            }
            self.check_status(attempt, &mut upstream).await?;
            let body = self.read_body(attempt, &mut upstream).await?;
            guard.disarm();
            return Ok((super::header_list(&upstream.headers().0), body));
        }
        request.headers.extend(target.headers.iter().cloned());
        let answer = send_request_whole(
            &request,
            target.timeout_ms,
            self.client_signal.as_ref(),
            self.max_response_bytes,
        )
        .await?;
        if let Some(log) = &self.log {
            log.first_byte_at(answer.headers_at);
        }
        if !(200..300).contains(&answer.status) {
            return Err(self.status_error(attempt, answer.status, answer.headers, &answer.body));
        }
        Ok((answer.headers, answer.body))
    }

    /// A whole answer on its way to the client: scrubbed, then logged with its usage.
    fn answer_out(&self, body: Vec<u8>, usage: Option<&serde_json::Value>) -> Vec<u8> {
        let body = match self.scrubber.known(&body) {
            Cow::Borrowed(_) => body,
            Cow::Owned(scrubbed) => scrubbed,
        };
        if let Some(log) = &self.log {
            log.first_token();
            log.response_body(&String::from_utf8_lossy(&body));
            log.usage(usage);
        }
        body
    }

    /// Reads the whole body within the timeout and `MAX_RESPONSE_BYTES`.
    async fn read_body(
        &self,
        attempt: Attempt,
        response: &mut Response,
    ) -> Result<Vec<u8>, GatewayError> {
        read_limited(
            response,
            self.target(attempt).timeout_ms,
            self.max_response_bytes,
        )
        .await
    }

    /// An upstream error status becomes an OpenAI error with the same status and the
    /// upstream headers worth passing back (`retry-after`, rate limits, request id).
    async fn check_status(
        &self,
        attempt: Attempt,
        response: &mut Response,
    ) -> Result<(), GatewayError> {
        let status = response.status_code();
        if (200..300).contains(&status) {
            return Ok(());
        }
        // An error body is short; a huge one is cut rather than read whole.
        let body = read_limited(response, self.target(attempt).timeout_ms, ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        let headers = super::header_list(&response.headers().0);
        Err(self.status_error(attempt, status, headers, &body))
    }

    /// An error status and its body as the OpenAI error, with the upstream headers worth
    /// passing back.
    fn status_error(
        &self,
        attempt: Attempt,
        status: u16,
        headers: Vec<(String, String)>,
        body: &[u8],
    ) -> GatewayError {
        self.target(attempt)
            .adapter
            .parse_error(status, body)
            .with_headers(proxy::forwarded_headers(headers))
    }

    /// Makes attempts until one succeeds or the planner gives up: each failure is logged
    /// and the planner picks the next key or target, and how long to wait.
    async fn with_retries<'a, T, F, Fut>(
        &'a self,
        first: Attempt,
        mut run: F,
    ) -> (Result<T, GatewayError>, Served)
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, GatewayError>> + 'a,
    {
        let mut attempt = first;
        loop {
            if attempt.wait_ms > 0 {
                Delay::from(Duration::from_millis(attempt.wait_ms)).await;
            }
            let started = now_ms();
            let result = run(attempt).await;
            self.record(attempt, result.as_ref().err(), started);
            let served = Served {
                upstream: self.target(attempt).upstream.clone(),
                attempts: self.planner.borrow().attempts(),
            };
            let error = match result {
                Ok(value) => return (Ok(value), served),
                Err(error) => error,
            };
            let next = key_book(|book| {
                self.planner.borrow_mut().after_failure(
                    &error,
                    book,
                    now_ms(),
                    js_sys::Math::random(),
                )
            });
            match next {
                Some(next) => {
                    worker::console_log!(
                        "{}",
                        self.scrubber.text(&format!(
                            "request {}: attempt {} on `{}` failed ({}); next: `{}` in {} ms",
                            self.request_id,
                            served.attempts,
                            served.upstream,
                            error,
                            self.target(next).upstream,
                            next.wait_ms
                        ))
                    );
                    attempt = next;
                }
                None => return (Err(error), served),
            }
        }
    }

    /// One attempt in the request log: upstream, model, key hash prefix, outcome, time.
    fn record(&self, attempt: Attempt, error: Option<&GatewayError>, started: f64) {
        let Some(log) = &self.log else {
            return;
        };
        let target = self.target(attempt);
        let key = self.key(attempt);
        let (status, error) = match error {
            None => (Some(200), None),
            Some(error @ GatewayError::Upstream { status, .. }) => {
                (Some(*status), Some(error.to_string()))
            }
            Some(error) => (None, Some(error.to_string())),
        };
        log.attempt(
            AttemptEntry {
                upstream: target.upstream.clone(),
                model: target.model.clone(),
                key: (!key.is_empty()).then(|| key_label(key)),
                status,
                error,
                ms: (now_ms() - started) as i64,
            },
            target.adapter.spec().id,
        );
    }

    /// Non-streaming: retried until an answer is read whole.
    pub async fn json(&self, first: Attempt) -> (Result<Reply, GatewayError>, Served) {
        self.with_retries(first, |attempt| self.json_attempt(attempt))
            .await
    }

    /// One non-streaming attempt: the upstream JSON as it is (OpenAI-compatible upstreams)
    /// or translated from the native answer.
    async fn json_attempt(&self, attempt: Attempt) -> Result<Reply, GatewayError> {
        let adapter = self.target(attempt).adapter;
        let request = adapter.chat_request(&self.context(attempt, false))?;
        let (upstream_headers, body) = self.send_whole(attempt, request).await?;
        // An upstream that streamed anyway is folded into one completion below.
        let passthrough =
            adapter.passes_json_through() && !looks_like_sse(&body) && self.dialect.is_chat();
        let (body, usage) = if passthrough {
            let usage = passthrough_usage(&body, "JSON")?;
            (body, usage)
        } else {
            let completion = adapter.parse_completion(&body, &self.context(attempt, false))?;
            drop(body);
            let usage = completion.usage.clone();
            (self.dialect.render(&completion)?, usage)
        };
        let body = self.answer_out(body, usage.as_ref());
        Ok(json_reply(body, upstream_headers))
    }

    /// Embeddings: retried like a non-streaming chat call until every batch is answered.
    pub async fn embeddings(&self, first: Attempt) -> (Result<Reply, GatewayError>, Served) {
        self.with_retries(first, |attempt| self.embeddings_attempt(attempt))
            .await
    }

    /// One embeddings attempt: an OpenAI-compatible answer passed on as it came, or the
    /// native batches' vectors (all with this attempt's key) as one OpenAI answer.
    async fn embeddings_attempt(&self, attempt: Attempt) -> Result<Reply, GatewayError> {
        let Some(request) = &self.embeddings else {
            return Err(GatewayError::Internal("no embeddings request".into()));
        };
        let target = self.target(attempt);
        let adapter = target.adapter;
        let batches = adapter.embeddings_requests(&EmbeddingContext {
            request,
            raw_body: &self.raw_body,
            upstream_model: &target.model,
            base_url: &target.base_url,
            key: self.key(attempt),
            client_headers: &self.client_headers,
        })?;
        if batches.len() > crate::embeddings::MAX_BATCHES {
            return Err(GatewayError::invalid_param(
                format!(
                    "{} inputs need {} calls to `{}`, more than the {} one request may make: send fewer inputs per request",
                    request.input_count(),
                    batches.len(),
                    target.upstream,
                    crate::embeddings::MAX_BATCHES
                ),
                "input",
            ));
        }
        let passthrough = adapter.passes_json_through();
        let mut embeddings = Embeddings::default();
        let mut headers = None;
        let mut raw = Vec::new();
        // MAX_RESPONSE_BYTES bounds the whole answer, not each batch.
        let mut total_bytes = 0usize;
        for batch in batches {
            let (upstream_headers, body) = self.send_whole(attempt, batch.request).await?;
            total_bytes += body.len();
            if total_bytes > self.max_response_bytes {
                return Err(GatewayError::ResponseTooLarge {
                    limit: self.max_response_bytes,
                });
            }
            headers.get_or_insert(upstream_headers);
            if passthrough {
                raw = body;
                continue;
            }
            embeddings.extend(adapter.parse_embeddings(&body, batch.inputs)?);
        }
        let (body, usage) = if passthrough {
            let usage = passthrough_usage(&raw, "an embeddings list")?;
            (raw, usage)
        } else {
            let body = embeddings.to_openai(&request.model, request.encoding);
            let tokens = embeddings.prompt_tokens.unwrap_or(0);
            (
                body,
                Some(serde_json::json!({ "prompt_tokens": tokens, "total_tokens": tokens })),
            )
        };
        let body = self.answer_out(body, usage.as_ref());
        Ok(json_reply(body, headers.unwrap_or_default()))
    }

    /// Streaming passthrough: complete events are relayed as they arrive. Attempts are
    /// retried until the first upstream event is in hand; once an event has gone to the
    /// client, the stream is never retried.
    pub async fn passthrough(self, first: Attempt) -> (Result<Reply, GatewayError>, Served) {
        let (opened, served) = self
            .with_retries(first, |attempt| self.open_stream(attempt))
            .await;
        let response = match opened {
            Err(error) => Err(error),
            Ok(Opened::Replay { frames, headers }) => {
                let answer = Box::pin(std::future::ready(frames));
                let body = live::relay_replay(answer, self.client_side(), None, 0);
                Ok(sse_reply(body, headers))
            }
            Ok(Opened::Live {
                body,
                adapter,
                guard,
                headers,
                first,
                bytes_read,
                ended,
                idle_timeout_ms,
            }) => {
                let start = live::LiveStart {
                    adapter,
                    guard,
                    first,
                    bytes_read,
                    ended,
                };
                let limits = live::LiveLimits {
                    idle_timeout_ms,
                    heartbeat_ms: self.heartbeat_ms,
                    max_bytes: self.max_response_bytes,
                };
                let body = live::relay(start, body.into_reader(), self.client_side(), limits);
                Ok(sse_reply(body, headers))
            }
        };
        (response, served)
    }

    /// One streaming attempt up to its first event. The response waits for that event (the
    /// idle timeout applies, counted from the last bytes read), so every failure before it is
    /// still retried; once an event is in hand the stream is committed.
    async fn open_stream(&self, attempt: Attempt) -> Result<Opened, GatewayError> {
        let target = self.target(attempt);
        let (mut upstream, guard) = self.send(attempt, true).await?;
        self.check_status(attempt, &mut upstream).await?;
        let headers = forwarded(super::header_list(&upstream.headers().0));
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
            let body = self.read_body(attempt, &mut upstream).await?;
            let scrubbed = self.scrubber.known(&body);
            let completion = target
                .adapter
                .parse_completion(&scrubbed, &self.context(attempt, false))?;
            let frames = self.replay(Ok(completion));
            return Ok(Opened::Replay { frames, headers });
        }
        let mut adapter: Box<dyn StreamAdapter> = match target
            .adapter
            .stream_translator(&self.context(attempt, true))
        {
            Some(translator) => Box::new(Translated::new(translator)),
            None if self.dialect.endpoint() == crate::adapters::Endpoint::Responses => {
                Box::new(Relay::responses())
            }
            None => Box::new(Relay::new()),
        };
        let mut body = match upstream.body() {
            worker::ResponseBody::Stream(stream) => ByteStream::new(stream),
            _ => ByteStream::empty(),
        };
        let idle_ms = target.timeout_ms;
        let mut bytes_read = 0usize;
        let mut first: Vec<u8>;
        let mut ended = false;
        loop {
            let Some(read) = within(idle_ms, body.next()).await else {
                return Err(GatewayError::UpstreamTimeout { after_ms: idle_ms });
            };
            match read {
                Some(Ok(bytes)) => {
                    if bytes_read + bytes.len() > self.max_response_bytes {
                        // Never retried (the answer would be as large again): the stream
                        // starts and ends with the error event, as any stream would.
                        ended = true;
                        first = adapter.finish(Some(GatewayError::ResponseTooLarge {
                            limit: self.max_response_bytes,
                        }));
                        break;
                    }
                    bytes_read += bytes.len();
                    first = adapter.push(&bytes);
                }
                Some(Err(e)) => {
                    return Err(GatewayError::UpstreamUnreachable(format!(
                        "the upstream stream broke before its first event ({e})"
                    )))
                }
                None => {
                    ended = true;
                    first = adapter.finish(None);
                }
            }
            let failed_at_once = adapter.is_done() && adapter.content().is_empty();
            if let (true, Some(failure)) = (failed_at_once, adapter.failure()) {
                // A native error event came first: it is retried (or not) as what it is.
                return Err(failure.clone());
            }
            if let (true, Some(message)) = (failed_at_once, adapter.error()) {
                // The upstream failed before saying anything: nothing went out yet.
                return Err(GatewayError::UpstreamUnreachable(format!(
                    "the upstream stream failed before its first event: {message}"
                )));
            }
            if !first.is_empty() || adapter.is_done() {
                break;
            }
        }
        Ok(Opened::Live {
            body,
            adapter,
            guard,
            headers,
            first,
            bytes_read,
            ended,
            idle_timeout_ms: target.timeout_ms,
        })
    }

    /// Fake streaming: the 200 goes out at once, heartbeats flow while the non-streaming
    /// upstream attempts run (retries included), then the answer is replayed as chunks,
    /// made one at a time.
    pub fn fake_stream(self, first: Attempt) -> Reply {
        let (heartbeat_ms, chunk_delay_ms) = (self.heartbeat_ms, self.chunk_delay_ms);
        let client = self.client_side();
        let answer: Pin<Box<dyn Future<Output = Frames>>> = Box::pin(async move {
            let (result, _) = self
                .with_retries(first, |attempt| self.fake_attempt(attempt))
                .await;
            self.replay(result)
        });
        let body = live::relay_replay(answer, client, Some(heartbeat_ms), chunk_delay_ms);
        sse_reply(body, HeaderList::new())
    }

    /// What the client's stream passes through: this call's scrubber, the rewriter into the
    /// client's API, the end hook and the log.
    fn client_side(&self) -> live::ClientSide {
        live::ClientSide::new(
            self.scrubber.clone(),
            self.dialect.rewriter(),
            self.stream_end.borrow_mut().take(),
            self.log.clone(),
        )
    }

    /// One attempt of a fake stream: the whole non-streaming answer.
    async fn fake_attempt(&self, attempt: Attempt) -> Result<ChatCompletion, GatewayError> {
        let request = self
            .target(attempt)
            .adapter
            .chat_request(&self.context(attempt, false))?;
        let (_, body) = self.send_whole(attempt, request).await?;
        // Secrets go before the answer is cut into chunks that could split them.
        let body = self.scrubber.known(&body);
        self.target(attempt)
            .adapter
            .parse_completion(&body, &self.context(attempt, false))
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

/// How much of an upstream error body is read.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A streaming attempt that reached its first event (or its commit time).
enum Opened {
    /// The upstream answered in one piece; replayed as a stream.
    Replay { frames: Frames, headers: HeaderList },
    Live {
        body: ByteStream,
        adapter: Box<dyn StreamAdapter>,
        guard: AbortOnDrop,
        headers: HeaderList,
        /// The relayed output so far (the first event), not yet sent.
        first: Vec<u8>,
        bytes_read: usize,
        ended: bool,
        idle_timeout_ms: u64,
    },
}

/// A streamed answer: the upstream headers worth passing back and the SSE ones.
fn sse_reply(body: web_sys::ReadableStream, mut headers: HeaderList) -> Reply {
    headers.set("Content-Type", "text/event-stream; charset=utf-8");
    headers.set("Cache-Control", "no-cache, no-transform");
    headers.set("X-Accel-Buffering", "no");
    Reply::stream(body).with_headers(&headers)
}

/// A whole JSON answer with the upstream headers worth passing back.
fn json_reply(body: Vec<u8>, upstream_headers: Vec<(String, String)>) -> Reply {
    // The forwarded names never include `Content-Type`: the answer stays JSON.
    Reply::bytes(body, "application/json").with_headers(&forwarded(upstream_headers))
}

/// The upstream headers worth passing back to the client.
fn forwarded(upstream: Vec<(String, String)>) -> HeaderList {
    HeaderList::from_pairs(proxy::forwarded_headers(upstream))
}

/// Reads a whole body within `timeout_ms`, refusing one larger than `limit` (by its
/// `Content-Length` before reading, and by counting while reading, in JS).
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
    let stream = match response.body() {
        worker::ResponseBody::Stream(stream) => stream.clone(),
        worker::ResponseBody::Body(bytes) if bytes.len() > limit => {
            return Err(GatewayError::ResponseTooLarge { limit })
        }
        worker::ResponseBody::Body(bytes) => return Ok(bytes.clone()),
        worker::ResponseBody::Empty => return Ok(Vec::new()),
    };
    let read = read_all(&stream, limit as f64, timeout_ms as f64);
    match js_sys::futures::JsFuture::from(read).await {
        Ok(body) => Ok(js_sys::Uint8Array::new(&body).to_vec()),
        Err(rejection) => Err(match glue_error(rejection, timeout_ms, limit) {
            GatewayError::UpstreamUnreachable(e) => GatewayError::UpstreamUnreachable(format!(
                "the connection broke while reading the answer ({e})"
            )),
            other => other,
        }),
    }
}

/// Sends one upstream request within `timeout_ms`. Redirects are never followed: one
/// could carry the upstream key to another host.
/// The `usage` of an answer passed on as it came: only that is decoded. An answer that is
/// not JSON is an error naming what was `expected`.
fn passthrough_usage(
    body: &[u8],
    expected: &str,
) -> Result<Option<serde_json::Value>, GatewayError> {
    #[derive(serde::Deserialize)]
    struct UsageOnly {
        #[serde(default)]
        usage: Option<serde_json::Value>,
    }
    serde_json::from_slice::<UsageOnly>(body)
        .map(|parsed| parsed.usage)
        .map_err(|_| {
            GatewayError::UpstreamMalformed(format!(
                "expected {expected}, got: {}",
                excerpt(&String::from_utf8_lossy(&body[..body.len().min(600)]), 200)
            ))
        })
}

/// The demo upstream's answer, made here instead of fetched: after its think time (JSON),
/// or with headers at once and the first event after the think time (streams).
async fn demo_response(
    request: &HttpRequest,
    think_ms: u64,
) -> Result<(Response, AbortOnDrop), GatewayError> {
    let answer =
        crate::adapters::demo::answer(request.body.as_deref().unwrap_or_default(), think_ms);
    let headers = Headers::new();
    for (name, value) in &answer.headers {
        let _ = headers.append(name, value);
    }
    let guard = AbortOnDrop::new(None);
    let response = if answer.event_stream {
        let think = answer.think_ms;
        let gap = answer.frame_delay_ms;
        let frames = futures::stream::iter(answer.frames.into_iter().enumerate()).then(
            move |(i, frame)| async move {
                let wait = if i == 0 { think } else { gap };
                if wait > 0 {
                    Delay::from(Duration::from_millis(wait)).await;
                }
                Ok::<Vec<u8>, worker::Error>(frame)
            },
        );
        Response::from_stream(frames).map_err(internal)?
    } else {
        if answer.think_ms > 0 {
            Delay::from(Duration::from_millis(answer.think_ms)).await;
        }
        // A body stream, as a fetched response has: the readers take it the same way.
        let body = answer.frames.concat();
        Response::from_stream(futures::stream::once(async move {
            Ok::<Vec<u8>, worker::Error>(body)
        }))
        .map_err(internal)?
    };
    Ok((
        response.with_status(answer.status).with_headers(headers),
        guard,
    ))
}

/// The upstream call for `request`: its JS side, with the headers as one string of lines.
fn upstream_call(
    request: &HttpRequest,
    client_signal: Option<&web_sys::AbortSignal>,
) -> (
    UpstreamCall,
    String,
    &'static str,
    Option<js_sys::Uint8Array>,
) {
    let mut headers = String::new();
    for (name, value) in &request.headers {
        crate::headers::push_line(&mut headers, name, value);
    }
    let method = if request.method == "GET" {
        "GET"
    } else {
        "POST"
    };
    let body = request.body.as_deref().map(js_sys::Uint8Array::from);
    (UpstreamCall::new(client_signal), headers, method, body)
}

/// A redirect is never followed, nor passed on: it is an error naming where it pointed.
fn refuse_redirect(response: &Response, url: &str) -> Result<(), GatewayError> {
    if (300..400).contains(&response.status_code()) {
        let location = response.headers().get("Location").ok().flatten();
        return Err(GatewayError::UpstreamRedirect {
            status: response.status_code(),
            host: proxy::redirect_host(location.as_deref(), url),
        });
    }
    Ok(())
}

async fn send_request(
    request: &HttpRequest,
    timeout_ms: u64,
    client_signal: Option<&web_sys::AbortSignal>,
) -> Result<(Response, AbortOnDrop), GatewayError> {
    let (call, headers, method, body) = upstream_call(request, client_signal);
    let sent = call.send(&request.url, method, &headers, body, timeout_ms as f64);
    // Armed before the wait: a call dropped meanwhile (its client gone) aborts the fetch.
    let guard = AbortOnDrop { call: Some(call) };
    let response = match js_sys::futures::JsFuture::from(sent).await {
        Ok(response) => Response::from(response.unchecked_into::<web_sys::Response>()),
        Err(rejection) => return Err(glue_error(rejection, timeout_ms, 0)),
    };
    refuse_redirect(&response, &request.url)?;
    Ok((response, guard))
}

/// An upstream answer read whole, in one wait: its status, headers, body (an error status's
/// cut to nothing past `ERROR_BODY_LIMIT`) and when its headers came (`now_ms()` time).
struct WholeAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    headers_at: f64,
}

async fn send_request_whole(
    request: &HttpRequest,
    timeout_ms: u64,
    client_signal: Option<&web_sys::AbortSignal>,
    limit: usize,
) -> Result<WholeAnswer, GatewayError> {
    let (call, headers, method, body) = upstream_call(request, client_signal);
    let sent = call.send_whole(
        &request.url,
        method,
        &headers,
        body,
        timeout_ms as f64,
        limit as f64,
        ERROR_BODY_LIMIT as f64,
    );
    let mut guard = AbortOnDrop { call: Some(call) };
    // Resolves with "<status> <headersAt>" and the header lines, in one string.
    let head = match js_sys::futures::JsFuture::from(sent).await {
        Ok(head) => head.as_string().unwrap_or_default(),
        Err(rejection) => return Err(glue_error(rejection, timeout_ms, limit)),
    };
    let (first, lines) = head.split_once('\n').unwrap_or((head.as_str(), ""));
    let (status, headers_at) = first.split_once(' ').unwrap_or((first, ""));
    let status = status.parse::<u16>().unwrap_or(0);
    let headers = crate::headers::parse_lines(lines);
    if (300..400).contains(&status) {
        let location = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("location"))
            .map(|(_, value)| value.as_str());
        return Err(GatewayError::UpstreamRedirect {
            status,
            host: proxy::redirect_host(location, &request.url),
        });
    }
    // The answer is in hand: the call no longer follows its client.
    let Some(call) = guard.call.take() else {
        return Err(GatewayError::Internal(
            "the upstream call was released".into(),
        ));
    };
    call.release();
    let body = call.body().map(|b| b.to_vec()).unwrap_or_default();
    Ok(WholeAnswer {
        status,
        headers,
        body,
        headers_at: headers_at.parse().unwrap_or_else(|_| now_ms()),
    })
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
