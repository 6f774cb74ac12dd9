// A mock LLM upstream on a loopback port. It speaks OpenAI Chat Completions (JSON and SSE)
// and records every request it gets, so tests can assert what the gateway forwarded.
//
// Behaviour is chosen per request by a scenario: tests register one with
// `POST /__mock/scenario {"id": "...", ...knobs}` and put the tag `mock:<id>` anywhere in the
// request body (usually a message). Untagged requests get the default answer.
//
// Knobs: delay_ms (before the response starts), status + error_body (an error answer),
// malformed (a 200 that is not JSON), reset (destroy the socket without answering),
// hang (never answer), content, reasoning_content, tool_calls, finish_reason, usage,
// chunk_delay_ms and chunk_chars (streaming cadence), cut_after (destroy the socket after N
// stream events), ignore_stream (answer JSON to a streaming request).
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

    if (!url.pathname.endsWith('/chat/completions') || req.method !== 'POST') {
      return sendJson(res, 404, { error: { message: `mock: no route ${req.method} ${url.pathname}`, type: 'invalid_request_error', param: null, code: null } });
    }
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
    if (body?.stream && !scenario.ignore_stream) return streamAnswer(res, record, answer, body, scenario);
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
