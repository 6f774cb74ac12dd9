// The benchmark's upstream: as fast as Node serves, precomputed answers, nothing recorded.
// Run as its own process (`node bench/mock.mjs`), it prints `listening <port>` when ready.
//
// POST …/chat/completions (OpenAI wire format):
//   model `slow-*`: waits 300 ms, then a JSON answer of 1 KB content (for fake streams);
//   model `huge-*` with `stream: true`: 20 MiB of content in 64 KiB events;
//   model `big-*`: at once, a JSON answer of 1 MiB content; `giant-*`: of 20 MiB (fake streams);
//   `stream: true`: 20 content events, a finishing event with usage, `[DONE]`;
//   otherwise a small JSON answer with usage.
// POST …/models/{model}:streamGenerateContent?alt=sse (Gemini): 20 events, the last finishing.
import http from 'node:http';

const usage = { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 };
const completion = (content) => JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion', created: 1_700_000_000, model: 'gpt-bench',
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage,
});
const SMALL_JSON = completion('Hello from the benchmark mock upstream.');
const SLOW_JSON = completion('word '.repeat(205).slice(0, 1024));
const chunk = (delta, finish = null, withUsage = false) => `data: ${JSON.stringify({
  id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'gpt-bench',
  choices: [{ index: 0, delta, finish_reason: finish }], ...(withUsage ? { usage } : {}),
})}\n\n`;
const OPENAI_EVENTS = [
  chunk({ role: 'assistant', content: '' }),
  ...Array.from({ length: 18 }, (_, i) => chunk({ content: `token${i} ` })),
  chunk({}, 'stop', true),
  'data: [DONE]\n\n',
];
const geminiEvent = (text, last) => `data: ${JSON.stringify({
  candidates: [{ content: { role: 'model', parts: [{ text }] }, index: 0, ...(last ? { finishReason: 'STOP' } : {}) }],
  ...(last ? { usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 20, totalTokenCount: 30 } } : {}),
  modelVersion: 'gemini-bench',
})}\r\n\r\n`;
const GEMINI_EVENTS = Array.from({ length: 20 }, (_, i) => geminiEvent(`token${i} `, i === 19));
const BIG_JSON = completion('lorem ipsum '.repeat(87_382).slice(0, 1024 * 1024));
const GIANT_JSON = completion('lorem ipsum '.repeat(1_747_627).slice(0, 20 * 1024 * 1024));
const HUGE_PIECE = chunk({ content: 'lorem ipsum '.repeat(5462).slice(0, 65_536) });

function sse(res, events) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const event of events) res.write(event);
  res.end();
}

async function huge(res) {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (let sent = 0; sent < 20 * 1024 * 1024; sent += 65_536) {
    if (!res.write(HUGE_PIECE)) await new Promise((r) => res.once('drain', r));
  }
  res.end(chunk({}, 'stop', true) + 'data: [DONE]\n\n');
}

const server = http.createServer((req, res) => {
  const parts = [];
  req.on('data', (part) => parts.push(part));
  req.on('end', () => {
    const url = new URL(req.url, 'http://mock');
    if (url.pathname.includes(':streamGenerateContent')) return sse(res, GEMINI_EVENTS);
    let body = {};
    try { body = JSON.parse(Buffer.concat(parts).toString() || '{}'); } catch { /* default answer */ }
    const model = String(body.model || '');
    if (model.startsWith('slow-')) {
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(SLOW_JSON), 300);
      return;
    }
    if (body.stream && model.startsWith('huge-')) return huge(res);
    if (model.startsWith('big-')) return res.writeHead(200, { 'content-type': 'application/json' }).end(BIG_JSON);
    if (model.startsWith('giant-')) return res.writeHead(200, { 'content-type': 'application/json' }).end(GIANT_JSON);
    if (body.stream) return sse(res, OPENAI_EVENTS);
    res.writeHead(200, { 'content-type': 'application/json' }).end(SMALL_JSON);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
