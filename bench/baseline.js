// The benchmark's yardstick: the least a JS Worker can do in front of an upstream — forward
// the request with the server key and hand the answer back as it streams.

/** The client's request, sent upstream with the server key. */
export function forward(request, env) {
  const url = new URL(request.url);
  const headers = new Headers(request.headers);
  headers.set('authorization', `Bearer ${env.UPSTREAM_KEY}`);
  headers.delete('host');
  return fetch(`${env.UPSTREAM}${url.pathname}${url.search}`, {
    method: request.method,
    headers,
    body: request.body,
  });
}

export default {
  fetch: forward,
};
