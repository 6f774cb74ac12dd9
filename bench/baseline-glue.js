// A yardstick for judging the gateway's own share of a non-streaming call (bench/compare.mjs,
// not `npm run bench`): a JS Worker that runs per call the same JS the gateway runs around its
// Rust — the functions of src/runtime/glue.js: the client's header lines read once, its body
// in one arrayBuffer(), the upstream call with its timeout, abort on the client's signal and
// whole-body read, the answer's header lines, the response made in one call — and nothing of
// what the Rust does (routing, parsing beyond the model, scrubbing, usage, CORS, ids).
//   node bench/compare.mjs bench/baseline-glue.js build json
import { headerLines, respond, UpstreamCall } from './glue.js';

export default {
  async fetch(request, env) {
    const lines = headerLines(request.headers);
    const path = new URL(request.url).pathname;
    const body = new Uint8Array(await request.arrayBuffer());
    if (!JSON.parse(new TextDecoder().decode(body)).model || !lines) {
      return respond(400, 'content-type:text/plain\n', undefined);
    }
    const call = new UpstreamCall(request.signal);
    try {
      const head = await call.sendWhole(`${env.UPSTREAM}${path}`, request.method,
        `authorization:Bearer ${env.UPSTREAM_KEY}\ncontent-type:application/json\n`,
        body, 60000, 10 << 20, 65536);
      const status = Number(head.slice(0, head.indexOf(' ')));
      return respond(status, 'content-type:application/json\n', call.body);
    } catch (error) {
      return respond(502, 'content-type:text/plain\n', undefined);
    } finally {
      call.release();
    }
  },
};
