// The second yardstick: a JS Worker that, like the gateway (which must scrub every frame it
// relays), touches every chunk of a streamed answer — here an identity TransformStream.
// Non-streaming answers pass through untouched, as in bench/baseline.js.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.set('authorization', `Bearer ${env.UPSTREAM_KEY}`);
    headers.delete('host');
    const answer = await fetch(`${env.UPSTREAM}${url.pathname}${url.search}`, {
      method: request.method,
      headers,
      body: request.body,
    });
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
