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

function unknownArtefact(path: string): Error {
  return Object.assign(new Error(`no artefact ${path}; \`cpctrl artefact list\` lists them`), {
    code: 'CP_UNKNOWN_ARTEFACT',
    field: 'path',
  });
}

/** MajorDomo's NATS request/reply API for cpctrl (`cp.<project>.api.<verb>`). */
export function serveApi(bus: Bus, md: MajorDomo): void {
  bus.serve('status', StatusRequest, async (req) => md.status(req));
  bus.serve('build', BuildArtefactRequest, async (req, cid) => {
    const r = await md.requestBuild(req.path, req.force, cid);
    return { path: req.path, accepted: true, ...r };
  });
  bus.serve('artefact', PathRequest, async (req) => {
    const rec = md.artefacts.get(req.path);
    if (!rec) throw unknownArtefact(req.path);
    return {
      artefact: rec,
      producer: md.dm.producerOf(req.path) ?? null,
      why: md.dm.why(req.path),
    };
  });
  bus.serve('why', PathRequest, async (req) => {
    if (!md.artefacts.get(req.path) && !md.dm.producerOf(req.path)) throw unknownArtefact(req.path);
    return md.dm.why(req.path);
  });
  bus.serve('graph', GraphRequest, async (req) => ({
    format: req.format,
    graph: req.format === 'dot' ? md.dm.toDOT({ plan: req.plan }) : md.dm.toJSON(),
  }));
  bus.serve('plan', z.object({}).default({}), async () => md.dm.plan());
  bus.serve('builds', z.object({}).default({}), async () => md.builds());
  bus.serve('cancel', CancelRequest, async (req, cid) => ({
    taskId: req.taskId,
    cancelled: await md.cancelBuild(req.taskId, cid),
  }));
}
