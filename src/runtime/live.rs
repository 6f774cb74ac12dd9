//! Streams relayed by loops in glue.js: a live upstream stream (`relayLive`: JS reads the
//! upstream, times its silences and writes to the client; Rust turns each chunk into the
//! client's bytes in one synchronous call) and a fake stream (`relayFake`: JS sends the
//! heartbeats while the attempts run, then asks for the replayed frames). Per chunk that is
//! one read and one write of the runtime's own streams and one call into wasm, with no Rust
//! future, waker or microtask in between (README "Performance").
//!
//! A method returns `undefined` to JS instead of bytes when the stream's end hook (a stored
//! Response) must run first: JS then awaits `runHook()` and sends `takeHeld()`.
use super::glue::{relay_fake, relay_live, ChunkReader};
use super::logging::LogTap;
use super::upstream::{AbortOnDrop, StreamEnd};
use crate::dialects::StreamRewriter;
use crate::error::GatewayError;
use crate::scrub::Scrubber;
use crate::stream::fake;
use crate::stream::translate::StreamAdapter;
use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{js_sys, web_sys};

/// Where a live relay starts: the stream as its first event left it.
pub(super) struct LiveStart {
    pub adapter: Box<dyn StreamAdapter>,
    pub guard: AbortOnDrop,
    /// The adapter's output for what was read before the response started.
    pub first: Vec<u8>,
    pub bytes_read: usize,
    /// The upstream already ended.
    pub ended: bool,
}

/// What every relayed byte passes on its way to the client.
pub(super) struct ClientSide {
    scrubber: Rc<Scrubber>,
    rewriter: Option<StreamRewriter>,
    end_hook: Option<StreamEnd>,
    log: Option<LogTap>,
    /// Bytes wait in `held` until the end hook has run.
    hook_due: bool,
    held: Vec<u8>,
}

impl ClientSide {
    pub fn new(
        scrubber: Rc<Scrubber>,
        rewriter: Option<StreamRewriter>,
        end_hook: Option<StreamEnd>,
        log: Option<LogTap>,
    ) -> ClientSide {
        ClientSide {
            scrubber,
            rewriter,
            end_hook,
            log,
            hook_due: false,
            held: Vec::new(),
        }
    }

    /// Scrubbed chat-stream bytes, rewritten into the client's API (scrubbed before, so
    /// error events are recognised there, and once more on the way out).
    fn for_client(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        if bytes.is_empty() {
            return bytes;
        }
        let scrubbed = scrub(&self.scrubber, bytes);
        let Some(rewriter) = &mut self.rewriter else {
            return scrubbed;
        };
        let out = rewriter.push(&scrubbed);
        if rewriter.is_ended() && self.end_hook.is_some() {
            self.hook_due = true;
        }
        scrub(&self.scrubber, out)
    }

    /// A rewritten stream's last events (which may close open blocks).
    fn close_rewriter(&mut self) -> Vec<u8> {
        let Some(rewriter) = &mut self.rewriter else {
            return Vec::new();
        };
        let last = rewriter.finish();
        if self.end_hook.is_some() {
            self.hook_due = true;
        }
        scrub(&self.scrubber, last)
    }

    /// The bytes for JS, or `None` (held) while the end hook must run first.
    fn pass(&mut self, bytes: Vec<u8>) -> Option<Vec<u8>> {
        if self.hook_due {
            self.held.extend(bytes);
            return None;
        }
        Some(bytes)
    }

    fn run_hook(&mut self) -> js_sys::Promise {
        self.hook_due = false;
        let hook = self.end_hook.take();
        worker::wasm_bindgen_futures::future_to_promise(async move {
            if let Some(hook) = hook {
                hook().await;
            }
            Ok(wasm_bindgen::JsValue::UNDEFINED)
        })
    }

    fn take_held(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

pub(super) struct LiveLimits {
    pub idle_timeout_ms: u64,
    pub heartbeat_ms: u64,
    pub max_bytes: usize,
}

/// Starts relaying: the returned stream is the client's body.
pub(super) fn relay(
    start: LiveStart,
    body: Option<ChunkReader>,
    client: ClientSide,
    limits: LiveLimits,
) -> web_sys::ReadableStream {
    let heartbeat_ms = limits.heartbeat_ms as f64;
    let relay = LiveRelay {
        adapter: start.adapter,
        guard: start.guard,
        first: Some(start.first),
        ended_at_start: start.ended,
        bytes_read: start.bytes_read,
        client,
        limits,
        finished: false,
        logged: false,
    };
    relay_live(relay, body, heartbeat_ms)
}

#[wasm_bindgen]
pub struct LiveRelay {
    adapter: Box<dyn StreamAdapter>,
    /// Armed until the upstream ended well: dropped armed, it aborts the upstream fetch.
    guard: AbortOnDrop,
    first: Option<Vec<u8>>,
    ended_at_start: bool,
    bytes_read: usize,
    client: ClientSide,
    limits: LiveLimits,
    finished: bool,
    /// The end went to the log.
    logged: bool,
}

#[wasm_bindgen]
impl LiveRelay {
    /// The first event, read before the response started.
    pub fn start(&mut self) -> Option<Vec<u8>> {
        let first = self.first.take().unwrap_or_default();
        if self.ended_at_start {
            // The upstream ended within the first read. A failed relay (too large) stays
            // armed, so dropping it aborts the fetch.
            self.finished = true;
            if self.adapter.error().is_none() {
                self.guard.disarm();
            }
        }
        self.out(first)
    }

    /// An upstream chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Option<Vec<u8>> {
        if self.finished {
            return Some(Vec::new());
        }
        let out = if self.bytes_read + chunk.len() > self.limits.max_bytes {
            self.finished = true;
            self.adapter.finish(Some(GatewayError::ResponseTooLarge {
                limit: self.limits.max_bytes,
            }))
        } else {
            self.bytes_read += chunk.len();
            self.adapter.push(chunk)
        };
        self.out(out)
    }

    /// The upstream body ended.
    pub fn end(&mut self) -> Option<Vec<u8>> {
        if self.finished {
            return Some(Vec::new());
        }
        self.finished = true;
        self.guard.disarm();
        let out = self.adapter.finish(None);
        self.out(out)
    }

    /// The upstream body broke.
    pub fn broke(&mut self, message: &str) -> Option<Vec<u8>> {
        if self.finished {
            return Some(Vec::new());
        }
        self.finished = true;
        let out = self
            .adapter
            .finish(Some(GatewayError::UpstreamUnreachable(format!(
                "the upstream stream broke ({message})"
            ))));
        self.out(out)
    }

    /// The upstream has been silent for `silent_ms`: a heartbeat, or past the idle timeout
    /// the stream's end.
    pub fn silence(&mut self, silent_ms: f64) -> Option<Vec<u8>> {
        if self.finished {
            return Some(Vec::new());
        }
        if silent_ms < self.limits.idle_timeout_ms as f64 {
            return Some(self.client.for_client(fake::heartbeat()));
        }
        self.finished = true;
        let out = self.adapter.finish(Some(GatewayError::UpstreamTimeout {
            after_ms: self.limits.idle_timeout_ms,
        }));
        self.out(out)
    }

    /// Nothing more is read: the client's stream is complete.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Runs the end hook; `takeHeld()` then gives the bytes that waited for it.
    #[wasm_bindgen(js_name = runHook)]
    pub fn run_hook(&mut self) -> js_sys::Promise {
        self.client.run_hook()
    }

    #[wasm_bindgen(js_name = takeHeld)]
    pub fn take_held(&mut self) -> Vec<u8> {
        self.client.take_held()
    }
}

impl LiveRelay {
    /// The adapter's output on its way out: the stream's state noted, the log told, the
    /// bytes scrubbed (and rewritten into the client's API).
    fn out(&mut self, out: Vec<u8>) -> Option<Vec<u8>> {
        if self.adapter.is_done() && !self.finished {
            // After [DONE] nothing more is relayed; release the upstream.
            self.finished = true;
            self.guard.disarm();
        }
        if let Some(log) = &self.client.log {
            if !out.is_empty() {
                log.first_byte();
            }
            if !self.adapter.content().is_empty() {
                log.first_token();
            }
            if self.finished && !self.logged {
                self.logged = true;
                let adapter = &self.adapter;
                log.stream_done(
                    adapter.content(),
                    adapter.usage(),
                    adapter.error(),
                    adapter.generated_bytes(),
                );
            }
        }
        let mut bytes = self.client.for_client(out);
        if self.finished {
            bytes.extend(self.client.close_rewriter());
        }
        self.client.pass(bytes)
    }
}

impl Drop for LiveRelay {
    fn drop(&mut self) {
        // The client left before the end: what was relayed so far is what the call used
        // (and what an access key is charged for).
        if let (false, Some(log)) = (self.logged, &self.client.log) {
            log.stream_done(
                self.adapter.content(),
                self.adapter.usage(),
                Some("the client disconnected before the response finished"),
                self.adapter.generated_bytes(),
            );
        }
    }
}

/// Frames made one at a time.
pub(super) type Frames = Box<dyn Iterator<Item = Vec<u8>>>;

/// Starts a replay: `answer` makes the frames (a fake stream's runs the attempts first); the
/// returned stream is the client's body. With `heartbeat_ms` (a fake stream), a heartbeat
/// goes out at once and then every `heartbeat_ms` until the frames are ready.
pub(super) fn relay_replay(
    answer: Pin<Box<dyn Future<Output = Frames>>>,
    client: ClientSide,
    heartbeat_ms: Option<u64>,
    chunk_delay_ms: u64,
) -> web_sys::ReadableStream {
    let (answer, abort) = futures::future::abortable(answer);
    let relay = FakeRelay {
        answer: Some(Box::pin(answer)),
        abort,
        ready: Rc::new(RefCell::new(None)),
        frames: None,
        heartbeats: heartbeat_ms.is_some(),
        one_per_chunk: chunk_delay_ms > 0,
        client,
        finished: false,
    };
    relay_fake(
        relay,
        heartbeat_ms.unwrap_or(0) as f64,
        chunk_delay_ms as f64,
    )
}

type Answer = Pin<Box<dyn Future<Output = Result<Frames, futures::future::Aborted>>>>;

/// A fake stream or a replayed answer, relayed by glue.js's `relayFake`: heartbeats
/// (`start`, `silence`) while `answer()` runs the attempts, then the replay's frames (`next`)
/// until `finished()`.
#[wasm_bindgen]
pub struct FakeRelay {
    answer: Option<Answer>,
    /// Stops the attempts (dropping them aborts an upstream fetch in flight).
    abort: futures::future::AbortHandle,
    /// The frames, once the attempts are done.
    ready: Rc<RefCell<Option<Frames>>>,
    frames: Option<Frames>,
    heartbeats: bool,
    one_per_chunk: bool,
    client: ClientSide,
    finished: bool,
}

#[wasm_bindgen]
impl FakeRelay {
    /// A fake stream's first frame, sent at once: it flushes the headers through any
    /// buffering proxy.
    pub fn start(&mut self) -> Option<Vec<u8>> {
        if let Some(log) = &self.client.log {
            log.first_byte();
        }
        if !self.heartbeats {
            return Some(Vec::new());
        }
        self.silence()
    }

    /// A heartbeat while the attempts run.
    pub fn silence(&mut self) -> Option<Vec<u8>> {
        let bytes = self.client.for_client(fake::heartbeat());
        self.client.pass(bytes)
    }

    /// Runs the attempts; settles once the frames are ready (or the attempts were stopped).
    pub fn answer(&mut self) -> js_sys::Promise {
        let answer = self.answer.take();
        let ready = self.ready.clone();
        worker::wasm_bindgen_futures::future_to_promise(async move {
            if let Some(answer) = answer {
                if let Ok(frames) = answer.await {
                    *ready.borrow_mut() = Some(frames);
                }
            }
            Ok(wasm_bindgen::JsValue::UNDEFINED)
        })
    }

    /// The client went away: the attempts stop.
    pub fn cancel(&mut self) {
        self.abort.abort();
    }

    /// The next frame (with a pause between chunks) or the next frames up to 16 KiB.
    pub fn next(&mut self) -> Option<Vec<u8>> {
        if self.finished {
            return Some(Vec::new());
        }
        if self.frames.is_none() {
            self.frames = self.ready.borrow_mut().take();
            if let (Some(log), Some(_)) = (&self.client.log, &self.frames) {
                log.first_token();
            }
        }
        let out = match &mut self.frames {
            None => {
                self.finished = true;
                Vec::new()
            }
            Some(frames) => {
                let (out, ended) = fake::next_batch(frames.as_mut(), self.one_per_chunk);
                if ended {
                    self.finished = true;
                    if let Some(log) = &self.client.log {
                        log.finished();
                    }
                }
                out
            }
        };
        let mut bytes = self.client.for_client(out);
        if self.finished {
            bytes.extend(self.client.close_rewriter());
        }
        self.client.pass(bytes)
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    #[wasm_bindgen(js_name = runHook)]
    pub fn run_hook(&mut self) -> js_sys::Promise {
        self.client.run_hook()
    }

    #[wasm_bindgen(js_name = takeHeld)]
    pub fn take_held(&mut self) -> Vec<u8> {
        self.client.take_held()
    }
}

impl Drop for FakeRelay {
    fn drop(&mut self) {
        // Attempts still running (the client left) stop with the relay.
        self.abort.abort();
    }
}

fn scrub(scrubber: &Scrubber, bytes: Vec<u8>) -> Vec<u8> {
    match scrubber.sse(&bytes) {
        Cow::Owned(scrubbed) => scrubbed,
        Cow::Borrowed(_) => bytes,
    }
}
