// The request log in D1 (real local D1 under wrangler dev) and its JSON API.
// Runs against its own gateway instance (MAX_REQUESTS_HISTORY=6, LOG_MAX_BODY_BYTES=2048),
// so row counts are exact. Tests in this file run in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import OpenAI from 'openai';
import { LOG_GATEWAY, PUBLIC_GATEWAY, scenario, post, readSse, waitFor } from './helpers.mjs';

const ACCESS = 'log-access-token';
const ADMIN = 'log-admin-token';
const client = new OpenAI({ baseURL: `${LOG_GATEWAY}/v1`, apiKey: ACCESS, maxRetries: 0 });
const admin = (path, token = ADMIN) => fetch(`${LOG_GATEWAY}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

async function list(query = '') {
  const res = await admin(`/api/requests${query}`);
  assert.equal(res.status, 200);
  return res.json();
}

/** Writes happen after the response (waitUntil): wait until `n` rows are there. */
async function waitForTotal(n, query = '') {
  const body = await waitFor(async () => {
    const l = await list(query);
    return l.total >= n ? l : null;
  }, { timeoutMs: 10_000 });
  assert.ok(body, `expected ${n} logged requests${query}`);
  return body;
}

test('the API and dashboard refuse a missing or wrong admin token, and are off without ADMIN_TOKEN', async () => {
  assert.equal((await admin('/api/requests', null)).status, 401);
  assert.equal((await admin('/api/stats', 'wrong')).status, 401);
  const wrong = await (await admin('/api/request/1', 'wrong')).json();
  assert.equal(wrong.error.code, 'invalid_api_key');
  for (const path of ['/api/requests', '/api/stats', '/dashboard']) {
    const res = await fetch(`${PUBLIC_GATEWAY}${path}`, { headers: { authorization: 'Bearer anything' } });
    assert.equal(res.status, 403, path);
    assert.match((await res.json()).error.message, /ADMIN_TOKEN/);
  }
});

let calls = {};

test('proxied calls are logged with their fields; keys only as hashes', async () => {
  assert.equal((await list()).total, 0, 'a fresh instance starts empty');
  const jsonTag = await scenario({ content: 'logged JSON answer' });
  const { response } = await client.chat.completions.create({
    model: 'gpt-log', messages: [{ role: 'user', content: `remember zebra ${jsonTag}` }],
  }).withResponse();
  calls.json = response.headers.get('x-request-id');

  const streamTag = await scenario({ content: 'streamed 你好 🌍 answer', chunk_chars: 3 });
  let text = '';
  for await (const c of await client.chat.completions.create({
    model: 'gpt-log', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: `stream ${streamTag}` }],
  })) text += c.choices[0]?.delta?.content ?? '';
  assert.equal(text, 'streamed 你好 🌍 answer');

  const fakeTag = await scenario({ content: 'fake streamed answer', delay_ms: 250 });
  const fake = await post('/v1/chat/completions', { model: 'fake-log', stream: true, messages: [{ role: 'user', content: fakeTag }] },
    { base: LOG_GATEWAY, headers: { authorization: `Bearer ${ACCESS}` } });
  await readSse(fake);

  const bad = await post('/v1/chat/completions', '{"model": "gpt-log", broken', { base: LOG_GATEWAY, headers: { authorization: `Bearer ${ACCESS}` } });
  assert.equal(bad.status, 400);

  const body = await waitForTotal(4);
  const [badRow, fakeRow, streamRow, jsonRow] = body.data;
  assert.ok(body.data[0].id > body.data[3].id, 'newest first');

  assert.equal(jsonRow.request_id, calls.json);
  assert.deepEqual([jsonRow.method, jsonRow.path, jsonRow.provider, jsonRow.model, jsonRow.status], ['POST', '/v1/chat/completions', 'openai', 'gpt-log', 200]);
  assert.equal(jsonRow.stream, 0);
  assert.ok(jsonRow.total_ms >= 0 && jsonRow.first_byte_ms >= 0 && jsonRow.first_byte_ms <= jsonRow.total_ms);
  assert.ok(jsonRow.total_tokens > 0);
  assert.equal(streamRow.stream, 1);
  assert.equal(streamRow.fake_stream, 0);
  assert.equal(fakeRow.fake_stream, 1);
  assert.ok(fakeRow.first_byte_ms < 200, 'fake stream first byte is its first heartbeat, at once');
  assert.ok(fakeRow.first_token_ms >= 200, 'fake stream first token is the first content, after the upstream delay');
  assert.ok(jsonRow.first_token_ms >= jsonRow.first_byte_ms, 'JSON: the answer comes whole');
  assert.equal(badRow.status, 400);
  assert.match(badRow.error, /not valid JSON/);

  const detail = await (await admin(`/api/request/${jsonRow.id}`)).json();
  assert.match(detail.request_body, /remember zebra/);
  assert.equal(JSON.parse(detail.response_body).choices[0].message.content, 'logged JSON answer');
  assert.match(detail.request_headers.authorization, /^Bearer sha256:[0-9a-f]{12}$/);
  assert.equal(detail.request_headers['content-type'], 'application/json');
  assert.match(detail.response_headers['content-type'], /application\/json/);
  assert.equal(detail.client_ip !== undefined, true);
  const everything = JSON.stringify(detail);
  assert.ok(!everything.includes(ACCESS) && !everything.includes('sk-log-server-key'), 'no key in the log');

  const streamDetail = await (await admin(`/api/request/${streamRow.request_id}`)).json();
  assert.equal(streamDetail.response_body, 'streamed 你好 🌍 answer', 'streams are stored as their reassembled text');
  assert.equal(streamDetail.stream, true);
  assert.ok(streamDetail.total_tokens > 0);
  const fakeDetail = await (await admin(`/api/request/${fakeRow.id}`)).json();
  assert.equal(fakeDetail.response_body, 'fake streamed answer');
  assert.equal((await admin('/api/request/999999')).status, 404);
});

test('search, filters and pagination return the right rows', async () => {
  const found = await list('?search=zebra');
  assert.equal(found.total, 1);
  assert.equal(found.data[0].request_id, calls.json);
  assert.equal((await list('?search=nothing-like-this')).total, 0);
  assert.equal((await list('?status=error')).total, 1);
  assert.equal((await list('?status=4xx')).data[0].status, 400);
  assert.equal((await list('?model=fake-log')).total, 1);
  const page1 = await list('?page_size=3&page=1');
  const page2 = await list('?page_size=3&page=2');
  assert.equal(page1.total_pages, 2);
  assert.equal(page1.data.length, 3);
  assert.equal(page2.data.length, 1);
  assert.ok(page1.data.at(-1).id > page2.data[0].id);
  assert.equal((await admin('/api/requests?page_size=5000')).status, 400);
  assert.equal((await admin('/api/requests?status=weird')).status, 400);
});

test('stats summarise the window', async () => {
  const stats = await (await admin('/api/stats?window=1h')).json();
  assert.equal(stats.total, 4);
  assert.equal(stats.errors, 1);
  assert.equal(stats.success_rate, 75);
  assert.ok(stats.p50_latency_ms >= 0 && stats.p95_latency_ms >= stats.p50_latency_ms);
  assert.ok(stats.avg_latency_ms > 0);
  // The unparseable request has no model: it is counted under "(none)".
  assert.deepEqual(stats.by_model.map((m) => m.name).sort(), ['(none)', 'fake-log', 'gpt-log']);
  assert.equal(stats.by_provider.find((p) => p.name === 'openai').count, 3);
  assert.equal(stats.timeline.reduce((n, b) => n + b.count, 0), 4);
  assert.equal((await admin('/api/stats?window=forever')).status, 400);
});

test('long bodies are truncated and retention keeps the newest MAX_REQUESTS_HISTORY rows', async () => {
  const oldest = (await list('?page_size=10')).data.at(-1);
  const tag = await scenario({ content: 'short' });
  await client.chat.completions.create({ model: 'gpt-log', messages: [{ role: 'user', content: `${tag} ${'long '.repeat(1000)}` }] });
  for (let i = 0; i < 3; i++) {
    await client.chat.completions.create({ model: 'gemini-2.0-flash', messages: [{ role: 'user', content: `${await scenario()} more ${i}` }] });
  }
  const body = await waitFor(async () => {
    const l = await list('?page_size=10');
    return l.data.some((r) => r.model === 'gemini-2.0-flash' && r.path) && l.data[0].model === 'gemini-2.0-flash' && l.total === 6 ? l : null;
  }, { timeoutMs: 10_000 });
  assert.ok(body, 'the table holds exactly 6 rows');
  assert.equal((await admin(`/api/request/${oldest.id}`)).status, 404, 'the oldest rows were dropped');
  const long = body.data.find((r) => r.model === 'gpt-log'); // newest first: the long call
  const detail = await (await admin(`/api/request/${long.id}`)).json();
  assert.match(detail.request_body, /truncated, \d+ bytes in all\]$/);
  assert.ok(detail.request_body.length < 2200);
  assert.equal(body.data[0].provider, 'gemini');
});

test('refused requests are counted, never stored: a flood of them evicts no row', async () => {
  const before = await list('?page_size=10');
  assert.equal(before.total, 6);
  const statsBefore = await (await admin('/api/stats?window=1h')).json();
  const body = { model: 'gpt-log', messages: [{ role: 'user', content: 'let me in' }] };
  const refused = [];
  for (let i = 0; i < 12; i++) {
    const headers = i % 3 === 0 ? { authorization: '' } : { authorization: `Bearer wrong-token-${i}` };
    refused.push(post('/v1/chat/completions', body, { base: LOG_GATEWAY, headers }).then((r) => r.status));
  }
  assert.deepEqual(await Promise.all(refused), Array(12).fill(401));
  const stats = await waitFor(async () => {
    const s = await (await admin('/api/stats?window=1h')).json();
    return s.refused >= statsBefore.refused + 12 ? s : null;
  }, { timeoutMs: 10_000 });
  assert.ok(stats, 'the stats count every refusal');
  assert.equal(stats.total, statsBefore.total, 'refusals are not rows');
  const after = await list('?page_size=10');
  assert.equal(after.total, 6);
  assert.deepEqual(after.data.map((r) => r.id), before.data.map((r) => r.id), 'every authenticated row is still there');
});

test('LOG_BODIES=false keeps everything but the bodies', async () => {
  const QUIET = process.env.QUIET_GATEWAY_URL;
  const tag = await scenario({ content: 'secret answer text' });
  const res = await post('/v1/chat/completions', { model: 'gpt-quiet', messages: [{ role: 'user', content: `private prompt ${tag}` }] },
    { base: QUIET, headers: { authorization: 'Bearer whatever' } });
  assert.equal(res.status, 200);
  const id = res.headers.get('x-request-id');
  const headers = { authorization: 'Bearer quiet-admin-token' };
  const detail = await waitFor(async () => {
    const r = await fetch(`${QUIET}/api/request/${id}`, { headers });
    return r.status === 200 ? r.json() : null;
  }, { timeoutMs: 10_000 });
  assert.ok(detail, 'the call is logged');
  assert.equal(detail.model, 'gpt-quiet');
  assert.ok(detail.total_tokens > 0);
  assert.equal(detail.request_body, null);
  assert.equal(detail.response_body, null);
  assert.ok(!JSON.stringify(detail).includes('private prompt'));
  const search = await (await fetch(`${QUIET}/api/requests?search=private`, { headers })).json();
  assert.equal(search.total, 0);
});

test('rows of calls ending together (one D1 batch) are all stored, each once', async () => {
  // Rows of calls that end at about the same time go to D1 as one batch (group commit):
  // none may be lost, whatever their kind.
  const QUIET = process.env.QUIET_GATEWAY_URL;
  const headers = { authorization: 'Bearer quiet-admin-token' };
  const tag = await scenario({ content: 'together' });
  const failing = await scenario({ status: 500, error_body: JSON.stringify({ error: { message: 'batch failure', type: 'server_error' } }) });
  const calls = Array.from({ length: 24 }, (_, i) => (async () => {
    const kind = ['json', 'stream', 'error'][i % 3];
    const body = { model: `gpt-batch-${kind}`, messages: [{ role: 'user', content: kind === 'error' ? failing : tag }] };
    if (kind === 'stream') body.stream = true;
    const res = await post('/v1/chat/completions', body, { base: QUIET, headers: { authorization: 'Bearer whatever' } });
    await res.text();
    return { id: res.headers.get('x-request-id'), status: res.status, kind };
  })());
  const answered = await Promise.all(calls);
  assert.equal(new Set(answered.map((a) => a.id)).size, 24, 'every call has its own request id');
  for (const { id, status, kind } of answered) {
    const row = await waitFor(async () => {
      const r = await fetch(`${QUIET}/api/request/${id}`, { headers });
      return r.status === 200 ? r.json() : null;
    }, { timeoutMs: 10_000 });
    assert.ok(row, `the ${kind} call ${id} is logged`);
    assert.equal(row.status, status);
    assert.equal(row.model, `gpt-batch-${kind}`);
  }
  assert.deepEqual(answered.map((a) => a.status).sort(), [...Array(16).fill(200), ...Array(8).fill(500)]);
  const listed = await (await fetch(`${QUIET}/api/requests?model=gpt-batch-json&page_size=100`, { headers })).json();
  assert.equal(listed.total, 8, 'no row is written twice');
});

test('LOG_SAMPLE_RATE=0 writes errors only', async () => {
  const SAMPLED = process.env.SAMPLED_GATEWAY_URL;
  const headers = { authorization: 'Bearer sampled-admin-token' };
  const call = async (knobs) => post('/v1/chat/completions', { model: 'gpt-sampled', messages: [{ role: 'user', content: await scenario(knobs) }] },
    { base: SAMPLED, headers: { authorization: 'Bearer whatever' } });
  const ok = await call({});
  assert.equal(ok.status, 200);
  const failed = await call({ status: 500, error_body: JSON.stringify({ error: { message: 'sampled failure', type: 'server_error' } }) });
  assert.equal(failed.status, 500);
  const row = await waitFor(async () => {
    const r = await fetch(`${SAMPLED}/api/request/${failed.headers.get('x-request-id')}`, { headers });
    return r.status === 200 ? r.json() : null;
  }, { timeoutMs: 10_000 });
  assert.ok(row, 'the failed call is logged');
  assert.equal(row.status, 500);
  // Written before the failure, if it were written at all.
  await new Promise((r) => setTimeout(r, 500));
  const success = await fetch(`${SAMPLED}/api/request/${ok.headers.get('x-request-id')}`, { headers });
  assert.equal(success.status, 404, 'the successful call is sampled out');
});

test('LOG_REQUESTS=false writes nothing (checked in the D1 database itself)', async () => {
  const tag = await scenario();
  const res = await post('/v1/chat/completions', { model: 'gpt-public', messages: [{ role: 'user', content: tag }] },
    { base: PUBLIC_GATEWAY, headers: { authorization: 'Bearer sk-user' } });
  assert.equal(res.status, 200);
  await res.text();
  await new Promise((r) => setTimeout(r, 500));
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync(path.resolve('node_modules/.bin/wrangler'), [
    'd1', 'execute', 'DB', '--local', '--persist-to', path.join(process.env.TEST_STATE_DIR, 'PUBLIC_GATEWAY_URL'),
    '--command', 'SELECT COUNT(*) AS n FROM requests', '--json',
  ], { env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' }, encoding: 'utf8' });
  const [result] = JSON.parse(out);
  assert.equal(result.results[0].n, 0);
});
