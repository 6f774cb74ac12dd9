// The second yardstick: a JS Worker that, like any gateway, looks at what it relays — it reads
// the client's body (a gateway routes by its model), touches every chunk of a streamed answer
// (the gateway must scrub every frame; here an identity TransformStream) and reads a
// non-streaming answer whole before answering (the gateway scrubs it and logs its usage).
// No more than that: no parsing of answers, no scrubbing, no CORS.

export default {
  async fetch(request, env) {
    const body = await request.text();
    if (!JSON.parse(body).model) return new Response('no model', { status: 400 });
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.set('authorization', `Bearer ${env.UPSTREAM_KEY}`);
    headers.delete('host');
    const answer = await fetch(`${env.UPSTREAM}${url.pathname}${url.search}`, { method: request.method, headers, body });
    if (!(answer.headers.get('content-type') || '').includes('text/event-stream')) {
      return new Response(await answer.arrayBuffer(), { status: answer.status, headers: answer.headers });
    }
    const relay = new TransformStream({
      transform(chunk, controller) {
        controller.enqueue(chunk);
      },
    });
    answer.body.pipeTo(relay.writable).catch(() => {});
    return new Response(relay.readable, { status: answer.status, headers: answer.headers });
  },
};
