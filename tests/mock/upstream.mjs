// A mock LLM upstream on a loopback port. It speaks OpenAI Chat Completions, Google Gemini
// (generateContent / streamGenerateContent?alt=sse / models) and Alibaba DashScope
// (text- and multimodal-generation, X-DashScope-SSE streams) in their native wire formats,
// and records every request it gets, so tests can assert what the gateway sent.
// Keys starting with "bad" are refused the way each real API refuses them.
//
// Behaviour is chosen per request by a scenario: tests register one with
// `POST /__mock/scenario {"id": "...", ...knobs}` and put the tag `mock:<id>` anywhere in the
// request body (usually a message). Untagged requests get the default answer.
//
// Knobs: delay_ms (before the response starts), status + error_body (an error answer),
// malformed (a 200 that is not JSON), reset (destroy the socket without answering),
// hang (never answer), content, reasoning_content, tool_calls, finish_reason, usage,
// chunk_delay_ms and chunk_chars (streaming cadence), cut_after (destroy the socket after N
// stream events), ignore_stream (answer JSON to a streaming request), always_stream (answer
// SSE to a non-streaming request).
import http from 'node:http';

export const DEFAULT_CONTENT = 'Hello from the mock upstream! 你好，世界 🌍 — ünïcödé, naïve café.';

export function startMockUpstream({ port = 0, host = '127.0.0.1' } = {}) {
  const scenarios = new Map();
  const requests = [];
  let seq = 0;

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://mock');
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const bodyText = Buffer.concat(chunks).toString('utf8');

    if (url.pathname === '/__mock/scenario' && req.method === 'POST') {
      const scenario = JSON.parse(bodyText);
      scenarios.set(scenario.id, scenario);
      return sendJson(res, 200, { ok: true });
    }
    if (url.pathname === '/__mock/requests') {
      const tag = url.searchParams.get('tag');
      return sendJson(res, 200, requests.filter((r) => !tag || r.tag === tag));
    }

    const tagMatch = bodyText.match(/mock:([A-Za-z0-9_-]+)/);
    const tag = tagMatch ? tagMatch[1] : null;
    const scenario = (tag && scenarios.get(tag)) || {};
    let body = null;
    try { body = JSON.parse(bodyText); } catch { /* recorded as text */ }
    const record = {
      seq: ++seq, tag, method: req.method, path: url.pathname, query: url.search,
      headers: req.headers, body, bodyText, receivedAt: Date.now(),
      aborted: false, finishedAt: null, eventsSent: 0,
    };
    requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
    });
    res.on('finish', () => { record.finishedAt = Date.now(); });

    if (url.pathname === '/v1/models' && req.method === 'GET') {
      if (badKey(bearer(req))) return openaiBadKey(res);
      return sendJson(res, 200, { object: 'list', data: [{ id: 'gpt-mock-1', object: 'model', created: 1, owned_by: 'mock' }, { id: 'gpt-mock-2', object: 'model', created: 1, owned_by: 'mock' }] });
    }
    if (url.pathname === '/v1beta/models' && req.method === 'GET') {
      if (badKey(req.headers['x-goog-api-key'])) return geminiBadKey(res);
      return sendJson(res, 200, { models: [
        { name: 'models/gemini-mock-pro', supportedGenerationMethods: ['generateContent', 'countTokens'] },
        { name: 'models/text-embedding-mock', supportedGenerationMethods: ['embedContent'] },
      ] });
    }
    const gemini = url.pathname.match(/^\/v1beta\/models\/([^:]+):(generateContent|streamGenerateContent)$/);
    if (gemini && req.method === 'POST') return handleGemini(req, res, record, scenario, body, gemini[1], gemini[2] === 'streamGenerateContent');
    if (/^\/api\/v1\/services\/aigc\/(text|multimodal)-generation\/generation$/.test(url.pathname) && req.method === 'POST') {
      return handleDashScope(req, res, record, scenario, body);
    }
    if (!url.pathname.endsWith('/chat/completions') || req.method !== 'POST') {
      return sendJson(res, 404, { error: { message: `mock: no route ${req.method} ${url.pathname}`, type: 'invalid_request_error', param: null, code: null } });
    }
    if (badKey(bearer(req))) return openaiBadKey(res);
    if (scenario.hang) return; // never answers; the gateway must time out or abort
    if (scenario.delay_ms) await sleep(scenario.delay_ms, res);
    if (res.destroyed) return;
    if (scenario.reset) return req.socket.destroy();
    if (scenario.status) {
      res.writeHead(scenario.status, { 'content-type': scenario.error_content_type || 'application/json', 'x-request-id': 'req_mock_error' });
      return res.end(scenario.error_body ?? JSON.stringify({ error: { message: `mock error ${scenario.status}`, type: 'server_error', param: null, code: 'mock_error' } }));
    }
    if (scenario.malformed) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('<html>this is not json</html>');
    }
    const answer = buildAnswer(body, scenario);
    if ((body?.stream || scenario.always_stream) && !scenario.ignore_stream) return streamAnswer(res, record, answer, body, scenario);
    res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'req_mock_1', 'x-ratelimit-remaining-requests': '99' });
    res.end(JSON.stringify(answer));
  });

  return new Promise((resolve) => {
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolve({
        url: `http://${host}:${actual}`,
        server,
        requests,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}

function buildAnswer(body, scenario) {
  const message = { role: 'assistant', content: scenario.tool_calls ? (scenario.content ?? null) : (scenario.content ?? DEFAULT_CONTENT) };
  if (scenario.reasoning_content) message.reasoning_content = scenario.reasoning_content;
  if (scenario.tool_calls) message.tool_calls = scenario.tool_calls;
  const completionTokens = [...(message.content || '')].length;
  return {
    id: 'chatcmpl-mock123',
    object: 'chat.completion',
    created: 1700000000,
    model: body?.model || 'mock-model',
    system_fingerprint: 'fp_mock',
    choices: [{ index: 0, message, logprobs: null, finish_reason: scenario.finish_reason || (scenario.tool_calls ? 'tool_calls' : 'stop') }],
    usage: scenario.usage || { prompt_tokens: 11, completion_tokens: completionTokens, total_tokens: 11 + completionTokens },
  };
}

async function streamAnswer(res, record, answer, body, scenario) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': 'req_mock_stream' });
  const base = { id: answer.id, object: 'chat.completion.chunk', created: answer.created, model: answer.model, system_fingerprint: 'fp_mock' };
  const msg = answer.choices[0].message;
  const events = [{ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }];
  const size = scenario.chunk_chars || 5;
  const chars = [...(msg.content || '')];
  for (let i = 0; i < chars.length; i += size) {
    events.push({ ...base, choices: [{ index: 0, delta: { content: chars.slice(i, i + size).join('') }, finish_reason: null }] });
  }
  (msg.tool_calls || []).forEach((call, index) => {
    events.push({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }, finish_reason: null }] });
    events.push({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: call.function.arguments } }] }, finish_reason: null }] });
  });
  events.push({ ...base, choices: [{ index: 0, delta: {}, finish_reason: answer.choices[0].finish_reason }] });
  if (body.stream_options?.include_usage) events.push({ ...base, choices: [], usage: answer.usage });
  for (const event of events) {
    if (res.destroyed) return;
    if (scenario.cut_after !== undefined && record.eventsSent >= scenario.cut_after) {
      // A half-written event, then the connection dies.
      res.write('data: {"id":"chatcmpl-mock123","choi');
      await sleep(20, res);
      return res.socket?.destroy();
    }
    res.write(`data: ${JSON.stringify(event)}\n\n`);
    record.eventsSent++;
    if (scenario.chunk_delay_ms) await sleep(scenario.chunk_delay_ms, res);
  }
  res.end('data: [DONE]\n\n');
}

const bearer = (req) => (req.headers.authorization || '').replace(/^Bearer\s+/i, '');
const badKey = (key) => typeof key === 'string' && key.startsWith('bad');
const openaiBadKey = (res) => sendJson(res, 401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
const geminiBadKey = (res) => sendJson(res, 400, { error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' }] } });

/** Splits text into pieces of `size` characters (code points). */
function pieces(text, size) {
  const chars = [...(text || '')];
  const out = [];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}

/** Common start of a native answer: key check, hang, delay, error status, garbage. Returns true when handled. */
async function preamble(res, scenario, refuse) {
  if (refuse) { refuse(); return true; }
  if (scenario.hang) return true;
  if (scenario.delay_ms) await sleep(scenario.delay_ms, res);
  if (res.destroyed) return true;
  if (scenario.reset) { res.socket.destroy(); return true; }
  if (scenario.status) {
    res.writeHead(scenario.status, { 'content-type': scenario.error_content_type || 'application/json' });
    res.end(scenario.error_body ?? '{}');
    return true;
  }
  if (scenario.malformed) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('<html>this is not json</html>');
    return true;
  }
  return false;
}

async function writeEvents(res, record, scenario, frames) {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const frame of frames) {
    if (res.destroyed) return;
    if (scenario.cut_after !== undefined && record.eventsSent >= scenario.cut_after) {
      res.write('data: {"candidates":[{"conte');
      await sleep(20, res);
      return res.socket?.destroy();
    }
    res.write(frame);
    record.eventsSent++;
    if (scenario.chunk_delay_ms) await sleep(scenario.chunk_delay_ms, res);
  }
  res.end();
}

async function handleGemini(req, res, record, scenario, body, model, stream) {
  record.provider = 'gemini';
  record.model = model;
  const refuse = badKey(req.headers['x-goog-api-key']) ? () => geminiBadKey(res) : null;
  if (await preamble(res, scenario, refuse)) return;
  const usageMetadata = scenario.usage || { promptTokenCount: 8, candidatesTokenCount: 12, totalTokenCount: 20 };
  if (scenario.blocked) {
    return sendJson(res, 200, { promptFeedback: { blockReason: scenario.blocked }, usageMetadata });
  }
  const content = scenario.tool_calls ? (scenario.content ?? '') : (scenario.content ?? DEFAULT_CONTENT);
  const callParts = (scenario.tool_calls || []).map((c) => ({ functionCall: { name: c.function.name, args: JSON.parse(c.function.arguments) } }));
  const thought = scenario.reasoning_content ? [{ text: scenario.reasoning_content, thought: true }] : [];
  const finishReason = scenario.finish_reason || 'STOP';
  if (!stream) {
    const parts = [...thought, ...(content ? [{ text: content }] : []), ...callParts];
    return sendJson(res, 200, { candidates: [{ content: { role: 'model', parts }, finishReason, index: 0 }], usageMetadata, modelVersion: model, responseId: 'gemini-resp-1' });
  }
  const events = [];
  if (thought.length) events.push({ candidates: [{ content: { role: 'model', parts: thought }, index: 0 }] });
  for (const text of pieces(content, scenario.chunk_chars || 6)) events.push({ candidates: [{ content: { role: 'model', parts: [{ text }] }, index: 0 }] });
  events.push({ candidates: [{ content: { role: 'model', parts: callParts.length ? callParts : [{ text: '' }] }, finishReason, index: 0 }], usageMetadata, modelVersion: model, responseId: 'gemini-resp-1' });
  return writeEvents(res, record, scenario, events.map((e) => `data: ${JSON.stringify(e)}\r\n\r\n`));
}

async function handleDashScope(req, res, record, scenario, body) {
  record.provider = 'dashscope';
  const refuse = badKey(bearer(req))
    ? () => sendJson(res, 401, { code: 'InvalidApiKey', message: 'Invalid API-key provided.', request_id: 'ds-req-bad' })
    : null;
  if (await preamble(res, scenario, refuse)) return;
  const multimodal = record.path.includes('multimodal');
  const usage = scenario.usage || { input_tokens: 9, output_tokens: 14, total_tokens: 23 };
  const requestId = 'ds-req-1';
  const content = scenario.tool_calls ? (scenario.content ?? '') : (scenario.content ?? DEFAULT_CONTENT);
  const wrap = (text) => (multimodal ? [{ text }] : text);
  const finish = scenario.finish_reason || (scenario.tool_calls ? 'tool_calls' : 'stop');
  if (req.headers['x-dashscope-sse'] !== 'enable') {
    const message = { role: 'assistant', content: wrap(content) };
    if (scenario.reasoning_content) message.reasoning_content = scenario.reasoning_content;
    if (scenario.tool_calls) message.tool_calls = scenario.tool_calls.map((c, index) => ({ ...c, index }));
    return sendJson(res, 200, { output: { choices: [{ finish_reason: finish, message }] }, usage, request_id: requestId });
  }
  if (scenario.stream_error) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`id:1\nevent:result\n:HTTP_STATUS/200\ndata:${JSON.stringify({ output: { choices: [{ message: { role: 'assistant', content: wrap('partial') }, finish_reason: 'null' }] }, usage, request_id: requestId })}\n\n`);
    return res.end(`id:2\nevent:error\n:HTTP_STATUS/400\ndata:${JSON.stringify({ code: scenario.stream_error, message: 'Output data may contain inappropriate content.', request_id: requestId })}\n\n`);
  }
  const events = [];
  if (scenario.reasoning_content) events.push({ message: { role: 'assistant', content: wrap(''), reasoning_content: scenario.reasoning_content }, finish_reason: 'null' });
  for (const text of pieces(content, scenario.chunk_chars || 4)) events.push({ message: { role: 'assistant', content: wrap(text) }, finish_reason: 'null' });
  (scenario.tool_calls || []).forEach((c, index) => {
    events.push({ message: { role: 'assistant', content: wrap(''), tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.function.name, arguments: '' } }] }, finish_reason: 'null' });
    events.push({ message: { role: 'assistant', content: wrap(''), tool_calls: [{ index, id: '', type: 'function', function: { arguments: c.function.arguments } }] }, finish_reason: 'null' });
  });
  events.push({ message: { role: 'assistant', content: wrap('') }, finish_reason: finish });
  const frames = events.map((choice, i) => `id:${i + 1}\nevent:result\n:HTTP_STATUS/200\ndata:${JSON.stringify({ output: { choices: [choice] }, usage, request_id: requestId })}\n\n`);
  return writeEvents(res, record, scenario, frames);
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

function sleep(ms, res) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    res?.on('close', () => { clearTimeout(t); resolve(); });
  });
}

// Run standalone: `node tests/mock/upstream.mjs [port]`
if (import.meta.url === `file://${process.argv[1]}`) {
  const mock = await startMockUpstream({ port: Number(process.argv[2] || 0) });
  console.log(`mock upstream on ${mock.url}`);
}
