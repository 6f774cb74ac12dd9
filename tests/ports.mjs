// Loopback ports for the servers the tests and benchmarks start.
import net from 'node:net';

/** A port free right now (another process may still take it before it is used). */
export async function freePort() {
  const { port, release } = await reservePort();
  await release();
  return port;
}

/**
 * A port held by a placeholder listener until `release()`: nothing else (no `wrangler dev`
 * and no runtime picking its own ports) can be given it meanwhile.
 */
export function reservePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      resolve({ port, release: () => new Promise((done) => srv.close(() => done())) });
    });
    srv.on('error', reject);
  });
}
