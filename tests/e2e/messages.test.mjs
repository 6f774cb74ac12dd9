// Anthropic Messages (`POST /v1/messages`) in front of every upstream kind, driven by the
// official `@anthropic-ai/sdk`: the mock records the chat (or native) request each call became,
// and the answers, streams and errors come back in Anthropic's shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import {
  GATEWAY, PUBLIC_GATEWAY, ROUTER_GATEWAY, MOCK, ACCESS_TOKEN, SERVER_KEY,
  scenario, received, receivedOn, logRow,
} from './helpers.mjs';

const client = new Anthropic({ baseURL: GATEWAY, apiKey: ACCESS_TOKEN, maxRetries: 0 });
const publicClient = new Anthropic({ baseURL: PUBLIC_GATEWAY, apiKey: 'sk-ant-user-key', maxRetries: 0 });
const TOOLS = [{ name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
const TOOL_CALLS = [{ id: 'call_w1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Zürich"}' } }];

/** The raw Anthropic events of a streamed call: [name, data] pairs in order. */
async function rawEvents(base, body, headers = {}) {
  const res = await fetch(`${base}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': ACCESS_TOKEN, 'anthropic-version': '2023-06-01', ...headers },
    body: JSON.stringify({ ...body, stream: true }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const text = await res.text();
  return text.split('\n\n').filter(Boolean).map((block) => {
    const name = block.match(/^event: (.*)$/m)?.[1];
    const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
    return [name, data ? JSON.parse(data) : null];
  });
}

test('messages.create on an OpenAI-compatible upstream: the chat request on the wire, a Message back', async () => {
  const tag = await scenario({ content: 'Grüezi! 👋', usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 } });
  const message = await client.messages.create({
    model: 'gpt-claude-test', max_tokens: 256, temperature: 0.3, stop_sequences: ['STOP'],
    system: [{ type: 'text', text: 'You are terse.', cache_control: { type: 'ephemeral' } }],
    metadata: { user_id: 'user-42' },
    messages: [{ role: 'user', content: `Say hi ${tag}` }],
  });
  assert.equal(message.type, 'message');
  assert.equal(message.role, 'assistant');
  assert.match(message.id, /^msg_/);
  assert.equal(message.model, 'gpt-claude-test');
  assert.deepEqual(message.content, [{ type: 'text', text: 'Grüezi! 👋' }]);
  assert.equal(message.stop_reason, 'end_turn');
  assert.equal(message.usage.input_tokens, 12);
  assert.equal(message.usage.output_tokens, 5);
  const [upstream] = await received(tag);
  assert.match(upstream.path, /\/chat\/completions$/);
  assert.deepEqual(upstream.body.messages, [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: `Say hi ${tag}` }]);
  assert.equal(upstream.body.max_tokens, 256);
  assert.equal(upstream.body.temperature, 0.3);
  assert.deepEqual(upstream.body.stop, ['STOP']);
  assert.equal(upstream.body.user, 'user-42');
  assert.equal(upstream.headers.authorization, `Bearer ${SERVER_KEY}`, 'the server key goes upstream');
  assert.equal(upstream.headers['x-api-key'], undefined, 'the access token does not');
  assert.equal(upstream.headers['anthropic-version'], undefined, 'Anthropic protocol headers are not forwarded');
});

test('messages.stream: the documented event sequence, text deltas and the final message', async () => {
  const tag = await scenario({ content: 'one two three four', chunk_chars: 4 });
  const stream = client.messages.stream({ model: 'gpt-claude-test', max_tokens: 64, messages: [{ role: 'user', content: tag }] }, { headers: { 'x-fake-stream': 'false' } });
  let text = '';
  stream.on('text', (delta) => { text += delta; });
  const final = await stream.finalMessage();
  assert.equal(text, 'one two three four');
  assert.equal(final.content.length, 1);
  assert.equal(final.content[0].type, 'text');
  assert.equal(final.content[0].text, 'one two three four');
  assert.equal(final.stop_reason, 'end_turn');
  assert.ok(final.usage.output_tokens > 0, 'usage from the chat usage chunk');
  const [upstream] = await received(tag);
  assert.equal(upstream.body.stream, true);
  assert.deepEqual(upstream.body.stream_options, { include_usage: true });

  const events = await rawEvents(GATEWAY, { model: 'gpt-claude-test', max_tokens: 64, messages: [{ role: 'user', content: await scenario({ content: 'ab', chunk_chars: 1 }) }] }, { 'x-fake-stream': 'false' });
  assert.deepEqual(events.map(([n]) => n), [
    'message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop',
  ]);
  for (const [name, data] of events) assert.equal(data.type, name, 'each event names its type');
  assert.deepEqual(events[1][1], { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  assert.deepEqual(events[2][1].delta, { type: 'text_delta', text: 'a' });
  assert.equal(events[5][1].delta.stop_reason, 'end_turn');
});

test('a tool loop: tool_use blocks out, tool_result back in as a tool message (JSON and stream)', async () => {
  const tag = await scenario({ tool_calls: TOOL_CALLS });
  const first = await client.messages.create({
    model: 'gpt-claude-test', max_tokens: 128, tools: TOOLS, tool_choice: { type: 'auto' },
    messages: [{ role: 'user', content: `weather in Zürich? ${tag}` }],
  });
  assert.equal(first.stop_reason, 'tool_use');
  const toolUse = first.content.find((b) => b.type === 'tool_use');
  assert.deepEqual({ id: toolUse.id, name: toolUse.name, input: toolUse.input }, { id: 'call_w1', name: 'get_weather', input: { city: 'Zürich' } });
  const [upstream] = await received(tag);
  assert.deepEqual(upstream.body.tools, [{ type: 'function', function: { name: 'get_weather', parameters: TOOLS[0].input_schema, description: 'Weather for a city' } }]);
  assert.equal(upstream.body.tool_choice, 'auto');

  const tag2 = await scenario({ content: 'It is 21 °C.' });
  const second = await client.messages.create({
    model: 'gpt-claude-test', max_tokens: 128, tools: TOOLS,
    messages: [
      { role: 'user', content: `weather in Zürich? ${tag2}` },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: toolUse.id, content: [{ type: 'text', text: '{"temp":21}' }] }] },
    ],
  });
  assert.deepEqual(second.content, [{ type: 'text', text: 'It is 21 °C.' }]);
  const [next] = await received(tag2);
  assert.deepEqual(next.body.messages.slice(1), [
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_w1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Zürich"}' } }] },
    { role: 'tool', tool_call_id: 'call_w1', content: '{"temp":21}' },
  ]);

  const stream = client.messages.stream({ model: 'gpt-claude-test', max_tokens: 128, tools: TOOLS, messages: [{ role: 'user', content: await scenario({ tool_calls: TOOL_CALLS }) }] }, { headers: { 'x-fake-stream': 'false' } });
  const streamed = await stream.finalMessage();
  assert.equal(streamed.stop_reason, 'tool_use');
  assert.deepEqual(streamed.content.filter((b) => b.type === 'tool_use').map((b) => [b.name, b.input]), [['get_weather', { city: 'Zürich' }]]);
});

test('Gemini behind /v1/messages: native stream with thinking, fake stream with ping heartbeats, thought signatures round-trip', async () => {
  const tag = await scenario({ content: 'Answer.', reasoning_content: 'Let me think.' });
  const events = await rawEvents(GATEWAY, { model: 'gemini-2.5-flash', max_tokens: 100, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: tag }] }, { 'x-fake-stream': 'false' });
  const [upstream] = await received(tag);
  assert.match(upstream.path, /:streamGenerateContent/);
  assert.equal(upstream.body.generationConfig.thinkingConfig.thinkingBudget, 1024, 'thinking budget → reasoning effort low → 1024');
  const blocks = events.filter(([n]) => n === 'content_block_start').map(([, d]) => d.content_block.type);
  assert.deepEqual(blocks, ['thinking', 'text']);
  const thinking = events.filter(([n, d]) => n === 'content_block_delta' && d.delta.type === 'thinking_delta').map(([, d]) => d.delta.thinking).join('');
  assert.equal(thinking, 'Let me think.');

  const slow = await scenario({ content: 'Late answer.', delay_ms: 700 });
  const fake = await rawEvents(GATEWAY, { model: 'gemini-fake-pro', max_tokens: 100, messages: [{ role: 'user', content: slow }] });
  const names = fake.map(([n]) => n);
  assert.equal(names[0], 'message_start');
  assert.ok(names.filter((n) => n === 'ping').length >= 2, `pings while the upstream works: ${names}`);
  assert.equal(names.at(-1), 'message_stop');
  assert.equal(fake.filter(([n, d]) => n === 'content_block_delta').map(([, d]) => d.delta.text).join(''), 'Late answer.');

  // Gemini 3: the signature rides on a thinking block before the tool_use and goes back.
  const signed = await scenario({ tool_calls: [{ ...TOOL_CALLS[0], thought_signature: 'sig-claude-path==' }] });
  const first = await client.messages.create({ model: 'gemini-3-pro-preview', max_tokens: 100, tools: TOOLS, messages: [{ role: 'user', content: signed }] });
  const toolUse = first.content.find((b) => b.type === 'tool_use');
  const back = await scenario({ content: 'Sunny.' });
  await client.messages.create({
    model: 'gemini-3-pro-preview', max_tokens: 100, tools: TOOLS,
    messages: [
      { role: 'user', content: back },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: toolUse.id, content: 'sunny' }] },
    ],
  });
  const [second] = await received(back);
  assert.deepEqual(second.body.contents[1].parts, [{ functionCall: { name: 'get_weather', args: { city: 'Zürich' } }, thoughtSignature: 'sig-claude-path==' }]);
  assert.deepEqual(second.body.contents[2].parts, [{ functionResponse: { name: 'get_weather', response: { content: 'sunny' } } }]);
});

test('DashScope behind /v1/messages with the server key (public mode)', async () => {
  const tag = await scenario({ content: '你好' });
  const message = await publicClient.messages.create({ model: 'qwen-plus', max_tokens: 50, messages: [{ role: 'user', content: tag }] });
  assert.deepEqual(message.content, [{ type: 'text', text: '你好' }]);
  const [upstream] = await received(tag);
  assert.match(upstream.path, /text-generation/);
  assert.equal(upstream.headers.authorization, 'Bearer ds-server-secret-key');
});

test('errors take Anthropic\'s shape and status: upstream 429, bad request, wrong key, mid-stream failure', async () => {
  await assert.rejects(
    client.messages.create({ model: 'gpt-claude-test', max_tokens: 10, messages: [{ role: 'user', content: await scenario({ status: 429, error_body: JSON.stringify({ error: { message: 'slow down', type: 'rate_limit', code: 'rate_limited' } }), error_headers: { 'retry-after': '7' } }) }] }),
    (e) => e instanceof Anthropic.RateLimitError && e.error?.type === 'error' && e.error?.error?.type === 'rate_limit_error' && /slow down/.test(e.error.error.message) && e.headers.get('retry-after') === '7',
  );
  const bad = await fetch(`${GATEWAY}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ACCESS_TOKEN }, body: JSON.stringify({ model: 'gpt-claude-test', messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(bad.status, 400);
  assert.deepEqual(await bad.json(), { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Field required' } });
  await assert.rejects(
    new Anthropic({ baseURL: GATEWAY, apiKey: 'wrong', maxRetries: 0 }).messages.create({ model: 'gpt-claude-test', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof Anthropic.AuthenticationError && e.error?.error?.type === 'authentication_error',
  );
  const broken = await rawEvents(GATEWAY, { model: 'gpt-claude-test', max_tokens: 50, messages: [{ role: 'user', content: await scenario({ content: 'partial answer here', chunk_chars: 3, stream_error_event: 'upstream exploded' }) }] }, { 'x-fake-stream': 'false' });
  const [name, data] = broken.at(-1);
  assert.equal(name, 'error');
  assert.equal(data.error.type, 'api_error');
  assert.match(data.error.message, /upstream exploded/);
  assert.ok(!broken.some(([n]) => n === 'message_stop'));
});

test('server tools are dropped (header and log) so agents work unchanged; count_tokens estimates', async () => {
  const tag = await scenario({ content: 'ok' });
  const { data, response } = await client.messages.create({
    model: 'gpt-claude-test', max_tokens: 10,
    tools: [...TOOLS, { type: 'web_search_20250305', name: 'web_search', max_uses: 2 }],
    messages: [{ role: 'user', content: tag }],
  }).withResponse();
  assert.deepEqual(data.content, [{ type: 'text', text: 'ok' }]);
  assert.equal(response.headers.get('x-gateway-dropped-tools'), 'web_search_20250305');
  const [upstream] = await received(tag);
  assert.deepEqual(upstream.body.tools.map((t) => t.function.name), ['get_weather']);
  const row = await logRow(response.headers.get('x-request-id'));
  assert.equal(row.api, 'messages');
  assert.equal(row.dropped_tools, 'web_search_20250305');
  assert.equal(row.path, '/v1/messages');
  assert.equal(row.status, 200);

  const counted = await client.messages.countTokens({ model: 'gpt-claude-test', system: 'You are terse.', messages: [{ role: 'user', content: 'How many tokens is this sentence?' }] });
  assert.ok(Number.isInteger(counted.input_tokens) && counted.input_tokens > 5 && counted.input_tokens < 40, `${counted.input_tokens}`);
});

test('a Claude model name reaches another model through ROUTES, with retries', async () => {
  const routed = new Anthropic({ baseURL: ROUTER_GATEWAY, apiKey: 'router-access-token', maxRetries: 0 });
  const tag = await scenario({ content: 'from alpha' });
  const { data, response } = await routed.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 20, messages: [{ role: 'user', content: tag }] }).withResponse();
  assert.deepEqual(data.content, [{ type: 'text', text: 'from alpha' }]);
  assert.equal(data.model, 'claude-sonnet-4-5');
  assert.equal(response.headers.get('x-gateway-upstream'), 'alpha');
  assert.equal(response.headers.get('x-gateway-attempts'), '2', 'the dead upstream first, then alpha');
  const [upstream] = await receivedOn(MOCK, tag);
  assert.equal(upstream.body.model, 'alpha-claude');
});

test('UNSUPPORTED_TOOLS=reject: a server tool is a 400 naming it, before any upstream call', async () => {
  const routed = new Anthropic({ baseURL: ROUTER_GATEWAY, apiKey: 'router-access-token', maxRetries: 0 });
  const tag = await scenario({ content: 'never' });
  await assert.rejects(
    routed.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 20, messages: [{ role: 'user', content: tag }],
      tools: [...TOOLS, { type: 'web_search_20250305', name: 'web_search' }] }),
    (e) => e instanceof Anthropic.BadRequestError && e.error?.error?.type === 'invalid_request_error' && /web_search_20250305/.test(e.error.error.message),
  );
  assert.equal((await receivedOn(MOCK, tag)).length, 0);
});

test('a credential-looking token in a mid-stream upstream error never reaches the Anthropic client', async () => {
  const broken = await rawEvents(GATEWAY, { model: 'gpt-claude-test', max_tokens: 50, messages: [{ role: 'user', content: await scenario({ content: 'some partial text', chunk_chars: 3, stream_error_event: 'refused Bearer sk-rotated-unknown-9f8e7d6c5b and key=zz-other-tenant-4444' }) }] }, { 'x-fake-stream': 'false' });
  const [name, data] = broken.at(-1);
  assert.equal(name, 'error');
  assert.ok(!JSON.stringify(data).includes('sk-rotated-unknown-9f8e7d6c5b') && !JSON.stringify(data).includes('zz-other-tenant-4444'), JSON.stringify(data));
  assert.match(data.error.message, /Bearer \*\*\*/);
});
