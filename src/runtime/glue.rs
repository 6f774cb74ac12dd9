//! What `glue.js` offers Rust: the few things done in JS because every crossing between JS
//! and WASM costs CPU (README "Performance"). The whole contract with that file, in one place.
use super::live::{FakeRelay, LiveRelay};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::{js_sys, web_sys};

#[wasm_bindgen(module = "/src/runtime/glue.js")]
extern "C" {
    /// Every header of a `Headers` object as `name:value` lines, in one crossing.
    #[wasm_bindgen(js_name = headerLines)]
    pub(crate) fn header_lines(headers: &web_sys::Headers) -> String;

    /// The client's response from its status, header lines and body, in one crossing.
    #[wasm_bindgen(js_name = respond)]
    pub(crate) fn respond_bytes(status: u16, headers: &str, body: &[u8]) -> web_sys::Response;
    /// `respond` with a streamed body, or none.
    #[wasm_bindgen(js_name = respond)]
    pub(crate) fn respond_stream(
        status: u16,
        headers: &str,
        body: Option<&web_sys::ReadableStream>,
    ) -> web_sys::Response;

    /// One upstream fetch: timeout, abort, client signal.
    pub(crate) type UpstreamCall;
    #[wasm_bindgen(constructor)]
    pub(crate) fn new(client_signal: Option<&web_sys::AbortSignal>) -> UpstreamCall;
    #[wasm_bindgen(method)]
    pub(crate) fn send(
        this: &UpstreamCall,
        url: &str,
        method: &str,
        headers: &str,
        body: Option<js_sys::Uint8Array>,
        timeout_ms: f64,
    ) -> js_sys::Promise;
    /// `send`, then the answer read whole within the same timeout.
    #[wasm_bindgen(method, js_name = sendWhole)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_whole(
        this: &UpstreamCall,
        url: &str,
        method: &str,
        headers: &str,
        body: Option<js_sys::Uint8Array>,
        timeout_ms: f64,
        limit: f64,
        error_limit: f64,
    ) -> js_sys::Promise;
    /// The body `sendWhole` read.
    #[wasm_bindgen(method, getter)]
    pub(crate) fn body(this: &UpstreamCall) -> Option<js_sys::Uint8Array>;
    #[wasm_bindgen(method)]
    pub(crate) fn release(this: &UpstreamCall);
    #[wasm_bindgen(method)]
    pub(crate) fn abort(this: &UpstreamCall);
    /// A streamed body's chunks, read in JS.
    pub(crate) type ChunkReader;
    #[wasm_bindgen(constructor)]
    pub(crate) fn new(stream: &web_sys::ReadableStream) -> ChunkReader;
    #[wasm_bindgen(method)]
    pub(crate) fn next(this: &ChunkReader) -> js_sys::Promise;
    #[wasm_bindgen(method)]
    pub(crate) fn release(this: &ChunkReader);
    /// Starts the relay loop of a live stream (see `live.rs`); returns the client's body.
    #[wasm_bindgen(js_name = relayLive)]
    pub(crate) fn relay_live(
        relay: LiveRelay,
        upstream: Option<ChunkReader>,
        heartbeat_ms: f64,
    ) -> web_sys::ReadableStream;
    /// Starts the relay loop of a fake stream (see `live.rs`); returns the client's body.
    #[wasm_bindgen(js_name = relayFake)]
    pub(crate) fn relay_fake(
        relay: FakeRelay,
        heartbeat_ms: f64,
        chunk_delay_ms: f64,
    ) -> web_sys::ReadableStream;
    /// A whole body, read in JS within a timeout and a byte limit.
    #[wasm_bindgen(js_name = readAll)]
    pub(crate) fn read_all(
        stream: &web_sys::ReadableStream,
        limit: f64,
        timeout_ms: f64,
    ) -> js_sys::Promise;

    /// A D1 statement with its parameters bound from one JSON array, in one crossing.
    #[wasm_bindgen(js_name = d1Prepare, catch)]
    pub(crate) fn d1_prepare(db: &JsValue, sql: &str, params: &str) -> Result<JsValue, JsValue>;
    /// A statement's rows as a JSON array, in one crossing.
    #[wasm_bindgen(js_name = d1Rows)]
    pub(crate) fn d1_rows(statement: &JsValue) -> js_sys::Promise;
    /// A statement's first row (or one column of it) as JSON, `null` for none.
    #[wasm_bindgen(js_name = d1First)]
    pub(crate) fn d1_first(statement: &JsValue, column: Option<&str>) -> js_sys::Promise;

    /// A storage value as JSON (`null` when unset), in one crossing.
    #[wasm_bindgen(js_name = storageGet)]
    pub(crate) fn storage_get(state: &JsValue, key: &str) -> js_sys::Promise;
    /// Stores the plain object a JSON text describes.
    #[wasm_bindgen(js_name = storagePut)]
    pub(crate) fn storage_put(state: &JsValue, key: &str, json: &str) -> js_sys::Promise;
    /// One operation sent to a Durable Object by name: `<status>\n<text>` of its answer.
    #[wasm_bindgen(js_name = durableCall)]
    pub(crate) fn durable_call(namespace: &JsValue, name: &str, op: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = storageDelete)]
    pub(crate) fn storage_delete(state: &JsValue, key: &str) -> js_sys::Promise;
}

/// A glue.js promise of JSON text (D1 rows, stored values), decoded by serde_json.
pub(crate) async fn decode<T: serde::de::DeserializeOwned>(
    json: js_sys::Promise,
) -> worker::Result<T> {
    let text = js_sys::futures::JsFuture::from(json).await?;
    Ok(serde_json::from_slice(
        text.as_string().unwrap_or_default().as_bytes(),
    )?)
}
