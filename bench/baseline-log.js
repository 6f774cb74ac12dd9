// The yardstick for the request log: bench/baseline.js plus what any Worker that logs its calls
// to D1 must do — read the answer whole, then one INSERT of the call (headers, both bodies,
// usage) per call after the response, as the gateway does.
import { forward } from './baseline.js';

/** Relays the call and hands its row's statement to `store` (after the response). */
export async function relayAndLog(request, env, ctx, store) {
  const started = Date.now();
  const requestBody = await request.clone().text();
  const answer = await forward(request, env);
  const text = await answer.text();
  let usage = {};
  try { usage = JSON.parse(text).usage || {}; } catch { /* not JSON */ }
  ctx.waitUntil(store(env.DB.prepare(
    `INSERT INTO requests (request_id, created_at, created_ms, method, path, status, total_ms,
      prompt_tokens, completion_tokens, total_tokens, request_headers, response_headers,
      request_body, response_body)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)`,
  ).bind(
    crypto.randomUUID(), new Date(started).toISOString(), started, request.method, new URL(request.url).pathname,
    answer.status, Date.now() - started, usage.prompt_tokens ?? null, usage.completion_tokens ?? null,
    usage.total_tokens ?? null, JSON.stringify(Object.fromEntries(request.headers)),
    JSON.stringify(Object.fromEntries(answer.headers)), requestBody, text,
  )).catch(() => {}));
  return new Response(text, { status: answer.status, headers: answer.headers });
}

export default {
  fetch(request, env, ctx) {
    return relayAndLog(request, env, ctx, (statement) => statement.run());
  },
};
