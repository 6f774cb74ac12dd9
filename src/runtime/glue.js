// The upstream side of a call in JS, where the runtime's promises, timers and readers cost
// nothing to cross into: Rust decides what to send and what an answer means; this sends it,
// times it out, ties it to the client's request signal, and reads a whole body in one piece
// instead of one wasm round trip per chunk (README "Performance").
//
// Failures reject with a string: "timeout", "too_large", "bad_url" or "broken: <message>".

/** Calls `use(name, value)` for each `name:value` line (names hold no colon). */
function eachHeaderLine(lines, use) {
  for (const line of lines.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) use(line.slice(0, colon), line.slice(colon + 1));
  }
}

const broken = (error) => `broken: ${error && error.message ? error.message : String(error)}`;

/** One upstream fetch, aborted by `abort()`, by its client going away, or by its timeout. */
export class UpstreamCall {
  constructor(clientSignal) {
    this.controller = new AbortController();
    this.timer = undefined;
    this.clientSignal = clientSignal || undefined;
    if (this.clientSignal) {
      this.onClientAbort = () => this.abort();
      this.clientSignal.addEventListener('abort', this.onClientAbort);
    }
  }

  /**
   * Sends the request (`headers`: one string of `name:value` lines); resolves with the
   * response when its headers arrive, whatever its status: redirects are never followed.
   */
  send(url, method, headers, body, timeoutMs) {
    const init = { method, headers: new Headers(), redirect: 'manual', signal: this.controller.signal };
    eachHeaderLine(headers, (name, value) => {
      // A value the runtime refuses is dropped rather than failing the call.
      try { init.headers.append(name, value); } catch { /* dropped */ }
    });
    if (body) init.body = body;
    let request;
    try {
      request = new Request(url, init);
    } catch {
      return Promise.reject('bad_url');
    }
    return new Promise((resolve, reject) => {
      this.timer = setTimeout(() => {
        reject('timeout');
        this.controller.abort();
      }, timeoutMs);
      fetch(request).then(
        (response) => { clearTimeout(this.timer); resolve(response); },
        (error) => { clearTimeout(this.timer); reject(broken(error)); },
      );
    });
  }

  /** The answer is in hand: the call no longer follows its client. */
  release() {
    clearTimeout(this.timer);
    if (this.clientSignal) {
      this.clientSignal.removeEventListener('abort', this.onClientAbort);
      this.clientSignal = undefined;
    }
  }

  /** Stops the upstream fetch and its body. */
  abort() {
    this.release();
    this.controller.abort();
  }
}

/**
 * Reads a whole body within `timeoutMs`, refusing one that grows past `limit` bytes; resolves
 * with a Uint8Array (empty for no body).
 */
export async function readAll(stream, limit, timeoutMs) {
  if (!stream) return new Uint8Array(0);
  const reader = stream.getReader();
  // On time out the reader is cancelled: the pending read then ends.
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, timeoutMs);
  const chunks = [];
  let length = 0;
  try {
    for (;;) {
      let next;
      try {
        next = await reader.read();
      } catch (error) {
        throw timedOut ? 'timeout' : broken(error);
      }
      if (timedOut) throw 'timeout';
      if (next.done) break;
      length += next.value.byteLength;
      if (length > limit) {
        reader.cancel().catch(() => {});
        throw 'too_large';
      }
      chunks.push(next.value);
    }
  } finally {
    clearTimeout(timer);
  }
  if (chunks.length === 1) return chunks[0];
  const whole = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    whole.set(chunk, at);
    at += chunk.byteLength;
  }
  return whole;
}

/** Every header of a `Headers` object as `name:value` lines: one crossing instead of one per header. */
export function headerLines(headers) {
  let lines = '';
  for (const [name, value] of headers) lines += `${name}:${value}\n`;
  return lines;
}

/** Sets each `name:value` line on a `Headers` object (a value the runtime refuses is dropped). */
export function setHeaderLines(headers, lines) {
  eachHeaderLine(lines, (name, value) => {
    try { headers.set(name, value); } catch { /* dropped */ }
  });
}

/**
 * A response body the runtime streams natively (`IdentityTransformStream`), written from
 * Rust chunk by chunk. A write rejects, and `closed()` settles, once the client has gone.
 */
export class BodyWriter {
  constructor() {
    const { readable, writable } = new IdentityTransformStream();
    this.readable = readable;
    this.writer = writable.getWriter();
  }

  write(chunk) {
    return this.writer.write(chunk);
  }

  closed() {
    return this.writer.closed;
  }

  close() {
    this.writer.close().catch(() => {});
  }

  abort() {
    this.writer.abort().catch(() => {});
  }
}
