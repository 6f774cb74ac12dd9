// Native Gemini and DashScope behind the OpenAI API, driven by the official `openai` npm SDK:
// the mock upstream records the native requests, so each mapping is asserted on the wire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { DEFAULT_CONTENT } from '../mock/upstream.mjs';
import { GATEWAY, PUBLIC_GATEWAY, ACCESS_TOKEN, scenario, received, post, readSse, contentOf } from './helpers.mjs';

const guarded = new OpenAI({ baseURL: `${GATEWAY}/v1`, apiKey: ACCESS_TOKEN, maxRetries: 0 });
const publicClient = (key = 'user-own-key') => new OpenAI({ baseURL: `${PUBLIC_GATEWAY}/v1`, apiKey: key, maxRetries: 0 });
const NATIVE = { headers: { 'x-fake-stream': 'false' } };
const TEXT = 'Native answer: 你好，世界 🌍 — ünïcödé.';
const TOOL_CALLS = [
  { id: 'call_w', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Zürich"}' } },
  { id: 'call_t', type: 'function', function: { name: 'get_time', arguments: '{"tz":"CET"}' } },
];
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', additionalProperties: false, properties: { city: { type: 'string' } }, required: ['city'] } } },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
];

async function collect(stream) {
  let text = '';
  let usage = null;
  let finish = null;
  const calls = [];
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    text += choice?.delta?.content ?? '';
    finish = choice?.finish_reason ?? finish;
    for (const d of choice?.delta?.tool_calls ?? []) {
      calls[d.index] ??= { id: '', name: '', arguments: '' };
      if (d.id) calls[d.index].id = d.id;
      calls[d.index].name += d.function?.name ?? '';
      calls[d.index].arguments += d.function?.arguments ?? '';
    }
    if (chunk.usage) usage = chunk.usage;
  }
  return { text, usage, finish, calls };
}

// ---- Gemini ---------------------------------------------------------------------------------

test('Gemini: chat maps the request to generateContent and the answer back', async () => {
  const tag = await scenario({ content: TEXT, usage: { promptTokenCount: 7, candidatesTokenCount: 9, totalTokenCount: 19, thoughtsTokenCount: 3 } });
  const completion = await guarded.chat.completions.create({
    model: 'gemini-2.5-flash',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: `Hi ${tag}` },
      { role: 'user', content: [{ type: 'text', text: 'and this image' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
    ],
    temperature: 0.4, top_p: 0.8, max_tokens: 64, stop: ['END'], seed: 5,
    response_format: { type: 'json_object' },
  });
  assert.equal(completion.choices[0].message.content, TEXT);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.equal(completion.model, 'gemini-2.5-flash');
  assert.equal(completion.object, 'chat.completion');
  assert.deepEqual(completion.usage, { prompt_tokens: 7, completion_tokens: 12, total_tokens: 19, completion_tokens_details: { reasoning_tokens: 3 } });

  const [upstream] = await received(tag);
  assert.equal(upstream.path, '/v1beta/models/gemini-2.5-flash:generateContent');
  assert.equal(upstream.headers['x-goog-api-key'], 'gm-server-secret-key');
  assert.equal(upstream.headers.authorization, undefined, 'the access token is not sent to Google');
  assert.deepEqual(upstream.body.systemInstruction, { parts: [{ text: 'Be brief.' }] });
  assert.equal(upstream.body.contents.length, 1, 'consecutive user turns are merged');
  assert.deepEqual(upstream.body.contents[0].parts[2], { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } });
  assert.deepEqual(upstream.body.generationConfig, {
    temperature: 0.4, topP: 0.8, seed: 5, maxOutputTokens: 64, stopSequences: ['END'], responseMimeType: 'application/json',
  });
  assert.equal(upstream.body.safetySettings.length, 4);
});

test('Gemini: native stream is translated event by event, with usage', async () => {
  const tag = await scenario({ content: TEXT, chunk_chars: 3, chunk_delay_ms: 20 });
  const stream = await guarded.chat.completions.create({
    model: 'gemini-2.0-flash', messages: [{ role: 'user', content: `stream ${tag}` }], stream: true, stream_options: { include_usage: true },
  });
  const { text, usage, finish } = await collect(stream);
  assert.equal(text, TEXT);
  assert.equal(finish, 'stop');
  assert.deepEqual(usage, { prompt_tokens: 8, completion_tokens: 12, total_tokens: 20 });
  const [upstream] = await received(tag);
  assert.equal(upstream.path, '/v1beta/models/gemini-2.0-flash:streamGenerateContent');
  assert.equal(upstream.query, '?alt=sse');
});

test('Gemini: fake stream sends heartbeats, then the generateContent answer as chunks', async () => {
  const tag = await scenario({ content: TEXT, delay_ms: 700 });
  const res = await post('/v1/chat/completions', { model: 'gemini-fake-pro', stream: true, messages: [{ role: 'user', content: tag }] });
  assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
  const items = await readSse(res);
  assert.ok(items.findIndex((i) => i.kind === 'data') >= 3, 'heartbeats come first');
  assert.equal(contentOf(items), TEXT);
  const [upstream] = await received(tag);
  assert.match(upstream.path, /:generateContent$/);
});

test('Gemini: tools and tool results map both ways, streamed with indexes', async () => {
  const tag = await scenario({ tool_calls: TOOL_CALLS });
  const completion = await guarded.chat.completions.create({
    model: 'gemini-2.5-flash', tools: TOOLS, tool_choice: 'required',
    messages: [{ role: 'user', content: `weather and time ${tag}` }],
  });
  const calls = completion.choices[0].message.tool_calls;
  assert.equal(completion.choices[0].finish_reason, 'tool_calls');
  assert.deepEqual(calls.map((c) => [c.type, c.function.name, JSON.parse(c.function.arguments)]),
    [['function', 'get_weather', { city: 'Zürich' }], ['function', 'get_time', { tz: 'CET' }]]);
  assert.ok(calls.every((c) => /^call_/.test(c.id)) && calls[0].id !== calls[1].id, 'ids generated');
  const [upstream] = await received(tag);
  assert.deepEqual(upstream.body.tools[0].functionDeclarations[0], {
    name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  });
  assert.deepEqual(upstream.body.toolConfig, { functionCallingConfig: { mode: 'ANY' } });

  // Second turn: the tool results go back as functionResponse parts.
  const tag2 = await scenario({ content: 'It is sunny.' });
  const answer = await guarded.chat.completions.create({
    model: 'gemini-2.5-flash', tools: TOOLS,
    messages: [
      { role: 'user', content: `weather ${tag2}` },
      { role: 'assistant', content: null, tool_calls: calls },
      { role: 'tool', tool_call_id: calls[0].id, content: '{"temp":21}' },
      { role: 'tool', tool_call_id: calls[1].id, content: '12:00' },
    ],
  });
  assert.equal(answer.choices[0].message.content, 'It is sunny.');
  const [second] = await received(tag2);
  assert.deepEqual(second.body.contents.map((c) => c.role), ['user', 'model', 'user']);
  // No thought signature in this history: Google's placeholder goes on the turn's first call.
  assert.deepEqual(second.body.contents[1].parts[0], {
    functionCall: { name: 'get_weather', args: { city: 'Zürich' } }, thoughtSignature: 'skip_thought_signature_validator',
  });
  assert.deepEqual(second.body.contents[1].parts[1], { functionCall: { name: 'get_time', args: { tz: 'CET' } } });
  assert.deepEqual(second.body.contents[2].parts, [
    { functionResponse: { name: 'get_weather', response: { temp: 21 } } },
    { functionResponse: { name: 'get_time', response: { content: '12:00' } } },
  ]);

  const tag3 = await scenario({ tool_calls: TOOL_CALLS });
  const streamed = await collect(await guarded.chat.completions.create({
    model: 'gemini-2.5-flash', tools: TOOLS, stream: true, messages: [{ role: 'user', content: tag3 }],
  }));
  assert.equal(streamed.finish, 'tool_calls');
  assert.deepEqual(streamed.calls.map((c) => [c.name, c.arguments]), [['get_weather', '{"city":"Zürich"}'], ['get_time', '{"tz":"CET"}']]);
});

test('Gemini 3: thought signatures come back on tool_calls (JSON, native and fake streams) and return to their parts', async () => {
  const signed = [{ ...TOOL_CALLS[0], thought_signature: 'sig-gemini3-Zürich==' }, TOOL_CALLS[1]];
  const signatureOf = (call) => call?.extra_content?.google?.thought_signature;
  const json = await guarded.chat.completions.create({
    model: 'gemini-3-pro-preview', tools: TOOLS, messages: [{ role: 'user', content: `weather ${await scenario({ tool_calls: signed })}` }],
  });
  const calls = json.choices[0].message.tool_calls;
  assert.equal(signatureOf(calls[0]), 'sig-gemini3-Zürich==');
  assert.equal(calls[1].extra_content, undefined, 'only the signed call carries it');

  // Streams: the SDK's raw chunks carry extra_content on the call's first delta.
  for (const [model, options] of [['gemini-3-pro-preview', NATIVE], ['gemini-fake-3-pro', {}]]) {
    const tag = await scenario({ tool_calls: signed });
    const stream = await guarded.chat.completions.create({
      model, tools: TOOLS, stream: true, messages: [{ role: 'user', content: tag }],
    }, options);
    const signatures = [];
    for await (const chunk of stream) {
      for (const d of chunk.choices[0]?.delta?.tool_calls ?? []) if (d.id) signatures[d.index] = signatureOf(d) ?? null;
    }
    assert.deepEqual(signatures, ['sig-gemini3-Zürich==', null], model);
  }

  // Second turn with the assistant message exactly as the SDK returned it.
  const tag2 = await scenario({ content: 'Sunny, 12:00.' });
  const answer = await guarded.chat.completions.create({
    model: 'gemini-3-pro-preview', tools: TOOLS,
    messages: [
      { role: 'user', content: `weather ${tag2}` },
      json.choices[0].message,
      { role: 'tool', tool_call_id: calls[0].id, content: '{"temp":21}' },
      { role: 'tool', tool_call_id: calls[1].id, content: '12:00' },
    ],
  });
  assert.equal(answer.choices[0].message.content, 'Sunny, 12:00.');
  const [second] = await received(tag2);
  assert.deepEqual(second.body.contents[1].parts, [
    { functionCall: { name: 'get_weather', args: { city: 'Zürich' } }, thoughtSignature: 'sig-gemini3-Zürich==' },
    { functionCall: { name: 'get_time', args: { tz: 'CET' } } },
  ]);
});

test('Gemini: safety stops become content_filter; a blocked prompt is a 400', async () => {
  const filtered = await guarded.chat.completions.create({
    model: 'gemini-2.5-flash', messages: [{ role: 'user', content: await scenario({ content: 'partial', finish_reason: 'SAFETY' }) }],
  });
  assert.equal(filtered.choices[0].finish_reason, 'content_filter');
  const length = await guarded.chat.completions.create({
    model: 'gemini-2.5-flash', messages: [{ role: 'user', content: await scenario({ finish_reason: 'MAX_TOKENS' }) }],
  });
  assert.equal(length.choices[0].finish_reason, 'length');
  await assert.rejects(
    guarded.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: await scenario({ blocked: 'PROHIBITED_CONTENT' }) }] }),
    (err) => err instanceof OpenAI.BadRequestError && err.code === 'content_filter' && /PROHIBITED_CONTENT/.test(err.message),
  );
});

test('Gemini: an answer with nothing usable (MALFORMED_FUNCTION_CALL, no parts) is a 502 empty_response, also fake-streamed', async () => {
  const tag = await scenario({ content: '', finish_reason: 'MALFORMED_FUNCTION_CALL' });
  await assert.rejects(
    guarded.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: tag }] }),
    (err) => err instanceof OpenAI.InternalServerError && err.status === 502 && err.code === 'empty_response' && /MALFORMED_FUNCTION_CALL/.test(err.message),
  );
  const res = await post('/v1/chat/completions', { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: tag }], stream: true }, { headers: { 'x-fake-stream': 'true' } });
  assert.equal(res.status, 200);
  const data = (await readSse(res)).filter((i) => i.kind === 'data');
  assert.equal(data.at(-1).text, '[DONE]');
  assert.equal(JSON.parse(data.at(-2).text).error.code, 'empty_response');
  assert.equal(contentOf(data), '', 'no content was made up');
  // A native stream whose first event is that ending: nothing went out, so the client gets the
  // same 502 (the gateway waits for a stream's first event before it answers).
  const native = await post('/v1/chat/completions', { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: tag }], stream: true }, NATIVE);
  assert.equal(native.status, 502);
  assert.equal((await native.json()).error.code, 'empty_response');
  // The same finish reason after real text is a normal stop.
  const late = await guarded.chat.completions.create({
    model: 'gemini-2.5-flash', messages: [{ role: 'user', content: await scenario({ content: 'real text', finish_reason: 'MALFORMED_FUNCTION_CALL' }) }],
  });
  assert.equal(late.choices[0].message.content, 'real text');
  assert.equal(late.choices[0].finish_reason, 'stop');
});

test('Gemini: errors keep a fitting status; client keys are forwarded in public mode', async () => {
  const quota = JSON.stringify({ error: { code: 429, message: 'Resource has been exhausted', status: 'RESOURCE_EXHAUSTED' } });
  await assert.rejects(
    guarded.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: await scenario({ status: 429, error_body: quota }) }] }),
    (err) => err instanceof OpenAI.RateLimitError && err.code === 'RESOURCE_EXHAUSTED',
  );
  const tag = await scenario();
  const completion = await publicClient('gm-user-key').chat.completions.create({ model: 'gemini-2.5-pro', messages: [{ role: 'user', content: tag }] });
  assert.equal(completion.choices[0].message.content, DEFAULT_CONTENT);
  assert.equal((await received(tag))[0].headers['x-goog-api-key'], 'gm-user-key');
  await assert.rejects(
    publicClient('bad-gemini-key').chat.completions.create({ model: 'gemini-2.5-pro', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof OpenAI.AuthenticationError && err.code === 'invalid_api_key' && !err.message.includes('bad-gemini-key'),
  );
});

test('an explicit provider prefix routes any model name', async () => {
  const tag = await scenario({ content: 'custom' });
  const completion = await guarded.chat.completions.create({ model: 'gemini/my-tuned-model', messages: [{ role: 'user', content: tag }] });
  assert.equal(completion.choices[0].message.content, 'custom');
  assert.equal((await received(tag))[0].path, '/v1beta/models/my-tuned-model:generateContent');
});

// ---- DashScope ------------------------------------------------------------------------------

test('DashScope: chat maps to the native text-generation API with the server key', async () => {
  const tag = await scenario({ content: TEXT, reasoning_content: '思考中' });
  const { data: completion, response } = await publicClient('ignored-client-key').chat.completions.create({
    model: 'qwen-plus',
    messages: [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: `你好 ${tag}` }],
    temperature: 0.5, top_p: 1, max_tokens: 100, stop: 'END', seed: 42, presence_penalty: 0.3,
    repetition_penalty: 1.05, enable_search: true,
  }).withResponse();
  assert.equal(completion.choices[0].message.content, TEXT);
  assert.equal(completion.choices[0].message.reasoning_content, '思考中');
  assert.equal(completion.id, 'chatcmpl-ds-req-1');
  assert.equal(completion.request_id, 'ds-req-1', 'DashScope request_id is kept');
  assert.deepEqual(completion.usage, { prompt_tokens: 9, completion_tokens: 14, total_tokens: 23 });
  assert.equal(response.headers.get('x-gateway-fake-stream'), null);

  const [upstream] = await received(tag);
  assert.equal(upstream.path, '/api/v1/services/aigc/text-generation/generation');
  assert.equal(upstream.headers.authorization, 'Bearer ds-server-secret-key');
  assert.equal(upstream.headers['x-dashscope-sse'], undefined);
  assert.equal(upstream.body.model, 'qwen-plus');
  assert.deepEqual(upstream.body.input.messages, [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: `你好 ${tag}` }]);
  const p = upstream.body.parameters;
  assert.equal(p.result_format, 'message');
  assert.ok(p.top_p < 1, 'top_p clamped below 1');
  assert.deepEqual([p.temperature, p.max_tokens, p.seed, p.presence_penalty, p.repetition_penalty, p.enable_search], [0.5, 100, 42, 0.3, 1.05, true]);
  assert.deepEqual(p.stop, ['END']);
});

test('DashScope: native SSE stream is translated, incremental_output on', async () => {
  const tag = await scenario({ content: TEXT, chunk_chars: 2, chunk_delay_ms: 10 });
  const stream = await publicClient().chat.completions.create({
    model: 'qwen-max', messages: [{ role: 'user', content: tag }], stream: true, stream_options: { include_usage: true },
  }, NATIVE);
  const { text, usage, finish } = await collect(stream);
  assert.equal(text, TEXT);
  assert.equal(finish, 'stop');
  assert.equal(usage.total_tokens, 23);
  const [upstream] = await received(tag);
  assert.equal(upstream.headers['x-dashscope-sse'], 'enable');
  assert.equal(upstream.body.parameters.incremental_output, true);
});

test('DashScope: fake stream, tools in a native stream, and vision via the multimodal API', async () => {
  const fakeTag = await scenario({ content: TEXT, delay_ms: 300 });
  const res = await post('/v1/chat/completions', { model: 'farui-plus', stream: true, messages: [{ role: 'user', content: fakeTag }] }, { base: PUBLIC_GATEWAY });
  assert.equal(res.headers.get('x-gateway-fake-stream'), 'true');
  assert.equal(contentOf(await readSse(res)), TEXT);
  assert.equal((await received(fakeTag))[0].body.model, 'farui-plus');

  const toolTag = await scenario({ tool_calls: TOOL_CALLS });
  const streamed = await collect(await publicClient().chat.completions.create({
    model: 'qwen-plus', tools: TOOLS, stream: true, messages: [{ role: 'user', content: toolTag }],
  }, NATIVE));
  assert.equal(streamed.finish, 'tool_calls');
  assert.deepEqual(streamed.calls, TOOL_CALLS.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })));
  assert.equal((await received(toolTag))[0].body.parameters.tools[0].function.name, 'get_weather');

  const visionTag = await scenario({ content: 'A cat.' });
  const vision = await publicClient().chat.completions.create({
    model: 'qwen-vl-max',
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }, { type: 'text', text: `what is it ${visionTag}` }] }],
  });
  assert.equal(vision.choices[0].message.content, 'A cat.');
  const [upstream] = await received(visionTag);
  assert.equal(upstream.path, '/api/v1/services/aigc/multimodal-generation/generation');
  assert.deepEqual(upstream.body.input.messages[0].content, [{ image: 'https://example.com/cat.png' }, { text: `what is it ${visionTag}` }]);
});

test('DashScope: error codes become OpenAI errors, in JSON and mid-stream', async () => {
  const throttled = JSON.stringify({ code: 'Throttling.RateQuota', message: 'Requests rate limit exceeded', request_id: 'r1' });
  await assert.rejects(
    publicClient().chat.completions.create({ model: 'qwen-plus', messages: [{ role: 'user', content: await scenario({ status: 429, error_body: throttled }) }] }),
    (err) => err instanceof OpenAI.RateLimitError && err.code === 'Throttling.RateQuota',
  );
  const inspection = JSON.stringify({ code: 'DataInspectionFailed', message: 'Input data may contain inappropriate content.', request_id: 'r2' });
  await assert.rejects(
    publicClient().chat.completions.create({ model: 'qwen-plus', messages: [{ role: 'user', content: await scenario({ status: 400, error_body: inspection }) }] }),
    (err) => err instanceof OpenAI.BadRequestError && err.code === 'DataInspectionFailed',
  );
  const res = await post('/v1/chat/completions', { model: 'qwen-plus', stream: true, messages: [{ role: 'user', content: await scenario({ stream_error: 'DataInspectionFailed' }) }] },
    { base: PUBLIC_GATEWAY, headers: { 'x-fake-stream': 'false' } });
  const data = (await readSse(res)).filter((i) => i.kind === 'data');
  assert.equal(JSON.parse(data[0].text).choices[0].delta.role, 'assistant');
  assert.equal(contentOf(data.slice(0, -2)), 'partial');
  assert.equal(JSON.parse(data.at(-2).text).error.code, 'DataInspectionFailed');
  assert.equal(data.at(-1).text, '[DONE]');
});

// ---- routing, keys, models ------------------------------------------------------------------

test('unsupported models and providers without a key get clear errors naming the model', async () => {
  await assert.rejects(
    guarded.chat.completions.create({ model: 'llama-3-70b', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof OpenAI.BadRequestError && err.code === 'model_not_found' && /llama-3-70b/.test(err.message),
  );
  await assert.rejects(
    guarded.chat.completions.create({ model: 'qwen-max', messages: [{ role: 'user', content: 'x' }] }),
    (err) => err instanceof OpenAI.AuthenticationError && /qwen-max/.test(err.message) && /DASHSCOPE_API_KEY/.test(err.message),
  );
});

test('models.list() merges configured and upstream-listed models of usable providers', async () => {
  const ids = [];
  for await (const model of guarded.models.list()) ids.push(model.id);
  assert.ok(ids.includes('gemini-2.5-pro'), 'configured Gemini model');
  assert.ok(ids.includes('gemini-mock-pro'), 'listed by the Gemini upstream');
  assert.ok(ids.includes('gemini-embedding-001'), 'embedding models are listed');
  // Listed by the Gemini upstream but not routed to it by its patterns: listed with its prefix.
  assert.ok(!ids.includes('text-embedding-mock') && ids.includes('gemini/text-embedding-mock'));
  assert.ok(ids.includes('gpt-mock-1'), 'listed by the OpenAI upstream');
  assert.ok(!ids.some((id) => id.startsWith('qwen')), 'DashScope has no key here, so it is not listed');

  const open = [];
  for await (const model of publicClient('sk-user').models.list()) open.push(model.id);
  assert.ok(open.includes('qwen-max') && open.includes('farui-plus'));
  assert.ok(open.includes('gpt-mock-2'), 'OpenAI list fetched with the client key');
  const post = await fetch(`${PUBLIC_GATEWAY}/v1/models`, { method: 'POST' });
  assert.equal(post.status, 200);
  assert.equal((await post.json()).object, 'list');
  const denied = await fetch(`${GATEWAY}/v1/models`);
  assert.equal(denied.status, 401);
});

// ---- Logprobs and media parts ---------------------------------------------------------------

const GEMINI_LOGPROBS = {
  topCandidates: [
    { candidates: [{ token: 'Ja', logProbability: -0.05 }, { token: 'Nein', logProbability: -3.2 }] },
    { candidates: [{ token: '!', logProbability: -0.4 }] },
  ],
  chosenCandidates: [{ token: 'Ja', logProbability: -0.05 }, { token: '!', logProbability: -0.4 }],
};
const OPENAI_LOGPROBS = [
  { token: 'Ja', logprob: -0.05, bytes: [74, 97], top_logprobs: [{ token: 'Ja', logprob: -0.05, bytes: [74, 97] }, { token: 'Nein', logprob: -3.2, bytes: [78, 101, 105, 110] }] },
  { token: '!', logprob: -0.4, bytes: [33], top_logprobs: [{ token: '!', logprob: -0.4, bytes: [33] }] },
];

test('Gemini: logprobs and top_logprobs map to responseLogprobs and come back as choices[].logprobs (JSON and stream)', async () => {
  const tag = await scenario({ content: 'Ja!', logprobs_result: GEMINI_LOGPROBS });
  const completion = await guarded.chat.completions.create({
    model: 'gemini-2.5-flash', logprobs: true, top_logprobs: 2, messages: [{ role: 'user', content: `yes? ${tag}` }],
  });
  assert.deepEqual(completion.choices[0].logprobs.content, OPENAI_LOGPROBS);
  const [upstream] = await received(tag);
  assert.equal(upstream.body.generationConfig.responseLogprobs, true);
  assert.equal(upstream.body.generationConfig.logprobs, 2);

  const stream = await guarded.chat.completions.create({
    model: 'gemini-2.5-flash', logprobs: true, top_logprobs: 2, stream: true,
    messages: [{ role: 'user', content: await scenario({ content: 'Ja!', logprobs_result: GEMINI_LOGPROBS }) }],
  }, NATIVE);
  const streamed = [];
  for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
  assert.deepEqual(streamed, OPENAI_LOGPROBS);

  await assert.rejects(
    guarded.chat.completions.create({ model: 'gemini-2.5-flash', top_logprobs: 2, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 400 && e.param === 'top_logprobs',
  );
});

test('DashScope: logprobs go to parameters and come back in OpenAI shape', async () => {
  const logprobs = { content: [{ token: '好', bytes: [229, 165, 189], logprob: -0.02, top_logprobs: [{ token: '好', bytes: [229, 165, 189], logprob: -0.02 }] }] };
  const tag = await scenario({ content: '好', logprobs });
  const completion = await publicClient().chat.completions.create({
    model: 'qwen-plus', logprobs: true, top_logprobs: 1, messages: [{ role: 'user', content: tag }],
  });
  assert.deepEqual(completion.choices[0].logprobs, logprobs);
  const [upstream] = await received(tag);
  assert.equal(upstream.body.parameters.logprobs, true);
  assert.equal(upstream.body.parameters.top_logprobs, 1);
  const stream = await publicClient().chat.completions.create({
    model: 'qwen-plus', logprobs: true, stream: true, messages: [{ role: 'user', content: await scenario({ content: '好', logprobs }) }],
  }, NATIVE);
  const streamed = [];
  for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
  assert.deepEqual(streamed, logprobs.content);
});

test('Gemini: input_audio and file (PDF) parts arrive as inlineData; a file_id is a clear 400', async () => {
  const tag = await scenario({ content: 'Heard and read.' });
  const completion = await guarded.chat.completions.create({
    model: 'gemini-2.5-flash',
    messages: [{ role: 'user', content: [
      { type: 'text', text: `summarise both ${tag}` },
      { type: 'input_audio', input_audio: { data: 'UklGRiQAAABXQVZF', format: 'wav' } },
      { type: 'file', file: { filename: 'report.pdf', file_data: 'data:application/pdf;base64,JVBERi0xLjQK' } },
    ] }],
  });
  assert.equal(completion.choices[0].message.content, 'Heard and read.');
  const [upstream] = await received(tag);
  assert.deepEqual(upstream.body.contents[0].parts.slice(1), [
    { inlineData: { mimeType: 'audio/wav', data: 'UklGRiQAAABXQVZF' } },
    { inlineData: { mimeType: 'application/pdf', data: 'JVBERi0xLjQK' } },
  ]);
  const before = (await received(tag)).length;
  await assert.rejects(
    guarded.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: [
      { type: 'text', text: tag }, { type: 'file', file: { file_id: 'file-abc123' } }] }] }),
    (e) => e.status === 400 && e.param === 'messages[0].content[1]' && /Files API/.test(e.message),
  );
  assert.equal((await received(tag)).length, before, 'refused before any upstream call');
});

test('DashScope: input_audio and video parts go to the multimodal API as audio/video items', async () => {
  const tag = await scenario({ content: 'A cat plays.' });
  const completion = await publicClient().chat.completions.create({
    model: 'qwen-vl-max',
    messages: [{ role: 'user', content: [
      { type: 'video_url', video_url: { url: 'https://media.example/cat.mp4' } },
      { type: 'input_audio', input_audio: { data: 'SUQzBAA=', format: 'mp3' } },
      { type: 'text', text: `what happens? ${tag}` },
    ] }],
  });
  assert.equal(completion.choices[0].message.content, 'A cat plays.');
  const [upstream] = await received(tag);
  assert.match(upstream.path, /multimodal-generation/);
  assert.deepEqual(upstream.body.input.messages[0].content, [
    { video: 'https://media.example/cat.mp4' }, { audio: 'data:audio/mp3;base64,SUQzBAA=' }, { text: `what happens? ${tag}` },
  ]);
});

test('Gemini: a zod schema (reused sub-schemas, nullable, enum, list of objects) arrives inlined and the SDK parses the answer', async () => {
  const { z } = await import('zod');
  const { zodResponseFormat } = await import('openai/helpers/zod');
  const Address = z.object({ city: z.string(), zip: z.string().nullable() });
  const Order = z.object({
    id: z.string(),
    billing: Address,
    shipping: Address,
    items: z.array(z.object({ sku: z.string(), qty: z.number().int() })),
    status: z.enum(['open', 'paid']),
  });
  const answer = { id: 'o-1', billing: { city: 'Zürich', zip: null }, shipping: { city: 'Bern', zip: '3000' }, items: [{ sku: 'a', qty: 2 }], status: 'paid' };
  const tag = await scenario({ content: JSON.stringify(answer) });
  const completion = await guarded.chat.completions.parse({
    model: 'gemini-2.5-flash', response_format: zodResponseFormat(Order, 'order'),
    messages: [{ role: 'user', content: `the order ${tag}` }],
  });
  assert.deepEqual(completion.choices[0].message.parsed, answer);
  const [upstream] = await received(tag);
  const schema = upstream.body.generationConfig.responseSchema;
  assert.equal(upstream.body.generationConfig.responseMimeType, 'application/json');
  assert.ok(!JSON.stringify(schema).includes('$ref') && !JSON.stringify(schema).includes('additionalProperties'), JSON.stringify(schema));
  for (const field of ['billing', 'shipping']) {
    assert.equal(schema.properties[field].properties.city.type, 'string', field);
    assert.equal(schema.properties[field].properties.zip.nullable, true, field);
  }
  assert.deepEqual(schema.properties.status.enum, ['open', 'paid']);
  assert.equal(schema.properties.items.items.properties.qty.type, 'integer');
  assert.deepEqual(schema.propertyOrdering, ['id', 'billing', 'shipping', 'items', 'status']);
});

test('Gemini: a recursive schema is a clear 400 naming the tool parameters, before any upstream call', async () => {
  const tag = await scenario({ content: 'never' });
  const tree = { $defs: { Node: { type: 'object', properties: { name: { type: 'string' }, children: { type: 'array', items: { $ref: '#/$defs/Node' } } } } }, $ref: '#/$defs/Node' };
  await assert.rejects(
    guarded.chat.completions.create({
      model: 'gemini-2.5-flash', messages: [{ role: 'user', content: tag }],
      tools: [{ type: 'function', function: { name: 'save_tree', parameters: tree } }],
    }),
    (e) => e.status === 400 && e.param === 'tools[0].function.parameters' && /recursive/.test(e.message),
  );
  assert.equal((await received(tag)).length, 0);
});
