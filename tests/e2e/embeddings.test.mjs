// POST /v1/embeddings: the OpenAI request/response shape in front of OpenAI-kind upstreams
// (passed through as sent), Gemini (native batchEmbedContents) and DashScope (native
// text-embedding, batched to its 10-texts-per-call limit), driven by the official `openai` npm
// SDK and raw HTTP. The mock upstream (tests/mock/upstream.mjs) answers deterministic vectors
// per input text — mockEmbedding(text, dims) — and records every native request, so each
// mapping is asserted on the wire. Wire formats: /work/notes/embeddings-wire.md.
//
// Instances (tests/run.mjs): GATEWAY_URL (access token, server keys sk-server-secret-key and
// gm-server-secret-key; OPENAI_MODEL_PATTERNS has text-embedding-3-*), PUBLIC_GATEWAY_URL
// (DashScope server key ds-server-secret-key), ROUTER_GATEWAY_URL (routes r-embed, r-embed-503,
// r-embed-gemini, r-embed-pool, r-embed-dashscope). Every input text carries the scenario tag,
// so every upstream call (each batch too) is recorded under it. Tests in this file run in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { mockEmbedding, mockTokens, decodeFloat32Base64, DEFAULT_EMBEDDING_DIMS } from '../mock/upstream.mjs';
import {
  GATEWAY, PUBLIC_GATEWAY, ROUTER_GATEWAY, MOCK, MOCK_B, ACCESS_TOKEN, ADMIN_TOKEN, SERVER_KEY,
  scenario, received, scenarioOn, receivedOn, post, waitFor, logRow,
} from './helpers.mjs';

const GEMINI_KEY = 'gm-server-secret-key';
const DASHSCOPE_KEY = 'ds-server-secret-key';
const ROUTER_ACCESS = 'router-access-token';
const ROUTER_ADMIN = 'router-admin-token';
/** The router instance's keys secrets used here (tests/run.mjs). */
const KEYS = {
  alpha: 'sk-alpha-key-1',
  zhipu: 'zk-zhipu-key-1',
  gem: 'gm-router-key-1',
  embpool: ['bad-embpool-revoked', 'sk-embpool-good'],
  dsemb: 'ds-router-emb-key',
};
const SECRETS = [SERVER_KEY, GEMINI_KEY, DASHSCOPE_KEY, ACCESS_TOKEN, ADMIN_TOKEN, ROUTER_ACCESS, ROUTER_ADMIN, ...Object.values(KEYS).flat()];
const EMBED_PATH = '/v1/embeddings';
const GEMINI_BATCH_PATH = '/v1beta/models/gemini-embedding-001:batchEmbedContents';
const DASHSCOPE_PATH = '/api/v1/services/embeddings/text-embedding/text-embedding';
/** Each test gives up after this long (every call targets loopback). */
const LIMIT = { timeout: 30_000 };

assert.ok(ROUTER_GATEWAY && MOCK_B, 'run through tests/run.mjs: it starts the router instance and the extra mocks');

const guarded = new OpenAI({ baseURL: `${GATEWAY}/v1`, apiKey: ACCESS_TOKEN, maxRetries: 0, timeout: 20_000 });
const publicClient = new OpenAI({ baseURL: `${PUBLIC_GATEWAY}/v1`, apiKey: 'sk-emb-public-user', maxRetries: 0, timeout: 20_000 });
const router = new OpenAI({ baseURL: `${ROUTER_GATEWAY}/v1`, apiKey: ROUTER_ACCESS, maxRetries: 0, timeout: 20_000 });

/** `n` distinct input texts, each carrying the tag (and a varying number of words). */
const inputs = (tag, n, word = 'text') => Array.from({ length: n }, (_, i) => `${word} ${i}${' w'.repeat(i % 3)} ${tag}`);
const tokensOf = (list) => list.reduce((sum, i) => sum + mockTokens(i), 0);

/** POSTs a raw embeddings call (GATEWAY and its access token unless said otherwise). */
function embed(body, { base = GATEWAY, token = ACCESS_TOKEN, headers = {} } = {}) {
  return post(EMBED_PATH, body, { base, headers: { authorization: `Bearer ${token}`, ...headers } });
}

/** Asserts two vectors agree within float32 precision. */
function assertClose(actual, expected, what) {
  const got = Array.from(actual);
  assert.equal(got.length, expected.length, `${what}: length`);
  got.forEach((v, i) => {
    assert.equal(typeof v, 'number', `${what}[${i}] is a number`);
    assert.ok(Math.abs(v - expected[i]) <= 1e-6, `${what}[${i}]: ${v} vs ${expected[i]}`);
  });
}

/** Checks an OpenAI embeddings answer: list shape, one item per text in order, vectors, model. */
function assertAnswer(body, texts, { dims = DEFAULT_EMBEDDING_DIMS, model, base64 = false, exact = false } = {}) {
  assert.equal(body.object, 'list', JSON.stringify(body).slice(0, 300));
  if (model !== undefined) assert.equal(body.model, model, 'model is the one the client asked for');
  assert.equal(body.data.length, texts.length, 'one item per input');
  body.data.forEach((item, i) => {
    assert.equal(item.object, 'embedding', `data[${i}].object`);
    assert.equal(item.index, i, `data[${i}].index`);
    const expected = mockEmbedding(texts[i], dims);
    if (base64) {
      assert.equal(typeof item.embedding, 'string', `data[${i}] is base64`);
      assert.match(item.embedding, /^[A-Za-z0-9+/]*={0,2}$/, `data[${i}] is standard base64`);
      assert.equal(Buffer.from(item.embedding, 'base64').length, dims * 4, `data[${i}]: 4 bytes per value`);
      assertClose(decodeFloat32Base64(item.embedding), expected, `data[${i}] (float32 LE)`);
    } else if (exact) {
      assert.deepEqual(Array.from(item.embedding), expected, `data[${i}]`);
    } else {
      assertClose(item.embedding, expected, `data[${i}]`);
    }
  });
}

function assertNoSecret(text, what) {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${what}: contains a secret (${secret.slice(0, 4)}…)`);
}

async function expectError(res, status) {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type') || '', /application\/json/);
  const body = await res.json();
  assert.equal(typeof body.error, 'object', JSON.stringify(body));
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.ok('type' in body.error && 'code' in body.error, JSON.stringify(body));
  return body.error;
}

function gatewayHeaders(res) {
  return { upstream: res.headers.get('x-gateway-upstream'), attempts: res.headers.get('x-gateway-attempts') };
}

/** Rows of a gateway's request log whose path, model or bodies contain `marker` (waits for the deferred write). */
async function searchLog(marker, { base = GATEWAY, token = ADMIN_TOKEN, n = 1 } = {}) {
  const body = await waitFor(async () => {
    const res = await fetch(`${base}/api/requests?search=${encodeURIComponent(marker)}`, { headers: { authorization: `Bearer ${token}` } });
    if (res.status !== 200) return null;
    const text = await res.text();
    assertNoSecret(text, '/api/requests');
    const list = JSON.parse(text);
    return list.total >= n ? list : null;
  }, { timeoutMs: 10_000, stepMs: 100 });
  assert.ok(body, `the call with ${marker} is in the request log`);
  return body.data;
}

// ---- OpenAI kind: passthrough ----------------------------------------------------------------

test('OpenAI kind: the SDK default (base64, decoded by the SDK) goes to /v1/embeddings as sent, with the server key', LIMIT, async () => {
  const tag = await scenario();
  const texts = inputs(tag, 3, 'openai');
  const { data, response } = await guarded.embeddings.create({
    model: 'text-embedding-3-small', input: texts, dimensions: 4, user: 'user-42',
  }).withResponse();
  assert.equal(response.status, 200);
  assert.ok(response.headers.get('x-request-id'), 'the gateway\'s X-Request-Id');
  // The SDK asked for base64 and decoded it: the mock's float32 values, exactly.
  assert.equal(data.object, 'list');
  assert.equal(data.model, 'text-embedding-3-small');
  assert.deepEqual(data.data.map((d) => d.index), [0, 1, 2]);
  data.data.forEach((d, i) => assert.deepEqual(d.embedding, mockEmbedding(texts[i], 4).map(Math.fround), `data[${i}]`));
  assert.deepEqual(data.usage, { prompt_tokens: tokensOf(texts), total_tokens: tokensOf(texts) });

  const [upstream, ...more] = await received(tag);
  assert.equal(more.length, 0, 'one upstream request');
  assert.deepEqual([upstream.method, upstream.path], ['POST', EMBED_PATH]);
  assert.deepEqual(upstream.body, {
    model: 'text-embedding-3-small', input: texts, dimensions: 4, user: 'user-42', encoding_format: 'base64',
  }, 'the body as the client sent it');
  assert.equal(upstream.headers.authorization, `Bearer ${SERVER_KEY}`);
  assert.equal(upstream.key, SERVER_KEY);
  assert.ok(!JSON.stringify(upstream.headers).includes(ACCESS_TOKEN), 'the access token never reaches the upstream');
});

test('OpenAI kind: encoding_format float and base64, a single string, token arrays — all passed through', LIMIT, async () => {
  const tag = await scenario();
  const one = `a single string ${tag}`;
  // float, asked explicitly: numbers, exactly what the upstream answered.
  const float = await guarded.embeddings.create({ model: 'text-embedding-3-small', input: one, encoding_format: 'float' });
  assertAnswer(float, [one], { model: 'text-embedding-3-small', exact: true });
  // base64, asked explicitly: the SDK leaves the strings alone.
  const b64 = await guarded.embeddings.create({ model: 'text-embedding-3-large', input: [one, `${one} again`], encoding_format: 'base64', dimensions: 3 });
  assertAnswer(b64, [one, `${one} again`], { model: 'text-embedding-3-large', base64: true, dims: 3 });
  // Token arrays (the tag rides in `user`): embedded by the mock as their JSON text.
  const tokens = [[1, 2, 3], [40, 50]];
  const res = await embed({ model: 'text-embedding-3-small', input: tokens, encoding_format: 'float', user: `tokens ${tag}` });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assertAnswer(body, tokens.map((t) => JSON.stringify(t)), { exact: true });
  assert.equal(body.usage.prompt_tokens, 5);
  const flat = await embed({ model: 'text-embedding-3-small', input: [7, 8, 9], user: `flat ${tag}` });
  assert.equal(flat.status, 200);
  assert.equal((await flat.json()).data.length, 1, 'one token array is one input');

  const bodies = (await received(tag)).map((r) => r.body);
  assert.deepEqual(bodies, [
    { model: 'text-embedding-3-small', input: one, encoding_format: 'float' },
    { model: 'text-embedding-3-large', input: [one, `${one} again`], encoding_format: 'base64', dimensions: 3 },
    { model: 'text-embedding-3-small', input: tokens, encoding_format: 'float', user: `tokens ${tag}` },
    { model: 'text-embedding-3-small', input: [7, 8, 9], user: `flat ${tag}` },
  ]);
});

// ---- Gemini: native batchEmbedContents -------------------------------------------------------

test('Gemini: one batchEmbedContents request per input; dimensions → outputDimensionality, task_type → taskType; the server key', LIMIT, async () => {
  const tag = await scenario();
  const texts = [`Zürich 你好 🌍 ${tag}`, ...inputs(tag, 2, 'gemini')];
  const { data, response } = await guarded.embeddings.create({
    model: 'gemini-embedding-001', input: texts, dimensions: 6, encoding_format: 'float', task_type: 'RETRIEVAL_QUERY',
  }).withResponse();
  assert.equal(response.status, 200);
  assertAnswer(data, texts, { dims: 6, model: 'gemini-embedding-001' });
  assert.equal(data.usage.prompt_tokens, tokensOf(texts), 'usage from usageMetadata.promptTokenCount');
  assert.equal(data.usage.total_tokens, tokensOf(texts));

  const [upstream, ...more] = await received(tag);
  assert.equal(more.length, 0, 'one batch for three inputs');
  assert.deepEqual([upstream.method, upstream.path], ['POST', GEMINI_BATCH_PATH]);
  assert.equal(upstream.headers['x-goog-api-key'], GEMINI_KEY);
  assert.ok(!/(^|[?&])key=/.test(upstream.query), `the key goes in the header, not the URL: ${upstream.query}`);
  assert.equal(upstream.headers.authorization, undefined, 'no Authorization header to Gemini');
  assert.ok(!JSON.stringify(upstream.headers).includes(ACCESS_TOKEN));
  const { requests } = upstream.body;
  assert.equal(requests.length, texts.length, 'one request per input');
  requests.forEach((r, i) => {
    assert.equal(r.model, 'models/gemini-embedding-001', `requests[${i}].model`);
    assert.deepEqual(r.content.parts, [{ text: texts[i] }], `requests[${i}]: one text part, in input order`);
    assert.equal(r.taskType, 'RETRIEVAL_QUERY', `requests[${i}].taskType`);
    assert.equal(r.outputDimensionality, 6, `requests[${i}].outputDimensionality`);
  });
  assert.equal(upstream.body.task_type, undefined, 'the non-standard field is mapped, not forwarded as is');
});

test('Gemini: base64 answers are the vectors as float32 little-endian (the gateway encodes them); the SDK default decodes to the same floats', LIMIT, async () => {
  const tag = await scenario();
  const texts = inputs(tag, 2, 'b64');
  // Raw base64: check the bytes. No dimensions: the upstream's default length.
  const res = await embed({ model: 'gemini-embedding-001', input: texts, encoding_format: 'base64' });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assertAnswer(body, texts, { base64: true, model: 'gemini-embedding-001' });
  // The SDK default (it sends base64 and decodes): the same values as numbers.
  const single = `single ${tag}`;
  const decoded = await guarded.embeddings.create({ model: 'gemini-embedding-001', input: single, dimensions: 5 });
  assertAnswer(decoded, [single], { dims: 5, model: 'gemini-embedding-001' });

  const [first, second] = await received(tag);
  assert.equal(first.body.requests.length, 2);
  assert.ok(first.body.requests.every((r) => r.outputDimensionality === undefined), 'no dimensions, no outputDimensionality');
  assert.ok(first.body.requests.every((r) => r.taskType === undefined), 'no task_type, no taskType');
  assert.deepEqual(second.body.requests.map((r) => [r.content.parts[0].text, r.outputDimensionality]), [[single, 5]], 'a single string is one request');
});

test('Gemini: an answer without usageMetadata still has numeric usage', LIMIT, async () => {
  const tag = await scenario({ usage: null });
  const texts = inputs(tag, 2, 'nousage');
  const res = await embed({ model: 'gemini-embedding-001', input: texts, encoding_format: 'float' });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assertAnswer(body, texts);
  assert.ok(Number.isInteger(body.usage.prompt_tokens) && body.usage.prompt_tokens >= 0, JSON.stringify(body.usage));
  assert.ok(Number.isInteger(body.usage.total_tokens) && body.usage.total_tokens >= 0, JSON.stringify(body.usage));
});

test('Gemini: more than 100 inputs are split into batches of at most 100 (the API refuses bigger ones), answered in order', LIMIT, async () => {
  const tag = await scenario();
  const texts = Array.from({ length: 120 }, (_, i) => `g${i} ${tag}`);
  const res = await embed({ model: 'gemini-embedding-001', input: texts, encoding_format: 'float', dimensions: 2 });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body).slice(0, 500));
  assertAnswer(body, texts, { dims: 2 });
  assert.equal(body.usage.prompt_tokens, tokensOf(texts), 'usage summed over the batches');
  const calls = await received(tag);
  assert.ok(calls.length >= 2, `${calls.length} calls`);
  assert.ok(calls.every((c) => c.path === GEMINI_BATCH_PATH && c.body.requests.length <= 100), calls.map((c) => c.body.requests?.length).join(','));
  const sent = calls.map((c) => c.body.requests.map((r) => r.content.parts[0].text))
    .sort((a, b) => texts.indexOf(a[0]) - texts.indexOf(b[0])).flat();
  assert.deepEqual(sent, texts, 'every input sent once, batches in order');
});

// ---- DashScope: native text-embedding, batched -----------------------------------------------

test('DashScope: 23 inputs become native calls of at most 10 texts; dimensions → parameters.dimension; usage summed', LIMIT, async () => {
  const tag = await scenario();
  const texts = inputs(tag, 23, 'ds');
  const { data, response } = await publicClient.embeddings.create({
    model: 'text-embedding-v4', input: texts, dimensions: 64, encoding_format: 'float',
  }).withResponse();
  assert.equal(response.status, 200);
  assertAnswer(data, texts, { dims: 64, model: 'text-embedding-v4' });
  assert.deepEqual(data.usage, { prompt_tokens: tokensOf(texts), total_tokens: tokensOf(texts) });

  const calls = await received(tag);
  assert.equal(calls.length, 3, `three calls (10 + 10 + 3): ${calls.map((c) => c.body?.input?.texts?.length)}`);
  for (const c of calls) {
    assert.deepEqual([c.method, c.path], ['POST', DASHSCOPE_PATH]);
    assert.equal(c.headers.authorization, `Bearer ${DASHSCOPE_KEY}`, 'the server key, never the client key');
    assert.equal(c.body.model, 'text-embedding-v4');
    assert.ok(c.body.input.texts.length <= 10, 'within the documented per-call limit');
    assert.equal(c.body.parameters.dimension, 64);
  }
  const sent = calls.map((c) => c.body.input.texts).sort((a, b) => texts.indexOf(a[0]) - texts.indexOf(b[0]));
  assert.deepEqual(sent.map((t) => t.length), [10, 10, 3]);
  assert.deepEqual(sent.flat(), texts, 'every input once, in order');
});

test('DashScope: the answer is ordered by text_index, not by the order of output.embeddings; base64 via the SDK default', LIMIT, async () => {
  const tag = await scenario({ embeddings_reversed: true });
  const texts = inputs(tag, 12, 'rev');
  const decoded = await publicClient.embeddings.create({ model: 'text-embedding-v4', input: texts });
  assertAnswer(decoded, texts, { model: 'text-embedding-v4' });
  const res = await embed({ model: 'text-embedding-v4', input: texts.slice(0, 3), encoding_format: 'base64' }, { base: PUBLIC_GATEWAY, token: 'sk-emb-public-user' });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assertAnswer(body, texts.slice(0, 3), { base64: true });
  const calls = await received(tag);
  assert.equal(calls.length, 3, '10 + 2, then 3');
  assert.ok(calls.every((c) => c.body.parameters?.dimension === undefined), 'no dimensions, no parameters.dimension');
});

// ---- errors -----------------------------------------------------------------------------------

test('upstream errors come back in OpenAI shape with their status', LIMIT, async () => {
  // OpenAI kind: the upstream's own error body, as for chat.
  const openaiError = { error: { message: 'This model does not support specifying dimensions.', type: 'invalid_request_error', param: 'dimensions', code: null } };
  let tag = await scenario({ status: 400, error_body: JSON.stringify(openaiError) });
  let res = await embed({ model: 'text-embedding-3-small', input: `x ${tag}`, dimensions: 3 });
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), openaiError);
  await assert.rejects(guarded.embeddings.create({ model: 'text-embedding-3-small', input: `x ${tag}` }), OpenAI.BadRequestError);

  // Gemini: Google's {error: {code, message, status}} becomes an OpenAI error.
  tag = await scenario({ status: 500 });
  let error = await expectError(await embed({ model: 'gemini-embedding-001', input: [`x ${tag}`] }), 500);
  assert.match(error.message, /mock error 500/);
  assert.equal(error.code, 'INTERNAL');
  const quota = JSON.stringify({ error: { code: 429, message: 'Resource has been exhausted', status: 'RESOURCE_EXHAUSTED' } });
  tag = await scenario({ status: 429, error_body: quota });
  await assert.rejects(
    guarded.embeddings.create({ model: 'gemini-embedding-001', input: `x ${tag}` }),
    (err) => err instanceof OpenAI.RateLimitError && err.code === 'RESOURCE_EXHAUSTED' && /exhausted/.test(err.message),
  );

  // DashScope: {code, message, request_id} becomes an OpenAI error, its code kept.
  const invalid = JSON.stringify({ code: 'InvalidParameter', message: 'dimension is invalid: 7', request_id: 'ds-bad-1' });
  tag = await scenario({ status: 400, error_body: invalid });
  error = await expectError(await embed({ model: 'text-embedding-v4', input: [`x ${tag}`], dimensions: 7 }, { base: PUBLIC_GATEWAY, token: 'sk-emb-public-user' }), 400);
  assert.equal(error.code, 'InvalidParameter');
  assert.match(error.message, /dimension is invalid/);
  tag = await scenario({ status: 500 });
  await expectError(await embed({ model: 'text-embedding-v4', input: [`x ${tag}`] }, { base: PUBLIC_GATEWAY, token: 'sk-emb-public-user' }), 500);
});

test('a bad request is refused with 400 invalid_request_error before any upstream request', LIMIT, async () => {
  const tag = await scenario();
  const cases = [
    ['missing input', { model: 'text-embedding-3-small', user: tag }, 'input'],
    ['empty array', { model: 'text-embedding-3-small', input: [], user: tag }],
    ['empty array (Gemini)', { model: 'gemini-embedding-001', input: [], user: tag }],
    ['a number', { model: 'text-embedding-3-small', input: 42, user: tag }],
    ['an object', { model: 'gemini-embedding-001', input: { text: tag } }],
    ['a boolean', { model: 'text-embedding-3-small', input: true, user: tag }],
    ['missing model', { input: [`x ${tag}`] }, 'model'],
    ['model not a string', { model: 7, input: [`x ${tag}`] }],
  ];
  for (const [what, body, param] of cases) {
    const error = await expectError(await embed(body), 400);
    assert.equal(error.type, 'invalid_request_error', what);
    if (param) assert.equal(error.param, param, what);
  }
  await expectError(await embed('{"model": "text-embedding-3-small", "input": '), 400);
  assert.equal((await received(tag)).length, 0, 'no upstream request for a bad request');
  await assert.rejects(guarded.embeddings.create({ model: 'gemini-embedding-001', input: [] }), OpenAI.BadRequestError);
});

test('auth and methods: no access token is 401; GET /v1/embeddings is 405', LIMIT, async () => {
  const tag = await scenario();
  const error = await expectError(await embed({ model: 'text-embedding-3-small', input: `x ${tag}` }, { token: 'wrong' }), 401);
  assert.equal(error.code, 'invalid_api_key');
  assert.equal((await received(tag)).length, 0);
  const res = await fetch(`${GATEWAY}${EMBED_PATH}`, { headers: { authorization: `Bearer ${ACCESS_TOKEN}` } });
  await expectError(res, 405);
  assert.match(res.headers.get('allow') || '', /POST/);
});

// ---- request log, model list ------------------------------------------------------------------

test('the request log has the call: path /v1/embeddings, model, status 200, upstream, usage tokens; no secret', LIMIT, async () => {
  const marker = `embedlog${Date.now()}`;
  const tag = await scenario();
  const openaiTexts = [`${marker} one ${tag}`, `${marker} two words ${tag}`];
  const { data, response } = await guarded.embeddings.create({ model: 'text-embedding-3-small', input: openaiTexts, encoding_format: 'float' }).withResponse();
  const geminiTexts = [`${marker} gemini ${tag}`];
  const gemini = await guarded.embeddings.create({ model: 'gemini-embedding-001', input: geminiTexts, encoding_format: 'float' }).withResponse();

  const rows = await searchLog(marker, { n: 2 });
  const byModel = Object.fromEntries(rows.map((r) => [r.model, r]));
  const openaiRow = byModel['text-embedding-3-small'];
  assert.ok(openaiRow, JSON.stringify(rows));
  assert.deepEqual([openaiRow.method, openaiRow.path, openaiRow.status, openaiRow.provider, openaiRow.upstream],
    ['POST', EMBED_PATH, 200, 'openai', 'openai']);
  assert.equal(openaiRow.request_id, response.headers.get('x-request-id'));
  assert.equal(openaiRow.prompt_tokens, data.usage.prompt_tokens);
  assert.equal(openaiRow.total_tokens, data.usage.total_tokens);
  const geminiRow = byModel['gemini-embedding-001'];
  assert.ok(geminiRow, JSON.stringify(rows));
  assert.deepEqual([geminiRow.path, geminiRow.status, geminiRow.provider, geminiRow.upstream], [EMBED_PATH, 200, 'gemini', 'gemini']);
  assert.equal(geminiRow.total_tokens, tokensOf(geminiTexts));
  assert.equal(geminiRow.total_tokens, gemini.data.usage.total_tokens);

  const detail = await logRow(response.headers.get('x-request-id'));
  assert.ok(detail, 'the detail of the call');
  assertNoSecret(JSON.stringify(detail), 'log detail');
});

test('/v1/models lists the Gemini embedding model from the Gemini model list', LIMIT, async () => {
  // The mock lists models/gemini-embedding-001 as the real API does (embedContent among its
  // supportedGenerationMethods, never batchEmbedContents). Note: the mock's
  // models/text-embedding-mock is embedContent-only too; tests/e2e/providers.test.mjs asserts it
  // is left out, which an embedContent rule contradicts (see /work/notes/embeddings-wire.md).
  const ids = [];
  for await (const model of guarded.models.list()) ids.push(model.id);
  assert.ok(ids.includes('gemini-embedding-001'), ids.join(', '));
  assert.ok(ids.includes('gemini-mock-pro'), 'chat models are still listed');
});

// ---- the router: fallbacks, key pools, native kinds -------------------------------------------

test('router r-embed: a dead first target, then alpha answers; X-Gateway-Upstream alpha, attempts 2; the log row', LIMIT, async () => {
  const marker = `routerembed${Date.now()}`;
  const tag = await scenarioOn({ [MOCK]: {} });
  const texts = [`${marker} ${tag}`, `second ${tag}`];
  const { data, response } = await router.embeddings.create({ model: 'r-embed', input: texts, encoding_format: 'float' }).withResponse();
  assertAnswer(data, texts, { exact: true });
  assert.deepEqual(gatewayHeaders(response), { upstream: 'alpha', attempts: '2' });
  const calls = await receivedOn(MOCK, tag);
  assert.deepEqual(calls.map((c) => [c.path, c.key, c.body.model]), [[EMBED_PATH, KEYS.alpha, 'alpha-embed']]);
  assert.deepEqual(calls[0].body.input, texts);
  assert.ok(!JSON.stringify(calls[0].headers).includes(ROUTER_ACCESS));

  const [row] = await searchLog(marker, { base: ROUTER_GATEWAY, token: ROUTER_ADMIN });
  assert.deepEqual([row.path, row.model, row.status, row.upstream, Number(row.attempts)], [EMBED_PATH, 'r-embed', 200, 'alpha', 2]);
  assert.equal(row.prompt_tokens, tokensOf(texts));
  const detail = await logRow(response.headers.get('x-request-id'), { base: ROUTER_GATEWAY, token: ROUTER_ADMIN });
  assertNoSecret(JSON.stringify(detail), 'router log detail');
  assert.deepEqual(detail.attempt_log.map((a) => [a.upstream, a.status]), [['dead', null], ['alpha', 200]]);
});

test('router r-embed-503: alpha answers 503, zhipu (MOCK_B, /api/paas/v4) serves', LIMIT, async () => {
  const tag = await scenarioOn({ [MOCK]: { status: 503 }, [MOCK_B]: {} });
  const texts = inputs(tag, 2, 'fallback');
  const { data, response } = await router.embeddings.create({ model: 'r-embed-503', input: texts }).withResponse();
  // The SDK default (base64) passes through both OpenAI-kind upstreams and is decoded.
  data.data.forEach((d, i) => assertClose(d.embedding, mockEmbedding(texts[i]), `data[${i}]`));
  assert.deepEqual(gatewayHeaders(response), { upstream: 'zhipu', attempts: '2' });
  const a = await receivedOn(MOCK, tag);
  const b = await receivedOn(MOCK_B, tag);
  assert.deepEqual(a.map((c) => [c.path, c.key, c.body.model]), [[EMBED_PATH, KEYS.alpha, 'alpha-embed-503']]);
  assert.deepEqual(b.map((c) => [c.path, c.key, c.body.model]), [['/api/paas/v4/embeddings', KEYS.zhipu, 'glm-embed']]);
  assert.equal(b[0].body.encoding_format, 'base64');
});

test('router r-embed-gemini: after a dead target, the gem upstream in the native format with its own key', LIMIT, async () => {
  const tag = await scenarioOn({ [MOCK]: {} });
  const texts = inputs(tag, 3, 'gem');
  const { data, response } = await router.embeddings.create({ model: 'r-embed-gemini', input: texts, dimensions: 4 }).withResponse();
  assertAnswer(data, texts, { dims: 4 });
  assert.equal(data.model, 'r-embed-gemini', 'model is the one the client asked for');
  assert.deepEqual(gatewayHeaders(response), { upstream: 'gem', attempts: '2' });
  const [call, ...more] = await receivedOn(MOCK, tag);
  assert.equal(more.length, 0);
  assert.equal(call.path, GEMINI_BATCH_PATH);
  assert.equal(call.key, KEYS.gem);
  assert.equal(call.headers['x-goog-api-key'], KEYS.gem);
  assert.equal(call.headers.authorization, undefined);
  assert.deepEqual(call.body.requests.map((r) => [r.model, r.content.parts[0].text, r.outputDimensionality]),
    texts.map((t) => ['models/gemini-embedding-001', t, 4]));
});

test('router r-embed-pool: the revoked key gets 401, the next key answers at once; the revoked key is not used again', LIMIT, async () => {
  const tag = await scenarioOn({ [MOCK]: {} });
  const [bad, good] = KEYS.embpool;
  // Round-robin may start at either key: call until the revoked one has been tried.
  let last;
  for (let i = 0; i < 3 && !(await receivedOn(MOCK, tag)).some((c) => c.key === bad); i++) {
    last = await router.embeddings.create({ model: 'r-embed-pool', input: [`pool ${i} ${tag}`], encoding_format: 'float' }).withResponse();
    assertAnswer(last.data, [`pool ${i} ${tag}`], { exact: true });
  }
  const calls = await receivedOn(MOCK, tag);
  const badAt = calls.findIndex((c) => c.key === bad);
  assert.ok(badAt >= 0, `the revoked key was tried: ${calls.map((c) => c.key)}`);
  assert.equal(calls.filter((c) => c.key === bad).length, 1, 'the revoked key was tried once');
  assert.equal(calls[badAt + 1]?.key, good, 'then the good key');
  assert.equal(calls[badAt + 1].body.input[0], calls[badAt].body.input[0], 'the same call, retried');
  assert.ok(calls[badAt + 1].receivedAt - calls[badAt].receivedAt < 1000, 'no wait');
  assert.deepEqual(calls.map((c) => [c.path, c.body.model]).at(-1), [EMBED_PATH, 'ep-embed']);
  assert.deepEqual(gatewayHeaders(last.response), { upstream: 'embpool', attempts: '2' });
  const detail = await logRow(last.response.headers.get('x-request-id'), { base: ROUTER_GATEWAY, token: ROUTER_ADMIN });
  assert.deepEqual(detail.attempt_log.map((a) => [a.upstream, a.status]), [['embpool', 401], ['embpool', 200]]);

  const again = await router.embeddings.create({ model: 'r-embed-pool', input: [`pool again ${tag}`], encoding_format: 'float' }).withResponse();
  assert.deepEqual(gatewayHeaders(again.response), { upstream: 'embpool', attempts: '1' });
  assert.equal((await receivedOn(MOCK, tag)).at(-1).key, good, 'the disabled key is skipped');
});

test('router r-embed-dashscope: after a dead target, dsemb in the native format with its key', LIMIT, async () => {
  const tag = await scenarioOn({ [MOCK]: {} });
  const texts = inputs(tag, 3, 'dsemb');
  const { data, response } = await router.embeddings.create({ model: 'r-embed-dashscope', input: texts, dimensions: 128, encoding_format: 'float' }).withResponse();
  assertAnswer(data, texts, { dims: 128, model: 'r-embed-dashscope' });
  assert.deepEqual(data.usage, { prompt_tokens: tokensOf(texts), total_tokens: tokensOf(texts) });
  assert.deepEqual(gatewayHeaders(response), { upstream: 'dsemb', attempts: '2' });
  const [call, ...more] = await receivedOn(MOCK, tag);
  assert.equal(more.length, 0);
  assert.deepEqual([call.path, call.key, call.headers.authorization], [DASHSCOPE_PATH, KEYS.dsemb, `Bearer ${KEYS.dsemb}`]);
  assert.equal(call.body.model, 'text-embedding-v4');
  assert.deepEqual(call.body.input.texts, texts);
  assert.equal(call.body.parameters.dimension, 128);
});

test('limits: MAX_RESPONSE_BYTES bounds the whole embeddings answer across batches; too many native batches is a 400 before any call', async () => {
  const { LIMIT_GATEWAY } = await import('./helpers.mjs');
  // 150 inputs → two Gemini batches, each under the 64 KiB limit, together over it.
  const inputs = Array.from({ length: 150 }, (_, i) => `limit text ${i}`);
  const tag = await scenario({});
  const res = await fetch(`${LIMIT_GATEWAY}/v1/embeddings`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ACCESS_TOKEN}` },
    // The tag in one input of each batch, so both batches are recorded under it.
    body: JSON.stringify({ model: 'gemini-embedding-001', input: inputs.map((t, i) => (i === 0 || i === 120 ? `${t} ${tag}` : t)), dimensions: 70, encoding_format: 'float' }),
  });
  assert.equal(res.status, 502);
  assert.equal((await res.json()).error.code, 'response_too_large');
  assert.equal((await received(tag)).length, 2, 'both batches were read, then the total was too large');

  const many = Array.from({ length: 260 }, (_, i) => `t${i}`);
  const tag2 = await scenario({});
  const refused = await fetch(`${PUBLIC_GATEWAY}/v1/embeddings`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-user-key' },
    body: JSON.stringify({ model: 'text-embedding-v4', input: [`${many[0]} ${tag2}`, ...many.slice(1)] }),
  });
  assert.equal(refused.status, 400);
  const body = await refused.json();
  assert.equal(body.error.param, 'input');
  assert.match(body.error.message, /260 inputs need 26 calls/);
  assert.equal((await received(tag2)).length, 0);
});
