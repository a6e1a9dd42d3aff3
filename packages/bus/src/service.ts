import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { nuid } from '@nats-io/transport-node';

export interface EndpointStats {
  name: string;
  subject: string;
  queue_group: string;
  num_requests: number;
  num_errors: number;
  last_error: string;
  processing_time: number;
  average_processing_time: number;
  data?: Record<string, unknown>;
}

export interface ServiceIdentity {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  readonly metadata?: Record<string, string>;
}

/**
 * Answers the NATS micro-service protocol ($SRV.PING|INFO|STATS, plain, by name and by id), so
 * `nats micro ls` and cpctrl can discover a service and read its stats. Written here because
 * @nats-io/services is only a prerelease built on an older nats-core.
 */
export class ServiceResponder {
  readonly id = nuid.next();
  readonly started = new Date().toISOString();
  readonly #endpoints = new Map<string, EndpointStats>();
  readonly #subs: Subscription[] = [];

  constructor(
    readonly nc: NatsConnection,
    readonly identity: ServiceIdentity,
  ) {
    const verbs = ['PING', 'INFO', 'STATS'] as const;
    for (const verb of verbs) {
      for (const subject of [
        `$SRV.${verb}`,
        `$SRV.${verb}.${identity.name}`,
        `$SRV.${verb}.${identity.name}.${this.id}`,
      ]) {
        this.#subs.push(
          nc.subscribe(subject, {
            callback: (err, msg) => {
              if (err) return;
              msg.respond(JSON.stringify(this.#answer(verb)));
            },
          }),
        );
      }
    }
  }

  /** Registers an endpoint (a request subject or a consumed stream) whose stats STATS reports. */
  endpoint(name: string, subject: string, queueGroup = 'q'): EndpointStats {
    const existing = this.#endpoints.get(name);
    if (existing) return existing;
    const stats: EndpointStats = {
      name,
      subject,
      queue_group: queueGroup,
      num_requests: 0,
      num_errors: 0,
      last_error: '',
      processing_time: 0,
      average_processing_time: 0,
    };
    this.#endpoints.set(name, stats);
    return stats;
  }

  static record(stats: EndpointStats, startedNs: bigint, error?: string): void {
    const elapsed = Number(process.hrtime.bigint() - startedNs);
    stats.num_requests++;
    stats.processing_time += elapsed;
    stats.average_processing_time = Math.round(stats.processing_time / stats.num_requests);
    if (error !== undefined) {
      stats.num_errors++;
      stats.last_error = error;
    }
  }

  #answer(verb: 'PING' | 'INFO' | 'STATS'): Record<string, unknown> {
    const base = {
      name: this.identity.name,
      id: this.id,
      version: this.identity.version,
      metadata: this.identity.metadata ?? {},
    };
    if (verb === 'PING') return { type: 'io.nats.micro.v1.ping_response', ...base };
    const endpoints = [...this.#endpoints.values()];
    if (verb === 'INFO') {
      return {
        type: 'io.nats.micro.v1.info_response',
        ...base,
        description: this.identity.description,
        endpoints: endpoints.map((e) => ({
          name: e.name,
          subject: e.subject,
          queue_group: e.queue_group,
          metadata: {},
        })),
      };
    }
    return { type: 'io.nats.micro.v1.stats_response', ...base, started: this.started, endpoints };
  }

  stop(): void {
    for (const s of this.#subs) s.unsubscribe();
  }
}
