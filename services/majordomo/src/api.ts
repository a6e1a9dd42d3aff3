import type { Bus } from '@computepods/bus';
import {
  BuildArtefactRequest,
  CancelRequest,
  GraphRequest,
  PathRequest,
  StatusRequest,
} from '@computepods/protocol';
import { z } from 'zod';
import type { MajorDomo } from './majordomo.js';

/** MajorDomo's NATS request/reply API for cpctrl (`cp.<project>.api.<verb>`): ProjectQueries' answers. */
export function serveApi(bus: Bus, md: MajorDomo): void {
  const q = md.queries;
  bus.serve('status', StatusRequest, async (req) => q.status(req));
  bus.serve('build', BuildArtefactRequest, async (req, cid) => ({
    path: req.path,
    accepted: true,
    ...(await q.requestBuild(req.path, req.force, cid)),
  }));
  bus.serve('artefact', PathRequest, async (req) => q.artefact(req.path));
  bus.serve('why', PathRequest, async (req) => q.why(req.path));
  bus.serve('graph', GraphRequest, async (req) => q.graph(req.format, req.plan));
  bus.serve('plan', z.object({}).default({}), async () => q.plan());
  bus.serve('builds', z.object({}).default({}), async () => q.builds());
  bus.serve('cancel', CancelRequest, async (req, cid) => ({
    taskId: req.taskId,
    cancelled: await q.cancelBuild(req.taskId, cid),
  }));
}
