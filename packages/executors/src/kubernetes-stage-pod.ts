import { shq } from './sh-quote.js';

/*
 * The pod's side of Kubernetes staging (kubernetes-stage-server.ts is the runner's): what a Job
 * whose task declares files carries so that no shared file system is needed. An emptyDir
 * volume at STAGE_MOUNT; an init container that fetches each declared input from the runner's
 * stage server into STAGE_WORK and checks its SHA-256 against the one written in the Job; the
 * task's container runs the command there and, when it exited 0, sends each declared output
 * back (and the auxiliaries, whatever the exit). The image needs sh, curl and sha256sum.
 */

/** Where the emptyDir is mounted in both containers. */
export const STAGE_MOUNT = '/computepods';
/** The folder the command runs in, holding its inputs. */
export const STAGE_WORK = `${STAGE_MOUNT}/work`;
export const STAGE_VOLUME = 'computepods-stage';
export const STAGE_IN_CONTAINER = 'stage-in';
/** The task container's exit code when an output could not be sent back (the log says why). */
export const STAGE_OUT_FAILED = 96;
/** The line the wrapper writes before it exits with STAGE_OUT_FAILED. */
export const STAGE_OUT_MARK = 'computepods: could not return';

export interface StagedInput {
  readonly rel: string;
  readonly sha256: string;
}

/**
 * Kubernetes expands $(NAME) in a container's command, args and env values and turns $$ into
 * $: each $ doubled, the text reaches the process exactly as written.
 */
export function k8sLiteral(text: string): string {
  // A function: in a replacement string '$$' itself stands for one '$'.
  return text.replaceAll('$', () => '$$');
}

// Retried for about a minute while the runner cannot be reached (restarting, say) or answers
// 5xx; a refusal (4xx: a wrong token, an input gone, a SHA-256 mismatch) fails at once.
const CURL = `curl -sS --fail-with-body --retry 20 --retry-delay 3 --retry-connrefused --cacert ${STAGE_MOUNT}/ca.pem -H "Authorization: Bearer $COMPUTEPODS_STAGE_TOKEN"`;
const BASE = '"$COMPUTEPODS_STAGE_URL/v1/jobs/$COMPUTEPODS_JOB"';

/** The init container's script: every input fetched and checked, the output folders made. */
export function stageInScript(inputs: readonly StagedInput[], dirs: readonly string[]): string {
  const lines = [
    'set -u',
    `printf '%s\\n' "$COMPUTEPODS_STAGE_CA" > ${STAGE_MOUNT}/ca.pem || exit 1`,
    `mkdir -p ${STAGE_WORK} && cd ${STAGE_WORK} || exit 1`,
    'cp_get() {',
    `  case "$2" in */*) mkdir -p -- "$(dirname -- "$2")" || exit 1 ;; esac`,
    `  if ! ${CURL} -o "$2.cp-part" ${BASE}/inputs/"$1"; then`,
    '    [ -f "$2.cp-part" ] && { cat -- "$2.cp-part" >&2; echo >&2; }',
    '    echo "computepods: could not fetch declared input $2 from the runner" >&2; exit 1',
    '  fi',
    `  cp_sum=$(sha256sum < "$2.cp-part" | cut -d ' ' -f 1)`,
    '  if [ "$cp_sum" != "$3" ]; then',
    '    echo "computepods: declared input $2 arrived with SHA-256 $cp_sum, not the $3 it had when the task was submitted" >&2; exit 1',
    '  fi',
    '  mv -f -- "$2.cp-part" "$2" || exit 1',
    '}',
    ...inputs.map(
      (f, i) => `cp_get ${i} ${shq(f.rel, 'files.inputs')} ${shq(f.sha256, 'files.inputs')}`,
    ),
    ...dirs.map((d) => `mkdir -p -- ${shq(d, 'files.outputs')} || exit 1`),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The task container's script: runs the command ("$1") in the background (so a SIGTERM to the
 * container, which reaches this shell as PID 1, is passed on), then sends the declared outputs
 * back when it exited 0, and the auxiliaries whatever it exited with; exits with its code.
 */
export function stageOutWrapper(
  outputs: readonly string[],
  auxiliaries: readonly string[],
): string {
  const lines = [
    'cp_put() {',
    '  [ -f "$3" ] && [ ! -L "$3" ] || return 0',
    `  cp_sum=$(sha256sum < "$3" | cut -d ' ' -f 1)`,
    `  if ! ${CURL} -H "X-ComputePods-SHA256: $cp_sum" -T "$3" ${BASE}/"$1"/"$2"; then`,
    `    echo >&2; echo "${STAGE_OUT_MARK} $3 to the runner" >&2; exit ${STAGE_OUT_FAILED}`,
    '  fi',
    '}',
    '/bin/sh -c "$1" </dev/null &',
    'cp_pid=$!',
    `trap 'kill -TERM "$cp_pid" 2>/dev/null' TERM INT`,
    'wait "$cp_pid"; cp_code=$?',
    // A trapped signal ends wait early: wait again for the command's own end.
    'while kill -0 "$cp_pid" 2>/dev/null; do wait "$cp_pid"; cp_code=$?; done',
    'if [ "$cp_code" -eq 0 ]; then',
    ...outputs.map((o, i) => `  cp_put outputs ${i} ${shq(o, 'files.outputs')}`),
    '  :',
    'fi',
    ...auxiliaries.map((a, i) => `cp_put auxiliaries ${i} ${shq(a, 'files.auxiliaries')}`),
    'exit "$cp_code"',
  ];
  return `${lines.join('\n')}\n`;
}
