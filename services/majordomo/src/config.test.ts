import { describe, expect, it } from 'vitest';
import { majorDomoConfig, uiProjects } from './config.js';

describe('CP_UI_PROJECTS', () => {
  it('reads name=URL pairs, none by default', () => {
    expect(majorDomoConfig({ CP_PROJECT: 'demo' }).uiProjects).toEqual([]);
    expect(
      uiProjects(' thesis=http://127.0.0.1:8081/ , lab-2=https://lab.example/cp/', 'demo'),
    ).toEqual([
      { name: 'thesis', url: 'http://127.0.0.1:8081/' },
      { name: 'lab-2', url: 'https://lab.example/cp/' },
    ]);
  });

  it('refuses what is not a project name and an http(s) URL, naming the item and the fix', () => {
    expect(() => uiProjects('thesis', 'demo')).toThrow(/item 1 \("thesis"\): url: .*name=URL/);
    expect(() => uiProjects('a=http://x/,Bad Name=http://y/', 'demo')).toThrow(
      /item 2 .*name: not a project name/,
    );
    expect(() => uiProjects('thesis=javascript:alert(1)', 'demo')).toThrow(
      /url: not an http\(s\) URL/,
    );
    expect(() => uiProjects('demo=http://127.0.0.1:8080/', 'demo')).toThrow(/own project demo/);
    expect(() => uiProjects('thesis', 'demo')).toThrow(
      expect.objectContaining({ code: 'CP_INVALID_ENV', variables: ['CP_UI_PROJECTS'] }),
    );
  });

  it('refuses a lease renewed less than twice per lease, naming both variables', () => {
    expect(() =>
      majorDomoConfig({ CP_PROJECT: 'demo', CP_LEASE_MS: '10000', CP_LEASE_RENEW_MS: '6000' }),
    ).toThrow(
      expect.objectContaining({
        code: 'CP_INVALID_ENV',
        variables: ['CP_LEASE_RENEW_MS', 'CP_LEASE_MS'],
        message: expect.stringMatching(/at most half of CP_LEASE_MS/),
      }),
    );
  });
});

describe('CP_HEAP_GROWING_PERCENT', () => {
  it('is 25 unless set, 0 leaves V8 its own, and anything else is refused naming it', () => {
    expect(majorDomoConfig({ CP_PROJECT: 'demo' }).heapGrowingPercent).toBe(25);
    expect(
      majorDomoConfig({ CP_PROJECT: 'demo', CP_HEAP_GROWING_PERCENT: '0' }).heapGrowingPercent,
    ).toBe(0);
    for (const bad of ['-5', '1001', 'half'])
      expect(() => majorDomoConfig({ CP_PROJECT: 'demo', CP_HEAP_GROWING_PERCENT: bad })).toThrow(
        expect.objectContaining({ code: 'CP_INVALID_ENV', variables: ['CP_HEAP_GROWING_PERCENT'] }),
      );
  });
});
