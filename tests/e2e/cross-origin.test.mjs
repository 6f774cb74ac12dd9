// A browser frontend on another origin calling the gateway with fetch (stream and
// non-stream, with an Authorization header, so a preflight happens), in real Chromium.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { GATEWAY, ACCESS_TOKEN, scenario, received } from './helpers.mjs';
import { launch, ARTIFACTS } from './browser.mjs';

const PORT = Number(process.env.FRONTEND_PORT);
const FRONTEND = `
<!doctype html><meta charset="utf-8"><title>frontend</title>
<pre id="out"></pre><pre id="status">idle</pre>
<script>
  async function call(gateway, token, body) {
    const out = document.getElementById('out');
    const status = document.getElementById('status');
    out.textContent = '';
    try {
      const res = await fetch(gateway + '/v1/chat/completions', {
        method: 'POST',
        headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!body.stream) {
        const json = await res.json();
        out.textContent = json.choices[0].message.content;
      } else {
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf('\\n\\n')) !== -1) {
            const line = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
            if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
            out.textContent += JSON.parse(line.slice(6)).choices[0]?.delta?.content ?? '';
          }
        }
      }
      status.textContent = 'ok ' + res.headers.get('x-request-id');
    } catch (e) {
      status.textContent = 'blocked: ' + e.message;
    }
  }
</script>`;

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(FRONTEND);
});
await new Promise((r) => server.listen(PORT, '127.0.0.1', r));
const browser = await launch();
after(async () => { await browser.close(); server.close(); });

async function run(origin, body) {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  await page.evaluate(([g, t, b]) => call(g, t, b), [GATEWAY, ACCESS_TOKEN, body]);
  const result = { status: await page.textContent('#status'), out: await page.textContent('#out'), page };
  return result;
}

test('an allowed origin calls the gateway cross-origin, stream and non-stream', async () => {
  const origin = `http://127.0.0.1:${PORT}`;
  const tag = await scenario({ content: 'cross-origin JSON ✓' });
  const json = await run(origin, { model: 'gpt-test', messages: [{ role: 'user', content: tag }] });
  assert.match(json.status, /^ok [0-9a-f]{24}$/, 'X-Request-Id is readable (exposed header)');
  assert.equal(json.out, 'cross-origin JSON ✓');
  assert.equal((await received(tag))[0].headers.origin, undefined, 'Origin is not forwarded upstream');
  await json.page.close();

  const tag2 = await scenario({ content: 'streamed across origins 🌍', chunk_chars: 3, chunk_delay_ms: 20 });
  const streamed = await run(origin, { model: 'gpt-test', stream: true, messages: [{ role: 'user', content: tag2 }] });
  assert.match(streamed.status, /^ok/);
  assert.equal(streamed.out, 'streamed across origins 🌍');
  await streamed.page.screenshot({ path: path.join(ARTIFACTS, 'cross-origin-allowed.png') });
  await streamed.page.close();

  const tag3 = await scenario({ content: 'fake across origins' });
  const fake = await run(origin, { model: 'fake-x', stream: true, messages: [{ role: 'user', content: tag3 }] });
  assert.equal(fake.out, 'fake across origins');
  await fake.page.close();
});

test('an origin outside ALLOWED_ORIGINS is blocked by the browser', async () => {
  // Same page, other origin: localhost is not in the list, 127.0.0.1 is.
  const tag = await scenario({ content: 'must not be readable' });
  const blocked = await run(`http://localhost:${PORT}`, { model: 'gpt-test', messages: [{ role: 'user', content: tag }] });
  assert.match(blocked.status, /^blocked: /);
  assert.equal(blocked.out, '');
  assert.equal((await received(tag)).length, 0, 'the preflight failed, so the call never reached the upstream');
  await blocked.page.close();
});
