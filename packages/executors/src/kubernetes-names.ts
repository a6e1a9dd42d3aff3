import { createHash, randomBytes } from 'node:crypto';
import { UnsafeValueError } from './errors.js';

/*
 * What ComputePods puts into Kubernetes names and labels is derived here, never passed through:
 * a task id may hold anything a build tool makes (upper case, dots, slashes, spaces), where a
 * Job's name must be a DNS label (RFC 1123, at most 63 characters: its pods carry it as the
 * job-name label) and a label value at most 63 of [A-Za-z0-9._-], alphanumeric at both ends.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** A Job name as jobNameFor makes it: what the cleanup may take as ComputePods' own. */
export const JOB_NAME = /^cp-(?:[a-z0-9-]+-)?[0-9a-f]{8}-[0-9a-f]{6}$/;

/**
 * A fresh Job name for a task: "cp-", a readable slug of the task id, and a random suffix (a
 * task run again after a kill gets a new Job, never the old one's name). Always a DNS label.
 */
export function jobNameFor(taskId: string): string {
  const slug = taskId
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 36)
    .replace(/-+$/, '');
  const hash = createHash('sha256').update(taskId).digest('hex').slice(0, 8);
  const name = `cp-${slug ? `${slug}-` : ''}${hash}-${randomBytes(3).toString('hex')}`;
  return checkDnsLabel('job name', name);
}

export function checkDnsLabel(field: string, value: string): string {
  if (!DNS_LABEL.test(value))
    throw new UnsafeValueError(
      field,
      value,
      'must be a Kubernetes DNS label: 1-63 of a-z 0-9 "-", alphanumeric at both ends',
    );
  return value;
}

export function checkLabelValue(field: string, value: string): string {
  if (!LABEL_VALUE.test(value))
    throw new UnsafeValueError(
      field,
      value,
      'must be a Kubernetes label value: at most 63 of A-Z a-z 0-9 "-" "_" ".", alphanumeric at both ends',
    );
  return value;
}
