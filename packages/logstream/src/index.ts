/**
 * Log streaming over NATS: the bytes appended to a followed file (fswatch's `log` policy) are
 * published on `cp.<project>.logs.<pod>` (core NATS, live), and followed in order, with gaps
 * and repeats told apart. The fswatcher service (pods) and the inotify2nats daemon (people's
 * machines) publish; cpctrl-like readers and tests follow.
 *
 *   import { followLogs, publishLogChunk } from '@computepods/logstream';
 *   new FileWatcher({ ..., onLog: (chunk) => publishLogChunk(bus, 'pod-1', chunk) });
 *   const follower = followLogs(bus, 'demo', (c) => process.stdout.write(c.data), { pod: 'pod-1' });
 *   await follower.stop();
 */
export { LogUnconfirmedError } from './errors.js';
export { type FollowedChunk, type FollowOptions, followLogs, type LogFollower } from './follow.js';
export { type PublishLogOptions, publishLogChunk } from './publish.js';
