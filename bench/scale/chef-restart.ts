// pnpm bench scale: chefs restarted while MajorDomo is down. A chef's declaration carries its
// $SRV identity, new at each start of the chef process; MajorDomo's graph snapshot is keyed on
// what it plans with (the chef and its rules), so the next restart should still restore from the
// snapshot. Each chef here is a real $SRV responder (a connection with the chef role's
// credentials), as MajorDomo PINGs the identity a declaration names and retires a chef whose
// PINGs go unanswered. And a chef upgraded (a rule more, then less): the restart applies the
// change of rules to the snapshot's graph instead of restoring from every record.
import { Bus, quietLogger } from '@computepods/bus';
import { buckets, RulesDeclared } from '@computepods/protocol';
import type { Stack } from '../../test/src/stack.js';

/** The chef processes started last (closed at the next restart, or by stop()). */
export class PlayedChefs {
  #buses: Bus[] = [];

  constructor(
    readonly stack: Stack,
    readonly project: string,
  ) {}

  /**
   * Every chef of the rules bucket started again: the old processes gone, new ones connected
   * (new $SRV ids), each declaration put again naming its new identity. Returns how many.
   */
  async restart(): Promise<number> {
    await this.stop();
    const rules = await this.stack.bus.kv(buckets.rules(this.project), RulesDeclared);
    const declared = await rules.entries();
    for (const [chef, { value }] of declared) {
      const logger = quietLogger('scale-chef');
      const bus = await Bus.connect({
        servers: this.stack.nats.url,
        credsFile: await this.stack.creds({ role: 'chef', scope: chef }),
        service: 'chef',
        project: this.project,
        logger,
      });
      this.#buses.push(bus);
      const srv = bus.srv;
      if (!srv) throw new Error(`chef ${chef}: its connection has no $SRV identity`);
      const meta = srv.identity.metadata; // as chef.ts: replica census (chef-replicas.ts)
      if (meta) Object.assign(meta, { chef });
      await rules.put(chef, { ...value, srv: { name: srv.identity.name, id: srv.id } });
    }
    return declared.size;
  }

  /**
   * The first chef (by name) upgraded: its declaration put again with one rule more (`extra`,
   * named `<chef>-extra`, reading files no one has, so it plans no build) or without it. What a
   * restart after a chef upgrade costs, without changing what the project builds.
   */
  async upgrade(extra: boolean): Promise<string> {
    const rules = await this.stack.bus.kv(buckets.rules(this.project), RulesDeclared);
    const declared = [...(await rules.entries())].sort(([a], [b]) => (a < b ? -1 : 1));
    const first = declared[0];
    if (!first) throw new Error('no chef declared');
    const [chef, { value }] = first;
    const id = `${chef}-extra`;
    const kept = value.rules.filter((r) => r.id !== id);
    const more = {
      id,
      inputs: ['extra/{stem}.none'],
      outputs: ['extra/{stem}.out'],
      command: 'true',
    };
    await rules.put(chef, { ...value, rules: extra ? [...kept, more] : kept });
    return chef;
  }

  async stop(): Promise<void> {
    const buses = this.#buses;
    this.#buses = [];
    await Promise.all(buses.map((b) => b.close()));
  }
}
