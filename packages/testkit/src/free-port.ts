import { createServer } from 'node:net';

/**
 * A loopback TCP port that was free a moment ago. Servers that cannot report the port they
 * bound (sshd, slurmctld) need one chosen up front; callers retry when another process takes
 * it in between, which "address already in use" in the server's output reveals.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}
