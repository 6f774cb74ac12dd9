// Access keys end to end: the admin API, calls with a key through the official SDK and raw
// HTTP, every refusal with its status and code, rpm/tpm/tpd counted by the limiter Durable
// Object (streams included), PUBLIC_RPM in public mode, a browser-origin key in real
// Chromium, revocation, and keys never in answers, errors, the log or /api/status.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { MOCK, scenario, received, waitFor, readSse } from './helpers.mjs';
import { launch } from './browser.mjs';

const KEYS = process.env.KEYS_GATEWAY_URL;
const PUBLIC_RPM_GATEWAY = process.env.PUBLICRPM_GATEWAY_URL;
const ADMIN = 'keys-admin-token';
const MASTER = 'keys-master-token';
const SERVER_KEY = 'sk-keys-server-key';
assert.ok(KEYS && PUBLIC_RPM_GATEWAY && MOCK, 'run through `npm test` (tests/run.mjs)');

/** Every key a test creates, for the secret scan of the wrangler logs (tests/run.mjs). */
function remember(secret) {
  fs.appendFileSync(path.join(process.env.TEST_STATE_DIR, 'created-secrets.txt'), `${secret}\n`);
}

async function admin(method, pathname, body) {
  const res = await fetch(`${KEYS}${pathname}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : null };
}

async function createKey(fields) {
  const created = await admin('POST', '/api/keys', fields);
  assert.equal(created.status, 201, created.text);
  remember(created.json.key);
  return created.json;
}

function chat(key, { model = 'gpt-keys', content = 'hi', origin, stream, extra = {} } = {}) {
  return fetch(`${KEYS}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...(origin ? { origin } : {}) },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }], ...(stream ? { stream: true } : {}), ...extra }),
  });
}

async function errorOf(res) {
  const body = await res.json();
  return { status: res.status, code: body.error?.code, message: body.error?.message, body };
}

describe('access keys', { concurrency: true }, () => {
  test('the admin API creates, lists, reads, updates and deletes keys; the key is shown once', async () => {
    for (const auth of [undefined, 'Bearer wrong', `Bearer ${MASTER}`]) {
      const res = await fetch(`${KEYS}/api/keys`, { headers: auth ? { authorization: auth } : {} });
      assert.equal(res.status, 401, `${auth}`);
    }
    const key = await createKey({ name: 'admin-api', models: ['gpt-*'], rpm: 100, tpd: 100000, expires_at: '2099-01-01T00:00:00Z' });
    assert.match(key.key, /^sk-gw-[A-Za-z0-9_-]{43}$/);
    assert.match(key.id, /^key_[0-9a-f]{16}$/);
    assert.equal(key.object, 'gateway.key');
    assert.equal(key.hint, `${key.key.slice(0, 10)}…${key.key.slice(-4)}`);
    assert.deepEqual([key.models, key.origins, key.rpm, key.tpm, key.tpd, key.expires_at, key.enabled],
      [['gpt-*'], [], 100, null, 100000, 4070908800, true]);

    const list = await admin('GET', '/api/keys');
    assert.equal(list.status, 200);
    assert.ok(list.json.data.some((k) => k.id === key.id));
    assert.ok(!list.text.includes(key.key), 'the list never shows a key');
    const one = await admin('GET', `/api/keys/${key.id}`);
    assert.equal(one.json.name, 'admin-api');
    assert.ok(!one.text.includes(key.key));
    assert.deepEqual(Object.keys(one.json.usage).sort(), ['calls', 'errors', 'last_used_at', 'tokens']);

    const patched = await admin('PATCH', `/api/keys/${key.id}`, { rpm: null, tpm: 5000, name: 'renamed' });
    assert.equal(patched.status, 200, patched.text);
    assert.deepEqual([patched.json.name, patched.json.rpm, patched.json.tpm, patched.json.tpd], ['renamed', null, 5000, 100000]);

    for (const [body, param] of [[{ name: 'x', rpm: 0 }, 'rpm'], [{ models: 'gpt-*', name: 'x' }, 'models'],
      [{ name: 'x', origins: ['example.com'] }, 'origins'], [{ name: 'x', expires_at: 1 }, 'expires_at'],
      [{ rpm: 3 }, 'name'], [{ name: 'x', limit: 3 }, 'limit']]) {
      const bad = await admin('POST', '/api/keys', body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.json.error.param, param, JSON.stringify(body));
    }
    assert.equal((await admin('PATCH', `/api/keys/${key.id}`, { enabled: 'no' })).status, 400);
    assert.equal((await admin('GET', '/api/keys/key_0000000000000000')).status, 404);
    assert.equal((await admin('PUT', `/api/keys/${key.id}`, {})).status, 405);

    const deleted = await admin('DELETE', `/api/keys/${key.id}`);
    assert.deepEqual(deleted.json, { id: key.id, object: 'gateway.key', deleted: true });
    assert.equal((await admin('GET', `/api/keys/${key.id}`)).status, 404);
    assert.equal((await admin('DELETE', `/api/keys/${key.id}`)).status, 404);
  });

  test('a key calls through the official SDK with the server key upstream, and is logged by name', async () => {
    const key = await createKey({ name: 'sdk-key', models: ['gpt-*', 'fake-*'] });
    const client = new OpenAI({ baseURL: `${KEYS}/v1`, apiKey: key.key, maxRetries: 0 });
    const tag = await scenario({ content: 'hello from the key' });
    const completion = await client.chat.completions.create({ model: 'gpt-keys-sdk', messages: [{ role: 'user', content: tag }] });
    assert.equal(completion.choices[0].message.content, 'hello from the key');
    const [upstream] = await received(tag);
    assert.equal(upstream.key, SERVER_KEY, 'the server key goes upstream, never the access key');
    assert.ok(!JSON.stringify(upstream.headers).includes(key.key));

    const stream = await client.chat.completions.create({ model: 'fake-keys-sdk', stream: true, messages: [{ role: 'user', content: await scenario({ content: 'streamed' }) }] });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'streamed');

    // The key sees only its models.
    const models = await client.models.list();
    assert.ok(models.data.every((m) => m.id.startsWith('gpt-') || m.id.startsWith('fake-')), JSON.stringify(models.data.map((m) => m.id)));

    const rows = await waitFor(async () => {
      const res = await fetch(`${KEYS}/api/requests?key=${key.id}`, { headers: { authorization: `Bearer ${ADMIN}` } });
      const list = await res.json();
      return list.total >= 2 && list;
    }, { timeoutMs: 10_000 });
    assert.ok(rows, 'the calls are logged under the key');
    assert.ok(rows.data.every((r) => r.key_id === key.id && r.key_name === 'sdk-key'));
    const detail = await (await fetch(`${KEYS}/api/request/${rows.data[0].id}`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    assert.ok(detail.includes('sdk-key'));
    assert.ok(!detail.includes(key.key), 'the log never holds the key');
    const usage = await waitFor(async () => {
      const { json } = await admin('GET', `/api/keys/${key.id}`);
      return json.usage.calls >= 2 && json.usage.tokens > 0 && json.usage;
    }, { timeoutMs: 10_000 });
    assert.ok(usage, 'usage per key comes from the log');
    assert.ok(usage.last_used_at > 0);

    const status = await (await fetch(`${KEYS}/api/status`, { headers: { authorization: `Bearer ${MASTER}` } })).text();
    assert.ok(!status.includes(key.key) && !status.includes(key.hint));
  });

  test('refusals: model, origin, disabled, expired, deleted and unknown keys', async () => {
    const key = await createKey({ name: 'refusals', models: ['gpt-4o*'], origins: ['http://allowed.example:3000'] });
    const origin = 'http://allowed.example:3000';
    assert.equal((await chat(key.key, { model: 'gpt-4o-mini', origin, content: await scenario() })).status, 200);

    const model = await errorOf(await chat(key.key, { model: 'o3', origin }));
    assert.deepEqual([model.status, model.code, model.body.error.type], [403, 'model_not_allowed', 'permission_error']);
    const wrongOrigin = await errorOf(await chat(key.key, { model: 'gpt-4o', origin: 'http://evil.example' }));
    assert.deepEqual([wrongOrigin.status, wrongOrigin.code], [403, 'origin_not_allowed']);
    const noOrigin = await errorOf(await chat(key.key, { model: 'gpt-4o' }));
    assert.deepEqual([noOrigin.status, noOrigin.code], [403, 'origin_not_allowed']);

    // A change through the admin API takes effect at once in the isolate that made it.
    await admin('PATCH', `/api/keys/${key.id}`, { enabled: false });
    const disabled = await errorOf(await chat(key.key, { model: 'gpt-4o', origin }));
    assert.deepEqual([disabled.status, disabled.code], [401, 'key_disabled']);
    await admin('PATCH', `/api/keys/${key.id}`, { enabled: true });
    assert.equal((await chat(key.key, { model: 'gpt-4o', origin, content: await scenario() })).status, 200);

    await admin('DELETE', `/api/keys/${key.id}`);
    const deleted = await errorOf(await chat(key.key, { model: 'gpt-4o', origin }));
    assert.deepEqual([deleted.status, deleted.code], [401, 'invalid_api_key']);
    const unknown = await errorOf(await chat('sk-gw-not-a-real-key', {}));
    assert.deepEqual([unknown.status, unknown.code], [401, 'invalid_api_key']);
    for (const refusal of [model, wrongOrigin, noOrigin, disabled, deleted]) {
      assert.ok(!JSON.stringify(refusal.body).includes(key.key), 'no error quotes the key');
    }

    // Far enough ahead that a loaded CI machine still calls before it; then wait until it has passed.
    const expiresAt = Math.floor(Date.now() / 1000) + 6;
    const soon = await createKey({ name: 'expires', expires_at: expiresAt });
    assert.equal((await chat(soon.key, { content: await scenario() })).status, 200);
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt * 1000 + 1000 - Date.now())));
    const expired = await errorOf(await chat(soon.key));
    assert.deepEqual([expired.status, expired.code], [401, 'key_expired']);
  });

  test('rpm: 3 — the 4th call within the minute gets 429 with retry-after, and is accepted after', async () => {
    const key = await createKey({ name: 'rpm-3', rpm: 3 });
    for (let i = 0; i < 3; i++) {
      const ok = await chat(key.key, { content: await scenario() });
      assert.equal(ok.status, 200, `call ${i + 1}`);
      // OpenAI's rate-limit headers, for the key's own limit.
      assert.equal(ok.headers.get('x-ratelimit-limit-requests'), '3');
      assert.equal(ok.headers.get('x-ratelimit-remaining-requests'), String(2 - i));
    }
    const res = await chat(key.key);
    const retryAfter = Number(res.headers.get('retry-after'));
    const refused = await errorOf(res);
    assert.deepEqual([refused.status, refused.code, refused.body.error.type], [429, 'rate_limit_exceeded', 'requests']);
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `retry-after ${retryAfter}`);
    const live = await admin('GET', `/api/keys/${key.id}`);
    assert.equal(live.json.limits_used.requests_minute, 3, 'a refused call is not counted');
    // The SDK sees a RateLimitError.
    const client = new OpenAI({ baseURL: `${KEYS}/v1`, apiKey: key.key, maxRetries: 0 });
    await assert.rejects(client.chat.completions.create({ model: 'gpt-keys', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.RateLimitError && e.code === 'rate_limit_exceeded');
    await new Promise((r) => setTimeout(r, retryAfter * 1000 + 500));
    assert.equal((await chat(key.key, { content: await scenario() })).status, 200, 'accepted again after retry-after');
  });

  test('token quotas are charged from usage: JSON, streams with and without include_usage, fake streams', async () => {
    const usage = { prompt_tokens: 20, completion_tokens: 20, total_tokens: 40 };
    const key = await createKey({ name: 'tokens', tpm: 1_000_000, tpd: 100 });
    const used = async () => (await admin('GET', `/api/keys/${key.id}`)).json.limits_used;
    const settled = (tokens) => waitFor(async () => (await used()).tokens_day === tokens, { timeoutMs: 10_000 });

    assert.equal((await chat(key.key, { content: await scenario({ usage }) })).status, 200);
    assert.ok(await settled(40), 'a JSON answer charges its usage');

    const streamed = await chat(key.key, { stream: true, content: await scenario({ usage }), extra: { stream_options: { include_usage: true } } });
    assert.equal(streamed.status, 200);
    await readSse(streamed);
    assert.ok(await settled(80), 'a stream charges its usage');
    assert.equal((await used()).tokens_minute, 80);

    // 80 of 100: the next call is still admitted; a stream without usage is estimated.
    const bare = await chat(key.key, { stream: true, content: `${await scenario({ content: 'x'.repeat(200) })}` });
    assert.equal(bare.status, 200);
    await readSse(bare);
    const estimated = await waitFor(async () => (await used()).tokens_day > 80 && used(), { timeoutMs: 10_000 });
    assert.ok(estimated, 'a stream without usage is charged an estimate');

    const refused = await chat(key.key);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after') > 0, true);
    const body = await refused.json();
    assert.equal(body.error.type, 'tokens');
    assert.match(body.error.message, /tokens per day/);
  });

  test('a fake stream charges its usage too', async () => {
    const key = await createKey({ name: 'fake-tokens', tpm: 45 });
    const res = await chat(key.key, { model: 'fake-keys', stream: true, content: await scenario({ usage: { prompt_tokens: 25, completion_tokens: 25, total_tokens: 50 } }) });
    assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
    await readSse(res);
    const charged = await waitFor(async () => (await admin('GET', `/api/keys/${key.id}`)).json.limits_used.tokens_minute === 50, { timeoutMs: 10_000 });
    assert.ok(charged);
    const refused = await errorOf(await chat(key.key, { model: 'fake-keys', stream: true }));
    assert.deepEqual([refused.status, refused.code], [429, 'rate_limit_exceeded']);
    assert.match(refused.message, /tokens per minute/);
  });

  test('Anthropic clients (X-Api-Key) and embeddings use keys too, refusals in their own shape', async () => {
    const key = await createKey({ name: 'agents', models: ['claude-*', 'text-embedding-3-*'] });
    const anthropic = new Anthropic({ baseURL: KEYS, apiKey: key.key, maxRetries: 0 });
    const tag = await scenario({ content: 'hello claude key' });
    const message = await anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: tag }] });
    assert.equal(message.content[0].text, 'hello claude key');
    assert.equal((await received(tag))[0].key, SERVER_KEY);
    await assert.rejects(anthropic.messages.create({ model: 'gpt-4o', max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof Anthropic.PermissionDeniedError && e.error?.type === 'error' && e.error.error.type === 'permission_error');

    const embed = (model) => fetch(`${KEYS}/v1/embeddings`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key.key}` },
      body: JSON.stringify({ model, input: 'hello' }),
    });
    const allowed = await embed('text-embedding-3-small');
    assert.equal(allowed.status, 200);
    assert.equal((await allowed.json()).data.length, 1);
    const refused = await errorOf(await embed('other-embedding'));
    assert.deepEqual([refused.status, refused.code], [403, 'model_not_allowed']);
  });

  test('with the request log off, a stream without usage is still charged its estimate', async () => {
    const NOLOG = process.env.KEYSNOLOG_GATEWAY_URL;
    const headers = { authorization: 'Bearer keysnolog-admin-token', 'content-type': 'application/json' };
    const created = await (await fetch(`${NOLOG}/api/keys`, { method: 'POST', headers, body: JSON.stringify({ name: 'nolog', tpd: 1_000_000 }) })).json();
    remember(created.key);
    const answer = 'word '.repeat(400);
    const res = await fetch(`${NOLOG}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${created.key}` },
      body: JSON.stringify({ model: 'gpt-nolog', stream: true, messages: [{ role: 'user', content: await scenario({ content: answer, usage: null }) }] }),
    });
    assert.equal(res.status, 200);
    await readSse(res);
    const used = await waitFor(async () => {
      const live = await (await fetch(`${NOLOG}/api/keys/${created.id}`, { headers })).json();
      return live.limits_used?.tokens_day > 0 && live.limits_used;
    }, { timeoutMs: 10_000 });
    assert.ok(used, 'the call is charged with no log row behind it');
    // Four bytes per token of the relayed answer, plus the request's share.
    assert.ok(used.tokens_day >= answer.length / 4, `charged ${used.tokens_day}`);
  });

  test('Responses: a key may only use its models, and stored responses belong to their key', async () => {
    const a = await createKey({ name: 'resp-a', models: ['gpt-*'] });
    const b = await createKey({ name: 'resp-b' });
    const create = (key, model) => fetch(`${KEYS}/v1/responses`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model, input: 'hello', store: true }),
    });
    const refused = await errorOf(await create(a.key, 'o3'));
    assert.deepEqual([refused.status, refused.code], [403, 'model_not_allowed']);
    const made = await create(a.key, 'gpt-resp-key');
    assert.equal(made.status, 200);
    const { id } = await made.json();
    const read = (key) => fetch(`${KEYS}/v1/responses/${id}`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal((await read(a.key)).status, 200);
    assert.equal((await read(b.key)).status, 404, "another key cannot read it");
    const del = await fetch(`${KEYS}/v1/responses/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${b.key}` } });
    assert.equal(del.status, 404, 'nor delete it');
    // /v1/models answers a key from a foreign origin like any call.
    const web = await createKey({ name: 'web-models', origins: ['https://app.example.com'] });
    const models = await errorOf(await fetch(`${KEYS}/v1/models`, { headers: { authorization: `Bearer ${web.key}`, origin: 'https://evil.example.com' } }));
    assert.deepEqual([models.status, models.code], [403, 'origin_not_allowed']);
  });

  test('PUBLIC_RPM limits each client IP in public mode', async () => {
    const call = async () => fetch(`${PUBLIC_RPM_GATEWAY}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-client-own-key-123' },
      body: JSON.stringify({ model: 'gpt-public', messages: [{ role: 'user', content: await scenario() }] }),
    });
    for (let i = 0; i < 3; i++) assert.equal((await call()).status, 200, `call ${i + 1}`);
    const res = await call();
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    const refused = await errorOf(res);
    assert.deepEqual([refused.status, refused.code], [429, 'rate_limit_exceeded']);
    assert.match(refused.message, /PUBLIC_RPM/);
    assert.ok(!JSON.stringify(refused.body).includes('sk-client-own-key-123'));
  });

  test('a browser-origin key works from its page in Chromium and is refused from another origin', async () => {
    // Two pages on two ports: two origins, one of them the key's.
    const page = '<!doctype html><meta charset="utf-8"><title>keys</title>';
    const serve = async () => {
      const server = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(page); });
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      return server;
    };
    const [home, other] = [await serve(), await serve()];
    const port = home.address().port;
    const key = await createKey({ name: 'browser-key', origins: [`http://127.0.0.1:${port}`], rpm: 20 });
    const browser = await launch();
    try {
      const call = async (pageUrl) => {
        const tab = await browser.newPage();
        await tab.goto(pageUrl);
        const tag = await scenario({ content: 'from the page' });
        const result = await tab.evaluate(async ({ url, secret, tag }) => {
          const res = await fetch(url, {
            method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
            body: JSON.stringify({ model: 'gpt-browser', messages: [{ role: 'user', content: tag }] }),
          });
          return { status: res.status, body: await res.json() };
        }, { url: `${KEYS}/v1/chat/completions`, secret: key.key, tag });
        await tab.close();
        return result;
      };
      const allowed = await call(`http://127.0.0.1:${port}/`);
      assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
      assert.equal(allowed.body.choices[0].message.content, 'from the page');
      const refused = await call(`http://127.0.0.1:${other.address().port}/`);
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error.code, 'origin_not_allowed');
    } finally {
      await browser.close();
      home.close();
      other.close();
    }
  });
});
