// A yardstick for the question — does the Rust gateway cost less CPU than a gateway
// written in JS/TypeScript? — for the two calls most traffic is: non-streaming JSON and a
// passthrough stream. It does per call, in plain idiomatic Worker JS (no framework), what the
// gateway does for those calls and no more: it routes by method and path, takes the client's
// credential (to scrub it from answers, as the gateway does), gives the call an id, reads and
// checks the client's JSON (`model`, `messages`, a size limit), picks the upstream by model
// (the fake-stream patterns first), forwards the client's bytes and forwardable headers with
// the server key under a timeout tied to the client's signal, never follows redirects, and
// answers with CORS and id headers and the upstream's rate-limit headers; a whole answer is
// size-checked, scrubbed of both keys and parsed for its usage; a
// stream goes through a `TransformStream` that splits it into events, parses each event's JSON
// (content, usage), scrubs both keys and re-encodes it, with a heartbeat timer armed while the
// upstream is silent. Not counted: Gemini, fake streams, access keys, the request log.
// `npm run bench` runs it next to the gateway (rows "JS gateway doing the same work").

const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const TIMEOUT_MS = 300_000;
const HEARTBEAT_MS = 100;
const FAKE_STREAM = ['slow-*', 'big-*', 'giant-*'];
const EXPOSED = 'X-Request-Id, X-Gateway-Version, X-Gateway-Upstream, X-Gateway-Attempts';
const encoder = new TextEncoder();
// The client headers never forwarded upstream (as src/adapters/openai.rs).
const NOT_FORWARDED = new Set(['authorization', 'x-api-key', 'x-goog-api-key', 'api-key', 'cookie', 'host',
  'content-length', 'content-type', 'accept', 'accept-encoding', 'connection', 'keep-alive', 'transfer-encoding',
  'te', 'trailer', 'upgrade', 'origin', 'referer', 'forwarded', 'x-real-ip', 'true-client-ip', 'x-fake-stream']);
const forwardable = (name) => !NOT_FORWARDED.has(name) && !name.startsWith('cf-') && !name.startsWith('x-forwarded-')
  && !name.startsWith('sec-') && !name.startsWith('proxy-') && !name.startsWith('anthropic-');

/** The upstream's headers passed back to the client (as src/proxy.rs). */
function passedBack(answer, headers) {
  for (const [name, value] of answer.headers) {
    if (name === 'x-request-id') headers['x-upstream-request-id'] = value;
    else if (name.startsWith('x-ratelimit-') || name.startsWith('openai-') || name === 'retry-after') headers[name] = value;
  }
  return headers;
}

const matches = (pattern, model) => (pattern.endsWith('*')
  ? model.toLowerCase().startsWith(pattern.slice(0, -1).toLowerCase())
  : model.toLowerCase() === pattern.toLowerCase());

function scrub(text, secrets) {
  for (const secret of secrets) {
    if (secret && text.includes(secret)) text = text.replaceAll(secret, '[redacted]');
  }
  return text;
}

function headersFor(id, contentType) {
  return {
    'content-type': contentType,
    'x-request-id': id,
    'x-gateway-version': '0.1.0',
    'access-control-allow-origin': '*',
    'access-control-expose-headers': EXPOSED,
  };
}

function error(status, message, id, param = null) {
  const body = JSON.stringify({ error: { message, type: 'invalid_request_error', param, code: null } });
  return new Response(body, { status, headers: headersFor(id, 'application/json') });
}

/** The upstream stream as the client's: events split, parsed, scrubbed and re-encoded. */
function relay(body, secrets) {
  const decoder = new TextDecoder();
  let pending = '';
  let content = 0;
  let usage = null;
  let heard = Date.now();
  let timer;
  const events = (text, controller) => {
    pending += text;
    let out = '';
    for (let end = pending.indexOf('\n\n'); end !== -1; end = pending.indexOf('\n\n')) {
      const event = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const data = event.startsWith('data: ') ? event.slice(6) : null;
      if (data && data !== '[DONE]') {
        try {
          const chunk = JSON.parse(data);
          content += chunk.choices?.[0]?.delta?.content?.length || 0;
          if (chunk.usage) usage = chunk.usage;
        } catch { /* passed on as it came */ }
      }
      out += `${scrub(event, secrets)}\n\n`;
    }
    if (out) controller.enqueue(encoder.encode(out));
  };
  const stream = new TransformStream({
    start(controller) {
      const beat = () => {
        if (Date.now() - heard >= HEARTBEAT_MS) controller.enqueue(encoder.encode(': keep-alive\n\n'));
        timer = setTimeout(beat, HEARTBEAT_MS);
      };
      timer = setTimeout(beat, HEARTBEAT_MS);
    },
    transform(chunk, controller) {
      heard = Date.now();
      events(decoder.decode(chunk, { stream: true }), controller);
    },
    flush(controller) {
      clearTimeout(timer);
      // An unterminated last event still goes out.
      const tail = decoder.decode();
      if (pending || tail) events(`${tail}\n\n`, controller);
    },
  });
  body.pipeTo(stream.writable).catch(() => clearTimeout(timer));
  return stream.readable;
}

export default {
  async fetch(request, env) {
    const id = crypto.randomUUID();
    const url = new URL(request.url);
    if (request.method !== 'POST' || url.pathname !== '/v1/chat/completions') return error(404, 'Not found', id);
    const presented = (request.headers.get('authorization') || '').replace(/^Bearer\s+/i, '');
    const secrets = [env.UPSTREAM_KEY, presented];
    if (Number(request.headers.get('content-length')) > MAX_REQUEST_BYTES) return error(413, 'Request too large', id);
    const raw = await request.text();
    if (raw.length > MAX_REQUEST_BYTES) return error(413, 'Request too large', id);
    let body;
    try {
      body = JSON.parse(raw);
    } catch (e) {
      return error(400, `The body is not valid JSON: ${e.message}`, id);
    }
    if (typeof body?.model !== 'string' || !body.model) return error(400, 'Missing required parameter: `model`', id, 'model');
    if (!Array.isArray(body.messages)) return error(400, 'Missing required parameter: `messages`', id, 'messages');
    if (body.stream && FAKE_STREAM.some((p) => matches(p, body.model))) return error(501, 'not in this yardstick', id);

    const controller = new AbortController();
    const onAbort = () => controller.abort();
    request.signal?.addEventListener('abort', onAbort);
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      const headers = {};
      for (const [name, value] of request.headers) if (forwardable(name)) headers[name] = value;
      headers.authorization = `Bearer ${env.UPSTREAM_KEY}`;
      headers['content-type'] = 'application/json';
      headers.accept = body.stream ? 'text/event-stream' : 'application/json';
      const answer = await fetch(`${env.UPSTREAM}/v1/chat/completions`, {
        method: 'POST',
        headers,
        body: raw,
        redirect: 'manual',
        signal: controller.signal,
      });
      if (answer.status >= 300 && answer.status < 400) return error(502, 'The upstream redirected', id);
      const contentType = answer.headers.get('content-type') || 'application/json';
      if (body.stream && answer.ok && contentType.startsWith('text/event-stream')) {
        const out = relay(answer.body, secrets);
        return new Response(out, { headers: passedBack(answer, { ...headersFor(id, 'text/event-stream'), 'cache-control': 'no-cache' }) });
      }
      if (Number(answer.headers.get('content-length')) > MAX_RESPONSE_BYTES) return error(502, 'The answer is too large', id);
      const text = scrub(await answer.text(), secrets);
      if (answer.ok) {
        const { usage } = JSON.parse(text);
        if (usage && typeof usage.total_tokens !== 'number') return error(502, 'Malformed usage', id);
      }
      return new Response(text, { status: answer.status, headers: passedBack(answer, headersFor(id, contentType)) });
    } catch (e) {
      return error(502, `The upstream is unreachable: ${e.message}`, id);
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onAbort);
    }
  },
};
