/**
 * C0 and C1 control characters and DEL. A newline or escape sequence in a file name is a way to
 * forge log lines, split a depfile or reach a shell command as something other than one word,
 * and no legitimate source is named with one: such stems and paths are refused, not escaped.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export function hasControlChars(text: string): boolean {
  return CONTROL.test(text);
}
