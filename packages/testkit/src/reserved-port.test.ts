import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ephemeralRange, reservePort, tryReserve } from './reserved-port.js';

const file = (port: number) => join(tmpdir(), 'computepods-test-ports', String(port));

describe('reservePort: ports a restarted server finds free', () => {
  it('are outside the kernel ephemeral range, held by this process until released', () => {
    const [lo, hi] = ephemeralRange();
    const ports = Array.from({ length: 20 }, () => reservePort());
    for (const { port } of ports) expect(port < lo || port > hi).toBe(true);
    expect(new Set(ports.map((p) => p.port)).size).toBe(ports.length);
    const [first] = ports;
    expect(first && readFileSync(file(first.port), 'utf8')).toBe(String(process.pid));
    for (const p of ports) p.release();
    expect(first && existsSync(file(first.port))).toBe(false);
  });

  it("takes over a reservation whose process is gone, not a live one's", () => {
    const a = reservePort();
    expect(tryReserve(a.port)).toBeUndefined(); // held by this live process
    // As left by a process killed before it released it: free again.
    writeFileSync(file(a.port), String(spawnSync('true').pid));
    const b = tryReserve(a.port);
    expect(b?.port).toBe(a.port);
    expect(readFileSync(file(a.port), 'utf8')).toBe(String(process.pid));
    b?.release();
  });
});
