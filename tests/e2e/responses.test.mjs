// OpenAI Responses (`POST /v1/responses`) in front of every upstream kind, driven by the
// official `openai` npm SDK: the mock records the chat (or native) request each call became;
// answers, event sequences, stored responses and errors are checked against the documented API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { GATEWAY, PUBLIC_GATEWAY, ROUTER_GATEWAY, ACCESS_TOKEN, SERVER_KEY, scenario, received, logRow } from './helpers.mjs';

const client = new OpenAI({ baseURL: `${GATEWAY}/v1`, apiKey: ACCESS_TOKEN, maxRetries: 0 });
const NATIVE = { headers: { 'x-fake-stream': 'false' } };
const TOOLS = [{ type: 'function', name: 'get_weather', description: 'Weather for a city', strict: false,
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
const TOOL_CALLS = [{ id: 'call_r1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Bern"}' } }];

/** The raw events of a streamed call: [name, data] pairs in order. */
async function rawEvents(body, { base = GATEWAY, key = ACCESS_TOKEN, headers = {} } = {}) {
  const res = await fetch(`${base}/v1/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify({ ...body, stream: true }),
  });
  assert.equal(res.status, 200);
  const text = await res.text();
  return text.split('\n\n').filter((b) => b.includes('data: ')).map((block) => {
    const name = block.match(/^event: (.*)$/m)?.[1];
    const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
    return [name, JSON.parse(data)];
  });
}

test('responses.create on an OpenAI-compatible upstream: instructions, input items and the Response object', async () => {
  const tag = await scenario({ content: 'Bonjour 🌍', usage: { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 } });
  const response = await client.responses.create({
    model: 'gpt-resp-test', instructions: 'Answer in French.', max_output_tokens: 100, temperature: 0.2, store: false,
    input: [{ role: 'user', content: [{ type: 'input_text', text: `Say hello ${tag}` }] }],
  });
  assert.equal(response.object, 'response');
  assert.match(response.id, /^resp_/);
  assert.equal(response.status, 'completed');
  assert.equal(response.model, 'gpt-resp-test');
  assert.equal(response.output_text, 'Bonjour 🌍', 'the SDK finds the text in the message item');
  assert.equal(response.output[0].type, 'message');
  assert.equal(response.output[0].content[0].type, 'output_text');
  assert.deepEqual(response.usage, { input_tokens: 11, input_tokens_details: { cached_tokens: 0 }, output_tokens: 3, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 14 });
  assert.equal(response.instructions, 'Answer in French.');
  const [upstream] = await received(tag);
  assert.match(upstream.path, /\/chat\/completions$/);
  assert.deepEqual(upstream.body.messages, [{ role: 'system', content: 'Answer in French.' }, { role: 'user', content: `Say hello ${tag}` }]);
  assert.equal(upstream.body.max_tokens, 100);
  assert.equal(upstream.body.temperature, 0.2);
  assert.equal(upstream.headers.authorization, `Bearer ${SERVER_KEY}`);
});

test('responses.stream: the documented event sequence with sequence numbers, and the final response', async () => {
  const tag = await scenario({ content: 'abc', chunk_chars: 1 });
  const events = await rawEvents({ model: 'gpt-resp-test', input: tag, store: false }, { headers: NATIVE.headers });
  assert.deepEqual(events.map(([n]) => n), [
    'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
  ]);
  events.forEach(([name, data], i) => { assert.equal(data.type, name); assert.equal(data.sequence_number, i); });
  assert.equal(events.at(-1)[1].response.output[0].content[0].text, 'abc');

  const stream = client.responses.stream({ model: 'gpt-resp-test', input: await scenario({ content: 'streamed via the SDK', chunk_chars: 4 }), store: false }, NATIVE);
  let text = '';
  stream.on('response.output_text.delta', (e) => { text += e.delta; });
  const final = await stream.finalResponse();
  assert.equal(text, 'streamed via the SDK');
  assert.equal(final.output[0].content[0].text, 'streamed via the SDK');
  assert.equal(final.status, 'completed');
});

test('a two-turn function-calling loop; previous_response_id continues a stored conversation; GET and DELETE', async () => {
  // The tag rides in the instructions, which a continued conversation does not carry over:
  // the mock answers a request by the first tag it finds.
  const tag = await scenario({ tool_calls: TOOL_CALLS });
  const first = await client.responses.create({ model: 'gpt-resp-test', tools: TOOLS, instructions: `Use tools. ${tag}`, input: 'weather in Bern?' });
  const call = first.output.find((item) => item.type === 'function_call');
  assert.deepEqual({ name: call.name, arguments: call.arguments, call_id: call.call_id }, { name: 'get_weather', arguments: '{"city":"Bern"}', call_id: 'call_r1' });
  const [upstream] = await received(tag);
  assert.deepEqual(upstream.body.tools, [{ type: 'function', function: { name: 'get_weather', parameters: TOOLS[0].parameters, description: 'Weather for a city' } }]);

  // Stateless second turn: the call and its output sent back as input items.
  const tag2 = await scenario({ content: 'Sunny, 18 °C.' });
  const second = await client.responses.create({
    model: 'gpt-resp-test', tools: TOOLS, store: false,
    input: [{ role: 'user', content: `weather in Bern? ${tag2}` }, ...first.output, { type: 'function_call_output', call_id: call.call_id, output: '{"temp":18}' }],
  });
  assert.equal(second.output_text, 'Sunny, 18 °C.');
  const [next] = await received(tag2);
  assert.deepEqual(next.body.messages.slice(1), [
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_r1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Bern"}' } }] },
    { role: 'tool', tool_call_id: 'call_r1', content: '{"temp":18}' },
  ]);

  // Stateful: previous_response_id brings the stored conversation back.
  const tag3 = await scenario({ content: 'Still sunny.' });
  const third = await client.responses.create({
    model: 'gpt-resp-test', tools: TOOLS, previous_response_id: first.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: `{"temp":19} ${tag3}` }],
  });
  assert.equal(third.previous_response_id, first.id);
  const [continued] = await received(tag3);
  assert.deepEqual(continued.body.messages.map((m) => m.role), ['user', 'assistant', 'tool']);
  assert.equal(continued.body.messages[0].content, 'weather in Bern?');
  assert.equal(continued.body.messages[1].tool_calls[0].id, 'call_r1');

  const fetched = await client.responses.retrieve(third.id);
  assert.equal(fetched.id, third.id);
  assert.equal(fetched.output_text, 'Still sunny.');
  // Another credential cannot see it (public mode: owners are the clients' own keys).
  const other = await fetch(`${GATEWAY}/v1/responses/${third.id}`, { headers: { authorization: 'Bearer wrong' } });
  assert.equal(other.status, 401);
  const deleted = await fetch(`${GATEWAY}/v1/responses/${third.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${ACCESS_TOKEN}` } });
  assert.deepEqual(await deleted.json(), { id: third.id, object: 'response', deleted: true });
  await assert.rejects(client.responses.retrieve(third.id), (e) => e.status === 404);
  await assert.rejects(
    client.responses.create({ model: 'gpt-resp-test', previous_response_id: third.id, input: 'more' }),
    (e) => e.status === 400 && e.param === 'previous_response_id' && e.code === 'previous_response_not_found',
  );
  const row = await logRow(third.id.slice('resp_'.length));
  assert.equal(row.api, 'responses');
  assert.equal(row.path, '/v1/responses');
});

test('stored responses belong to the credential that created them; store: false keeps nothing', async () => {
  const alice = new OpenAI({ baseURL: `${PUBLIC_GATEWAY}/v1`, apiKey: 'sk-alice-own-key', maxRetries: 0 });
  const bob = new OpenAI({ baseURL: `${PUBLIC_GATEWAY}/v1`, apiKey: 'sk-bob-own-key', maxRetries: 0 });
  const kept = await alice.responses.create({ model: 'qwen-plus', input: await scenario({ content: 'mine' }) }, NATIVE);
  assert.equal((await alice.responses.retrieve(kept.id)).output_text, 'mine');
  await assert.rejects(bob.responses.retrieve(kept.id), (e) => e.status === 404);
  await assert.rejects(bob.responses.create({ model: 'qwen-plus', previous_response_id: kept.id, input: 'x' }), (e) => e.status === 400);
  const notKept = await alice.responses.create({ model: 'qwen-plus', store: false, input: await scenario({ content: 'gone' }) }, NATIVE);
  await assert.rejects(alice.responses.retrieve(notKept.id), (e) => e.status === 404);
});

test('structured output: text.format json_schema from zod reaches the upstream; responses.parse parses it', async () => {
  const { z } = await import('zod');
  const { zodTextFormat } = await import('openai/helpers/zod');
  const City = z.object({ name: z.string(), population: z.number().int() });
  const answer = { name: 'Basel', population: 177000 };
  const tag = await scenario({ content: JSON.stringify(answer) });
  const parsed = await client.responses.parse({ model: 'gpt-resp-test', store: false, input: `a city ${tag}`, text: { format: zodTextFormat(City, 'city') } });
  assert.deepEqual(parsed.output_parsed, answer);
  const [upstream] = await received(tag);
  assert.equal(upstream.body.response_format.type, 'json_schema');
  assert.equal(upstream.body.response_format.json_schema.name, 'city');
  assert.equal(upstream.body.response_format.json_schema.strict, true);
  assert.deepEqual(upstream.body.response_format.json_schema.schema.required, ['name', 'population']);
});

test('Gemini behind /v1/responses: reasoning summary events, a fake stream with heartbeats, thought signatures through encrypted_content', async () => {
  const tag = await scenario({ content: 'Done.', reasoning_content: 'Thinking it over.' });
  const events = await rawEvents({ model: 'gemini-2.5-flash', input: tag, store: false, reasoning: { effort: 'low', summary: 'auto' } }, { headers: NATIVE.headers });
  const names = events.map(([n]) => n);
  assert.deepEqual(names.slice(0, 5), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.reasoning_summary_part.added', 'response.reasoning_summary_text.delta']);
  assert.equal(events.filter(([n]) => n === 'response.reasoning_summary_text.delta').map(([, d]) => d.delta).join(''), 'Thinking it over.');
  const done = events.at(-1)[1].response;
  assert.deepEqual(done.output.map((i) => i.type), ['reasoning', 'message']);
  const [upstream] = await received(tag);
  assert.equal(upstream.body.generationConfig.thinkingConfig.thinkingBudget, 1024);

  // Fake stream: heartbeat comments while the upstream works, then the events.
  const slow = await scenario({ content: 'Patience pays.', delay_ms: 700 });
  const res = await fetch(`${GATEWAY}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ACCESS_TOKEN}` }, body: JSON.stringify({ model: 'gemini-fake-pro', input: slow, stream: true, store: false }) });
  const raw = await res.text();
  assert.ok((raw.match(/^: heartbeat/gm) ?? []).length >= 2, 'heartbeats while waiting');
  assert.match(raw, /event: response\.completed/);
  assert.match(raw, /"delta":"Patience pays\."|Patience/);

  // Gemini 3: the signature leaves in a reasoning item's encrypted_content and comes back.
  const signed = await scenario({ tool_calls: [{ ...TOOL_CALLS[0], thought_signature: 'sig-responses==' }] });
  const first = await client.responses.create({ model: 'gemini-3-pro-preview', tools: TOOLS, store: false, input: signed });
  const reasoning = first.output.find((i) => i.type === 'reasoning');
  assert.match(reasoning.encrypted_content, /^gw1:/);
  const call = first.output.find((i) => i.type === 'function_call');
  const back = await scenario({ content: 'Sunny.' });
  await client.responses.create({
    model: 'gemini-3-pro-preview', tools: TOOLS, store: false,
    input: [{ role: 'user', content: back }, ...first.output, { type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
  });
  const [second] = await received(back);
  assert.deepEqual(second.body.contents[1].parts, [{ functionCall: { name: 'get_weather', args: { city: 'Bern' } }, thoughtSignature: 'sig-responses==' }]);
});

test('hosted tools are dropped with X-Gateway-Dropped-Tools; errors keep OpenAI\'s shape; a broken stream ends with response.failed', async () => {
  const tag = await scenario({ content: 'ok' });
  const { data, response } = await client.responses.create({
    model: 'gpt-resp-test', store: false, input: tag,
    tools: [...TOOLS, { type: 'web_search' }, { type: 'file_search', vector_store_ids: ['vs_1'] }],
  }).withResponse();
  assert.equal(data.output_text, 'ok');
  assert.equal(response.headers.get('x-gateway-dropped-tools'), 'web_search,file_search');
  const [upstream] = await received(tag);
  assert.deepEqual(upstream.body.tools.map((t) => t.function.name), ['get_weather']);

  await assert.rejects(client.responses.create({ model: 'gpt-resp-test', store: false, input: await scenario({ status: 429 }) }), (e) => e.status === 429);
  await assert.rejects(client.responses.create({ model: 'gpt-resp-test', input: [{ role: 'tool', content: 'x' }] }), (e) => e.status === 400 && e.param === 'input[0].role');

  const broken = await rawEvents({ model: 'gpt-resp-test', store: false, input: await scenario({ content: 'partial text', chunk_chars: 3, stream_error_event: 'upstream fell over' }) }, { headers: NATIVE.headers });
  const [name, failed] = broken.at(-1);
  assert.equal(name, 'response.failed');
  assert.equal(failed.response.status, 'failed');
  assert.match(failed.response.error.message, /upstream fell over/);
});

test('an upstream with native_responses gets /v1/responses untranslated: body, answer and stream as they are', async () => {
  const routed = new OpenAI({ baseURL: `${ROUTER_GATEWAY}/v1`, apiKey: 'router-access-token', maxRetries: 0 });
  const tag = await scenario({ content: 'native answer' });
  const request = {
    model: 'nr-model', input: [{ role: 'user', content: [{ type: 'input_text', text: tag }] }],
    tools: [{ type: 'web_search' }], metadata: { case: 'native' }, include: ['reasoning.encrypted_content'], store: true,
  };
  const { data, response } = await routed.responses.create(request).withResponse();
  assert.equal(data.id, 'resp_native_1', "the upstream's own Response object");
  assert.equal(data.output_text, 'native answer');
  assert.equal(response.headers.get('x-gateway-upstream'), 'nativeresp');
  assert.equal(response.headers.get('x-gateway-dropped-tools'), null, 'nothing dropped: the upstream runs its hosted tools');
  const [upstream] = await received(tag);
  assert.equal(upstream.path, '/v1/responses');
  assert.deepEqual(upstream.body, request, 'the body as the client sent it');
  assert.equal(upstream.headers.authorization, 'Bearer sk-native-resp-key');

  const res = await fetch(`${ROUTER_GATEWAY}/v1/responses`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer router-access-token' },
    body: JSON.stringify({ model: 'nr-model', stream: true, input: await scenario({ content: 'abcdef', chunk_chars: 2 }) }),
  });
  const text = await res.text();
  const names = [...text.matchAll(/^event: (.*)$/gm)].map((m) => m[1]);
  assert.deepEqual(names, ['response.created', 'response.output_item.added', 'response.output_text.delta', 'response.output_text.delta',
    'response.output_text.delta', 'response.output_item.done', 'response.completed']);
  assert.ok(!text.includes('[DONE]'), 'a Responses stream has no [DONE]');

  const cut = await fetch(`${ROUTER_GATEWAY}/v1/responses`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer router-access-token' },
    body: JSON.stringify({ model: 'nr-model', stream: true, input: await scenario({ content: 'abcdef', chunk_chars: 2, cut_after: 3 }) }),
  });
  const tail = (await cut.text()).trim().split('\n\n').at(-1);
  assert.match(tail, /^event: error\ndata: /);
  assert.equal(JSON.parse(tail.split('data: ')[1]).type, 'error');
});

test('UNSUPPORTED_TOOLS=reject: a hosted tool is a 400 unsupported_tool naming it (translated calls only)', async () => {
  const routed = new OpenAI({ baseURL: `${ROUTER_GATEWAY}/v1`, apiKey: 'router-access-token', maxRetries: 0 });
  const tag = await scenario({ content: 'never' });
  await assert.rejects(
    routed.responses.create({ model: 'r-single', input: tag, tools: [...TOOLS, { type: 'code_interpreter', container: { type: 'auto' } }] }),
    (e) => e.status === 400 && e.code === 'unsupported_tool' && e.param === 'tools[1]' && /code_interpreter/.test(e.message),
  );
  assert.equal((await received(tag)).length, 0);
});

test('a streamed stored response can be continued the moment response.completed arrives; masked tokens never come back', async () => {
  const tag = await scenario({ content: 'first turn, token Bearer sk-leaky-unknown-1234abcd here', chunk_chars: 8 });
  const stream = client.responses.stream({ model: 'gpt-resp-test', instructions: `t ${tag}`, input: 'start' }, NATIVE);
  let id = null;
  let continued = null;
  for await (const event of stream) {
    if (event.type === 'response.completed') {
      id = event.response.id;
      // Straight away, before the stream has even closed.
      continued = await client.responses.create({ model: 'gpt-resp-test', previous_response_id: id, input: await scenario({ content: 'second turn' }) });
    }
  }
  assert.ok(id, 'the stream completed');
  assert.equal(continued.output_text, 'second turn');
  const fetched = await client.responses.retrieve(id);
  assert.ok(!JSON.stringify(fetched).includes('sk-leaky-unknown-1234abcd'), 'the stored response was scrubbed');
});
