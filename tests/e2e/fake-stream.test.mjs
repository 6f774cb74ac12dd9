// Fake streaming: 200 at once, SSE comment heartbeats while the non-streaming upstream
// call runs, then the answer replayed as chat.completion.chunk events and [DONE].
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { GATEWAY, PUBLIC_GATEWAY, DISCONNECT_GATEWAY, ACCESS_TOKEN, scenario, received, chatBody, post, readSse, contentOf, waitFor } from './helpers.mjs';

const client = new OpenAI({ baseURL: `${GATEWAY}/v1`, apiKey: ACCESS_TOKEN, maxRetries: 0 });
const MULTIBYTE = 'Fake stream 测试：你好世界！Emoji 🌍🚀👩‍💻, accents é à ü, math ∑∫, done.';

test('heartbeats flow at the configured cadence before the content', async () => {
  const tag = await scenario({ delay_ms: 1500, content: MULTIBYTE });
  const started = Date.now();
  const res = await post('/v1/chat/completions', chatBody(tag, { model: 'fake-model', stream: true }));
  const headersAt = Date.now();
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
  assert.ok(headersAt - started < 1200, `headers must come at once, not after the 1.5 s upstream delay (${headersAt - started} ms)`);
  const items = await readSse(res);
  const firstData = items.findIndex((i) => i.kind === 'data');
  const heartbeats = items.slice(0, firstData).filter((i) => i.kind === 'comment');
  // 200 ms interval against a 1.5 s upstream: about eight; bounds leave room for a slow machine.
  assert.ok(heartbeats.length >= 3, `expected at least 3 heartbeats, got ${heartbeats.length}`);
  assert.ok(heartbeats.length <= 14, `heartbeats must follow the interval, got ${heartbeats.length}`);
  assert.ok(items.slice(firstData).every((i) => i.kind === 'data'), 'no heartbeat after the content starts');
  assert.equal(contentOf(items), MULTIBYTE, 'chunks reassemble to exactly the upstream content');
  const chunks = items.filter((i) => i.kind === 'data' && i.text !== '[DONE]').map((i) => JSON.parse(i.text));
  assert.ok(chunks.length > 5, 'content is split into several chunks');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === 'chatcmpl-mock123'));
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  assert.equal(items.at(-1).text, '[DONE]');

  const [upstream] = await received(tag);
  assert.equal(upstream.body.stream, false, 'upstream is called non-streaming');
  assert.equal(upstream.body.stream_options, undefined);
});

test('SDK streams a fake-streamed answer with usage', async () => {
  const tag = await scenario({ content: MULTIBYTE, usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } });
  const stream = await client.chat.completions.create({
    ...chatBody(tag, { model: 'o1-mini' }), stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, MULTIBYTE);
  assert.deepEqual(usage, { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 });
});

test('tool calls are replayed as indexed deltas the SDK can accumulate', async () => {
  const tool_calls = [
    { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Zürich","unit":"celsius"}' } },
    { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{"tz":"Europe/Zurich"}' } },
  ];
  const tag = await scenario({ tool_calls });
  const stream = await client.chat.completions.create({
    ...chatBody(tag, { model: 'fake-tools' }), stream: true,
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
  });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    for (const d of chunk.choices[0]?.delta?.tool_calls ?? []) {
      calls[d.index] ??= { id: '', name: '', arguments: '' };
      if (d.id) calls[d.index].id = d.id;
      if (d.function?.name) calls[d.index].name += d.function.name;
      if (d.function?.arguments) calls[d.index].arguments += d.function.arguments;
    }
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.deepEqual(calls, tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })));
  assert.equal(finish, 'tool_calls');
  const [upstream] = await received(tag);
  assert.equal(upstream.body.tools[0].function.name, 'get_weather');
});

test('an upstream failure after the 200 ends the stream with one error event and [DONE]', async () => {
  const tag = await scenario({ delay_ms: 300, status: 500 });
  const res = await post('/v1/chat/completions', chatBody(tag, { model: 'fake-x', stream: true }));
  assert.equal(res.status, 200);
  const data = (await readSse(res)).filter((i) => i.kind === 'data');
  assert.equal(data.length, 2);
  const error = JSON.parse(data[0].text).error;
  assert.equal(error.message, 'mock error 500');
  assert.equal(error.code, 'mock_error');
  assert.equal(data[1].text, '[DONE]');
  // And the SDK surfaces it as an error.
  const tag2 = await scenario({ status: 503, error_body: 'overloaded' });
  await assert.rejects(async () => {
    const stream = await client.chat.completions.create({ ...chatBody(tag2, { model: 'fake-x' }), stream: true });
    for await (const _ of stream) { /* drain */ }
  }, (err) => err instanceof OpenAI.APIError && /overloaded/.test(err.message));
});

/** The upstream requests of `tag` once its one request was aborted (null if it never was). */
function abortedUpstream(tag) {
  return waitFor(async () => {
    const r = await received(tag);
    return r.length === 1 && r[0].aborted ? r : null;
  }, { timeoutMs: 8000 });
}

test('FAKE_STREAM_CHUNK_DELAY_MS replays the answer one chunk per pause', async () => {
  const content = 'Replayed one piece at a time, each after the configured pause, to the end.';
  const tag = await scenario({ content, delay_ms: 300 });
  const started = Date.now();
  const res = await post('/v1/chat/completions', chatBody(tag, { model: 'fake-paced', stream: true }), { base: DISCONNECT_GATEWAY });
  assert.equal(res.status, 200);
  const items = await readSse(res);
  assert.ok(items[0].kind === 'comment', 'a heartbeat first, while the upstream answers');
  assert.equal(contentOf(items), content, 'the pieces reassemble to the whole answer');
  const data = items.filter((i) => i.kind === 'data');
  assert.equal(data.at(-1).text, '[DONE]');
  assert.ok(data.length >= 8, `the answer is cut into pieces (${data.length} events)`);
  // Nothing arrives before it is written: the last event comes no sooner than the upstream's
  // 300 ms and a 40 ms pause before each event after the first (a busy machine only adds).
  const total = data.at(-1).at - started;
  const least = 300 + (data.length - 1) * 40;
  assert.ok(total >= least * 0.9, `${data.length} events after ${total} ms, less than ${least} ms: not paced`);
  // One write per piece: they arrive apart, not in one batch.
  const arrivals = new Set(data.map((i) => i.at)).size;
  assert.ok(arrivals >= 4, `${data.length} events arrived in only ${arrivals} reads`);
  assert.ok(items.slice(items.indexOf(data[0])).every((i) => i.kind === 'data'), 'no heartbeat between the pieces');
});

test('a client disconnect stops heartbeats and aborts the upstream call', async () => {
  const tag = await scenario({ hang: true });
  const controller = new AbortController();
  const res = await post('/v1/chat/completions', chatBody(tag, { model: 'fake-x', stream: true }), { base: DISCONNECT_GATEWAY, signal: controller.signal });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  const { value } = await reader.read();
  assert.match(new TextDecoder().decode(value), /^: heartbeat/);
  controller.abort();
  const records = await abortedUpstream(tag);
  assert.ok(records, 'the upstream request was aborted');
});

test('a client leaving a live passthrough stream mid-way aborts the upstream stream', async () => {
  const tag = await scenario({ content: 'a long answer that the client never waits for', chunk_chars: 4, chunk_delay_ms: 300 });
  const controller = new AbortController();
  const res = await post('/v1/chat/completions', chatBody(tag, { stream: true }), { base: DISCONNECT_GATEWAY, signal: controller.signal });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-gateway-fake-stream'), null, 'a live stream, not a fake one');
  const reader = res.body.getReader();
  let seen = '';
  while (!seen.includes('data: {')) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'the stream ended before its first event');
    seen += new TextDecoder().decode(value);
  }
  controller.abort();
  const records = await abortedUpstream(tag);
  assert.ok(records, 'the upstream stream was aborted');
  assert.ok(records[0].eventsSent < 12, `the upstream stopped early: ${records[0].eventsSent} events sent`);
});

test('X-Fake-Stream header forces fake streaming on or off per call', async () => {
  const on = await scenario({ content: 'forced on' });
  const res = await post('/v1/chat/completions', chatBody(on, { stream: true }), { headers: { 'x-fake-stream': 'true' } });
  assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
  assert.equal(contentOf(await readSse(res)), 'forced on');
  assert.equal((await received(on))[0].body.stream, false);
  assert.equal((await received(on))[0].headers['x-fake-stream'], undefined, 'control header is not forwarded');

  const off = await scenario({ content: 'forced off' });
  const res2 = await post('/v1/chat/completions', chatBody(off, { model: 'fake-x', stream: true }), { headers: { 'x-fake-stream': 'false' } });
  assert.equal(res2.headers.get('x-gateway-fake-stream'), null);
  assert.equal(contentOf(await readSse(res2)), 'forced off');
  assert.equal((await received(off))[0].body.stream, true);
});

test('an upstream that ignores stream:true is replayed as a stream', async () => {
  const tag = await scenario({ ignore_stream: true, content: 'came back as JSON' });
  const res = await post('/v1/chat/completions', chatBody(tag, { stream: true }));
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  const items = await readSse(res);
  assert.equal(contentOf(items), 'came back as JSON');
  assert.equal(items.at(-1).text, '[DONE]');
});

test('an upstream that streams when asked not to is folded into JSON, and fake-streamed', async () => {
  const tag = await scenario({ always_stream: true, content: 'streamed anyway 🌊', chunk_chars: 2 });
  const completion = await client.chat.completions.create(chatBody(tag));
  assert.equal(completion.choices[0].message.content, 'streamed anyway 🌊');
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].finish_reason, 'stop');
  const tag2 = await scenario({ always_stream: true, content: 'fake from a stream' });
  const res = await post('/v1/chat/completions', chatBody(tag2, { model: 'fake-x', stream: true }));
  assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
  assert.equal(contentOf(await readSse(res)), 'fake from a stream');
  assert.equal((await received(tag2))[0].body.stream, false);
});

test('FAKE_STREAM=always fake-streams every model (public mode)', async () => {
  const tag = await scenario({ delay_ms: 500, content: 'always fake' });
  const res = await post('/v1/chat/completions', chatBody(tag, { model: 'any-model', stream: true }), {
    base: PUBLIC_GATEWAY, headers: { authorization: 'Bearer sk-user' },
  });
  assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
  const items = await readSse(res);
  assert.ok(items.some((i) => i.kind === 'comment'));
  assert.equal(contentOf(items), 'always fake');
});
