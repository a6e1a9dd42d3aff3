import { type Bus, isWrongLastSequence, type TypedKv } from '@computepods/bus';
import { checkName, kvKey, type RulesDeclared, streams, subjects } from '@computepods/protocol';
import { watchConnection } from './connection-watch.js';

function isChefName(key: string): boolean {
  try {
    checkName('chef name', key);
    return true;
  } catch {
    return false;
  }
}

/**
 * PINGs in a row without an answer before a chef is retired: a chef restarted at once (by its
 * supervisor) keeps its queued work.
 */
const MISSED_PINGS = 3;

interface Seen {
  at: number;
  revision: number;
  srv: RulesDeclared['srv'];
  /** When it was last PINGed. */
  pinged: number;
  missed: number;
  /** Its retirement failed (NATS unreachable): said once at warn, tried again at each check. */
  retireFailed?: boolean;
}

/**
 * Chef liveness, two ways. A chef re-puts its declaration every CP_CHEF_HEARTBEAT_MS; one not
 * heard from for the timeout is taken for dead. And its $SRV identity (in the declaration) is
 * PINGed every CP_CHEF_PING_MS: when nothing subscribes any more (the chef's connection is gone:
 * killed, crashed, stopped) the server says "no responders" at once, and after MISSED_PINGS such
 * PINGs (or unanswered ones) in a row the chef is retired, well before the heartbeat timeout.
 *
 * Retiring deletes its declaration; MajorDomo's own watch of the rules bucket turns that into
 * retiring its rules: builds it held are cancelled and re-planned, and a chef declaring the same
 * rules takes them over. Its requests still queued are purged, so a chef that comes back does
 * not build what was re-planned elsewhere.
 *
 * Time is measured here, from when each put was seen: no clock is compared across hosts. After a
 * MajorDomo restart every chef gets a full timeout to be heard from again, and so after NATS
 * comes back: while it is away no chef can be heard, so silence proves nothing and nobody is
 * retired. A chef stays followed until its declaration is really deleted: a delete that fails
 * (NATS gone mid-retirement) is tried again at each check, so a chef that died during an outage
 * and never came back is retired once NATS returns.
 */
export async function watchChefLiveness(
  bus: Bus,
  rulesKv: Pick<TypedKv<typeof RulesDeclared>, 'kv' | 'watchValid'>,
  timeoutMs: number,
  pingMs: number,
): Promise<() => void> {
  const seen = new Map<string, Seen>();
  const retiring = new Set<Seen>();
  const link = watchConnection(bus, () => {
    // Nothing could be heard meanwhile: every chef gets a full timeout (and its PINGs) again.
    const now = Date.now();
    for (const s of seen.values()) {
      s.at = now;
      s.pinged = now;
      s.missed = 0;
      s.retireFailed = false;
    }
  });
  // An invalid put is not a delete (watchValid): the chef is followed as before.
  const stopWatch = await rulesKv.watchValid((chef, decl, revision) => {
    // A key that is not a chef name is no chef's (MajorDomo logs it, declaration.ts): followed,
    // its retirement built a subject from it that threw outside any catch and killed MajorDomo.
    if (!isChefName(chef)) return;
    const now = Date.now();
    // A heartbeat proves it alive; the PING schedule goes on regardless.
    const pinged = seen.get(chef)?.pinged ?? now;
    if (decl) seen.set(chef, { at: now, revision, srv: decl.srv, pinged, missed: 0 });
    else seen.delete(chef);
  });

  const retire = (chef: string, s: Seen, why: Record<string, unknown>) =>
    retireChef(chef, s, why).catch((err: Error) =>
      bus.logger.error({ chef, err: err.message }, 'could not retire a silent chef; going on'),
    );
  const retireChef = async (chef: string, s: Seen, why: Record<string, unknown>) => {
    // Not while NATS is away: a delete held in the client's buffer would be carried out when
    // it returns, before a live chef could be heard again.
    if (!link.connected || seen.get(chef) !== s || retiring.has(s)) return;
    retiring.add(s);
    try {
      // Only the revision seen: a chef that re-declared meanwhile is alive and stays.
      await rulesKv.kv.delete(kvKey(chef), { previousSeq: s.revision });
    } catch (err) {
      if (!isWrongLastSequence(err)) {
        // NATS unreachable or the delete unanswered: still followed, tried again next check.
        if (!s.retireFailed)
          bus.logger.warn(
            { chef, err: (err as Error).message, ...why },
            'could not retire a silent chef (its declaration could not be deleted); trying again',
          );
        s.retireFailed = true;
        return;
      }
      // Changed since seen: re-declared (alive), or already deleted, by a delete of ours that
      // NATS carried out while its answer was lost, or by the chef itself on its way out.
      let current: Awaited<ReturnType<typeof rulesKv.kv.get>>;
      try {
        current = await rulesKv.kv.get(kvKey(chef));
      } catch {
        return; // unknown: tried again next check
      }
      if (current?.operation === 'PUT') {
        // The watch follows the new declaration.
        bus.logger.debug({ chef, err: (err as Error).message }, 'chef re-declared; kept');
        if (seen.get(chef) === s) seen.delete(chef);
        return;
      }
    } finally {
      retiring.delete(s);
    }
    if (seen.get(chef) === s) seen.delete(chef);
    bus.logger.warn(
      { chef, ...why },
      'chef not heard from; its rules are retired and its work re-planned',
    );
    // Not with one purge: nats-server 2.9.10 killed soon after a purge that emptied the stream
    // restarts it at sequence 0 while its consumers keep their delivered sequence, so they skip
    // every new request up to it and the chefs wait for ever (found by test/chaos). So the purge
    // stops short of the stream's last message, which, if it is this chef's, is deleted alone (a
    // message deleted, or acknowledged, keeps the stream's sequence across such a restart).
    const builds = streams.builds(bus.project);
    const filter = subjects.buildRequest(bus.project, chef);
    try {
      const { state } = await bus.jsm.streams.info(builds);
      let purged = 0;
      if (state.messages > 0) {
        ({ purged } = await bus.jsm.streams.purge(builds, { filter, seq: state.last_seq }));
        const left = await bus.jsm.streams.info(builds, { subjects_filter: filter });
        if (left.state.subjects?.[filter]) {
          await bus.jsm.streams.deleteMessage(builds, state.last_seq);
          purged++;
        }
      }
      bus.logger.info({ chef, purged }, 'its queued build requests purged');
    } catch (err) {
      bus.logger.warn({ chef, err: (err as Error).message }, 'could not purge its queue');
    }
  };

  const ping = async (chef: string, s: Seen) => {
    if (!s.srv) return;
    try {
      await bus.nc.request(`$SRV.PING.${s.srv.name}.${s.srv.id}`, '', {
        timeout: Math.max(pingMs, 250),
      });
      s.missed = 0;
    } catch (err) {
      const e = err as Error & { isNoResponders?: () => boolean };
      const gone = e.name === 'NoRespondersError' || e.isNoResponders?.() === true;
      if (!link.connected) return; // no answer can come: not a miss
      if (++s.missed >= MISSED_PINGS)
        await retire(chef, s, {
          srv: s.srv.id,
          reason: gone ? 'no $SRV responder' : 'no $SRV answer',
        });
    }
  };

  const check = async () => {
    if (!link.connected) return;
    const now = Date.now();
    const pings: Promise<void>[] = [];
    for (const [chef, s] of seen) {
      if (now - s.at >= timeoutMs) await retire(chef, s, { silentMs: now - s.at, timeoutMs });
      else if (now - s.pinged >= pingMs) {
        s.pinged = now;
        pings.push(ping(chef, s));
      }
    }
    await Promise.all(pings);
  };
  let busy = false;
  const timer = setInterval(
    () => {
      if (busy) return;
      busy = true;
      void check()
        .catch((err: Error) => bus.logger.error({ err: err.message }, 'chef liveness check failed'))
        .finally(() => {
          busy = false;
        });
    },
    Math.max(Math.min(Math.floor(timeoutMs / 4), pingMs), 100),
  );
  return () => {
    link.stop();
    clearInterval(timer);
    stopWatch();
  };
}
