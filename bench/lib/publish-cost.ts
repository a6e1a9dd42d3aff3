import { setTimeout as sleep } from 'node:timers/promises';
import { Bus, quietLogger } from '@computepods/bus';
import { NatsServer } from '@computepods/testkit';
import { cpuMsOf } from './cpu.js';

/** CPU µs one message costs the publisher and nats-server (see publishCost). */
export interface MessageCost {
  readonly clientUs: number;
  readonly serverUs: number;
}

export interface PublishCost {
  /** A publish to a file-stored stream, its ack awaited, as the services' bus sends one (Bus.jsPublish: a KV put, a request, a task). */
  readonly stored: MessageCost;
  /** A plain publish nobody listens to (an event). */
  readonly core: MessageCost;
  /** The publisher's wake-up alone (the 2 ms timer with nothing sent), included in both above. */
  readonly idleUs: number;
}

/**
 * What one message costs in CPU on this machine when messages come one at a time, as a build's
 * do (each on a wake-up of its own, nats-server idle in between): a nats-server of its own, a
 * Bus in this process publishing `n` messages of 500 bytes 2 ms apart, stored (Bus.jsPublish,
 * its ack awaited) and plain, and `n` wake-ups with nothing sent; the CPU of each side over
 * `n`. Each kind is run twice, the lower taken (the first warms the JIT).
 */
export async function publishCost(n = 1000): Promise<PublishCost> {
  const server = await NatsServer.start();
  const logger = quietLogger('bench');
  const bus = await Bus.connect({
    servers: server.url,
    service: 'bench',
    project: 'cost',
    logger,
    discoverable: false,
  });
  const nc = bus.nc;
  try {
    await bus.jsm.streams.add({ name: 'COST', subjects: ['cost.>'], max_msgs_per_subject: 1 });
    const body = new TextEncoder().encode(JSON.stringify({ pad: 'x'.repeat(490) }));
    const run = async (send: ((i: number) => Promise<unknown> | undefined) | undefined) => {
      let best: MessageCost = { clientUs: Number.POSITIVE_INFINITY, serverUs: 0 };
      for (let round = 0; round < 2; round++) {
        const s0 = cpuMsOf(server.pid);
        const c0 = process.cpuUsage();
        for (let i = 0; i < n; i++) {
          await send?.(i);
          await sleep(2);
        }
        await nc.flush();
        const c = process.cpuUsage(c0);
        const cost = {
          clientUs: (c.user + c.system) / n,
          serverUs: ((cpuMsOf(server.pid) - s0) * 1000) / n,
        };
        if (cost.clientUs + cost.serverUs < best.clientUs + best.serverUs) best = cost;
      }
      return best;
    };
    const stored = await run((i) => bus.jsPublish(`cost.stored.k${i % 300}`, body));
    const core = await run((i) => {
      nc.publish(`plain.k${i % 300}`, body);
      return undefined;
    });
    const idle = await run(undefined);
    return { stored, core, idleUs: idle.clientUs };
  } finally {
    await bus.close();
    await server.stop();
  }
}
