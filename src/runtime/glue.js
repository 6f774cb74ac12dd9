// The upstream side of a call in JS, where the runtime's promises, timers and readers cost
// nothing to cross into: Rust decides what to send and what an answer means; this sends it,
// times it out, ties it to the client's request signal, reads a whole body in one piece (or a
// stream one promise per chunk), makes the client's response, relays streams to it (live and
// replayed, asking Rust for each chunk's bytes), and hands D1 rows and stored values over as
// JSON text (README "Performance").
//
// Failures reject with a string: "timeout", "too_large", "bad_url" or "broken: <message>".

/** Calls `use(name, value)` for each `name:value` line (names hold no colon). */
function eachHeaderLine(lines, use) {
  for (const line of lines.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) use(line.slice(0, colon), line.slice(colon + 1));
  }
}

const ignore = () => {};

/** The runtime's refusal of a URL that does not parse. */
const invalidUrl = (error) => error instanceof TypeError && String(error.message).startsWith('Invalid URL');

const broken = (error) => `broken: ${error && error.message ? error.message : String(error)}`;

/** One upstream fetch, aborted by `abort()`, by its client going away, or by its timeout. */
export class UpstreamCall {
  constructor(clientSignal) {
    this.controller = new AbortController();
    this.timer = undefined;
    this.timedOut = false;
    this.body = undefined;
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
  send(url, method, headers, body, timeoutMs, keepTimer) {
    const init = { method, headers: new Headers(), redirect: 'manual', signal: this.controller.signal };
    eachHeaderLine(headers, (name, value) => {
      // A value the runtime refuses is dropped rather than failing the call.
      try { init.headers.append(name, value); } catch { /* dropped */ }
    });
    if (body) init.body = body;
    // Straight to fetch, with no Request made first (measured: 5% of a JSON call's CPU).
    let sent;
    try {
      sent = fetch(url, init);
    } catch (error) {
      sent = Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        reject('timeout');
        this.controller.abort();
      }, timeoutMs);
      sent.then(
        (response) => {
          if (!keepTimer) clearTimeout(this.timer);
          resolve(response);
        },
        (error) => {
          clearTimeout(this.timer);
          reject(invalidUrl(error) ? 'bad_url' : broken(error));
        },
      );
    });
  }

  /**
   * Sends the request and reads its answer whole, all within one timeout: resolves with
   * "<status> <when its headers came>" and the header lines (`headerLines`), in one string;
   * the body is in `body` (at most `limit` bytes; for an error status at most `errorLimit`,
   * cut to nothing past that). A redirect resolves at once, unread.
   */
  sendWhole(url, method, headers, body, timeoutMs, limit, errorLimit) {
    return this.send(url, method, headers, body, timeoutMs, true).then(async (response) => {
      const head = `${response.status} ${Date.now()}\n${headerLines(response.headers)}`;
      try {
        if (response.status >= 300 && response.status < 400) return head;
        const ok = response.status >= 200 && response.status < 300;
        try {
          this.body = await readWhole(response, ok ? limit : errorLimit, () => this.timedOut);
        } catch (error) {
          if (ok) throw error;
          this.body = new Uint8Array(0);
        }
        return head;
      } finally {
        clearTimeout(this.timer);
      }
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
    reader.cancel().catch(ignore);
  }, timeoutMs);
  try {
    return await readChunks(reader, limit, () => timedOut);
  } finally {
    clearTimeout(timer);
  }
}

/** A response's whole body (see `readAll`), its declared length checked first. */
async function readWhole(response, limit, timedOut) {
  if (Number(response.headers.get('content-length')) > limit) throw 'too_large';
  if (!response.body) return new Uint8Array(0);
  try {
    return await readChunks(response.body.getReader(), limit, timedOut);
  } catch (error) {
    if (typeof error === 'string' && error.startsWith('broken: ')) {
      throw `broken: the connection broke while reading the answer (${error.slice(8)})`;
    }
    throw error;
  }
}

async function readChunks(reader, limit, timedOut) {
  const chunks = [];
  let length = 0;
  for (;;) {
    let next;
    try {
      next = await reader.read();
    } catch (error) {
      throw timedOut() ? 'timeout' : broken(error);
    }
    if (timedOut()) throw 'timeout';
    if (next.done) break;
    length += next.value.byteLength;
    if (length > limit) {
      reader.cancel().catch(ignore);
      throw 'too_large';
    }
    chunks.push(next.value);
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

/**
 * A streamed body read chunk by chunk: `next()` resolves with the next chunk, or `undefined`
 * at the end (one promise per chunk, no result object to pick apart from wasm).
 */
export class ChunkReader {
  constructor(stream) {
    this.reader = stream.getReader();
  }

  next() {
    return this.reader.read().then(({ done, value }) => (done ? undefined : value));
  }

  /**
   * Done with the body: what is left (an upstream's last bytes after `[DONE]`) is read
   * away rather than cancelled, which costs less and lets the connection be reused. Past
   * 64 KiB it is cancelled; an aborted fetch ends the reads at once.
   */
  release() {
    const drain = (left) => this.reader.read().then(({ done, value }) => {
      if (done) return undefined;
      if (value.byteLength >= left) return this.reader.cancel();
      return drain(left - value.byteLength);
    });
    drain(65536).catch(ignore);
  }
}

/** Every header of a `Headers` object as `name:value` lines: one crossing instead of one per header. */
export function headerLines(headers) {
  let lines = '';
  for (const [name, value] of headers) lines += `${name}:${value}\n`;
  return lines;
}

/**
 * The client's response, made in one crossing: `lines` its headers (`name:value` lines, a
 * value the runtime refuses dropped), `body` bytes (a view into wasm memory, copied here), a
 * ReadableStream, or nothing.
 */
export function respond(status, lines, body) {
  const headers = new Headers();
  eachHeaderLine(lines, (name, value) => {
    try { headers.append(name, value); } catch { /* dropped */ }
  });
  // A null-body status takes no body.
  if (status === 204 || status === 205 || status === 304) body = null;
  else if (body instanceof Uint8Array) body = body.slice();
  try {
    return new Response(body, { status, headers });
  } catch {
    // A status the runtime refuses (an upstream's, out of range) is a bad gateway.
    return new Response(body, { status: 502, headers });
  }
}

/**
 * A response body the runtime streams natively (`IdentityTransformStream`), written chunk by
 * chunk by the relay loops below. `closed()` settles (and a write rejects) once the client
 * has gone.
 */
export class BodyWriter {
  constructor() {
    const { readable, writable } = new IdentityTransformStream();
    this.readable = readable;
    this.writer = writable.getWriter();
    // Bytes written since the last mark, and the write at that mark (the writer's
    // desiredSize says nothing here).
    this.unwaited = 0;
    this.mark = undefined;
  }

  /**
   * Writes a chunk. Returns nothing while the client keeps up, so the relay loop goes on without a
   * wait per chunk; every 64 KiB, the promise of the write one mark earlier, to wait for
   * (writes complete in order): the client is then at most 128 KiB behind.
   */
  write(chunk) {
    const written = this.writer.write(chunk);
    // A client gone rejects every write; `closed()` tells the relay loop.
    written.catch(ignore);
    this.unwaited += chunk.byteLength;
    if (this.unwaited <= 65536) return undefined;
    this.unwaited = 0;
    const wait = this.mark;
    this.mark = written;
    return wait;
  }

  closed() {
    return this.writer.closed;
  }

  close() {
    this.writer.close().catch(ignore);
  }

  abort() {
    this.writer.abort().catch(ignore);
  }
}

/**
 * Sends what a relay gave to `out`, unless the client is `gone()`: a promise only when there
 * is something to wait for (the client is behind, or the relay returned `undefined` because
 * its end hook must run before its bytes go out).
 */
function sender(relay, out, gone) {
  const put = (bytes) => {
    if (bytes === undefined) return afterHook();
    if (bytes.byteLength && !gone()) return out.write(bytes);
    return undefined;
  };
  const afterHook = async () => {
    await relay.runHook();
    await put(relay.takeHeld());
  };
  return put;
}

/**
 * Relays a live upstream stream to the client (see src/runtime/live.rs): reads `upstream` (a
 * ChunkReader) chunk by chunk and hands each chunk to `relay` in one synchronous call, writes
 * what it gives back, asks it for a heartbeat (or the idle timeout's end) while the upstream
 * is silent, and stops when the client goes away. Returns the client's body.
 */
export function relayLive(relay, upstream, heartbeatMs) {
  const out = new BodyWriter();
  runLive(relay, upstream, out, heartbeatMs);
  return out.readable;
}

async function runLive(relay, upstream, out, heartbeatMs) {
  const reader = upstream ? upstream.reader : undefined;
  let over = false;
  let gone = false;
  let lastRead = Date.now();
  // One timer per silence: re-armed only when it fires.
  let timer;
  // A heartbeat (or the idle timeout's end) still being written.
  let ticking;
  const stopReading = () => { if (reader) reader.cancel().catch(ignore); };
  // Settles when the client's side is closed or cancelled.
  out.closed().then(ignore, ignore).then(() => {
    if (over) return;
    gone = true;
    stopReading();
  });
  const put = sender(relay, out, () => gone);
  const tick = () => {
    timer = undefined;
    if (over || gone) return;
    const silent = Date.now() - lastRead;
    if (heartbeatMs - silent >= 1) {
      // Armed during an earlier silence: wait out the rest of this one.
      timer = setTimeout(tick, heartbeatMs - silent);
      return;
    }
    const waiting = put(relay.silence(silent));
    if (waiting) ticking = waiting.catch(ignore);
    if (relay.finished()) stopReading();
    else timer = setTimeout(tick, heartbeatMs);
  };
  timer = setTimeout(tick, heartbeatMs);
  try {
    let waiting = put(relay.start());
    if (waiting) await waiting;
    while (reader && !relay.finished() && !gone) {
      let next;
      try {
        next = await reader.read();
      } catch (error) {
        if (gone || relay.finished()) break;
        waiting = put(relay.broke(error && error.message ? error.message : String(error)));
        if (waiting) await waiting;
        break;
      }
      if (gone || relay.finished()) break;
      lastRead = Date.now();
      waiting = put(next.done ? relay.end() : relay.push(next.value));
      if (waiting) await waiting;
    }
    if (!reader && !gone) {
      waiting = put(relay.end());
      if (waiting) await waiting;
    }
  } catch {
    // The client went away mid-write.
  } finally {
    over = true;
    clearTimeout(timer);
    if (ticking) await ticking;
    // Dropped armed (client gone, failure), the relay aborts the upstream fetch.
    try { relay.free(); } catch { /* the wasm instance already failed */ }
    if (upstream) upstream.release();
    if (gone) out.abort();
    else out.close();
  }
}

/**
 * Relays a fake stream (or a replayed answer) to the client (see src/runtime/live.rs): a
 * fake stream's first frame at once and a heartbeat every `heartbeatMs` (0: none) while
 * `relay.answer()` runs the attempts, then the replayed frames, `chunkDelayMs` apart when
 * set. A client that goes away stops the attempts. Returns the client's body.
 */
export function relayFake(relay, heartbeatMs, chunkDelayMs) {
  const out = new BodyWriter();
  runFake(relay, out, heartbeatMs, chunkDelayMs);
  return out.readable;
}

async function runFake(relay, out, heartbeatMs, chunkDelayMs) {
  let over = false;
  let gone = false;
  let waiting = true;
  let timer;
  // A heartbeat still being written.
  let ticking;
  out.closed().then(ignore, ignore).then(() => {
    if (over) return;
    gone = true;
    if (waiting) relay.cancel();
  });
  const put = sender(relay, out, () => gone);
  const tick = () => {
    timer = undefined;
    if (!waiting || gone) return;
    const pending = put(relay.silence());
    if (pending) ticking = pending.catch(ignore);
    timer = setTimeout(tick, heartbeatMs);
  };
  try {
    let pending = put(relay.start());
    if (heartbeatMs > 0) timer = setTimeout(tick, heartbeatMs);
    if (pending) await pending;
    await relay.answer();
    waiting = false;
    clearTimeout(timer);
    if (ticking) await ticking;
    while (!gone) {
      pending = put(relay.next());
      if (pending) await pending;
      if (relay.finished()) break;
      if (chunkDelayMs > 0) await new Promise((resolve) => { setTimeout(resolve, chunkDelayMs); });
    }
  } catch {
    // The client went away mid-write.
  } finally {
    over = true;
    waiting = false;
    clearTimeout(timer);
    if (ticking) await ticking;
    // Freed, the relay stops attempts still running.
    try { relay.free(); } catch { /* the wasm instance already failed */ }
    if (gone) out.abort();
    else out.close();
  }
}

// D1 rows and Durable Object values cross as JSON text, decoded by serde_json in Rust: one
// crossing per result, and no second deserializer (serde-wasm-bindgen) in the bundle.

/** A D1 statement with its parameters bound from one JSON array. */
export function d1Prepare(db, sql, params) {
  return db.prepare(sql).bind(...JSON.parse(params));
}

/** A D1 statement's rows as a JSON array. */
export async function d1Rows(statement) {
  const { results } = await statement.all();
  return JSON.stringify(results || []);
}

/** A D1 statement's first row (or one column of it) as JSON; `null` when there is none. */
export async function d1First(statement, column) {
  const row = await statement.first(column || undefined);
  return row === undefined ? 'null' : JSON.stringify(row);
}

/** A Durable Object's stored value as JSON; `null` when the key is unset. */
export async function storageGet(state, key) {
  const value = await state.storage.get(key);
  return value === undefined ? 'null' : JSON.stringify(value);
}

/** Stores a JSON value as the plain object it describes (as serde-wasm-bindgen once did). */
export function storagePut(state, key, json) {
  return state.storage.put(key, JSON.parse(json));
}

export function storageDelete(state, key) {
  return state.storage.delete(key);
}

/**
 * One operation (JSON text) sent to the Durable Object named `name` of `namespace`; resolves
 * with its status and its answer's text, `<status>\n<text>`, in one string.
 */
export async function durableCall(namespace, name, op) {
  const stub = namespace.get(namespace.idFromName(name));
  const answer = await stub.fetch('https://limiter/op', { method: 'POST', body: op });
  return `${answer.status}\n${await answer.text()}`;
}
