import { z } from 'zod';

/**
 * A human-readable reason (an error, a cancel reason) of at most `max` characters: longer text is
 * cut, with a mark, instead of failing the message. A failure whose text ran over (a long stderr
 * tail, say) made the chef's result invalid, so no result was sent and MajorDomo waited for one.
 */
export function cappedText(max: number) {
  return z.string().transform((s) => (s.length > max ? `${s.slice(0, max - 12)} …(cut)` : s));
}
