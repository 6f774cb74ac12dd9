// The second yardstick: a JS Worker that, like the gateway (which must scrub every frame it
// relays), touches every chunk of a streamed answer — here an identity TransformStream.
// Non-streaming answers pass through untouched, as in bench/baseline.js.
import { forward } from './baseline.js';

export default {
  async fetch(request, env) {
    const answer = await forward(request, env);
    if (!(answer.headers.get('content-type') || '').includes('text/event-stream')) return answer;
    const relay = new TransformStream({
      transform(chunk, controller) {
        controller.enqueue(chunk);
      },
    });
    answer.body.pipeTo(relay.writable).catch(() => {});
    return new Response(relay.readable, { status: answer.status, headers: answer.headers });
  },
};
