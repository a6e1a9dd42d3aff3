import {
  appendFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { TaskRecord, type TaskStateChanged } from '@computepods/protocol';
import type { ExecutorHooks } from './executor.js';

/**
 * Test support for crash tests: records as one JSON file per task (written to a temp name,
 * then renamed, as KV would either have the new revision or not), events appended to a log.
 */
export class FileHooks implements ExecutorHooks {
  /** `holdRunning`: this task's running record is never written (its write hangs). */
  constructor(
    readonly dir: string,
    readonly holdRunning?: string,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  async record(rec: TaskRecord): Promise<void> {
    if (rec.task.taskId === this.holdRunning && rec.state === 'running')
      await new Promise(() => {});
    const path = join(this.dir, `${rec.task.taskId}.json`);
    writeFileSync(`${path}.tmp`, JSON.stringify(rec));
    renameSync(`${path}.tmp`, path);
  }

  publish(event: TaskStateChanged): void {
    appendFileSync(join(this.dir, 'events.log'), `${JSON.stringify(event)}\n`);
  }

  load(): TaskRecord[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => TaskRecord.parse(JSON.parse(readFileSync(join(this.dir, f), 'utf8'))));
  }

  events(): TaskStateChanged[] {
    try {
      return readFileSync(join(this.dir, 'events.log'), 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as TaskStateChanged);
    } catch {
      return [];
    }
  }
}
