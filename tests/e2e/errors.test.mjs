// Every failure is an OpenAI error object with the right HTTP status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { GATEWAY, ACCESS_TOKEN, SERVER_KEY, scenario, chatBody, post, readSse, contentOf } from './helpers.mjs';

async function expectError(res, status, check = () => {}) {
  assert.equal(res.status, status);
  assert.match(res.headers.get('content-type'), /application\/json/);
  const body = await res.json();
  assert.equal(typeof body.error, 'object', JSON.stringify(body));
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.ok('type' in body.error && 'code' in body.error, JSON.stringify(body));
  check(body.error);
  return body.error;
}

test('400 for bad JSON, a missing model and missing messages', async () => {
  await expectError(await post('/v1/chat/completions', '{"model": "x", '), 400, (e) => assert.equal(e.code, 'invalid_json'));
  await expectError(await post('/v1/chat/completions', { model: 'gpt-test' }), 400, (e) => assert.equal(e.param, 'messages'));
  await expectError(await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] }), 400, (e) => assert.equal(e.param, 'model'));
  await expectError(await post('/v1/chat/completions', { model: 'm', messages: 'hello' }), 400);
  await expectError(await post('/v1/chat/completions', ''), 400);
});

test('401 without or with a wrong access token, and never the key in the error', async () => {
  const body = chatBody('no-tag');
  await expectError(await post('/v1/chat/completions', body, { headers: { authorization: '' } }), 401,
    (e) => assert.equal(e.code, 'missing_api_key'));
  const error = await expectError(await post('/v1/chat/completions', body, { headers: { authorization: 'Bearer wrong' } }), 401,
    (e) => assert.equal(e.code, 'invalid_api_key'));
  assert.ok(!JSON.stringify(error).includes(ACCESS_TOKEN));
  // X-Api-Key is accepted as an alternative to Authorization.
  const tag = await scenario();
  const ok = await post('/v1/chat/completions', chatBody(tag), { headers: { authorization: '', 'x-api-key': ACCESS_TOKEN } });
  assert.equal(ok.status, 200);
  // The SDK maps it to its error class.
  const bad = new OpenAI({ baseURL: `${GATEWAY}/v1`, apiKey: 'nope', maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create(body), OpenAI.AuthenticationError);
});

test('404 for unknown paths, 405 for wrong methods', async () => {
  await expectError(await fetch(`${GATEWAY}/v2/nothing`), 404, (e) => assert.match(e.message, /\/v2\/nothing/));
  const res = await fetch(`${GATEWAY}/v1/chat/completions`);
  await expectError(res, 405);
  assert.match(res.headers.get('allow'), /POST/);
  await expectError(await fetch(`${GATEWAY}/health`, { method: 'DELETE' }), 405);
});

test('413 for a body over MAX_REQUEST_BYTES', async () => {
  const big = chatBody('x', { messages: [{ role: 'user', content: 'a'.repeat(70_000) }] });
  await expectError(await post('/v1/chat/completions', big), 413, (e) => assert.equal(e.code, 'request_too_large'));
});

test('502 when the upstream is unreachable or answers garbage, 504 when it is too slow', async () => {
  await expectError(await post('/v1/chat/completions', chatBody(await scenario({ reset: true }))), 502,
    (e) => assert.equal(e.code, 'upstream_unreachable'));
  await expectError(await post('/v1/chat/completions', chatBody(await scenario({ malformed: true }))), 502,
    (e) => assert.equal(e.code, 'upstream_malformed_response'));
  await expectError(await post('/v1/chat/completions', chatBody(await scenario({ hang: true }))), 504,
    (e) => assert.equal(e.code, 'upstream_timeout'));
});

test('upstream 4xx/5xx keep their status and OpenAI shape', async () => {
  const rateLimit = { error: { message: 'Rate limit reached', type: 'requests', param: null, code: 'rate_limit_exceeded' } };
  const tag = await scenario({ status: 429, error_body: JSON.stringify(rateLimit) });
  const res = await post('/v1/chat/completions', chatBody(tag));
  assert.equal(res.status, 429);
  assert.deepEqual(await res.json(), rateLimit);

  await expectError(await post('/v1/chat/completions', chatBody(await scenario({ status: 503, error_body: '<h1>down</h1>', error_content_type: 'text/html' }))), 503,
    (e) => { assert.equal(e.code, 'upstream_http_503'); assert.match(e.message, /down/); });

  const client = new OpenAI({ baseURL: `${GATEWAY}/v1`, apiKey: ACCESS_TOKEN, maxRetries: 0 });
  await assert.rejects(client.chat.completions.create(chatBody(tag)), OpenAI.RateLimitError);
});

test('an upstream error that echoes the server key is scrubbed', async () => {
  const echo = { error: { message: `Incorrect API key provided: ${SERVER_KEY}`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } };
  const res = await post('/v1/chat/completions', chatBody(await scenario({ status: 401, error_body: JSON.stringify(echo) })));
  const text = await res.text();
  assert.equal(res.status, 401);
  assert.ok(!text.includes(SERVER_KEY), text);
  assert.match(text, /\*\*\*/);
});

test('a passthrough stream cut mid-event ends with an error event and [DONE], never half an event', async () => {
  const tag = await scenario({ content: 'abcdefghijklmnopqrstuvwxyz', chunk_chars: 2, cut_after: 4 });
  const res = await post('/v1/chat/completions', chatBody(tag, { stream: true }));
  assert.equal(res.status, 200);
  const items = await readSse(res);
  const data = items.filter((i) => i.kind === 'data');
  for (const item of data.slice(0, -1)) assert.doesNotThrow(() => JSON.parse(item.text), item.text);
  assert.equal(data.at(-1).text, '[DONE]');
  const error = JSON.parse(data.at(-2).text).error;
  assert.ok(error && error.type === 'upstream_error', JSON.stringify(error));
  assert.equal(contentOf(items.slice(0, -2)), 'abcdef', 'what arrived before the cut is relayed');
});
