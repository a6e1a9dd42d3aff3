import {
  buckets,
  checkName,
  checkProject,
  InvalidNameError,
  streams,
  subjects,
} from '@computepods/protocol';

/**
 * What each role may do on NATS, in one place. A project is a NATS account, so these subjects
 * are the project's own: nothing here can reach another project. Every permission is an
 * allow-list; what is not listed is refused by the server.
 *
 *   admin         everything in the project (bootstrap: streams, buckets, consumers; cpctrl admin)
 *   majordomo     plans: reads file changes and results, dispatches builds, keeps artefact records
 *   chef          takes its own build queue, submits tasks, reports results; no resources, no records but its rules
 *   runner        takes its own queue's tasks, writes task records, state events and its tasks' logs
 *   fswatcher     publishes file changes and its pod's logs; reads artefact states
 *   inotify2nats  the same from a user's machine, and nothing else (no reads)
 *   member        reads everything (task logs too), requests builds, controls tasks
 *   viewer        reads everything (task logs too), asks read-only questions
 */
export const SERVICE_ROLES = ['majordomo', 'chef', 'runner', 'fswatcher', 'inotify2nats'] as const;
export const PERSON_ROLES = ['admin', 'member', 'viewer'] as const;
export type RoleName = (typeof SERVICE_ROLES)[number] | (typeof PERSON_ROLES)[number];

/** Roles whose credentials are bound to one name: a chef's name, a runner's queue, a pod. */
const SCOPED: Partial<Record<RoleName, string>> = {
  chef: 'chef name',
  runner: 'queue name',
  fswatcher: 'pod name',
  inotify2nats: 'pod name',
};

export interface Grant {
  readonly role: RoleName;
  readonly project: string;
  /** The chef name, queue or pod the credentials are bound to (roles in SCOPED). */
  readonly scope?: string | undefined;
}

export interface NatsPermissions {
  readonly pub: { allow: string[] };
  readonly sub: { allow: string[] };
  /**
   * Replies to requests received (a $SRV PING, an API call): no general publish right needed.
   * `max` replies per request, within `ttl` nanoseconds of its delivery (see RESPONSE_TTL_MS).
   */
  readonly resp?: { max: number; ttl: number };
}

/**
 * How long after a request reaches a role its one reply is still allowed (the JWT's `resp`).
 *
 * Why short: nats-server (2.9) records the reply subject of every message it delivers to a user
 * with response permissions, and keeps each record until `ttl` (2 minutes when the JWT says 0).
 * Every JetStream delivery has one (`$JS.ACK...`, even for ordered consumers and KV watches,
 * which are never acked), so a service's records are its deliveries/s times `ttl`; past 4,096
 * the server walks all of them on every delivery (client.go, pruneReplyPerms). A short `ttl`
 * bounds that walk; records past it are dropped. A reply later than its role's `ttl` is refused
 * by the server, so each is the longest its answers may take, with margin:
 *
 *   majordomo  60 s  the API (status, graph at 100k artefacts: p50 5.6 s at load 17, answered in
 *                    parts, each part its own request); cpctrl waits 5 s, 30 s for `build`
 *   chef       10 s  how-to-build, answered at once (MajorDomo gathers for CP_HOW_TO_BUILD_MS,
 *                    2 s); $SRV PING/INFO (MajorDomo's liveness waits under a second)
 *   runner     10 s  task.control (cpctrl and MajorDomo wait 5 s, a chef's cancel 1 s); $SRV.
 *                    Its pilots' stage requests (up to 30 min) come from its own credentials:
 *                    answered through its own inbox (pub `_INBOX.runner-<queue>.>`), not `resp`
 *   fswatcher  10 s  $SRV PING/INFO/STATS only
 *
 * admin publishes anything (`>`), so `resp` would never be consulted but its records would still
 * be kept: it has none. inotify2nats answers nothing (no subscription but its inbox): none.
 */
export const RESPONSE_TTL_MS: Partial<Record<RoleName, number>> = {
  majordomo: 60_000,
  chef: 10_000,
  runner: 10_000,
  fswatcher: 10_000,
};

/** The JWT's response permission for a role: one reply per request, within its TTL (ns). */
function respFor(role: RoleName): { max: number; ttl: number } | undefined {
  const ms = RESPONSE_TTL_MS[role];
  return ms === undefined ? undefined : { max: 1, ttl: ms * 1_000_000 };
}

/** The user's name in the account: also its inbox prefix (`_INBOX.<name>`), so no one reads another's replies. */
export function userName(grant: Grant): string {
  checkProject(grant.project);
  const scoped = SCOPED[grant.role];
  if (scoped) {
    if (!grant.scope)
      throw new InvalidNameError(
        'scope',
        '',
        `a ${grant.role} credential is bound to a ${scoped}: give one`,
      );
    return `${grant.role}-${checkName(scoped, grant.scope)}`;
  }
  if (grant.scope) return `${grant.role}-${checkName('user name', grant.scope)}`;
  return grant.role;
}

export function inboxPrefix(user: string): string {
  return `_INBOX.${user}`;
}

const JS = '$JS.API';

/** Read a KV bucket: get (direct or not), list and watch (ordered consumers on its stream). */
function kvRead(bucket: string): string[] {
  const s = `KV_${bucket}`;
  return [
    `${JS}.STREAM.MSG.GET.${s}`,
    `${JS}.DIRECT.GET.${s}.>`,
    `${JS}.CONSUMER.CREATE.${s}.>`,
    `${JS}.CONSUMER.DELETE.${s}.>`,
  ];
}

function kvWrite(bucket: string, key = '>'): string[] {
  return [`$KV.${bucket}.${key}`];
}

/**
 * Pull from one durable consumer and ack what it took. The role may create and tune that
 * durable itself (its intake sets max_ack_pending), pinned to its own filter: servers from 2.10
 * put the filter in the create subject, so the permission names it exactly. 2.9 sends the
 * filter only in the body (DURABLE.CREATE): there a role could point its own durable elsewhere
 * in the same stream, within its own project; the receivers' checks still hold.
 */
function consume(stream: string, durable: string, filter?: string): string[] {
  return [
    `${JS}.CONSUMER.DURABLE.CREATE.${stream}.${durable}`,
    filter
      ? `${JS}.CONSUMER.CREATE.${stream}.${durable}.${filter}`
      : `${JS}.CONSUMER.CREATE.${stream}.${durable}`,
    `${JS}.STREAM.INFO.${stream}`,
    `${JS}.CONSUMER.INFO.${stream}.${durable}`,
    `${JS}.CONSUMER.MSG.NEXT.${stream}.${durable}`,
    `$JS.ACK.${stream}.${durable}.>`,
  ];
}

/**
 * Read task logs (stream cp_<p>_tasklogs): the last piece of a log by subject, and ordered
 * consumers over one task's subjects. Nothing here writes a log.
 */
function readTaskLogs(p: string): string[] {
  const s = streams.taskLogs(p);
  return [
    `${JS}.DIRECT.GET.${s}.>`,
    `${JS}.CONSUMER.CREATE.${s}.>`,
    `${JS}.CONSUMER.DELETE.${s}.>`,
    `${JS}.CONSUMER.INFO.${s}.>`,
    `${JS}.CONSUMER.MSG.NEXT.${s}.>`,
  ];
}

/** Every project bucket, read-only (the tokens bucket is MajorDomo's and admins' alone). */
function readAllBuckets(p: string): string[] {
  return [
    buckets.artefacts(p),
    buckets.traces(p),
    buckets.rules(p),
    buckets.goals(p),
    buckets.tasks(p),
    buckets.builds(p),
    buckets.config(p),
  ].flatMap(kvRead);
}

/** What every connection needs: JetStream account info, its own inbox, flow control replies. */
function base(user: string): { pub: string[]; sub: string[] } {
  return {
    pub: [`${JS}.INFO`, '$JS.FC.>'],
    sub: [`${inboxPrefix(user)}.>`],
  };
}

/** Services answer the NATS micro-service protocol: $SRV.PING|INFO|STATS[.name[.id]]. */
const SRV_SUB = ['$SRV.>'];

/** Read-only API verbs (services/majordomo/src/api.ts); build and cancel change things. */
const READ_VERBS = ['status', 'artefact', 'why', 'graph', 'plan', 'builds'];

export function permissionsFor(grant: Grant): NatsPermissions {
  const p = grant.project;
  const user = userName(grant);
  const b = base(user);
  const resp = respFor(grant.role);
  const cp = `cp.${p}`;
  // Dead letters: a service names itself in the subject; any of its own project's is fine.
  const dlq = `${cp}.dlq.*`;
  const anyLogs = `${cp}.logs.*`;
  switch (grant.role) {
    case 'admin':
      return { pub: { allow: ['>'] }, sub: { allow: ['>'] } };
    case 'majordomo':
      return {
        pub: {
          allow: [
            ...b.pub,
            ...consume(streams.files(p), 'majordomo-files'),
            // A batch delivered again is checked against the batches stored after it (read only).
            `${JS}.STREAM.MSG.GET.${streams.files(p)}`,
            ...consume(streams.events(p), 'majordomo-results', subjects.buildResult(p)),
            // Results as chefs store them: its durable on the builds bucket's own stream.
            ...consume(streams.buildRecords(p), 'majordomo-builds', subjects.buildRecords(p)),
            `${JS}.STREAM.INFO.*`,
            // Queue depth (GET /api/queues): the runners' consumers on the tasks stream, read only.
            `${JS}.CONSUMER.INFO.${streams.tasks(p)}.*`,
            subjects.buildRequestAll(p),
            subjects.buildCancel(p),
            subjects.artefactState(p),
            subjects.howToBuild(p),
            subjects.taskControl(p),
            dlq,
            '$SRV.PING.>',
            // Runners per queue (GET /api/queues): their consumers are their INFO's endpoints.
            '$SRV.INFO.runner',
            ...readAllBuckets(p),
            ...readTaskLogs(p),
            ...kvRead(buckets.tokens(p)),
            ...kvWrite(buckets.artefacts(p)),
            ...kvWrite(buckets.traces(p)),
            ...kvWrite(buckets.goals(p)),
            // No write on the builds bucket: chefs record results there; MajorDomo hears them
            // from its stream (above), keeps those it stored in memory (recent-results.ts) and
            // reads the bucket like any member.
            // Standby mode: the leader lease, read and written with compare-and-set; the first
            // MajorDomo to stand makes the bucket (it is no other role's).
            `${JS}.STREAM.CREATE.KV_${buckets.leader(p)}`,
            ...kvRead(buckets.leader(p)),
            ...kvWrite(buckets.leader(p)),
            // Its graph snapshot (graph-snapshot.ts), made by MajorDomo like the lease's bucket.
            `${JS}.STREAM.CREATE.KV_${buckets.snapshot(p)}`,
            ...kvRead(buckets.snapshot(p)),
            ...kvWrite(buckets.snapshot(p)),
            // Retiring a dead chef deletes its rules record and purges its queued requests
            // (the purge's subject filter is in the request body: the stream is named here).
            ...kvWrite(buckets.rules(p)),
            `${JS}.STREAM.PURGE.${streams.builds(p)}`,
            // Its last queued request is deleted alone (see liveness.ts: a purge that empties
            // the stream loses its sequence on 2.9.10 if the server is killed soon after).
            `${JS}.STREAM.MSG.DELETE.${streams.builds(p)}`,
            // Replica liveness (runner-liveness.ts, chef-replicas.ts): a dead runner's unfinished
            // task records are failed or queued again (revision-checked), and what a dead replica
            // had pulled is NAKed on its durable so a live one takes it at once.
            ...kvWrite(buckets.tasks(p)),
            subjects.tasksAll(p),
            `${JS}.CONSUMER.INFO.${streams.builds(p)}.*`,
            `$JS.ACK.${streams.tasks(p)}.>`,
            `$JS.ACK.${streams.builds(p)}.>`,
          ],
        },
        // The builds bucket's writes too: the event stream's build.result (http.ts).
        sub: { allow: [...b.sub, ...SRV_SUB, `${cp}.>`, subjects.buildRecords(p)] },
        resp,
      };
    case 'chef': {
      const chef = grant.scope as string;
      return {
        pub: {
          allow: [
            ...b.pub,
            ...consume(streams.builds(p), `chef-${chef}`, subjects.buildRequest(p, chef)),
            `${JS}.STREAM.INFO.*`,
            subjects.tasksAll(p),
            subjects.buildResult(p),
            subjects.taskControl(p),
            dlq,
            ...kvRead(buckets.rules(p)),
            ...kvRead(buckets.tasks(p)),
            ...kvRead(buckets.builds(p)),
            ...kvRead(buckets.config(p)),
            ...kvWrite(buckets.rules(p), chef),
            ...kvWrite(buckets.builds(p)),
            // The stored build cancels, read again at start (chef cancel.ts replayCancels).
            `${JS}.STREAM.MSG.GET.${streams.events(p)}`,
          ],
        },
        sub: {
          allow: [...b.sub, ...SRV_SUB, subjects.howToBuild(p), subjects.buildCancel(p)],
        },
        resp,
      };
    }
    case 'runner': {
      const queue = grant.scope as string;
      return {
        pub: {
          allow: [
            ...b.pub,
            ...consume(streams.tasks(p), `runner-${queue}`, subjects.tasks(p, queue)),
            `${JS}.STREAM.INFO.*`,
            subjects.taskState(p),
            anyLogs,
            // Its own queue's task logs only, and where each of them stands (after a restart).
            subjects.taskLogQueue(p, queue),
            `${JS}.DIRECT.GET.${streams.taskLogs(p)}.${subjects.taskLogQueue(p, queue)}`,
            dlq,
            ...kvRead(buckets.tasks(p)),
            ...kvRead(buckets.config(p)),
            ...kvWrite(buckets.tasks(p)),
            // Its pilot workers (its own credentials) ask it to stage their tasks' files.
            subjects.pilotStage(p, queue),
            // Which task a message held by an ended pilot is (pilot-release.ts).
            `${JS}.STREAM.MSG.GET.${streams.tasks(p)}`,
            // Replies to its pilots' stage requests, which may take longer than `resp` allows
            // (copying large files): its pilots hold its own credentials, so its own inbox is
            // theirs; no other user's inbox is reachable.
            `${inboxPrefix(user)}.>`,
          ],
        },
        sub: {
          allow: [...b.sub, ...SRV_SUB, subjects.taskControl(p), subjects.pilotStage(p, queue)],
        },
        resp,
      };
    }
    case 'fswatcher':
    case 'inotify2nats': {
      const pod = grant.scope as string;
      return {
        pub: {
          allow: [
            ...b.pub,
            `${JS}.STREAM.INFO.*`,
            subjects.filesChanged(p, pod),
            subjects.logs(p, pod),
            dlq,
          ],
        },
        sub: {
          allow: [
            ...b.sub,
            // A pod's fswatcher reads MajorDomo's artefact records as announced, to leave the
            // bytes a build wrote and MajorDomo recorded unannounced (services/fswatcher reports.ts).
            ...(grant.role === 'fswatcher' ? [...SRV_SUB, subjects.artefactState(p)] : []),
          ],
        },
        ...(resp ? { resp } : {}),
      };
    }
    case 'member':
    case 'viewer': {
      const verbs = grant.role === 'member' ? ['*'] : READ_VERBS;
      return {
        pub: {
          allow: [
            ...b.pub,
            `${JS}.STREAM.INFO.*`,
            ...readAllBuckets(p),
            ...readTaskLogs(p),
            ...verbs.map((v) => `${cp}.api.${v}`),
            // The parts of an answer too big for one message (bus: ChunkedResult): read only.
            `${cp}.api.chunk.*`,
            ...(grant.role === 'member' ? [subjects.taskControl(p)] : []),
            '$SRV.>',
          ],
        },
        // What happens, not the requests themselves: a person subscribed to cp.<p>.api.* could
        // answer in MajorDomo's place.
        sub: {
          allow: [
            ...b.sub,
            subjects.artefactState(p),
            subjects.taskState(p),
            subjects.buildResult(p),
            subjects.buildCancel(p),
            subjects.filesChangedAll(p),
            anyLogs,
          ],
        },
      };
    }
  }
}
