import { writeFileSync } from 'node:fs';
import { RulesDeclared } from '@computepods/protocol';
import { defined, TempDir } from '@computepods/testkit';
import { describe, expect, it } from 'vitest';
import { chefConfig } from './config.js';
import { loadDefinition } from './definition.js';
import { loadPods } from './pods.js';

describe('CP_PODS', () => {
  const pod = { host: 'h', user: 'u', key: '/k', knownHosts: '/kh', root: '/w' };

  it('accepts inline JSON or a file, defaulting the port', () => {
    expect(loadPods(JSON.stringify({ 'pod-a': pod }))).toEqual({ 'pod-a': { ...pod, port: 22 } });
    using tmp = new TempDir('cp-pods-');
    writeFileSync(tmp.join('pods.json'), JSON.stringify({ b: { ...pod, port: 2222 } }));
    expect(loadPods(tmp.join('pods.json')).b?.port).toBe(2222);
    expect(loadPods(undefined)).toEqual({});
    expect(loadPods('  ')).toEqual({});
  });

  it('names the pod and field that are wrong, and what to give', () => {
    expect(() => loadPods(JSON.stringify({ a: { ...pod, root: 'rel' } }))).toThrow(
      /a\.root: an absolute directory.*pod name → \{host/,
    );
    expect(() => loadPods('{nope')).toThrow(expect.objectContaining({ code: 'CP_CHEF_PODS' }));
    expect(() => loadPods('/no/such/file.json')).toThrow(/cannot read it/);
  });

  it('is read by chefConfig with the heartbeat', () => {
    const cfg = chefConfig({ CP_PODS: JSON.stringify({ a: pod }), CP_CHEF_HEARTBEAT_MS: '250' });
    expect(cfg.heartbeatMs).toBe(250);
    expect(Object.keys(cfg.pods)).toEqual(['a']);
    expect(() => chefConfig({ CP_CHEF_HEARTBEAT_MS: '0' })).toThrow(/CP_CHEF_HEARTBEAT_MS/);
  });
});

describe('builtin chef definitions', () => {
  it.each(['generic', 'latex', 'c'])('%s loads and declares valid rules', (name) => {
    const cfg = chefConfig({ CP_CHEF_DEFINITION: name });
    const def = loadDefinition(cfg.definitionFile);
    expect(() => RulesDeclared.parse({ chef: 'x', pod: 'p', ...def })).not.toThrow();
  });

  it('latex: pdflatex feeds .aux and .toc back as optional inputs; bibtex closes the cycle', () => {
    const def = loadDefinition(chefConfig({ CP_CHEF_DEFINITION: 'latex' }).definitionFile);
    const pdf = defined(
      def.rules.find((r) => r.id === 'pdflatex'),
      'the pdflatex rule',
    );
    for (const p of ['{stem}.aux', '{stem}.toc']) {
      expect(pdf.outputs).toContain(p);
      expect(pdf.optionalInputs).toContain(p);
    }
    expect(pdf.optionalInputs).toContain('{stem}.bbl');
    expect(def.rules.find((r) => r.id === 'bibtex')).toMatchObject({
      inputs: ['{stem}.aux'],
      outputs: ['{stem}.bbl'],
    });
  });
});
