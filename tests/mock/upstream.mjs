// A mock LLM upstream on a loopback port. It speaks OpenAI Chat Completions (POST to any path
// ending in /chat/completions, so SDK-style bases such as /api/paas/v4 work; model lists at
// GET /v1/models and GET <any other base>/models), Google Gemini
// (generateContent / streamGenerateContent?alt=sse / models) and Alibaba DashScope
// (text- and multimodal-generation, X-DashScope-SSE streams) in their native wire formats,
// and records every request it gets, so tests can assert what the gateway sent.
// Keys starting with "bad" are refused the way each real API refuses them.
//
// Behaviour is chosen per request by a scenario: tests register one with
// `POST /__mock/scenario {"id": "...", ...knobs}` and put the tag `mock:<id>` anywhere in the
// request body (usually a message). Untagged requests get the default answer.
//
// Knobs: delay_ms (before the response starts), status + error_body (an error answer),
// malformed (a 200 that is not JSON), reset (destroy the socket without answering),
// hang (never answer), content, reasoning_content, tool_calls, finish_reason, usage,
// chunk_delay_ms and chunk_chars (streaming cadence), first_event_delay_ms (streams: silence
// between the 200 headers and the first event, like a model that thinks first), cut_after (destroy the socket after N
// stream events), ignore_stream (answer JSON to a streaming request), always_stream (answer
// SSE to a non-streaming request).
//
// Responses API: POST <any base>/responses answers as an upstream that serves it itself
// (`native_responses`): a Response object, or with `stream: true` the documented events
// ending in `response.completed`; the failure knobs and `cut_after` apply.
//
// Agent loops: `then_content: "<text>"` — once the request carries a tool result (an OpenAI or
// DashScope `tool` message, a Gemini `functionResponse` part), the scenario answers that text
// instead of its `tool_calls`, so one tag drives a whole tool round trip.
//
// Logprobs knobs: `logprobs_result` (Gemini's native LogprobsResult object) goes on the candidate
// of a JSON answer and of a stream's first content event; `logprobs` (DashScope's, already
// OpenAI-shaped) likewise on the choice.
//
// Gemini: a `tool_calls` entry may carry `thought_signature`, sent as that functionCall part's
// `thoughtSignature` (Gemini 3: only the first of parallel calls is signed).
//
// Trust knobs (all three kinds — OpenAI chat, Gemini, DashScope — unless said otherwise):
// - echo_key: true — the credential the mock received (OpenAI/DashScope: the Authorization
//   Bearer value; Gemini: the x-goog-api-key header, else the `key` query parameter) replaces
//   every `{{KEY}}` in content, reasoning_content, error_body, stream_error and
//   stream_error_event, and `{{KEY_URL}}` becomes encodeURIComponent(key). With malformed, the
//   non-JSON 200 body then is `<html>upstream proxy error for key {{KEY}} ({{KEY_URL}})</html>`.
// - error_headers: {...} — extra headers on the `status` error answer (they override the
//   mock's own `x-request-id: req_mock_error` on OpenAI).
// - redirect: {status, location} — the answer is that 3xx with that Location and no body.
// - huge_content_bytes: N — the answer content is exactly N bytes of ASCII ('lorem ipsum '
//   repeated, cut to N), built once per request; streams send it in 64 KiB pieces (this
//   overrides chunk_chars), waiting for the socket to drain between pieces.
// - stream_error_event: "<text>" — streams only: after two content events (fewer if the answer
//   has fewer; always before the finishing event) the upstream sends
//   an error event carrying the text, then closes without [DONE]: OpenAI
//   `data: {"error":{"message":text,"type":"server_error","param":null,"code":null}}`, Gemini
//   `data: {"error":{"code":500,"message":text,"status":"INTERNAL"}}`, DashScope
//   `event:error` / `:HTTP_STATUS/500` / `data: {"code":"InternalError","message":text,
//   "request_id":"ds-req-1"}`. (DashScope's older `stream_error: "<Code>"` knob sends one
//   `partial` event, then an error with that code and a fixed message.)
//
// Retry knobs (for the router tests, tests/e2e/router.test.mjs):
// - times: N — the scenario's failure knobs (status, hang, reset, delay_ms, malformed, redirect,
//   cut_after, stream_error_event, stream_error) apply only to the first N requests carrying
//   the tag on this mock (counted whatever their key); later ones get the normal answer
//   (content, chunk_chars and the other answer knobs still apply).
// - by_key: {"<credential>": {...knobs}} — knobs merged over the scenario for requests whose
//   credential (as for echo_key: Bearer, else x-goog-api-key, else `key`) equals that key;
//   `times` then applies to the merged knobs.
// Every recorded request holds that credential as `key` (besides its headers), so tests can
// assert which key was used and in which order. Several mocks can run at once (tests/run.mjs
// starts three): each has its own scenarios and records, so one tag can fail on one mock and
// answer on another.
//
// Mock-global switches and routes:
// - POST /__mock/models_redirect {"key": K, "status": 302, "location": "..."} makes the
//   model-list paths (GET /v1/models, GET /v1beta/models) answer that redirect, but only for
//   requests whose credential is K (so concurrent tests using other keys are not affected);
//   without "key" it applies to every model-list request; with "path" ("/v1/models" or
//   "/v1beta/models") only to that one. {"key": K, "off": true} (or
//   {"off": true} for the keyless switch) turns it off.
// - /__mock/stolen (any method, any query) records the hit and answers 200; a redirect target
//   that must never be fetched. GET /__mock/stolen_hits lists the hits ({method, url, headers}).
// - POST /__mock/embedding {"texts": [...], "dims": N} answers {"embeddings": [mockEmbedding(text,
//   N) per text], "tokens": [mockTokens(text) per text]}: the expected vectors for tests that
//   cannot import this module (tests/python/test_embeddings.py).
//
// Embeddings (tests/e2e/embeddings.test.mjs, tests/python/test_embeddings.py; wire formats in
// /work/notes/embeddings-wire.md). Vectors are deterministic per input text:
// `mockEmbedding(text, dims)` (exported) — FNV-1a of the UTF-8 text, then xorshift32, each value
// an integer / 10000 in [-1, 1] — with dims = the requested dimensions, else
// DEFAULT_EMBEDDING_DIMS (8). Token counts: `mockTokens(input)` (exported) — the number of
// whitespace-separated words of a string (at least 1), the length of a token array. Token-array
// inputs are embedded as their JSON text. Every embeddings record also holds `kind:
// 'embeddings'`, `provider`, `texts` (what was embedded, in order) and `dims` (Gemini: one per
// request).
// - OpenAI: POST any path ending in /embeddings (so /v1/embeddings and /api/paas/v4/embeddings):
//   {input: string | string[] | int[] | int[][], model, dimensions?, encoding_format?, user?} →
//   {object: "list", data: [{object: "embedding", index, embedding}], model, usage:
//   {prompt_tokens, total_tokens}}; encoding_format "base64" answers each embedding as base64 of
//   float32 little-endian (float32Base64, exported), like the real API. A missing model or an
//   invalid input (empty string or array, wrong types) answers 400 invalid_request_error.
// - Gemini: POST /v1beta/models/{model}:batchEmbedContents ({requests: [{model: "models/{model}",
//   content: {parts: [{text}]}, taskType?, title?, outputDimensionality?}]} → {embeddings:
//   [{values}], usageMetadata: {promptTokenCount, promptTokenDetails}}) and :embedContent (one
//   request's fields → {embedding: {values}, usageMetadata}). Key from x-goog-api-key, else the
//   `key` query parameter. Like the real API: at most 100 requests per batch (400
//   INVALID_ARGUMENT "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one
//   batch"), each request's model must be the URL's ("models/{model}"), content needs text.
//   Errors are Google-shaped: {error: {code, message, status}}.
// - DashScope: POST /api/v1/services/embeddings/text-embedding/text-embedding, Bearer key:
//   {model, input: {texts}, parameters: {dimension?, text_type?, output_type?}} → {output:
//   {embeddings: [{text_index, embedding}]}, usage: {total_tokens}, request_id}. More texts than
//   the documented per-call limit (10 for text-embedding-v3/v4, else 25) answers its documented
//   400 {code: "InvalidParameter", message: "<400> InternalError.Algo.InvalidParameter: Value
//   error, batch size is invalid, it should not be larger than 10.: input.contents",
//   request_id}, so the gateway must batch. Errors are {code, message, request_id}.
// Embeddings knobs: the failure knobs above (status + error_body — the default error body is in
// the kind's own error shape —, error_headers, hang, reset, delay_ms, malformed, redirect) with
// times and by_key; `usage` replaces the usage object (OpenAI `usage`, Gemini `usageMetadata`,
// DashScope `usage`), `usage: null` leaves it out; `max_batch: N` (Gemini, DashScope) replaces
// the per-call limit; `embeddings_reversed: true` (DashScope) lists output.embeddings last
// text_index first (each text_index still right), so order must come from text_index.
// The Gemini model list also has models/gemini-embedding-001, listed the way the real API lists
// it (supportedGenerationMethods embedContent, countTextTokens, countTokens,
// asyncBatchEmbedContent — the real list never names batchEmbedContents).
import http from 'node:http';

export const DEFAULT_CONTENT = 'Hello from the mock upstream! 你好，世界 🌍 — ünïcödé, naïve café.';

export function startMockUpstream({ port = 0, host = '127.0.0.1' } = {}) {
  const scenarios = new Map();
  const requests = [];
  const stolen = [];
  // credential (or '*' for any) -> {status, location}
  const modelsRedirects = new Map();
  // tag -> how many requests carried it so far (for the `times` knob)
  const tagCounts = new Map();
  let seq = 0;

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://mock');
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const bodyText = Buffer.concat(chunks).toString('utf8');

    if (url.pathname === '/__mock/scenario' && req.method === 'POST') {
      const scenario = JSON.parse(bodyText);
      scenarios.set(scenario.id, scenario);
      return sendJson(res, 200, { ok: true });
    }
    if (url.pathname === '/__mock/stolen') {
      stolen.push({ method: req.method, url: req.url, headers: req.headers, at: Date.now() });
      return sendJson(res, 200, { stolen: true });
    }
    if (url.pathname === '/__mock/stolen_hits') return sendJson(res, 200, stolen);
    if (url.pathname === '/__mock/embedding' && req.method === 'POST') {
      const { texts = [], dims } = JSON.parse(bodyText || '{}');
      return sendJson(res, 200, { embeddings: texts.map((t) => mockEmbedding(t, dims)), tokens: texts.map(mockTokens) });
    }
    if (url.pathname === '/__mock/models_redirect' && req.method === 'POST') {
      const sw = JSON.parse(bodyText || '{}');
      const k = sw.key ?? '*';
      if (sw.off) modelsRedirects.delete(k);
      else modelsRedirects.set(k, { status: sw.status || 302, location: sw.location, path: sw.path });
      return sendJson(res, 200, { ok: true });
    }
    if (url.pathname === '/__mock/requests') {
      const tag = url.searchParams.get('tag');
      return sendJson(res, 200, requests.filter((r) => !tag || r.tag === tag));
    }

    const tagMatch = bodyText.match(/mock:([A-Za-z0-9_-]+)/);
    const tag = tagMatch ? tagMatch[1] : null;
    const key = credential(req, url);
    const nth = tag ? (tagCounts.get(tag) || 0) + 1 : 0;
    if (tag) tagCounts.set(tag, nth);
    let body = null;
    try { body = JSON.parse(bodyText); } catch { /* recorded as text */ }
    const scenario = afterToolResult(echoKey(retryKnobs((tag && scenarios.get(tag)) || {}, key, nth), key), body);
    const record = {
      seq: ++seq, tag, method: req.method, path: url.pathname, query: url.search,
      headers: req.headers, key, nth, body, bodyText, receivedAt: Date.now(),
      aborted: false, abortedAt: null, finishedAt: null, eventsSent: 0,
    };
    requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) {
        record.aborted = true;
        record.abortedAt = Date.now();
      }
    });
    res.on('finish', () => { record.finishedAt = Date.now(); });

    const modelsRedirect = modelsRedirects.get(credential(req, url)) || modelsRedirects.get('*');
    if ((url.pathname === '/v1/models' || url.pathname === '/v1beta/models') && req.method === 'GET' && modelsRedirect
        && (!modelsRedirect.path || modelsRedirect.path === url.pathname)) {
      return sendRedirect(res, modelsRedirect);
    }
    if (url.pathname === '/v1/models' && req.method === 'GET') {
      if (badKey(bearer(req))) return openaiBadKey(res);
      return sendJson(res, 200, { object: 'list', data: [{ id: 'gpt-mock-1', object: 'model', created: 1, owned_by: 'mock' }, { id: 'gpt-mock-2', object: 'model', created: 1, owned_by: 'mock' }] });
    }
    if (url.pathname === '/v1beta/models' && req.method === 'GET') {
      if (badKey(req.headers['x-goog-api-key'])) return geminiBadKey(res);
      return sendJson(res, 200, { models: [
        { name: 'models/gemini-mock-pro', supportedGenerationMethods: ['generateContent', 'countTokens'] },
        { name: 'models/text-embedding-mock', supportedGenerationMethods: ['embedContent'] },
        { name: 'models/gemini-embedding-001', version: '001', displayName: 'Gemini Embedding 001', inputTokenLimit: 2048, outputTokenLimit: 1,
          supportedGenerationMethods: ['embedContent', 'countTextTokens', 'countTokens', 'asyncBatchEmbedContent'] },
      ] });
    }
    // Any other OpenAI-compatible base (e.g. /api/paas/v4): GET <base>/models.
    if (url.pathname.endsWith('/models') && !url.pathname.startsWith('/v1beta/') && req.method === 'GET') {
      if (badKey(bearer(req))) return openaiBadKey(res);
      return sendJson(res, 200, { object: 'list', data: [{ id: 'gpt-mock-1', object: 'model', created: 1, owned_by: 'mock' }, { id: 'gpt-mock-2', object: 'model', created: 1, owned_by: 'mock' }] });
    }
    const geminiEmbed = url.pathname.match(/^\/v1beta\/models\/([^:]+):(embedContent|batchEmbedContents)$/);
    if (geminiEmbed && req.method === 'POST') return handleGeminiEmbeddings(req, res, record, scenario, body, decodeURIComponent(geminiEmbed[1]), geminiEmbed[2] === 'batchEmbedContents');
    if (url.pathname === '/api/v1/services/embeddings/text-embedding/text-embedding' && req.method === 'POST') {
      return handleDashScopeEmbeddings(req, res, record, scenario, body);
    }
    if (url.pathname.endsWith('/embeddings') && req.method === 'POST') return handleOpenAIEmbeddings(req, res, record, scenario, body);
    if (url.pathname.endsWith('/responses') && req.method === 'POST') return handleOpenAIResponses(req, res, record, scenario, body);
    const gemini = url.pathname.match(/^\/v1beta\/models\/([^:]+):(generateContent|streamGenerateContent)$/);
    if (gemini && req.method === 'POST') return handleGemini(req, res, record, scenario, body, gemini[1], gemini[2] === 'streamGenerateContent');
    if (/^\/api\/v1\/services\/aigc\/(text|multimodal)-generation\/generation$/.test(url.pathname) && req.method === 'POST') {
      return handleDashScope(req, res, record, scenario, body);
    }
    if (!url.pathname.endsWith('/chat/completions') || req.method !== 'POST') {
      return sendJson(res, 404, { error: { message: `mock: no route ${req.method} ${url.pathname}`, type: 'invalid_request_error', param: null, code: null } });
    }
    if (badKey(bearer(req))) return openaiBadKey(res);
    if (scenario.hang) return; // never answers; the gateway must time out or abort
    if (scenario.delay_ms) await sleep(scenario.delay_ms, res);
    if (res.destroyed) return;
    if (scenario.reset) return req.socket.destroy();
    if (scenario.redirect) return sendRedirect(res, scenario.redirect);
    if (scenario.status) {
      res.writeHead(scenario.status, { 'content-type': scenario.error_content_type || 'application/json', 'x-request-id': 'req_mock_error', ...(scenario.error_headers || {}) });
      return res.end(scenario.error_body ?? JSON.stringify({ error: { message: `mock error ${scenario.status}`, type: 'server_error', param: null, code: 'mock_error' } }));
    }
    if (scenario.malformed) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(malformedBody(scenario));
    }
    const answer = buildAnswer(body, scenario);
    if ((body?.stream || scenario.always_stream) && !scenario.ignore_stream) return streamAnswer(res, record, answer, body, scenario);
    res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'req_mock_1', 'x-ratelimit-remaining-requests': '99' });
    res.end(JSON.stringify(answer));
  });

  return new Promise((resolve) => {
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolve({
        url: `http://${host}:${actual}`,
        server,
        requests,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}

function buildAnswer(body, scenario) {
  const message = { role: 'assistant', content: scenario.tool_calls ? (scenario.content ?? null) : contentFor(scenario) };
  if (scenario.reasoning_content) message.reasoning_content = scenario.reasoning_content;
  if (scenario.tool_calls) message.tool_calls = scenario.tool_calls;
  const completionTokens = scenario.huge_content_bytes ? Math.ceil(scenario.huge_content_bytes / 6) : [...(message.content || '')].length;
  return {
    id: 'chatcmpl-mock123',
    object: 'chat.completion',
    created: 1700000000,
    model: body?.model || 'mock-model',
    system_fingerprint: 'fp_mock',
    choices: [{ index: 0, message, logprobs: null, finish_reason: scenario.finish_reason || (scenario.tool_calls ? 'tool_calls' : 'stop') }],
    usage: scenario.usage || { prompt_tokens: 11, completion_tokens: completionTokens, total_tokens: 11 + completionTokens },
  };
}

async function streamAnswer(res, record, answer, body, scenario) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': 'req_mock_stream' });
  if (scenario.first_event_delay_ms) {
    res.flushHeaders();
    await sleep(scenario.first_event_delay_ms, res);
  }
  const base = { id: answer.id, object: 'chat.completion.chunk', created: answer.created, model: answer.model, system_fingerprint: 'fp_mock' };
  const msg = answer.choices[0].message;
  const events = [{ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }];
  for (const text of contentPieces(msg.content, scenario, 5)) {
    events.push({ ...base, choices: [{ index: 0, delta: { content: text }, finish_reason: null }] });
  }
  (msg.tool_calls || []).forEach((call, index) => {
    events.push({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }, finish_reason: null }] });
    events.push({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: call.function.arguments } }] }, finish_reason: null }] });
  });
  events.push({ ...base, choices: [{ index: 0, delta: {}, finish_reason: answer.choices[0].finish_reason }] });
  if (body.stream_options?.include_usage) events.push({ ...base, choices: [], usage: answer.usage });
  // The error event takes the place of the third content-or-later event (before the finish).
  const errorAt = Math.min(3, events.length - 1);
  for (const event of events) {
    if (res.destroyed) return;
    if (scenario.cut_after !== undefined && record.eventsSent >= scenario.cut_after) {
      // A half-written event, then the connection dies.
      res.write('data: {"id":"chatcmpl-mock123","choi');
      await sleep(20, res);
      return res.socket?.destroy();
    }
    if (scenario.stream_error_event !== undefined && record.eventsSent === errorAt) {
      const error = { error: { message: scenario.stream_error_event, type: 'server_error', param: null, code: null } };
      return res.end(`data: ${JSON.stringify(error)}\n\n`);
    }
    await write(res, `data: ${JSON.stringify(event)}\n\n`);
    record.eventsSent++;
    if (scenario.chunk_delay_ms) await sleep(scenario.chunk_delay_ms, res);
  }
  res.end('data: [DONE]\n\n');
}

const bearer = (req) => (req.headers.authorization || '').replace(/^Bearer\s+/i, '');
const badKey = (key) => typeof key === 'string' && key.startsWith('bad');
const openaiBadKey = (res) => sendJson(res, 401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
const geminiBadKey = (res) => sendJson(res, 400, { error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' }] } });

/** Splits text into pieces of `size` characters (code points). */
function pieces(text, size) {
  const chars = [...(text || '')];
  const out = [];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}

/** Common start of a native answer: key check, hang, delay, error status, garbage. Returns true when handled. */
async function preamble(res, scenario, refuse, { errorBody = '{}', errorHeaders = {} } = {}) {
  if (refuse) { refuse(); return true; }
  if (scenario.hang) return true;
  if (scenario.delay_ms) await sleep(scenario.delay_ms, res);
  if (res.destroyed) return true;
  if (scenario.reset) { res.socket.destroy(); return true; }
  if (scenario.redirect) { sendRedirect(res, scenario.redirect); return true; }
  if (scenario.status) {
    res.writeHead(scenario.status, { 'content-type': scenario.error_content_type || 'application/json', ...errorHeaders, ...(scenario.error_headers || {}) });
    res.end(scenario.error_body ?? errorBody);
    return true;
  }
  if (scenario.malformed) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(malformedBody(scenario));
    return true;
  }
  return false;
}

async function writeEvents(res, record, scenario, frames, errorFrame) {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  if (scenario.first_event_delay_ms) {
    res.flushHeaders();
    await sleep(scenario.first_event_delay_ms, res);
  }
  const errorAt = Math.min(2, frames.length - 1);
  for (const frame of frames) {
    if (res.destroyed) return;
    if (errorFrame && record.eventsSent === errorAt) return res.end(errorFrame);
    if (scenario.cut_after !== undefined && record.eventsSent >= scenario.cut_after) {
      res.write('data: {"candidates":[{"conte');
      await sleep(20, res);
      return res.socket?.destroy();
    }
    await write(res, frame);
    record.eventsSent++;
    if (scenario.chunk_delay_ms) await sleep(scenario.chunk_delay_ms, res);
  }
  res.end();
}

async function handleGemini(req, res, record, scenario, body, model, stream) {
  record.provider = 'gemini';
  record.model = model;
  const refuse = badKey(req.headers['x-goog-api-key']) ? () => geminiBadKey(res) : null;
  if (await preamble(res, scenario, refuse)) return;
  const usageMetadata = scenario.usage || { promptTokenCount: 8, candidatesTokenCount: 12, totalTokenCount: 20 };
  if (scenario.blocked) {
    return sendJson(res, 200, { promptFeedback: { blockReason: scenario.blocked }, usageMetadata });
  }
  const content = scenario.tool_calls ? (scenario.content ?? '') : contentFor(scenario);
  // A tool call's `thought_signature` becomes the part's thoughtSignature, as Gemini 3 sends it.
  const callParts = (scenario.tool_calls || []).map((c) => ({
    functionCall: { name: c.function.name, args: JSON.parse(c.function.arguments) },
    ...(c.thought_signature ? { thoughtSignature: c.thought_signature } : {}),
  }));
  const thought = scenario.reasoning_content ? [{ text: scenario.reasoning_content, thought: true }] : [];
  const finishReason = scenario.finish_reason || 'STOP';
  if (!stream) {
    const parts = [...thought, ...(content ? [{ text: content }] : []), ...callParts];
    const logprobs = scenario.logprobs_result ? { logprobsResult: scenario.logprobs_result } : {};
    return sendJson(res, 200, { candidates: [{ content: { role: 'model', parts }, finishReason, index: 0, ...logprobs }], usageMetadata, modelVersion: model, responseId: 'gemini-resp-1' });
  }
  const events = [];
  if (thought.length) events.push({ candidates: [{ content: { role: 'model', parts: thought }, index: 0 }] });
  for (const text of contentPieces(content, scenario, 6)) events.push({ candidates: [{ content: { role: 'model', parts: [{ text }] }, index: 0 }] });
  // The logprobs knob rides on the first content event.
  if (scenario.logprobs_result && events.length > thought.length) events[thought.length].candidates[0].logprobsResult = scenario.logprobs_result;
  events.push({ candidates: [{ content: { role: 'model', parts: callParts.length ? callParts : [{ text: '' }] }, finishReason, index: 0 }], usageMetadata, modelVersion: model, responseId: 'gemini-resp-1' });
  const errorFrame = scenario.stream_error_event !== undefined
    ? `data: ${JSON.stringify({ error: { code: 500, message: scenario.stream_error_event, status: 'INTERNAL' } })}\r\n\r\n`
    : null;
  return writeEvents(res, record, scenario, events.map((e) => `data: ${JSON.stringify(e)}\r\n\r\n`), errorFrame);
}

async function handleDashScope(req, res, record, scenario, body) {
  record.provider = 'dashscope';
  const refuse = badKey(bearer(req))
    ? () => sendJson(res, 401, { code: 'InvalidApiKey', message: 'Invalid API-key provided.', request_id: 'ds-req-bad' })
    : null;
  if (await preamble(res, scenario, refuse)) return;
  const multimodal = record.path.includes('multimodal');
  const usage = scenario.usage || { input_tokens: 9, output_tokens: 14, total_tokens: 23 };
  const requestId = 'ds-req-1';
  const content = scenario.tool_calls ? (scenario.content ?? '') : contentFor(scenario);
  const wrap = (text) => (multimodal ? [{ text }] : text);
  const finish = scenario.finish_reason || (scenario.tool_calls ? 'tool_calls' : 'stop');
  if (req.headers['x-dashscope-sse'] !== 'enable') {
    const message = { role: 'assistant', content: wrap(content) };
    if (scenario.reasoning_content) message.reasoning_content = scenario.reasoning_content;
    if (scenario.tool_calls) message.tool_calls = scenario.tool_calls.map((c, index) => ({ ...c, index }));
    const logprobs = scenario.logprobs ? { logprobs: scenario.logprobs } : {};
    return sendJson(res, 200, { output: { choices: [{ finish_reason: finish, message, ...logprobs }] }, usage, request_id: requestId });
  }
  if (scenario.stream_error) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`id:1\nevent:result\n:HTTP_STATUS/200\ndata:${JSON.stringify({ output: { choices: [{ message: { role: 'assistant', content: wrap('partial') }, finish_reason: 'null' }] }, usage, request_id: requestId })}\n\n`);
    return res.end(`id:2\nevent:error\n:HTTP_STATUS/400\ndata:${JSON.stringify({ code: scenario.stream_error, message: 'Output data may contain inappropriate content.', request_id: requestId })}\n\n`);
  }
  const events = [];
  if (scenario.reasoning_content) events.push({ message: { role: 'assistant', content: wrap(''), reasoning_content: scenario.reasoning_content }, finish_reason: 'null' });
  for (const text of contentPieces(content, scenario, 4)) events.push({ message: { role: 'assistant', content: wrap(text) }, finish_reason: 'null' });
  const firstText = scenario.reasoning_content ? 1 : 0;
  if (scenario.logprobs && events.length > firstText) events[firstText].logprobs = scenario.logprobs;
  (scenario.tool_calls || []).forEach((c, index) => {
    events.push({ message: { role: 'assistant', content: wrap(''), tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.function.name, arguments: '' } }] }, finish_reason: 'null' });
    events.push({ message: { role: 'assistant', content: wrap(''), tool_calls: [{ index, id: '', type: 'function', function: { arguments: c.function.arguments } }] }, finish_reason: 'null' });
  });
  events.push({ message: { role: 'assistant', content: wrap('') }, finish_reason: finish });
  const frames = events.map((choice, i) => `id:${i + 1}\nevent:result\n:HTTP_STATUS/200\ndata:${JSON.stringify({ output: { choices: [choice] }, usage, request_id: requestId })}\n\n`);
  const errorFrame = scenario.stream_error_event !== undefined
    ? `id:${frames.length + 1}\nevent:error\n:HTTP_STATUS/500\ndata:${JSON.stringify({ code: 'InternalError', message: scenario.stream_error_event, request_id: requestId })}\n\n`
    : null;
  return writeEvents(res, record, scenario, frames, errorFrame);
}

// ---- embeddings -----------------------------------------------------------------------------

/** Vector length when a request names no dimensions. */
export const DEFAULT_EMBEDDING_DIMS = 8;
/** Gemini batchEmbedContents: at most this many requests per call (enforced by the real API). */
export const GEMINI_EMBED_BATCH_LIMIT = 100;
/** DashScope text-embedding: texts per call (documented "max rows"): v3/v4, and v1/v2. */
export const DASHSCOPE_EMBED_BATCH_LIMIT = 10;
export const DASHSCOPE_EMBED_BATCH_LIMIT_V1 = 25;

/**
 * The mock's embedding of a text: FNV-1a of its UTF-8 bytes seeds xorshift32; each value is an
 * integer / 10000 in [-1, 1] (so it has at most four decimals). Same text, same vector.
 */
export function mockEmbedding(text, dims = DEFAULT_EMBEDDING_DIMS) {
  const n = Number.isInteger(dims) && dims > 0 ? dims : DEFAULT_EMBEDDING_DIMS;
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(String(text), 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  if (h === 0) h = 0x9e3779b9;
  const out = [];
  for (let i = 0; i < n; i++) {
    h ^= h << 13; h >>>= 0;
    h ^= h >>> 17;
    h ^= h << 5; h >>>= 0;
    out.push(((h % 20001) - 10000) / 10000);
  }
  return out;
}

/** The mock's token count of one input: words of a string (at least 1), or a token array's length. */
export function mockTokens(input) {
  if (Array.isArray(input)) return input.length;
  return Math.max(1, String(input).trim().split(/\s+/).filter(Boolean).length);
}

/** Base64 of the values as float32 little-endian, as OpenAI answers encoding_format "base64". */
export function float32Base64(values) {
  const buf = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}

/** The float32 little-endian values of a base64 string (what the SDKs decode). */
export function decodeFloat32Base64(text) {
  const buf = Buffer.from(text, 'base64');
  const out = [];
  for (let i = 0; i + 4 <= buf.length; i += 4) out.push(buf.readFloatLE(i));
  return out;
}

const GOOGLE_STATUS = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' };
const DASHSCOPE_CODE = { 400: 'InvalidParameter', 401: 'InvalidApiKey', 403: 'AccessDenied', 404: 'ModelNotFound', 429: 'Throttling.RateQuota', 500: 'InternalError', 503: 'ServiceUnavailable' };
const openaiError = (message, type = 'invalid_request_error', code = null, param = null) => ({ error: { message, type, param, code } });
const googleError = (code, message) => ({ error: { code, message, status: GOOGLE_STATUS[code] || 'UNKNOWN' } });
const dashscopeError = (status, message, code = DASHSCOPE_CODE[status] || 'InternalError') => ({ code, message, request_id: 'ds-emb-req-error' });

function embeddingRecord(record, provider, texts, dims) {
  Object.assign(record, { kind: 'embeddings', provider, texts, dims });
}

/** Usage from the scenario (null: none) or the computed default. */
function usageOr(scenario, computed) {
  if (scenario.usage === null) return undefined;
  return scenario.usage ?? computed;
}

/** An OpenAI-compatible upstream that serves the Responses API itself (`native_responses`). */
async function handleOpenAIResponses(req, res, record, scenario, body) {
  record.provider = 'openai-responses';
  const refuse = badKey(bearer(req)) ? () => openaiBadKey(res) : null;
  const errorBody = JSON.stringify({ error: { message: `mock error ${scenario.status}`, type: 'server_error', param: null, code: 'mock_error' } });
  if (await preamble(res, scenario, refuse, { errorBody })) return;
  const text = contentFor(scenario);
  const item = { id: 'msg_native_1', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] };
  const response = { id: 'resp_native_1', object: 'response', created_at: 1, status: 'completed', model: body?.model, output: [item],
    previous_response_id: body?.previous_response_id ?? null, usage: { input_tokens: 5, output_tokens: 3, total_tokens: 8 } };
  if (!body?.stream) return sendJson(res, 200, response);
  let n = 0;
  const frame = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: n++, ...data })}\n\n`;
  const frames = [
    frame('response.created', { response: { ...response, status: 'in_progress', output: [] } }),
    frame('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } }),
    ...contentPieces(text, scenario, 4).map((delta) => frame('response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta })),
    frame('response.output_item.done', { output_index: 0, item }),
    frame('response.completed', { response }),
  ];
  return writeEvents(res, record, scenario, frames, null);
}

async function handleOpenAIEmbeddings(req, res, record, scenario, body) {
  record.kind = 'embeddings';
  record.provider = 'openai';
  const refuse = badKey(bearer(req)) ? () => openaiBadKey(res) : null;
  const errorBody = JSON.stringify(openaiError(`mock error ${scenario.status}`, 'server_error', 'mock_error'));
  if (await preamble(res, scenario, refuse, { errorBody, errorHeaders: { 'x-request-id': 'req_mock_error' } })) return;
  if (!body || typeof body !== 'object' || Array.isArray(body)) return sendJson(res, 400, openaiError('We could not parse the JSON body of your request.'));
  if (typeof body.model !== 'string' || !body.model) return sendJson(res, 400, openaiError('you must provide a model parameter'));
  const inputs = openaiInputs(body.input);
  if (!inputs) return sendJson(res, 400, openaiError("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", 'invalid_request_error', null, 'input'));
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    return sendJson(res, 400, openaiError(`'${format}' is not one of ['float', 'base64'] - 'encoding_format'`, 'invalid_request_error', null, 'encoding_format'));
  }
  const dims = body.dimensions ?? DEFAULT_EMBEDDING_DIMS;
  const texts = inputs.map((i) => (typeof i === 'string' ? i : JSON.stringify(i)));
  embeddingRecord(record, 'openai', texts, dims);
  const tokens = inputs.reduce((n, i) => n + mockTokens(i), 0);
  const answer = {
    object: 'list',
    data: texts.map((text, index) => {
      const values = mockEmbedding(text, dims);
      return { object: 'embedding', index, embedding: format === 'base64' ? float32Base64(values) : values };
    }),
    model: body.model,
  };
  const usage = usageOr(scenario, { prompt_tokens: tokens, total_tokens: tokens });
  if (usage) answer.usage = usage;
  res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'req_mock_emb', 'openai-processing-ms': '7' });
  res.end(JSON.stringify(answer));
}

/** OpenAI `input` as a list of inputs (strings or token arrays), or null when invalid. */
function openaiInputs(input) {
  const isTokens = (a) => Array.isArray(a) && a.length > 0 && a.every((t) => Number.isInteger(t) && t >= 0);
  if (typeof input === 'string') return input.length ? [input] : null;
  if (!Array.isArray(input) || input.length === 0 || input.length > 2048) return null;
  if (input.every((i) => typeof i === 'string')) return input.every((i) => i.length) ? input : null;
  if (isTokens(input)) return [input];
  if (input.every(isTokens)) return input;
  return null;
}

async function handleGeminiEmbeddings(req, res, record, scenario, body, model, batch) {
  record.kind = 'embeddings';
  record.provider = 'gemini';
  record.model = model;
  const key = req.headers['x-goog-api-key'] || new URL(req.url, 'http://mock').searchParams.get('key');
  const refuse = badKey(key) ? () => geminiBadKey(res) : null;
  const errorBody = JSON.stringify(googleError(scenario.status, `mock error ${scenario.status}`));
  if (await preamble(res, scenario, refuse, { errorBody })) return;
  const invalid = (message) => sendJson(res, 400, googleError(400, message));
  if (!body || typeof body !== 'object') return invalid('Invalid JSON payload received.');
  const requests = batch ? body.requests : [body];
  const where = batch ? 'BatchEmbedContentsRequest.requests' : 'EmbedContentRequest';
  if (!Array.isArray(requests) || requests.length === 0) return invalid(`* ${where}: requests is not specified`);
  const limit = scenario.max_batch ?? GEMINI_EMBED_BATCH_LIMIT;
  if (batch && requests.length > limit) return invalid(`* BatchEmbedContentsRequest.requests: at most ${limit} requests can be in one batch`);
  const texts = [];
  const dimsList = [];
  for (const [i, r] of requests.entries()) {
    const at = batch ? `${where}[${i}]` : where;
    if (batch && r?.model !== `models/${model}`) {
      return invalid(`* ${at}.model: the model of each request must be the batch's, models/${model} (got ${JSON.stringify(r?.model ?? null)})`);
    }
    const parts = r?.content?.parts;
    const text = Array.isArray(parts) ? parts.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('') : '';
    if (!text) return invalid(`* ${at}.content: contents is not specified`);
    texts.push(text);
    dimsList.push(r.outputDimensionality ?? DEFAULT_EMBEDDING_DIMS);
  }
  embeddingRecord(record, 'gemini', texts, dimsList);
  const tokens = texts.reduce((n, t) => n + mockTokens(t), 0);
  const usageMetadata = usageOr(scenario, { promptTokenCount: tokens, promptTokenDetails: [{ modality: 'TEXT', tokenCount: tokens }] });
  const embeddings = texts.map((t, i) => ({ values: mockEmbedding(t, dimsList[i]) }));
  const answer = batch ? { embeddings } : { embedding: embeddings[0] };
  if (usageMetadata) answer.usageMetadata = usageMetadata;
  return sendJson(res, 200, answer);
}

async function handleDashScopeEmbeddings(req, res, record, scenario, body) {
  record.kind = 'embeddings';
  record.provider = 'dashscope';
  const refuse = badKey(bearer(req))
    ? () => sendJson(res, 401, { code: 'InvalidApiKey', message: 'Invalid API-key provided.', request_id: 'ds-req-bad' })
    : null;
  const errorBody = JSON.stringify(dashscopeError(scenario.status, `mock error ${scenario.status}`));
  if (await preamble(res, scenario, refuse, { errorBody })) return;
  const invalid = (message) => sendJson(res, 400, dashscopeError(400, message, 'InvalidParameter'));
  if (!body || typeof body !== 'object') return invalid('Request body is not valid JSON.');
  const model = body.model;
  if (typeof model !== 'string' || !model) return invalid('Model not specified: model is required.');
  const texts = body.input?.texts;
  if (!Array.isArray(texts) || texts.length === 0 || !texts.every((t) => typeof t === 'string' && t.length)) {
    return invalid('<400> InternalError.Algo.InvalidParameter: Value error, contents is neither str nor list of str.: input.contents');
  }
  const limit = scenario.max_batch ?? (/^text-embedding-v[34]\b/.test(model) ? DASHSCOPE_EMBED_BATCH_LIMIT : DASHSCOPE_EMBED_BATCH_LIMIT_V1);
  if (texts.length > limit) {
    return invalid(`<400> InternalError.Algo.InvalidParameter: Value error, batch size is invalid, it should not be larger than ${limit}.: input.contents`);
  }
  const dims = body.parameters?.dimension ?? DEFAULT_EMBEDDING_DIMS;
  embeddingRecord(record, 'dashscope', texts, dims);
  const embeddings = texts.map((t, i) => ({ text_index: i, embedding: mockEmbedding(t, dims) }));
  if (scenario.embeddings_reversed) embeddings.reverse();
  const tokens = texts.reduce((n, t) => n + mockTokens(t), 0);
  const answer = { output: { embeddings } };
  const usage = usageOr(scenario, { total_tokens: tokens });
  if (usage) answer.usage = usage;
  answer.request_id = `ds-emb-req-${record.seq}`;
  return sendJson(res, 200, answer);
}

/** Whether a chat request (OpenAI, Gemini or DashScope wire format) carries a tool result. */
function hasToolResult(body) {
  if (!body || typeof body !== 'object') return false;
  const openai = Array.isArray(body.messages) && body.messages.some((m) => m?.role === 'tool');
  const gemini = Array.isArray(body.contents) && body.contents.some((c) => c?.parts?.some?.((p) => p?.functionResponse));
  const dashscope = Array.isArray(body.input?.messages) && body.input.messages.some((m) => m?.role === 'tool');
  return openai || gemini || dashscope;
}

/** The `then_content` knob: once the conversation holds a tool result, answer that text instead of the tool calls. */
function afterToolResult(scenario, body) {
  if (scenario.then_content === undefined || !hasToolResult(body)) return scenario;
  const { tool_calls: _calls, ...rest } = scenario;
  return { ...rest, content: scenario.then_content };
}

/** The credential a request carries: Bearer token, else x-goog-api-key, else `key` query param. */
function credential(req, url) {
  return bearer(req) || req.headers['x-goog-api-key'] || url.searchParams.get('key') || '';
}

const FAILURE_KNOBS = ['status', 'hang', 'reset', 'delay_ms', 'malformed', 'redirect', 'cut_after', 'stream_error_event', 'stream_error'];

/** The scenario with its `by_key` knobs for `key` merged in, and its failure knobs dropped past `times`. */
function retryKnobs(scenario, key, nth) {
  let out = scenario;
  if (scenario.by_key && Object.hasOwn(scenario.by_key, key)) out = { ...scenario, ...scenario.by_key[key] };
  if (out.times !== undefined && nth > out.times) {
    out = { ...out };
    for (const knob of FAILURE_KNOBS) delete out[knob];
  }
  return out;
}

/** With echo_key, the scenario's texts with {{KEY}} / {{KEY_URL}} replaced by the received key. */
function echoKey(scenario, key) {
  if (!scenario.echo_key) return scenario;
  const fill = (v) => (typeof v === 'string'
    ? v.replaceAll('{{KEY_URL}}', encodeURIComponent(key)).replaceAll('{{KEY}}', key)
    : v);
  const out = { ...scenario, key };
  for (const field of ['content', 'reasoning_content', 'error_body', 'stream_error', 'stream_error_event']) {
    if (field in out) out[field] = fill(out[field]);
  }
  return out;
}

function malformedBody(scenario) {
  return scenario.echo_key
    ? `<html>upstream proxy error for key ${scenario.key} (${encodeURIComponent(scenario.key)})</html>`
    : '<html>this is not json</html>';
}

/** Exactly `bytes` bytes of ASCII words. */
export function hugeText(bytes) {
  const unit = 'lorem ipsum ';
  return unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
}

function contentFor(scenario) {
  if (scenario.huge_content_bytes) return hugeText(scenario.huge_content_bytes);
  return scenario.content ?? DEFAULT_CONTENT;
}

/** Stream pieces of the content: 64 KiB slices of a huge (ASCII) answer, else chunk_chars code points. */
function contentPieces(content, scenario, defaultSize) {
  if (!scenario.huge_content_bytes) return pieces(content, scenario.chunk_chars || defaultSize);
  const out = [];
  for (let i = 0; i < content.length; i += 65536) out.push(content.slice(i, i + 65536));
  return out;
}

function sendRedirect(res, { status = 302, location }) {
  res.writeHead(status, { location, 'content-type': 'text/plain' });
  res.end(`Redirecting to ${location}`);
}

/** Writes, waiting for the socket to drain (or close) when its buffer is full. */
function write(res, chunk) {
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
    res.on('drain', done);
    res.on('close', done);
  });
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

function sleep(ms, res) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    res?.on('close', () => { clearTimeout(t); resolve(); });
  });
}

// Run standalone: `node tests/mock/upstream.mjs [port]`
if (import.meta.url === `file://${process.argv[1]}`) {
  const mock = await startMockUpstream({ port: Number(process.argv[2] || 0) });
  console.log(`mock upstream on ${mock.url}`);
}
