// The gateway's trust guarantees end to end (README "Security"): secrets scrubbed everywhere,
// credential headers fingerprinted in the log, model ids validated before any upstream call,
// upstream redirects never followed, MAX_RESPONSE_BYTES, upstream headers kept on errors, a
// non-streaming call aborted upstream when its client goes away.
// The mock's trust knobs (echo_key, error_headers, redirect, huge_content_bytes,
// stream_error_event, the models-redirect switch and /__mock/stolen) are documented in
// tests/mock/upstream.mjs. Tests in this file run in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { hugeText } from '../mock/upstream.mjs';
import { GATEWAY_MODULES, startWorkerd, stopAll } from '../workerd.mjs';
import {
  GATEWAY, PUBLIC_GATEWAY, LIMIT_GATEWAY, LOG_GATEWAY, MOCK, ACCESS_TOKEN, ADMIN_TOKEN, SERVER_KEY,
  scenario, received, post, readSse, contentOf, waitFor, stolenHits, modelsRedirect, logRow, chatBody,
} from './helpers.mjs';

const GEMINI_KEY = 'gm-server-secret-key';
const DASHSCOPE_KEY = 'ds-server-secret-key';
// Client keys in public mode; tests/run.mjs also checks the wrangler logs for them.
const CLIENT_KEY = 'sk-client-own-key-123';
const CLIENT_GEMINI_KEY = 'gm-client-own-key-456';
const MODELS_REDIRECT_KEY = 'sk-models-redirect-key-789';
const SECRETS = [SERVER_KEY, GEMINI_KEY, DASHSCOPE_KEY, ACCESS_TOKEN, ADMIN_TOKEN, CLIENT_KEY, CLIENT_GEMINI_KEY];
const MOCK_HOST = new URL(MOCK).host;
const STOLEN = `${MOCK}/__mock/stolen?key=leak`;
const NATIVE = { 'x-fake-stream': 'false' };
const FAKE = { 'x-fake-stream': 'true' };

/** No secret in `text`, neither as it is, nor percent-encoded, nor JSON-escaped. */
function assertNoSecret(text, what, secrets = SECRETS) {
  for (const secret of secrets) {
    for (const form of [secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]) {
      assert.ok(!text.includes(form), `${what}: contains a secret (${secret.slice(0, 3)}…): ${text.slice(0, 1500)}`);
    }
  }
}

/** Reads an SSE response; returns its raw text and data items, and checks it ends with [DONE]. */
async function sse(res, what) {
  assert.equal(res.status, 200, what);
  assert.match(res.headers.get('content-type') || '', /text\/event-stream/, what);
  const raw = [];
  const items = await readSse(res, (item) => raw.push(item.text));
  const data = items.filter((i) => i.kind === 'data');
  assert.equal(data.at(-1)?.text, '[DONE]', `${what}: the stream ends with [DONE]`);
  const text = items.map((i) => i.text).join('\n');
  return { items, data, text };
}

/** The error event right before [DONE]. */
function lastError(data, what) {
  assert.ok(data.length >= 2, `${what}: an error event before [DONE]`);
  const error = JSON.parse(data.at(-2).text).error;
  assert.ok(error && typeof error === 'object', `${what}: the event before [DONE] is an error: ${data.at(-2).text}`);
  return error;
}

/** An error as JSON (status) or as the final error event of a 200 stream. */
async function errorOf(res, what) {
  if ((res.headers.get('content-type') || '').includes('text/event-stream')) {
    const { data, text } = await sse(res, what);
    return { error: lastError(data, what), text, streamed: true };
  }
  const text = await res.text();
  return { error: JSON.parse(text).error, text, streamed: false, status: res.status };
}

const bearer = (key) => ({ authorization: `Bearer ${key}` });

// ---- 1. scrubbing ---------------------------------------------------------------------------

test('scrubbing: keys echoed by the upstream never reach the client nor the request log', async () => {
  const requestIds = [];
  const keep = (res) => { requestIds.push(res.headers.get('x-request-id')); return res; };

  // (a) A malformed 200 that quotes the key (as is and URL-encoded): 502, scrubbed.
  for (const model of ['gpt-trust', 'gemini-2.5-flash']) {
    const tag = await scenario({ echo_key: true, malformed: true });
    const res = keep(await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: tag }] }));
    const text = await res.text();
    assert.equal(res.status, 502, `${model}: ${text}`);
    assert.equal(JSON.parse(text).error.code, 'upstream_malformed_response');
    assertNoSecret(text, `${model} malformed`);
    assert.match(text, /\*\*\*/, `${model}: the key's place is marked`);
    const [upstream] = await received(tag);
    assert.ok(upstream, `${model}: the upstream was called`);
  }

  // (b) Passthrough and translated streams whose content and mid-stream error event echo the key.
  const streamCases = [
    { model: 'gpt-trust', base: GATEWAY, headers: {} },
    { model: 'gemini-2.5-flash', base: GATEWAY, headers: {} },
    { model: 'qwen-plus', base: PUBLIC_GATEWAY, headers: bearer('ignored-client-key') },
  ];
  for (const { model, base, headers } of streamCases) {
    const tag = await scenario({
      echo_key: true, chunk_chars: 500,
      content: `Your key is {{KEY}}, url form {{KEY_URL}}.`,
      stream_error_event: `upstream failed for key {{KEY}} (see https://up.test/x?key={{KEY_URL}})`,
    });
    const res = await post('/v1/chat/completions', { model, stream: true, messages: [{ role: 'user', content: tag }] },
      { base, headers: { ...headers, ...NATIVE } });
    if (base === GATEWAY) keep(res);
    const { data, text } = await sse(res, `${model} stream`);
    assertNoSecret(text, `${model} stream`);
    assert.match(contentOf(data.slice(0, -2)), /Your key is \*\*\*/, `${model}: the content arrived, scrubbed`);
    lastError(data, `${model} stream`);
    const errors = data.slice(0, -1).map((d) => JSON.parse(d.text).error).filter(Boolean);
    assert.equal(errors.length, 1, `${model}: exactly one error event: ${JSON.stringify(errors)}`);
    assert.ok(errors.some((e) => /upstream failed for key \*\*\*/.test(e.message)),
      `${model}: the upstream's error event is relayed, scrubbed: ${JSON.stringify(errors)}`);
    assert.equal((await received(tag)).length, 1);
  }

  // (c) A stream broken by the upstream right after an event that holds the key.
  // OpenAI events: role, content, finish; Gemini: content, finish — cut after the content.
  for (const [model, cutAfter] of [['gpt-trust', 2], ['gemini-2.5-flash', 1]]) {
    const tag = await scenario({ echo_key: true, chunk_chars: 500, content: 'leaking {{KEY}} now', cut_after: cutAfter });
    const res = keep(await post('/v1/chat/completions', { model, stream: true, messages: [{ role: 'user', content: tag }] }, { headers: NATIVE }));
    const { data, text } = await sse(res, `${model} cut stream`);
    assertNoSecret(text, `${model} cut stream`);
    assert.match(contentOf(data.slice(0, -2)), /leaking \*\*\* now/);
    assert.equal(lastError(data, `${model} cut stream`).type, 'upstream_error');
    assert.equal((await received(tag))[0].eventsSent, cutAfter, `${model}: the mock cut the stream`);
  }

  // (d) Fake streams: the answer quotes the key; an error answer quotes it too.
  for (const model of ['gpt-trust', 'gemini-2.5-flash']) {
    const tag = await scenario({ echo_key: true, content: 'fake answer with {{KEY}} and {{KEY_URL}} inside', chunk_chars: 3 });
    const res = keep(await post('/v1/chat/completions', { model, stream: true, messages: [{ role: 'user', content: tag }] }, { headers: FAKE }));
    assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
    const { data, text } = await sse(res, `${model} fake stream`);
    assertNoSecret(text, `${model} fake stream`);
    assert.equal(contentOf(data), 'fake answer with *** and *** inside');
  }
  const echoError = JSON.stringify({ error: { message: 'Incorrect API key provided: {{KEY}} ({{KEY_URL}})', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
  for (const headers of [FAKE, NATIVE]) {
    const tag = await scenario({ echo_key: true, status: 401, error_body: echoError });
    const res = keep(await post('/v1/chat/completions', { model: 'gpt-trust', stream: true, messages: [{ role: 'user', content: tag }] }, { headers }));
    const { error, text } = await errorOf(res, `error answer (x-fake-stream ${headers['x-fake-stream']})`);
    assertNoSecret(text, 'error answer');
    assert.match(error.message, /Incorrect API key provided: \*\*\*/);
  }
  const geminiEcho = JSON.stringify({ error: { code: 400, message: 'Bad request for key={{KEY}}', status: 'INVALID_ARGUMENT' } });
  {
    const res = keep(await post('/v1/chat/completions', { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: await scenario({ echo_key: true, status: 400, error_body: geminiEcho }) }] }));
    const text = await res.text();
    assert.equal(res.status, 400);
    assertNoSecret(text, 'gemini error');
  }

  // (e) Public mode: the client's own key, echoed back, is scrubbed too.
  {
    const tag = await scenario({ echo_key: true, content: 'you sent {{KEY}}' });
    const res = await post('/v1/chat/completions', { model: 'gpt-trust', messages: [{ role: 'user', content: tag }] },
      { base: PUBLIC_GATEWAY, headers: bearer(CLIENT_KEY) });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal((await received(tag))[0].headers.authorization, `Bearer ${CLIENT_KEY}`, 'the client key was forwarded and echoed');
    assertNoSecret(text, 'public JSON');
    assert.equal(JSON.parse(text).choices[0].message.content, 'you sent ***');

    const streamTag = await scenario({ echo_key: true, chunk_chars: 500, content: 'stream sent {{KEY}}', stream_error_event: 'bad key {{KEY}}' });
    const streamed = await post('/v1/chat/completions', { model: 'gpt-trust', stream: true, messages: [{ role: 'user', content: streamTag }] },
      { base: PUBLIC_GATEWAY, headers: { ...bearer(CLIENT_KEY), ...NATIVE } });
    const { data: streamData, text: streamText } = await sse(streamed, 'public stream');
    assertNoSecret(streamText, 'public stream');
    assert.match(contentOf(streamData.slice(0, -2)), /stream sent \*\*\*/);
    assert.ok(streamData.some((d) => /bad key \*\*\*/.test(d.text)), 'the error event arrived, scrubbed');

    const fakeTag = await scenario({ echo_key: true, content: 'fake sent {{KEY}}' });
    const fake = await post('/v1/chat/completions', { model: 'gpt-trust', stream: true, messages: [{ role: 'user', content: fakeTag }] },
      { base: PUBLIC_GATEWAY, headers: bearer(CLIENT_KEY) });
    const { data: fakeData, text: fakeText } = await sse(fake, 'public fake stream');
    assertNoSecret(fakeText, 'public fake stream');
    assert.equal(contentOf(fakeData), 'fake sent ***');

    const gemTag = await scenario({ echo_key: true, status: 400, error_body: geminiEcho });
    const gem = await post('/v1/chat/completions', { model: 'gemini-2.5-pro', messages: [{ role: 'user', content: gemTag }] },
      { base: PUBLIC_GATEWAY, headers: bearer(CLIENT_GEMINI_KEY) });
    const gemText = await gem.text();
    assert.equal((await received(gemTag))[0]?.headers['x-goog-api-key'], CLIENT_GEMINI_KEY, `the client key went to Gemini (${gem.status} ${gemText})`);
    assert.equal(gem.status, 400);
    assertNoSecret(gemText, 'public gemini error');
    assert.match(gemText, /\*\*\*/);

    // The key sent as X-Api-Key is scrubbed as well.
    const xTag = await scenario({ echo_key: true, content: 'x-api-key sent {{KEY}}' });
    const x = await post('/v1/chat/completions', { model: 'gpt-trust', messages: [{ role: 'user', content: xTag }] },
      { base: PUBLIC_GATEWAY, headers: { authorization: '', 'x-api-key': CLIENT_KEY } });
    const xText = await x.text();
    assert.equal((await received(xTag))[0]?.headers.authorization, `Bearer ${CLIENT_KEY}`, xText);
    assertNoSecret(xText, 'public X-Api-Key');
    assert.equal(JSON.parse(xText).choices[0].message.content, 'x-api-key sent ***');

    // A key the client sends as X-Goog-Api-Key is a secret in play too: an answer that spells
    // it out (with the request authorised by another key) is scrubbed.
    const gTag = await scenario({ content: `goog key ${CLIENT_GEMINI_KEY} and ${encodeURIComponent(CLIENT_GEMINI_KEY)}` });
    const g = await post('/v1/chat/completions', { model: 'gpt-trust', messages: [{ role: 'user', content: gTag }] },
      { base: PUBLIC_GATEWAY, headers: { ...bearer(CLIENT_KEY), 'x-goog-api-key': CLIENT_GEMINI_KEY } });
    const gText = await g.text();
    assert.equal(g.status, 200, gText);
    assertNoSecret(gText, 'public X-Goog-Api-Key');
    assert.equal(JSON.parse(gText).choices[0].message.content, 'goog key *** and ***');
  }

  // (f) The request log of the GATEWAY calls above: no key in any column.
  assert.ok(requestIds.length >= 10 && requestIds.every(Boolean), 'every call has an X-Request-Id');
  for (const id of requestIds) {
    const row = await logRow(id);
    assert.ok(row, `the log row for ${id} exists`);
    assertNoSecret(JSON.stringify(row), `log row ${id}`);
  }
});

// ---- 2. credential headers in the log -------------------------------------------------------

test('request log: credential-like headers and headers holding a secret are stored as sha256 fingerprints', async () => {
  const tag = await scenario();
  const res = await post('/v1/chat/completions', { model: 'gpt-trust', messages: [{ role: 'user', content: tag }] }, {
    headers: {
      'X-Auth-Token': 'tok-header-secret-1',
      'Api-Key': 'apikey-header-2',
      'Proxy-Authorization': 'Basic cHJveHk6c2VjcmV0',
      'X-Custom': 'contains test-access-token',
      'X-Plain': 'plain-value',
    },
  });
  assert.equal(res.status, 200);
  const row = await logRow(res.headers.get('x-request-id'));
  assert.ok(row, 'the log row exists');
  const text = JSON.stringify(row);
  for (const value of ['tok-header-secret-1', 'apikey-header-2', 'cHJveHk6c2VjcmV0', ACCESS_TOKEN]) {
    assert.ok(!text.includes(value), `the log row holds ${value.slice(0, 6)}… in clear: ${JSON.stringify(row.request_headers)}`);
  }
  const h = row.request_headers;
  assert.equal(typeof h, 'object', JSON.stringify(row));
  assert.match(h['x-auth-token'], /^sha256:/);
  assert.match(h['api-key'], /^sha256:/);
  assert.match(h['proxy-authorization'], /^Basic sha256:/);
  assert.match(h['x-custom'], /^sha256:/, 'a header whose value holds a known secret');
  assert.match(h.authorization, /^Bearer sha256:/);
  assert.equal(h['content-type'], 'application/json');
  assert.equal(h['x-plain'], 'plain-value');
});

// ---- 3. model ids ---------------------------------------------------------------------------

test('invalid model ids are refused with 400 invalid_model before any upstream call', async () => {
  const bad = [
    'gemini-x/../../../../v1beta/files?', 'gemini-x#frag', 'gemini-x:generateContent?key=1&', 'gemini-x y',
    'gemini/gemini x', 'gemini/../files', 'gemini/tunedModels/a/b', 'gpt-a b', 'gpt-tab\tx', `gpt-${'a'.repeat(300)}`,
  ];
  for (const model of bad) {
    const tag = await scenario();
    const res = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: `hi ${tag}` }] });
    const text = await res.text();
    assert.equal(res.status, 400, `${JSON.stringify(model)}: ${text}`);
    const { error } = JSON.parse(text);
    assert.equal(error.code, 'invalid_model', `${JSON.stringify(model)}: ${text}`);
    assert.equal(error.param, 'model');
    assert.deepEqual(await received(tag), [], `${JSON.stringify(model)}: the upstream got nothing`);
  }
  // A valid Gemini id in its `models/…` form still works (routed by the explicit prefix).
  const tag = await scenario({ content: 'valid id' });
  const res = await post('/v1/chat/completions', { model: 'gemini/models/gemini-mock-pro', messages: [{ role: 'user', content: tag }] });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.equal(JSON.parse(text).choices[0].message.content, 'valid id');
  assert.equal((await received(tag))[0].path, '/v1beta/models/gemini-mock-pro:generateContent');
});

test('a model id with whitespace that routes by no pattern (`gemini x`) is also 400 invalid_model', async () => {
  // The guarantee: ids with whitespace are refused as invalid_model before any upstream call.
  // Observed: routing runs first, so `gemini x` (no pattern matches) answers 400
  // model_not_found — no upstream call, but not the invalid_model code.
  const tag = await scenario();
  const res = await post('/v1/chat/completions', { model: 'gemini x', messages: [{ role: 'user', content: `hi ${tag}` }] });
  const text = await res.text();
  assert.equal(res.status, 400, text);
  assert.deepEqual(await received(tag), [], 'the upstream got nothing');
  assert.equal(JSON.parse(text).error.code, 'invalid_model', text);
});

// ---- 4. redirects ---------------------------------------------------------------------------

function assertRedirectError(error, status, what) {
  assert.equal(error.code, 'upstream_redirect', `${what}: ${JSON.stringify(error)}`);
  assert.ok(error.message.includes(String(status)), `${what}: names the status: ${error.message}`);
  assert.ok(error.message.includes(MOCK_HOST), `${what}: names the host: ${error.message}`);
  assert.ok(!error.message.includes('stolen') && !error.message.includes('key=leak'), `${what}: no path or query: ${error.message}`);
}

test('upstream redirects are never followed: 502 upstream_redirect naming only the host', async () => {
  const cases = [
    { model: 'gpt-trust', base: GATEWAY, headers: {}, status: 302 },
    { model: 'gemini-2.5-flash', base: GATEWAY, headers: {}, status: 307 },
    { model: 'qwen-plus', base: PUBLIC_GATEWAY, headers: bearer('any-client-key'), status: 302 },
  ];
  for (const { model, base, headers, status } of cases) {
    for (const mode of ['json', 'passthrough', 'fake']) {
      const what = `${model} ${mode}`;
      const tag = await scenario({ redirect: { status, location: STOLEN } });
      const body = { model, messages: [{ role: 'user', content: tag }], ...(mode === 'json' ? {} : { stream: true }) };
      const res = await post('/v1/chat/completions', body, {
        base, headers: { ...headers, ...(mode === 'fake' ? FAKE : NATIVE) },
      });
      const { error, streamed, status: code } = await errorOf(res, what);
      if (mode !== 'fake') {
        assert.equal(streamed, false, `${what}: nothing was streamed yet, so a JSON error`);
        assert.equal(code, 502, what);
      }
      assertRedirectError(error, status, what);
      assert.equal((await received(tag)).length, 1, `${what}: one upstream call, no retry`);
    }
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(await stolenHits(), [], 'the redirect target was never fetched');
});

test('a redirecting upstream model list makes GET /v1/models answer 502 upstream_redirect', async () => {
  // The switch only affects model-list calls made with one key, so other tests listing
  // models concurrently are unaffected: the OpenAI list on PUBLIC_GATEWAY is fetched with the
  // client's own key; the Gemini list is fetched only with a server key, so LOG_GATEWAY's own
  // Gemini key is used (its /v1/models calls are not logged, so its row counts do not move).
  const cases = [
    { path: '/v1/models', key: MODELS_REDIRECT_KEY, base: PUBLIC_GATEWAY, token: MODELS_REDIRECT_KEY, listed: 'gpt-mock-1' },
    { path: '/v1beta/models', key: 'gm-log-server-key', base: LOG_GATEWAY, token: 'log-access-token', listed: 'gemini-mock-pro' },
  ];
  for (const { path, key, base, token, listed } of cases) {
    const list = () => fetch(`${base}/v1/models`, { headers: bearer(token) });
    try {
      await modelsRedirect({ key, path, status: 302, location: STOLEN });
      const res = await list();
      const text = await res.text();
      assert.equal(res.status, 502, `${path}: ${text}`);
      assertRedirectError(JSON.parse(text).error, 302, `models list via ${path}`);
    } finally {
      await modelsRedirect({ key, off: true });
    }
    const res = await list();
    assert.equal(res.status, 200, `${path}: switched off, the list works again`);
    assert.ok((await res.json()).data.some((m) => m.id === listed), `${path}: ${listed} listed again`);
  }
  assert.deepEqual(await stolenHits(), [], 'the redirect target was never fetched');
});

// ---- 5. MAX_RESPONSE_BYTES ------------------------------------------------------------------

test('LIMIT_GATEWAY: answers over MAX_RESPONSE_BYTES fail with response_too_large; smaller ones pass intact', async () => {
  const call = async (model, mode, bytes) => {
    const tag = await scenario({ huge_content_bytes: bytes });
    const body = { model, messages: [{ role: 'user', content: tag }], ...(mode === 'json' ? {} : { stream: true }) };
    return post('/v1/chat/completions', body, { base: LIMIT_GATEWAY, headers: mode === 'fake' ? FAKE : NATIVE });
  };
  for (const model of ['gpt-trust', 'gemini-2.5-flash']) {
    // Too large.
    const json = await call(model, 'json', 200_000);
    const text = await json.text();
    assert.equal(json.status, 502, `${model} json: ${text.slice(0, 500)}`);
    assert.equal(JSON.parse(text).error.code, 'response_too_large');
    for (const mode of ['passthrough', 'fake']) {
      const { data } = await sse(await call(model, mode, 200_000), `${model} ${mode}`);
      assert.equal(lastError(data, `${model} ${mode}`).code, 'response_too_large', `${model} ${mode}`);
    }
    // Within the limit: intact.
    const expected = hugeText(30_000);
    const ok = await call(model, 'json', 30_000);
    assert.equal(ok.status, 200, `${model} json 30000`);
    assert.equal((await ok.json()).choices[0].message.content, expected, `${model} json 30000 intact`);
    for (const mode of ['passthrough', 'fake']) {
      const { data } = await sse(await call(model, mode, 30_000), `${model} ${mode} 30000`);
      assert.ok(!data.slice(0, -1).some((d) => JSON.parse(d.text).error), `${model} ${mode} 30000: no error event`);
      assert.equal(contentOf(data), expected, `${model} ${mode} 30000 intact`);
    }
  }
});

// ---- 6. upstream headers on errors ----------------------------------------------------------

test('upstream error answers keep retry-after, rate-limit, openai-* and the upstream request id', async () => {
  const origin = 'http://allowed.example:3000';
  const tag = await scenario({
    status: 429,
    error_body: JSON.stringify({ error: { message: 'Rate limit reached', type: 'requests', param: null, code: 'rate_limit_exceeded' } }),
    error_headers: { 'retry-after': '7', 'x-ratelimit-remaining-requests': '0', 'openai-processing-ms': '5', 'x-request-id': 'req_up_1' },
  });
  const res = await post('/v1/chat/completions', { model: 'gpt-trust', messages: [{ role: 'user', content: tag }] }, { headers: { origin } });
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '7');
  assert.equal(res.headers.get('x-ratelimit-remaining-requests'), '0');
  assert.equal(res.headers.get('openai-processing-ms'), '5');
  assert.equal(res.headers.get('x-upstream-request-id'), 'req_up_1');
  assert.notEqual(res.headers.get('x-request-id'), 'req_up_1', 'X-Request-Id stays the gateway\'s own');
  assert.equal((await res.json()).error.code, 'rate_limit_exceeded');
  // Browsers may read them (src/cors.rs EXPOSED_HEADERS).
  assert.equal(res.headers.get('access-control-allow-origin'), origin);
  const exposed = (res.headers.get('access-control-expose-headers') || '').toLowerCase().split(/\s*,\s*/);
  for (const name of ['retry-after', 'x-ratelimit-remaining-requests', 'openai-processing-ms', 'x-upstream-request-id', 'x-request-id']) {
    assert.ok(exposed.includes(name), `${name} exposed: ${exposed}`);
  }

  const gemini = await post('/v1/chat/completions', { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: await scenario({
    status: 429,
    error_body: JSON.stringify({ error: { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED', details: [
      { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests' }] },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '12.5s' },
    ] } }),
  }) }] });
  assert.equal(gemini.status, 429);
  assert.equal(gemini.headers.get('retry-after'), '13', 'RetryInfo 12.5s rounded up');
  assert.equal((await gemini.json()).error.code, 'RESOURCE_EXHAUSTED');

  const dashscope = await post('/v1/chat/completions', { model: 'qwen-plus', messages: [{ role: 'user', content: await scenario({
    status: 429, error_body: JSON.stringify({ code: 'Throttling', message: 'Requests throttling triggered.', request_id: 'ds-req-9' }),
  }) }] }, { base: PUBLIC_GATEWAY, headers: bearer('any-client-key') });
  assert.equal(dashscope.status, 429);
  assert.equal(dashscope.headers.get('x-upstream-request-id'), 'ds-req-9');
  assert.equal((await dashscope.json()).error.code, 'Throttling');
});

// A client that goes away before a non-streaming answer: the gateway's upstream fetch is
// aborted at once, not left running until UPSTREAM_TIMEOUT_MS. Served by bare workerd (the
// same build, no D1, log off), because wrangler dev's proxy keeps the gateway's side of the
// connection open after its client has gone; the client resets its connection (TCP RST),
// which workerd notices while a request is pending (a plain close it only sees when it writes).
test('a non-streaming call is aborted upstream when its client goes away', async (t) => {
  t.after(stopAll);
  const gateway = await startWorkerd('disconnect', GATEWAY_MODULES, {
    SOURCE_API_URL: MOCK, OPENAI_API_KEY: SERVER_KEY, AUTH_TOKEN: ACCESS_TOKEN,
    UPSTREAM_TIMEOUT_MS: '8000', LOG_REQUESTS: 'false',
  }, { flags: ['enable_request_signal'] });
  const tag = await scenario({ hang: true });
  const url = new URL(`${gateway.url}/v1/chat/completions`);
  const body = JSON.stringify(chatBody(tag));
  const request = http.request({
    host: url.hostname, port: url.port, path: url.pathname, method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${ACCESS_TOKEN}` },
  });
  request.on('error', () => { /* the reset */ });
  request.end(body);
  const arrived = await waitFor(async () => (await received(tag))[0]);
  assert.ok(arrived, 'the call reached the upstream');
  const leftAt = Date.now();
  request.socket.resetAndDestroy();
  const record = await waitFor(async () => {
    const [r] = await received(tag);
    return r?.aborted ? r : null;
  }, { timeoutMs: 6000 });
  assert.ok(record, 'the upstream fetch was aborted before the upstream timeout');
  assert.ok(record.abortedAt - leftAt < 3000, `aborted ${record.abortedAt - leftAt} ms after the client left`);
});

// A base URL that passes the settings' checks (scheme, no spaces, query or fragment) but that
// the runtime cannot parse: every call is a configuration error naming what is wrong, as a
// JSON answer and as a stream's error event, never the key. Served by bare workerd, whose
// settings this test sets alone.
test('an upstream base URL the runtime cannot parse: invalid_configuration, JSON and streamed', async (t) => {
  t.after(stopAll);
  const key = 'sk-unparsable-url-key-7Hq2Lp9Xw4';
  const gateway = await startWorkerd('bad-url', GATEWAY_MODULES, {
    UPSTREAMS: JSON.stringify([{ name: 'bad', kind: 'openai', base_url: 'http://[unclosed', keys: 'BAD_URL_KEYS', models: ['*'] }]),
    BAD_URL_KEYS: key, LOG_REQUESTS: 'false',
  }, { flags: ['enable_request_signal'] });
  const call = (stream) => fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'any-model', stream, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const json = await call(false);
  const text = await json.text();
  assert.equal(json.status, 500, text);
  const { error } = JSON.parse(text);
  assert.equal(error.code, 'invalid_configuration');
  assert.match(error.message, /base URL/);
  assert.ok(!text.includes(key), 'the key is not in the answer');
  const streamed = await call(true);
  const events = await streamed.text();
  const errors = events.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)).error).filter(Boolean);
  assert.equal(errors.length, 1, events);
  assert.equal(errors[0].code, 'invalid_configuration');
  assert.match(events, /data: \[DONE\]/);
  assert.ok(!events.includes(key), 'the key is not in the stream');
});
