// Many upstreams, key pools, retries and fallbacks (issue 9: UPSTREAMS, ROUTES, MAX_ATTEMPTS,
// key pools, X-Gateway-Upstream / X-Gateway-Attempts, the attempt log). Runs against ROUTER_GATEWAY_URL, TOML_GATEWAY_URL and
// BADCONFIG_GATEWAY_URL, whose settings are in tests/run.mjs (routerUpstreams, ROUTER_ROUTES,
// tomlSettings). Three mock upstreams (MOCK, MOCK_B, MOCK_C: separate ports, separate
// scenarios) and a port nobody listens on (DEAD) stand in for the providers; each test asserts
// what every mock received (which key, how often, in which order), what the client got, the
// X-Gateway-Upstream / X-Gateway-Attempts headers and the request-log row with its attempt log.
// Key state (cooldowns, disabled keys) lives in the isolate: every test that depends on it has
// an upstream, a keys secret and a route of its own. Tests in this file run in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import {
  ROUTER_GATEWAY, TOML_GATEWAY, BADCONFIG_GATEWAY, MOCK, MOCK_B, MOCK_C, DEAD,
  scenarioOn, receivedOn, post, readSse, contentOf, waitFor, logRow,
} from './helpers.mjs';

const ACCESS = 'router-access-token';
const ADMIN = 'router-admin-token';
/** The router instance's keys secrets (tests/run.mjs). */
const KEYS = {
  alpha: 'sk-alpha-key-1',
  zhipu: 'zk-zhipu-key-1',
  charlie: 'sk-or-charlie-key-1',
  dead: 'sk-dead-key-1',
  slow: 'sk-slow-key-1',
  gem: 'gm-router-key-1',
  pool401: ['sk-pool401-good-one', 'bad-pool401-revoked', 'sk-pool401-good-two'],
  pool403: ['sk-pool403-a', 'sk-pool403-b'],
  pool429: ['sk-pool429-one', 'sk-pool429-two'],
  solo429: 'sk-solo429-only',
  solo429b: 'sk-solo429b-only',
  fakeup: 'sk-fakeup-key-1',
};
const ALL_SECRETS = [ACCESS, ADMIN, ...Object.values(KEYS).flat(), 'zk-toml-b-key', 'sk-toml-c-key', 'toml-access-token', 'toml-admin-token', 'sk-badconfig-only-key', 'badconfig-access-token'];
const MAX_ATTEMPTS = 3;

assert.ok(ROUTER_GATEWAY && TOML_GATEWAY && BADCONFIG_GATEWAY && MOCK_B && MOCK_C && DEAD,
  'run through tests/run.mjs: it starts the router instances and the extra mocks');

const client = new OpenAI({ baseURL: `${ROUTER_GATEWAY}/v1`, apiKey: ACCESS, maxRetries: 0 });

/** The log's key fingerprint: "sha256:" and the first 8 hex digits of the key's SHA-256. */
const keyHash = (key) => `sha256:${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;

const messages = (tag) => [{ role: 'user', content: `Say hello ${tag}` }];

/** POSTs a chat call to a gateway (the router instance unless said otherwise). */
function chat(model, tag, { base = ROUTER_GATEWAY, token = ACCESS, headers = {}, ...extra } = {}) {
  return post('/v1/chat/completions', { model, messages: messages(tag), ...extra }, { base, headers: { authorization: `Bearer ${token}`, ...headers } });
}

/** X-Gateway-Upstream and X-Gateway-Attempts of a response. */
function gatewayHeaders(res) {
  return { upstream: res.headers.get('x-gateway-upstream'), attempts: res.headers.get('x-gateway-attempts') };
}

function assertNoSecret(text, what) {
  for (const secret of ALL_SECRETS) {
    assert.ok(!text.includes(secret), `${what}: contains a secret (${secret.slice(0, 4)}…)`);
  }
}

/** The request-log row of a response (the router instance's log unless said otherwise). */
async function logOf(res, { base = ROUTER_GATEWAY, token = ADMIN } = {}) {
  const id = res.headers.get('x-request-id');
  assert.ok(id, 'the response has an X-Request-Id');
  const row = await logRow(id, { base, token });
  assert.ok(row, `the call ${id} is in the request log`);
  assertNoSecret(JSON.stringify(row), 'log row');
  return row;
}

/**
 * Checks a log row's upstream, attempts and attempt_log against the expected attempts:
 * [{upstream, model?, key, status}] — status null means a connection error or a timeout
 * (then `error` must say what happened).
 */
async function assertLog(res, expected, { provider = 'openai', status } = {}) {
  const row = await logOf(res);
  const log = row.attempt_log;
  assert.ok(Array.isArray(log), `attempt_log is a parsed array: ${JSON.stringify(log)}`);
  assert.equal(log.length, expected.length, `one attempt_log entry per attempt: ${JSON.stringify(log)}`);
  expected.forEach((want, i) => {
    const got = log[i];
    const what = `attempt ${i + 1} ${JSON.stringify(got)}`;
    assert.equal(got.upstream, want.upstream, what);
    if (want.model !== undefined) assert.equal(got.model, want.model, what);
    assert.equal(got.key, want.key === null ? null : keyHash(want.key), `${what}: the key as its hash prefix`);
    if (got.key !== null) assert.match(got.key, /^sha256:[0-9a-f]{8}$/, what);
    assert.equal(got.status, want.status, what);
    if (want.status === null) assert.ok(typeof got.error === 'string' && got.error.length > 0, `${what}: an error text`);
    if (want.status === 200) assert.equal(got.error, null, what);
    assert.ok(Number.isInteger(got.ms) && got.ms >= 0, `${what}: latency in ms`);
  });
  assert.equal(row.upstream, expected.at(-1).upstream, 'the row names the last attempt\'s upstream');
  assert.equal(Number(row.attempts), expected.length, 'the row counts the attempts');
  assert.equal(row.provider, provider, 'provider is the kind of the last attempt\'s upstream');
  if (status !== undefined) assert.equal(row.status, status);
  return row;
}

/** Reads an SSE response: its items, data items, the content before any error, the error events. */
async function sse(res, what) {
  assert.equal(res.status, 200, what);
  assert.match(res.headers.get('content-type') || '', /text\/event-stream/, what);
  const items = await readSse(res);
  const data = items.filter((i) => i.kind === 'data');
  assert.equal(data.at(-1)?.text, '[DONE]', `${what}: the stream ends with [DONE]`);
  const parsed = data.slice(0, -1).map((d) => JSON.parse(d.text));
  const errors = parsed.filter((p) => p.error);
  const firstError = parsed.findIndex((p) => p.error);
  const before = firstError === -1 ? data.slice(0, -1) : data.slice(0, firstError);
  return { items, data, parsed, errors, content: contentOf(before) };
}

/** The status of the router instance (or another). */
async function status(base = ROUTER_GATEWAY) {
  const res = await fetch(`${base}/api/status`);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assertNoSecret(text, '/api/status');
  return JSON.parse(text);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const openaiError = (message, code = null, type = 'server_error') => ({ error: { message, type, param: null, code } });

// ---- fallbacks across targets ----------------------------------------------------------------

test('503 on the first target: the second target serves; headers and log show both attempts', async () => {
  const tag = await scenarioOn({
    [MOCK]: { status: 503, error_body: JSON.stringify(openaiError('alpha is overloaded')) },
    [MOCK_B]: { content: 'answer from zhipu' },
  });
  const { data, response } = await client.chat.completions.create({ model: 'r-fallback', messages: messages(tag) }).withResponse();
  assert.equal(data.choices[0].message.content, 'answer from zhipu');
  assert.deepEqual(gatewayHeaders(response), { upstream: 'zhipu', attempts: '2' });

  const a = await receivedOn(MOCK, tag);
  const b = await receivedOn(MOCK_B, tag);
  assert.equal(a.length, 1, 'the first target was tried once');
  assert.equal(b.length, 1, 'the second target was tried once');
  assert.deepEqual([a[0].key, a[0].path, a[0].body.model], [KEYS.alpha, '/v1/chat/completions', 'alpha-fb']);
  assert.deepEqual([b[0].key, b[0].path, b[0].body.model], [KEYS.zhipu, '/api/paas/v4/chat/completions', 'glm-fb']);
  assert.ok(a[0].receivedAt <= b[0].receivedAt, 'first target first');
  await assertLog(response, [
    { upstream: 'alpha', model: 'alpha-fb', key: KEYS.alpha, status: 503 },
    { upstream: 'zhipu', model: 'glm-fb', key: KEYS.zhipu, status: 200 },
  ], { status: 200 });
});

test('a model with no route goes to the first upstream whose patterns match; X-Gateway headers are exposed to browsers', async () => {
  const tag = await scenarioOn({ [MOCK]: { content: 'by pattern' } });
  const res = await chat('alpha-by-pattern', tag, { headers: { origin: 'http://app.example' } });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).choices[0].message.content, 'by pattern');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'alpha', attempts: '1' });
  const exposed = (res.headers.get('access-control-expose-headers') || '').toLowerCase().split(/\s*,\s*/);
  assert.ok(exposed.includes('x-gateway-upstream') && exposed.includes('x-gateway-attempts'), `exposed: ${exposed}`);
  const [upstream] = await receivedOn(MOCK, tag);
  assert.deepEqual([upstream.key, upstream.body.model], [KEYS.alpha, 'alpha-by-pattern']);
});

test('connection refused on the first target: the next target serves', async () => {
  const tag = await scenarioOn({ [MOCK]: { content: 'alive after a dead upstream' } });
  const res = await chat('r-dead', tag);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).choices[0].message.content, 'alive after a dead upstream');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'alpha', attempts: '2' });
  const a = await receivedOn(MOCK, tag);
  assert.deepEqual(a.map((r) => [r.key, r.body.model]), [[KEYS.alpha, 'alpha-dead']]);
  await assertLog(res, [
    { upstream: 'dead', model: 'dead-x', key: KEYS.dead, status: null },
    { upstream: 'alpha', model: 'alpha-dead', key: KEYS.alpha, status: 200 },
  ]);
});

test('a target that hangs past its timeout_ms: the next target serves', async () => {
  const tag = await scenarioOn({ [MOCK]: { hang: true }, [MOCK_C]: { content: 'charlie after a hang' } });
  const started = Date.now();
  const res = await chat('r-slow', tag);
  const elapsed = Date.now() - started;
  assert.equal(res.status, 200);
  assert.equal((await res.json()).choices[0].message.content, 'charlie after a hang');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'charlie', attempts: '2' });
  // slow has timeout_ms 800; UPSTREAM_TIMEOUT_MS is 3000.
  assert.ok(elapsed >= 700, `the hanging upstream was given its timeout (${elapsed} ms)`);
  assert.ok(elapsed < 2800, `its own timeout_ms applies, not UPSTREAM_TIMEOUT_MS (${elapsed} ms)`);
  const a = await receivedOn(MOCK, tag);
  const c = await receivedOn(MOCK_C, tag);
  assert.deepEqual(a.map((r) => r.key), [KEYS.slow]);
  assert.deepEqual(c.map((r) => [r.key, r.body.model]), [[KEYS.charlie, 'charlie-slow']]);
  assert.ok(a[0].receivedAt <= c[0].receivedAt);
  assert.ok(await waitFor(async () => (await receivedOn(MOCK, tag))[0].aborted), 'the hanging call was aborted');
  const row = await assertLog(res, [
    { upstream: 'slow', model: 'slow-x', key: KEYS.slow, status: null },
    { upstream: 'charlie', model: 'charlie-slow', key: KEYS.charlie, status: 200 },
  ]);
  assert.ok(row.attempt_log[0].ms >= 700, `the timed-out attempt took its timeout: ${row.attempt_log[0].ms} ms`);
});

test('a Gemini-kind target after a dead OpenAI-kind one: translated answer, its own key', async () => {
  const tag = await scenarioOn({ [MOCK]: { content: 'gemini says hello' } });
  const res = await chat('r-gemini', tag);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.object, 'chat.completion');
  assert.equal(body.choices[0].message.content, 'gemini says hello');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'gem', attempts: '2' });
  const [upstream, ...more] = await receivedOn(MOCK, tag);
  assert.equal(more.length, 0);
  assert.equal(upstream.path, '/v1beta/models/gemini-router-flash:generateContent');
  assert.equal(upstream.key, KEYS.gem);
  assert.equal(upstream.headers.authorization, undefined, 'no Authorization header to Gemini');
  await assertLog(res, [
    { upstream: 'dead', model: 'dead-g', key: KEYS.dead, status: null },
    { upstream: 'gem', model: 'gemini-router-flash', key: KEYS.gem, status: 200 },
  ], { provider: 'gemini' });
});

test('a 400 is not retried: exactly one upstream request; the client gets its status and body', async () => {
  const upstreamError = openaiError('max_tokens is too large', 'invalid_value', 'invalid_request_error');
  const tag = await scenarioOn({
    [MOCK]: { status: 400, error_body: JSON.stringify(upstreamError) },
    [MOCK_B]: { content: 'must never be asked' },
  });
  const res = await chat('r-400', tag);
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), upstreamError);
  assert.deepEqual(gatewayHeaders(res), { upstream: 'alpha', attempts: '1' });
  assert.equal((await receivedOn(MOCK, tag)).length, 1);
  assert.equal((await receivedOn(MOCK_B, tag)).length, 0, 'no fallback after a 400');
  await assertLog(res, [{ upstream: 'alpha', model: 'alpha-400', key: KEYS.alpha, status: 400 }], { status: 400 });
});

test('every attempt fails: the last attempt\'s status and body; never more than MAX_ATTEMPTS upstream requests', async () => {
  const errors = {
    alpha: openaiError('alpha down'), zhipu: openaiError('zhipu bad gateway'),
    charlie: openaiError('charlie internal error'),
  };
  // r-allfail has four targets: alpha, zhipu, charlie, slow (slow is on MOCK too).
  const tag = await scenarioOn({
    [MOCK]: { status: 503, error_body: JSON.stringify(errors.alpha) },
    [MOCK_B]: { status: 502, error_body: JSON.stringify(errors.zhipu) },
    [MOCK_C]: { status: 500, error_body: JSON.stringify(errors.charlie) },
  });
  const res = await chat('r-allfail', tag);
  assert.equal(res.status, 500, 'the last attempt\'s status');
  assert.deepEqual(await res.json(), errors.charlie, 'the last attempt\'s body');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'charlie', attempts: String(MAX_ATTEMPTS) });
  await sleep(300);
  const a = await receivedOn(MOCK, tag);
  const b = await receivedOn(MOCK_B, tag);
  const c = await receivedOn(MOCK_C, tag);
  assert.equal(a.length + b.length + c.length, MAX_ATTEMPTS, 'MAX_ATTEMPTS upstream requests in all');
  assert.deepEqual(a.map((r) => r.key), [KEYS.alpha], 'the fourth target (slow) is never asked');
  assert.deepEqual(b.map((r) => r.key), [KEYS.zhipu]);
  assert.deepEqual(c.map((r) => r.key), [KEYS.charlie]);
  assert.ok(a[0].receivedAt <= b[0].receivedAt && b[0].receivedAt <= c[0].receivedAt, 'targets in order');
  await assertLog(res, [
    { upstream: 'alpha', key: KEYS.alpha, status: 503 },
    { upstream: 'zhipu', key: KEYS.zhipu, status: 502 },
    { upstream: 'charlie', key: KEYS.charlie, status: 500 },
  ], { status: 500 });
});

test('a single target answering 503 is retried on itself with backoff (times: 2, then an answer)', async () => {
  const tag = await scenarioOn({ [MOCK]: { status: 503, times: 2, content: 'third time lucky' } });
  const res = await chat('r-single', tag);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).choices[0].message.content, 'third time lucky');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'alpha', attempts: '3' });
  const a = await receivedOn(MOCK, tag);
  assert.deepEqual(a.map((r) => r.key), [KEYS.alpha, KEYS.alpha, KEYS.alpha]);
  // Exponential backoff from 250 ms with jitter (factor 0.5..1): ≥ 125 ms, then ≥ 250 ms.
  const gap1 = a[1].receivedAt - a[0].receivedAt;
  const gap2 = a[2].receivedAt - a[1].receivedAt;
  assert.ok(gap1 >= 110, `backoff before the second attempt (${gap1} ms)`);
  assert.ok(gap2 >= 230, `a longer backoff before the third attempt (${gap2} ms)`);
  assert.ok(gap1 + gap2 < 3000, `capped waits (${gap1} + ${gap2} ms)`);
  await assertLog(res, [
    { upstream: 'alpha', model: 'alpha-single', key: KEYS.alpha, status: 503 },
    { upstream: 'alpha', model: 'alpha-single', key: KEYS.alpha, status: 503 },
    { upstream: 'alpha', model: 'alpha-single', key: KEYS.alpha, status: 200 },
  ]);
});

test('weighted route: calls spread over its targets, and a failing pick falls back to the other', async () => {
  const tag = await scenarioOn({ [MOCK]: { status: 503 }, [MOCK_C]: { content: 'weighted answer' } });
  const attempts = [];
  for (let i = 0; i < 16; i++) {
    const res = await chat('r-weighted', tag);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).choices[0].message.content, 'weighted answer');
    const h = gatewayHeaders(res);
    assert.equal(h.upstream, 'charlie');
    attempts.push(h.attempts);
  }
  const a = await receivedOn(MOCK, tag);
  const c = await receivedOn(MOCK_C, tag);
  assert.equal(c.length, 16, 'charlie served every call');
  assert.equal(a.length, attempts.filter((n) => n === '2').length, 'alpha was asked exactly when it was picked first');
  assert.ok(attempts.includes('1') && attempts.includes('2'), `both targets were picked first sometimes: ${attempts}`);
});

// ---- key pools -------------------------------------------------------------------------------

test('429 with retry-after on a single-key, single-target route: the same key again after the wait', async () => {
  const tag = await scenarioOn({ [MOCK]: { status: 429, error_headers: { 'retry-after': '1' }, times: 1, content: 'after the wait' } });
  const res = await chat('r-429-solo', tag);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).choices[0].message.content, 'after the wait');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'solo429', attempts: '2' });
  const a = await receivedOn(MOCK, tag);
  assert.deepEqual(a.map((r) => r.key), [KEYS.solo429, KEYS.solo429]);
  const gap = a[1].receivedAt - a[0].receivedAt;
  assert.ok(gap >= 900, `retry-after: 1 is honoured (${gap} ms)`);
  assert.ok(gap < 2900, `no longer than needed (${gap} ms)`);
  await assertLog(res, [
    { upstream: 'solo429', key: KEYS.solo429, status: 429 },
    { upstream: 'solo429', key: KEYS.solo429, status: 200 },
  ]);
});

test('429 with a retry-after beyond RETRY_MAX_WAIT_MS goes to the client at once', async () => {
  const rateLimit = openaiError('Rate limit reached, retry in 30s', 'rate_limit_exceeded', 'requests');
  const tag = await scenarioOn({ [MOCK]: { status: 429, error_headers: { 'retry-after': '30' }, error_body: JSON.stringify(rateLimit) } });
  const started = Date.now();
  const res = await chat('r-429-big', tag);
  assert.equal(res.status, 429);
  assert.deepEqual(await res.json(), rateLimit);
  assert.ok(Date.now() - started < 2500, 'no wait of 30 s, nor of RETRY_MAX_WAIT_MS');
  assert.equal(res.headers.get('retry-after'), '30', 'the upstream\'s retry-after reaches the client');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'solo429b', attempts: '1' });
  assert.deepEqual((await receivedOn(MOCK, tag)).map((r) => r.key), [KEYS.solo429b]);
  await assertLog(res, [{ upstream: 'solo429b', key: KEYS.solo429b, status: 429 }], { status: 429 });
});

test('429 in a key pool: the next key at once; the next call skips the cooling key', async () => {
  // POOL429_KEYS is newline-separated; pool429 is on MOCK_B at /api/paas/v4.
  const tag = await scenarioOn({ [MOCK_B]: { status: 429, error_headers: { 'retry-after': '5' }, times: 1, content: 'pool answer' } });
  const res = await chat('r-429-pool', tag);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).choices[0].message.content, 'pool answer');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'pool429', attempts: '2' });
  const first = await receivedOn(MOCK_B, tag);
  assert.equal(first.length, 2);
  const [cooling, other] = first.map((r) => r.key);
  assert.ok(KEYS.pool429.includes(cooling) && KEYS.pool429.includes(other), `keys of the pool: ${cooling}, ${other}`);
  assert.notEqual(cooling, other, 'the second attempt uses the other key');
  const gap = first[1].receivedAt - first[0].receivedAt;
  assert.ok(gap < 1000, `no wait when moving to another key (${gap} ms; retry-after was 5 s)`);
  await assertLog(res, [
    { upstream: 'pool429', key: cooling, status: 429 },
    { upstream: 'pool429', key: other, status: 200 },
  ]);

  const pool = (await status()).upstreams.find((u) => u.name === 'pool429');
  assert.equal(pool.keys, 2);
  assert.equal(pool.keys_cooling, 1, `the 429 key cools down: ${JSON.stringify(pool)}`);

  const again = await chat('r-429-pool', tag);
  assert.equal(again.status, 200);
  assert.deepEqual(gatewayHeaders(again), { upstream: 'pool429', attempts: '1' });
  const all = await receivedOn(MOCK_B, tag);
  assert.equal(all.length, 3);
  assert.equal(all[2].key, other, 'the cooling key is skipped');
});

/** Calls `route` until the mock has seen `key` (at most `tries` calls); returns the responses. */
async function callUntilKeySeen(route, tag, mock, key, tries) {
  const responses = [];
  for (let i = 0; i < tries; i++) {
    const res = await chat(route, tag);
    const body = await res.json();
    assert.equal(res.status, 200, `${route} call ${i + 1}: ${JSON.stringify(body)}`);
    responses.push({ res, body });
    if ((await receivedOn(mock, tag)).some((r) => r.key === key)) return responses;
  }
  assert.fail(`${route}: the key ${key.slice(0, 6)}… was never tried in ${tries} calls (round-robin)`);
}

for (const { upstream, route, mock, keys, badKey, refusal } of [
  { upstream: 'pool401', route: 'r-401-pool', mock: MOCK, keys: KEYS.pool401, badKey: KEYS.pool401[1], refusal: 401 },
  { upstream: 'pool403', route: 'r-403-pool', mock: MOCK_C, keys: KEYS.pool403, badKey: KEYS.pool403[0], refusal: 403 },
]) {
  test(`a key answering ${refusal} moves to the next key at once, and is never used again`, async () => {
    // pool401: the mock refuses keys starting with "bad" with 401; pool403: by_key makes one key 403.
    const knobs = refusal === 401
      ? { content: `${upstream} answer` }
      : { content: `${upstream} answer`, by_key: { [badKey]: { status: 403, error_body: JSON.stringify(openaiError('key suspended', 'forbidden', 'invalid_request_error')) } } };
    const tag = await scenarioOn({ [mock]: knobs });
    const responses = await callUntilKeySeen(route, tag, mock, badKey, keys.length + 1);
    for (const { body } of responses) assert.equal(body.choices[0].message.content, `${upstream} answer`);
    const records = await receivedOn(mock, tag);
    const badAt = records.findIndex((r) => r.key === badKey);
    assert.equal(records.filter((r) => r.key === badKey).length, 1, 'the refused key was tried once');
    assert.ok(badAt < records.length - 1, 'another request followed it');
    const next = records[badAt + 1];
    assert.ok(keys.includes(next.key) && next.key !== badKey, 'the next key of the pool');
    assert.ok(next.receivedAt - records[badAt].receivedAt < 1000, 'no wait');
    const last = responses.at(-1).res;
    assert.deepEqual(gatewayHeaders(last), { upstream, attempts: '2' });
    await assertLog(last, [
      { upstream, key: badKey, status: refusal },
      { upstream, key: next.key, status: 200 },
    ]);

    const entry = (await status()).upstreams.find((u) => u.name === upstream);
    assert.equal(entry.keys, keys.length);
    assert.equal(entry.keys_disabled, 1, `the refused key is disabled: ${JSON.stringify(entry)}`);

    const before = records.length;
    for (let i = 0; i < keys.length + 1; i++) {
      const res = await chat(route, tag);
      assert.equal(res.status, 200);
      assert.deepEqual(gatewayHeaders(res), { upstream, attempts: '1' });
    }
    const later = (await receivedOn(mock, tag)).slice(before);
    assert.equal(later.length, keys.length + 1);
    assert.ok(later.every((r) => r.key !== badKey), `the disabled key is skipped: ${later.map((r) => r.key.slice(0, 12))}`);
    if (keys.length > 2) {
      assert.equal(new Set(later.map((r) => r.key)).size, keys.length - 1, 'round-robin over the remaining keys');
    }
  });
}

// ---- streams ---------------------------------------------------------------------------------

test('passthrough stream: a 503 before the first event is retried on the next target', async () => {
  const tag = await scenarioOn({ [MOCK]: { status: 503 }, [MOCK_B]: { content: 'streamed from zhipu', chunk_chars: 4 } });
  const res = await chat('r-stream', tag, { stream: true });
  assert.deepEqual(gatewayHeaders(res), { upstream: 'zhipu', attempts: '2' });
  assert.equal(res.headers.get('x-gateway-fake-stream'), null, 'a passthrough stream');
  const { content, errors } = await sse(res, 'r-stream');
  assert.equal(content, 'streamed from zhipu');
  assert.equal(errors.length, 0);
  const a = await receivedOn(MOCK, tag);
  const b = await receivedOn(MOCK_B, tag);
  assert.deepEqual(a.map((r) => [r.key, r.body.stream]), [[KEYS.alpha, true]]);
  assert.deepEqual(b.map((r) => [r.key, r.body.stream]), [[KEYS.zhipu, true]]);
  await assertLog(res, [
    { upstream: 'alpha', key: KEYS.alpha, status: 503 },
    { upstream: 'zhipu', key: KEYS.zhipu, status: 200 },
  ]);
});

test('passthrough stream: a connection cut before the first event (cut_after 0, times 1) is retried', async () => {
  const tag = await scenarioOn({ [MOCK]: { cut_after: 0, times: 1, content: 'second try streamed', chunk_chars: 6 } });
  const res = await chat('r-single', tag, { stream: true });
  assert.deepEqual(gatewayHeaders(res), { upstream: 'alpha', attempts: '2' });
  const { content, errors } = await sse(res, 'cut before the first event');
  assert.equal(content, 'second try streamed');
  assert.equal(errors.length, 0, 'no error event: the cut happened before anything was relayed');
  const a = await receivedOn(MOCK, tag);
  assert.equal(a.length, 2);
  assert.equal(a[0].eventsSent, 0, 'the first answer was cut before its first event');
  assert.ok(a.every((r) => r.key === KEYS.alpha));
  const row = await logOf(res);
  assert.equal(row.attempt_log.length, 2);
  assert.equal(row.attempt_log[1].status, 200);
});

test('passthrough stream: an upstream silent past the heartbeat interval, then cut before its first event, is still retried', async () => {
  // HEARTBEAT_INTERVAL_MS is 100: the gateway may have answered 200 and sent heartbeats by the
  // time the cut comes, but no upstream event has been relayed yet, so the call is retried.
  const tag = await scenarioOn({ [MOCK]: { first_event_delay_ms: 600, cut_after: 0, times: 1, content: 'after a silent cut', chunk_chars: 6 } });
  const res = await chat('r-single', tag, { stream: true });
  const { content, errors, parsed } = await sse(res, 'silent, then cut before the first event');
  assert.equal(errors.length, 0, `no error event: nothing had been relayed when the first attempt failed: ${JSON.stringify(parsed.filter((p) => p.error))}`);
  assert.equal(content, 'after a silent cut');
  const a = await receivedOn(MOCK, tag);
  assert.equal(a.length, 2, 'retried once');
  assert.equal(a[0].eventsSent, 0);
  const row = await logOf(res);
  assert.equal(Number(row.attempts), 2);
});

test('passthrough stream: an upstream silent past its timeout after its first events gets heartbeats, then one timeout error event and [DONE]; the upstream is aborted', async () => {
  // The `slow` upstream's timeout_ms is 800, HEARTBEAT_INTERVAL_MS 100: after the first event
  // the upstream waits 3 s, so the gateway gives up on it mid-stream.
  const tag = await scenarioOn({ [MOCK]: { content: 'first words, then a long silence', chunk_chars: 6, chunk_delay_ms: 3000 } });
  const res = await chat('slow-idle', tag, { stream: true });
  const { items, errors, content } = await sse(res, 'silent past the idle timeout');
  assert.equal(errors.length, 1, `one error event: ${JSON.stringify(errors)}`);
  assert.match(errors[0].error.message, /did not answer within 800 ms/);
  assert.ok('first words, then a long silence'.startsWith(content), `only what came before the silence: ${content}`);
  const firstData = items.findIndex((i) => i.kind === 'data');
  const errorAt = items.findIndex((i) => i.kind === 'data' && i.text.includes('"error"'));
  const heartbeats = items.slice(firstData, errorAt).filter((i) => i.kind === 'comment' && i.text === 'heartbeat');
  assert.ok(heartbeats.length >= 3, `heartbeats during the silence: ${heartbeats.length}`);
  assert.ok(await waitFor(async () => (await receivedOn(MOCK, tag))[0]?.aborted), 'the silent upstream stream was aborted');
  const row = await logOf(res);
  assert.match(row.error, /did not answer within 800 ms/);
});

for (const [what, knobs, expectedContent] of [
  ['an error event after the first events', { stream_error_event: 'boom after start' }, 'partial answer h'],
  ['a connection cut after the first events (cut_after 2)', { cut_after: 2 }, 'partial '],
]) {
  test(`passthrough stream: ${what} is never retried; partial content, one error event, [DONE]`, async () => {
    const tag = await scenarioOn({
      [MOCK]: { content: 'partial answer here', chunk_chars: 8, ...knobs },
      [MOCK_B]: { content: 'the fallback must not be asked' },
    });
    const res = await chat('r-stream', tag, { stream: true });
    assert.deepEqual(gatewayHeaders(res), { upstream: 'alpha', attempts: '1' });
    const { content, errors, parsed } = await sse(res, what);
    assert.equal(content, expectedContent, 'what arrived before the failure is relayed');
    assert.equal(errors.length, 1, `exactly one error event: ${JSON.stringify(errors)}`);
    assert.ok(parsed.at(-1).error, 'the error event is the last before [DONE]');
    if (knobs.stream_error_event) assert.match(errors[0].error.message, /boom after start/);
    await sleep(500);
    assert.equal((await receivedOn(MOCK, tag)).length, 1, 'exactly one upstream request');
    assert.equal((await receivedOn(MOCK_B, tag)).length, 0, 'no fallback after the first event');
  });
}

test('fake stream: a 503, then the next target answers; heartbeats, then exactly the answer', async () => {
  const answer = 'Fake stream after a fallback: 你好 🌍, ünïcödé.';
  const tag = await scenarioOn({
    [MOCK]: { status: 503, delay_ms: 300 },
    [MOCK_B]: { content: answer, delay_ms: 300 },
  });
  const res = await chat('fake-route', tag, { stream: true });
  assert.equal(res.headers.get('x-gateway-fake-stream'), 'true', 'FAKE_STREAM applies to the route');
  const { items, content, errors } = await sse(res, 'fake-route');
  const firstData = items.findIndex((i) => i.kind === 'data');
  const heartbeats = items.slice(0, firstData).filter((i) => i.kind === 'comment');
  assert.ok(heartbeats.length >= 3, `heartbeats while the gateway retried (${heartbeats.length})`);
  assert.equal(content, answer, 'exactly the final answer');
  assert.equal(errors.length, 0, 'no error event for the failed attempt');
  const a = await receivedOn(MOCK, tag);
  const b = await receivedOn(MOCK_B, tag);
  assert.deepEqual(a.map((r) => [r.key, r.body.stream]), [[KEYS.alpha, false]]);
  assert.deepEqual(b.map((r) => [r.key, r.body.stream]), [[KEYS.zhipu, false]]);
  assert.ok(a[0].receivedAt < b[0].receivedAt, 'the targets in order');
  await assertLog(res, [
    { upstream: 'alpha', key: KEYS.alpha, status: 503 },
    { upstream: 'zhipu', key: KEYS.zhipu, status: 200 },
  ]);
});

test('fake stream: every attempt fails; one final error event, no content', async () => {
  const tag = await scenarioOn({
    [MOCK]: { status: 503, error_body: JSON.stringify(openaiError('alpha down')) },
    [MOCK_B]: { status: 503, error_body: JSON.stringify(openaiError('zhipu down too')) },
  });
  const res = await chat('fake-route', tag, { stream: true });
  const { content, errors, parsed } = await sse(res, 'fake-route all failing');
  assert.equal(content, '');
  assert.equal(errors.length, 1, `one final error event: ${JSON.stringify(parsed)}`);
  assert.equal(parsed.length, 1, 'nothing but that error event before [DONE]');
  const a = await receivedOn(MOCK, tag);
  const b = await receivedOn(MOCK_B, tag);
  assert.equal(a.length + b.length, MAX_ATTEMPTS);
  assert.equal(a[0].key, KEYS.alpha);
});

// ---- what upstreams receive ------------------------------------------------------------------

test('a Zhipu-like upstream at /api/paas/v4: its own key, the mapped model, never the client\'s credential', async () => {
  const tag = await scenarioOn({ [MOCK_B]: { content: 'glm answer' } });
  const res = await chat('glm-public', tag, { headers: { 'x-api-key': ACCESS } });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).choices[0].message.content, 'glm answer');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'zhipu', attempts: '1' });
  const [upstream, ...more] = await receivedOn(MOCK_B, tag);
  assert.equal(more.length, 0);
  assert.deepEqual([upstream.method, upstream.path], ['POST', '/api/paas/v4/chat/completions']);
  assert.equal(upstream.headers.authorization, `Bearer ${KEYS.zhipu}`);
  assert.equal(upstream.body.model, 'glm-4-flash', 'model_map applied');
  assert.ok(!JSON.stringify(upstream.headers).includes(ACCESS), 'the access token never reaches the upstream');
  await assertLog(res, [{ upstream: 'zhipu', model: 'glm-4-flash', key: KEYS.zhipu, status: 200 }]);
});

test('an upstream\'s static headers are sent; model_map to a slashed name; upstream/model prefixes', async () => {
  const tag = await scenarioOn({ [MOCK_C]: { content: 'openrouter-like answer' } });
  const res = await chat('gpt-router', tag);
  assert.equal(res.status, 200);
  assert.deepEqual(gatewayHeaders(res), { upstream: 'charlie', attempts: '1' });
  const prefixed = await chat('charlie/some/nested-model', tag);
  assert.equal(prefixed.status, 200);
  assert.deepEqual(gatewayHeaders(prefixed), { upstream: 'charlie', attempts: '1' });
  const [mapped, nested] = await receivedOn(MOCK_C, tag);
  assert.equal(mapped.headers['http-referer'], 'https://gateway.test/app');
  assert.equal(mapped.headers['x-title'], 'Edge Gateway Tests');
  assert.equal(mapped.headers.authorization, `Bearer ${KEYS.charlie}`);
  assert.equal(mapped.body.model, 'vendor/gpt-router:free');
  assert.equal(nested.body.model, 'some/nested-model', 'the first segment names the upstream');
  assert.equal(nested.headers['x-title'], 'Edge Gateway Tests');
  // A prefix naming another upstream goes there.
  const other = await chat('zhipu/glm-prefixed', tag);
  assert.equal(other.status, 200);
  assert.deepEqual(gatewayHeaders(other), { upstream: 'zhipu', attempts: '1' });
  const [viaPrefix] = await receivedOn(MOCK_B, tag);
  assert.deepEqual([viaPrefix.key, viaPrefix.body.model], [KEYS.zhipu, 'glm-prefixed']);
  assert.equal(viaPrefix.headers['x-title'], undefined, 'headers are per upstream');
});

test('an upstream whose keys secret is unset answers 401 missing_server_key naming the secret', async () => {
  const tag = await scenarioOn({ [MOCK]: { content: 'never' } });
  for (const model of ['nokeys/nokeys-x', 'nokeys-by-pattern']) {
    const res = await chat(model, tag);
    const body = await res.json();
    assert.equal(res.status, 401, `${model}: ${JSON.stringify(body)}`);
    assert.equal(body.error.code, 'missing_server_key');
    assert.match(body.error.message, /UNSET_POOL_KEYS/);
  }
  assert.equal((await receivedOn(MOCK, tag)).length, 0, 'no upstream call without a key');
});

// ---- status, models, log ---------------------------------------------------------------------

test('/api/status lists every upstream and route, never a key; /v1/models lists the route names', async () => {
  const body = await status();
  const byName = Object.fromEntries(body.upstreams.map((u) => [u.name, u]));
  const expected = {
    alpha: { kind: 'openai', base: MOCK, keys: 1, model_patterns: ['alpha-*'] },
    zhipu: { kind: 'openai', base: MOCK_B, keys: 1, model_patterns: ['glm-*'] },
    charlie: { kind: 'openai', base: MOCK_C, keys: 1, model_patterns: ['gpt-router*', 'charlie-*'] },
    dead: { kind: 'openai', base: DEAD, keys: 1, model_patterns: ['dead-*'] },
    slow: { kind: 'openai', base: MOCK, keys: 1, model_patterns: ['slow-*'], timeout_ms: 800 },
    gem: { kind: 'gemini', base: MOCK, keys: 1, model_patterns: ['gemini-*'] },
    pool401: { kind: 'openai', base: MOCK, keys: 3, model_patterns: ['p401-*'] },
    pool403: { kind: 'openai', base: MOCK_C, keys: 2, model_patterns: ['p403-*'] },
    pool429: { kind: 'openai', base: MOCK_B, keys: 2, model_patterns: ['p429-*'] },
    solo429: { kind: 'openai', base: MOCK, keys: 1, model_patterns: ['s429-*'] },
    solo429b: { kind: 'openai', base: MOCK, keys: 1, model_patterns: ['s429b-*'] },
    fakeup: { kind: 'openai', base: MOCK_C, keys: 1, model_patterns: ['fakeup-*'] },
    nokeys: { kind: 'openai', base: MOCK, keys: 0, model_patterns: ['nokeys-*'] },
    embpool: { kind: 'openai', base: MOCK, keys: 2, model_patterns: ['ep-*'] },
    dsemb: { kind: 'dashscope', base: MOCK, keys: 1, model_patterns: ['text-embedding-v*'] },
    nativeresp: { kind: 'openai', base: MOCK, keys: 1, model_patterns: ['nr-*'] },
  };
  assert.deepEqual(Object.keys(byName).sort(), Object.keys(expected).sort());
  for (const [name, want] of Object.entries(expected)) {
    const got = byName[name];
    const what = `${name}: ${JSON.stringify(got)}`;
    assert.equal(got.kind, want.kind, what);
    assert.equal(got.host, new URL(want.base).host, `${what}: base URL host (with its port)`);
    assert.equal(got.keys, want.keys, what);
    assert.ok(Number.isInteger(got.keys_cooling) && Number.isInteger(got.keys_disabled), what);
    assert.deepEqual(got.model_patterns, want.model_patterns, what);
    if (want.timeout_ms) assert.equal(got.timeout_ms, want.timeout_ms, what);
  }
  const routes = Object.fromEntries(body.routes.map((r) => [r.name, r]));
  assert.deepEqual(routes['r-fallback'], { name: 'r-fallback', strategy: 'fallback', targets: ['alpha/alpha-fb', 'zhipu/glm-fb'] });
  assert.deepEqual(routes['r-dead'], { name: 'r-dead', strategy: 'fallback', targets: ['dead/dead-x', 'alpha/alpha-dead'] });
  assert.deepEqual(routes['r-weighted'], { name: 'r-weighted', strategy: 'weighted', targets: ['alpha/alpha-w', 'charlie/charlie-w'] });
  assert.equal(body.routes.length, 22);

  const models = await client.models.list();
  const ids = new Map(models.data.map((m) => [m.id, m]));
  for (const name of ['r-fallback', 'r-weighted', 'fake-route', 'r-python']) {
    assert.ok(ids.has(name), `/v1/models lists the route ${name}`);
    assert.equal(ids.get(name).owned_by, 'gateway');
  }
  assert.ok(ids.has('glm-4-flash'), 'an upstream\'s list_models are listed');
  const raw = await (await fetch(`${ROUTER_GATEWAY}/v1/models`, { headers: { authorization: `Bearer ${ACCESS}` } })).text();
  assertNoSecret(raw, '/v1/models');
});

test('the request log lists upstream and attempts, and filters by upstream', async () => {
  const res = await fetch(`${ROUTER_GATEWAY}/api/requests?upstream=zhipu&page_size=100`, { headers: { authorization: `Bearer ${ADMIN}` } });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assertNoSecret(text, '/api/requests');
  const { data, total } = JSON.parse(text);
  assert.ok(total >= 3, `the zhipu calls so far are listed (${total})`);
  assert.ok(data.every((r) => r.upstream === 'zhipu'), 'only zhipu rows');
  assert.ok(data.some((r) => Number(r.attempts) === 2) && data.some((r) => Number(r.attempts) === 1), 'attempts per row');
  const charlie = await (await fetch(`${ROUTER_GATEWAY}/api/requests?upstream=charlie&page_size=100`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
  assert.ok(charlie.data.length > 0 && charlie.data.every((r) => r.upstream === 'charlie'));
});

// ---- settings as TOML, and bad settings ------------------------------------------------------

test('TOML settings: UPSTREAMS as an array of tables and ROUTES as a table work like JSON', async () => {
  const tag = await scenarioOn({ [MOCK_B]: { status: 503 }, [MOCK_C]: { content: 'toml answer' } });
  const res = await chat('toml-route', tag, { base: TOML_GATEWAY, token: 'toml-access-token' });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.choices[0].message.content, 'toml answer');
  assert.deepEqual(gatewayHeaders(res), { upstream: 'tomc', attempts: '2' });
  const b = await receivedOn(MOCK_B, tag);
  const c = await receivedOn(MOCK_C, tag);
  assert.deepEqual(b.map((r) => [r.path, r.key, r.body.model]), [['/api/paas/v4/chat/completions', 'zk-toml-b-key', 'glm-toml']]);
  assert.deepEqual(c.map((r) => [r.path, r.key, r.body.model]), [['/v1/chat/completions', 'sk-toml-c-key', 'toml-c']]);
  assert.equal(c[0].headers['x-title'], 'toml gateway');

  const object = await chat('toml-object', tag, { base: TOML_GATEWAY, token: 'toml-access-token' });
  assert.equal(object.status, 200);
  assert.deepEqual(gatewayHeaders(object), { upstream: 'tomc', attempts: '1' });
  const mapped = await chat('glm-toml-public', tag, { base: TOML_GATEWAY, token: 'toml-access-token' });
  assert.equal(mapped.status, 503, 'MOCK_B still answers 503 for this tag');
  assert.equal((await receivedOn(MOCK_B, tag)).at(-1).body.model, 'glm-4-toml', 'model_map from an inline table');

  const st = await status(TOML_GATEWAY);
  assert.deepEqual(st.upstreams.map((u) => [u.name, u.kind, u.keys]), [['tomb', 'openai', 1], ['tomc', 'openai', 1]]);
  assert.equal(st.upstreams[1].timeout_ms, 2000);
  const routes = Object.fromEntries(st.routes.map((r) => [r.name, r]));
  assert.deepEqual(routes['toml-route'], { name: 'toml-route', strategy: 'fallback', targets: ['tomb/glm-toml', 'tomc/toml-c'] });
  assert.deepEqual(routes['toml-object'], { name: 'toml-object', strategy: 'fallback', targets: ['tomc/toml-obj'] });
});

test('a route naming no upstream: every request answers 500 invalid_configuration naming ROUTES', async () => {
  const checks = [
    ['chat', () => chat('broken', 'mock:none', { base: BADCONFIG_GATEWAY, token: 'badconfig-access-token' })],
    ['/api/status', () => fetch(`${BADCONFIG_GATEWAY}/api/status`)],
    ['/v1/models', () => fetch(`${BADCONFIG_GATEWAY}/v1/models`, { headers: { authorization: 'Bearer badconfig-access-token' } })],
  ];
  for (const [what, call] of checks) {
    const res = await call();
    const text = await res.text();
    assert.equal(res.status, 500, `${what}: ${text}`);
    const { error } = JSON.parse(text);
    assert.equal(error.type, 'server_error', what);
    assert.equal(error.code, 'invalid_configuration', what);
    assert.match(error.message, /ROUTES/, `${what}: names the setting`);
    assert.match(error.message, /missing/, `${what}: names the unknown upstream`);
    assertNoSecret(text, what);
  }
});

// ---- the dashboard: upstream and attempts per call, the upstream filter, the attempt list ----

test('dashboard: upstream and attempts per call, filter by upstream, calls by upstream, each attempt of a call', async () => {
  const { launch, ARTIFACTS } = await import('./browser.mjs');
  const path = await import('node:path');
  const marker = `dashroute${Date.now()}`;
  const tag = await scenarioOn({
    [MOCK]: { status: 503, error_body: JSON.stringify(openaiError('alpha is overloaded')) },
    [MOCK_B]: { content: 'answer from zhipu' },
  });
  const res = await chat('r-fallback', `${marker} ${tag}`);
  assert.equal(res.status, 200);
  const requestId = res.headers.get('x-request-id');
  await logRow(requestId, { base: ROUTER_GATEWAY, token: ADMIN });

  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${ROUTER_GATEWAY}/dashboard`);
    await page.fill('#token', ADMIN);
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('s-total').textContent !== '–');
    assert.match(await page.textContent('#by-upstream'), /zhipu/);
    await page.fill('#search', marker);
    await page.fill('#upstream', 'zhipu');
    await page.click('#filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.entry').length === 1);
    assert.equal((await page.textContent('#rows tr.entry td.upstream')).trim(), 'zhipu');
    assert.equal((await page.textContent('#rows tr.entry td.attempts')).trim(), '2');
    // The same search under another upstream finds nothing: the filter applies.
    await page.fill('#upstream', 'alpha');
    await page.click('#filters button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.entry').length === 0);
    await page.fill('#upstream', 'zhipu');
    await page.click('#filters button[type=submit]');
    await page.waitForSelector('#rows tr.entry');
    await page.click('#rows tr.entry');
    await page.waitForSelector('#d-attempts li');
    const attempts = await page.$$eval('#d-attempts li', (items) => items.map((li) => li.textContent));
    assert.equal(attempts.length, 2, attempts.join(' | '));
    assert.match(attempts[0], /^alpha · alpha-fb · key sha256:[0-9a-f]{8} · 503/);
    assert.match(attempts[1], /^zhipu · glm-fb · key sha256:[0-9a-f]{8} · 200/);
    const shown = await page.textContent('body');
    assertNoSecret(shown, 'dashboard page');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-attempts.png') });
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
  }
});

test('an upstream\'s fake_stream replaces FAKE_STREAM for calls routed to it; X-Fake-Stream still overrides per call', async () => {
  const tag = await scenarioOn({ [MOCK_C]: { content: 'fake-streamed by its upstream', delay_ms: 350 } });
  const res = await chat('fakeup-model', tag, { stream: true });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
  const items = await readSse(res);
  assert.ok(items.filter((i) => i.kind === 'comment').length >= 2, 'heartbeats while the upstream works');
  assert.equal(contentOf(items), 'fake-streamed by its upstream');
  // FAKE_STREAM of this instance does not match `fakeup-*`: only the upstream setting did it.
  const forced = await chat('fakeup-model', tag, { stream: true, headers: { 'x-fake-stream': 'false' } });
  assert.equal(forced.headers.get('x-gateway-fake-stream'), null);
  assert.equal(contentOf(await readSse(forced)), 'fake-streamed by its upstream');
  const received = await receivedOn(MOCK_C, tag);
  assert.deepEqual(received.map((r) => [r.key, r.body.stream]), [[KEYS.fakeup, false], [KEYS.fakeup, true]]);
});
