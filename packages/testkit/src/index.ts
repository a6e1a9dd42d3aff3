/**
 * Test fixtures that start REAL servers as plain processes on loopback, free ports, temp dirs.
 *
 *   import { NatsServer } from '@computepods/testkit';
 *   await using nats = await NatsServer.start();
 *   // connect to nats.url; nats.stop() / nats.start() restart it on the same port and store
 */
export { BinaryMissingError, ServerStartError } from './errors.js';
export { NatsServer, type NatsServerOptions } from './nats-server.js';
export { ManagedProcess, type ManagedProcessOptions } from './process.js';
export { TempDir } from './temp-dir.js';
export { which } from './which.js';
