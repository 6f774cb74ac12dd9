// Proxying Chat Completions: non-streaming and streaming passthrough, through the official
// `openai` npm SDK and raw HTTP, in access-token and public (client key) modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { DEFAULT_CONTENT } from '../mock/upstream.mjs';
import {
  GATEWAY, PUBLIC_GATEWAY, ACCESS_TOKEN, SERVER_KEY, scenario, received, chatBody, post, readSse, contentOf,
} from './helpers.mjs';

const client = new OpenAI({ baseURL: `${GATEWAY}/v1`, apiKey: ACCESS_TOKEN, maxRetries: 0 });

test('non-streaming call through the SDK returns the upstream answer and forwards every parameter', async () => {
  const tag = await scenario();
  const { data: completion, response } = await client.chat.completions.create({
    model: 'gpt-test',
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: `hi ${tag}` }],
    temperature: 0.3,
    max_tokens: 50,
    top_k: 4, // not in OpenAI's API: must pass through untouched
    metadata: { trace: 'abc' },
  }).withResponse();
  assert.equal(completion.choices[0].message.content, DEFAULT_CONTENT);
  assert.equal(completion.id, 'chatcmpl-mock123');
  assert.equal(completion.usage.prompt_tokens, 11);
  assert.equal(response.headers.get('x-upstream-request-id'), 'req_mock_1');
  assert.equal(response.headers.get('x-ratelimit-remaining-requests'), '99');
  assert.match(response.headers.get('x-request-id'), /^[0-9a-f]{24}$/);

  const [upstream] = await received(tag);
  assert.equal(upstream.path, '/v1/chat/completions');
  assert.equal(upstream.headers.authorization, `Bearer ${SERVER_KEY}`, 'the server key replaces the access token');
  assert.equal(upstream.body.top_k, 4);
  assert.equal(upstream.body.temperature, 0.3);
  assert.equal(upstream.body.max_tokens, 50);
  assert.deepEqual(upstream.body.metadata, { trace: 'abc' });
  assert.equal(upstream.body.messages.length, 2);
  assert.equal(upstream.headers['x-stainless-lang'], 'js', 'SDK headers are forwarded');
});

test('streaming passthrough through the SDK reassembles the upstream content', async () => {
  const tag = await scenario({ content: 'Streamed: 流式传输 ✓ 🚀 done.' });
  const { data: stream, response } = await client.chat.completions.create({
    ...chatBody(tag), stream: true, stream_options: { include_usage: true },
  }).withResponse();
  assert.equal(response.headers.get('x-gateway-fake-stream'), null);
  let text = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, 'Streamed: 流式传输 ✓ 🚀 done.');
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.total_tokens > 0, 'usage chunk relayed');
  const [upstream] = await received(tag);
  assert.equal(upstream.body.stream, true);
  assert.deepEqual(upstream.body.stream_options, { include_usage: true });
});

test('passthrough events reach the client before the upstream has finished', async () => {
  const tag = await scenario({ content: 'one two three four five six seven eight', chunk_chars: 4, chunk_delay_ms: 150 });
  const res = await post('/v1/chat/completions', chatBody(tag, { stream: true }));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  let firstContentAt = null;
  const items = await readSse(res, (item) => {
    if (firstContentAt === null && item?.kind === 'data' && item.text.includes('"content":"one')) firstContentAt = item.at;
  });
  assert.equal(contentOf(items), 'one two three four five six seven eight');
  assert.equal(items.at(-1).text, '[DONE]');
  const [upstream] = await received(tag);
  assert.ok(upstream.finishedAt, 'upstream finished');
  assert.ok(firstContentAt < upstream.finishedAt,
    `first content at ${firstContentAt} must come before the upstream finished at ${upstream.finishedAt}`);
});

test('a silent passthrough stream gets heartbeats between events, which SDKs ignore', async () => {
  const tag = await scenario({ content: 'slow reasoning answer', chunk_chars: 8, chunk_delay_ms: 700 });
  const res = await post('/v1/chat/completions', chatBody(tag, { stream: true }));
  const items = await readSse(res);
  const firstData = items.findIndex((i) => i.kind === 'data');
  const lastData = items.findLastIndex((i) => i.kind === 'data');
  const between = items.slice(firstData, lastData).filter((i) => i.kind === 'comment');
  assert.ok(between.length >= 3, `heartbeats while the upstream was silent: ${between.length}`);
  assert.ok(between.every((c) => c.text === 'heartbeat'));
  assert.equal(contentOf(items), 'slow reasoning answer');

  const tag2 = await scenario({ content: 'slow but fine', chunk_chars: 5, chunk_delay_ms: 500 });
  let text = '';
  for await (const chunk of await client.chat.completions.create({ ...chatBody(tag2), stream: true })) {
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, 'slow but fine');
});

test('POST /api/chat and POST / are the same endpoint', async () => {
  for (const path of ['/api/chat', '/']) {
    const tag = await scenario({ content: `via ${path}` });
    const res = await post(path, chatBody(tag));
    assert.equal(res.status, 200, path);
    const body = await res.json();
    assert.equal(body.choices[0].message.content, `via ${path}`);
    const [upstream] = await received(tag);
    assert.equal(upstream.path, '/v1/chat/completions');
  }
});

test('public mode forwards the client key (base URL given with /v1)', async () => {
  const tag = await scenario();
  const publicClient = new OpenAI({ baseURL: `${PUBLIC_GATEWAY}/v1`, apiKey: 'sk-user-own-key', maxRetries: 0 });
  const completion = await publicClient.chat.completions.create(chatBody(tag));
  assert.equal(completion.choices[0].message.content, DEFAULT_CONTENT);
  const [upstream] = await received(tag);
  assert.equal(upstream.headers.authorization, 'Bearer sk-user-own-key');
  assert.equal(upstream.path, '/v1/chat/completions');
});

test('health and status report the gateway without revealing keys', async () => {
  const health = await fetch(`${GATEWAY}/health`);
  assert.equal(health.status, 200);
  assert.equal((await health.json()).status, 'ok');
  const res = await fetch(`${GATEWAY}/api/status`);
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.ok(!text.includes(SERVER_KEY) && !text.includes(ACCESS_TOKEN), 'no secret in /api/status');
  const status = JSON.parse(text);
  assert.equal(status.status, 'ok');
  assert.equal(status.environment.has_api_key, true);
  assert.equal(status.environment.key_mode, 'access-token');
  // The OpenAI upstream's SDK-style base: SOURCE_API_URL plus /v1.
  assert.match(status.environment.source_api_url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  const openai = status.upstreams.find((u) => u.name === 'openai');
  assert.equal(openai.kind, 'openai');
  assert.equal(openai.keys, 1);
  assert.match(openai.host, /^127\.0\.0\.1:\d+$/);
  assert.deepEqual(openai.model_patterns, ['gpt-*', 'fake-*', 'o1*', 'text-embedding-3-*']);
  assert.equal(status.features.fake_stream, 'fake-*,o1*,gemini-fake-*');
  assert.equal(status.features.heartbeat_interval_ms, 200);
  assert.ok(status.version && status.timestamp && status.git_revision);
  const pub = await (await fetch(`${PUBLIC_GATEWAY}/api/status`)).json();
  assert.equal(pub.environment.has_api_key, false);
  assert.equal(pub.environment.key_mode, 'client-key-passthrough');
});

test('GET / serves a page with a Content-Security-Policy', async () => {
  const res = await fetch(`${GATEWAY}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/html/);
  assert.match(res.headers.get('content-security-policy'), /default-src 'none'/);
  assert.match(await res.text(), /edge-llm-gateway/);
});
