import type { Bus } from '@computepods/bus';
import { BuildArtefactRequest, StatusRequest } from '@computepods/protocol';
import type { MajorDomo } from './majordomo.js';

/** MajorDomo's NATS request/reply API for cpctrl (`cp.<project>.api.<verb>`). */
export function serveApi(bus: Bus, md: MajorDomo): void {
  bus.serve('status', StatusRequest, async () => md.status());
  bus.serve('build', BuildArtefactRequest, async (req, cid) => {
    const r = await md.requestBuild(req.path, req.force, cid);
    return { path: req.path, accepted: true, ...r };
  });
}
