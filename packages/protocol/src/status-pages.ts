import type { StatusReply, StatusRequest } from './api.js';

/**
 * A status with every artefact record (or every one under `prefix`), read page by page with
 * `ask` (a NATS request, a REST call). The pages are read one after another, so a record that
 * changes meanwhile shows as it was when its page was read; the rest of the answer is the last
 * page's.
 */
export async function statusWithAllArtefacts(
  ask: (req: StatusRequest) => Promise<StatusReply>,
  options: { prefix?: string; pageSize?: number } = {},
): Promise<StatusReply> {
  const artefacts: StatusReply['artefacts'] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await ask({
      artefacts: true,
      limit: options.pageSize ?? 5_000,
      ...(cursor === undefined ? {} : { cursor }),
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    });
    artefacts.push(...page.artefacts);
    if (page.next === undefined || page.next === cursor) {
      const { next: _, ...rest } = page;
      return { ...rest, artefacts };
    }
    cursor = page.next;
  }
}
