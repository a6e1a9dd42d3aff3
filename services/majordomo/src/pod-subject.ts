import { MessageInvalidError } from '@computepods/bus';
import { type FilesChanged, subjects } from '@computepods/protocol';

/**
 * A batch of file changes must say the pod its subject names: the server lets a watcher publish
 * only on its own pod's subject, so a batch claiming another pod's workspace is forged (and
 * would send chefs to fetch from the wrong place). Dead-lettered, never applied.
 */
export function checkPodSubject(project: string, subject: string, body: FilesChanged): void {
  let expected: string | undefined;
  try {
    expected = subjects.filesChanged(project, body.pod);
  } catch {
    expected = undefined;
  }
  if (expected !== subject)
    throw new MessageInvalidError(`files.changed on ${subject} names another pod`, [
      {
        path: 'body.pod',
        message: `"${body.pod}" is not the pod of subject ${subject}; a watcher publishes only its own pod's changes`,
      },
    ]);
}
