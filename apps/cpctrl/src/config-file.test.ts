import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpError } from '@computepods/protocol';
import { describe, expect, it } from 'vitest';
import { readConfig } from './config-file.js';

describe("cpctrl's own settings file", () => {
  const dir = mkdtempSync(join(tmpdir(), 'cpctrl-config-'));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const refusal = (path: string) => {
    try {
      readConfig(path);
    } catch (err) {
      return err;
    }
    throw new Error('readConfig accepted it');
  };

  it('is empty when missing, and read when valid', () => {
    expect(readConfig(join(dir, 'absent.json'))).toEqual({});
    expect(readConfig(file('ok.json', '{"project":"demo"}'))).toEqual({ project: 'demo' });
  });

  it('refuses what is not JSON, naming the file and what to do', () => {
    const path = file('broken.json', '{"project":');
    const err = refusal(path);
    expect(err).toBeInstanceOf(CpError);
    expect(err).toMatchObject({ code: 'CP_INVALID_CONFIG' });
    expect((err as Error).message).toContain(`${path} is not valid JSON`);
    expect((err as Error).message).toMatch(/fix or delete it$/);
  });

  it('refuses an unknown or mistyped field, naming it', () => {
    const err = refusal(file('field.json', '{"project":3}'));
    expect(err).toMatchObject({ code: 'CP_INVALID_CONFIG' });
    expect((err as Error).message).toMatch(/project/);
    expect((err as Error).message).toMatch(/fix or delete it$/);
  });
});
