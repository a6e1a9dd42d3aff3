/**
 * Group builds (CP_GROUP_BUILDS): when more steps of one rule are ready than run at once, several
 * go to the chef as one build. A compile of a C project costs the compiler ~35 ms of CPU and the
 * services ~12 stored messages a build (request, task, task records, result...): one build for
 * several steps shares those (pnpm bench cbuild; its README has the figures).
 */

/**
 * The sizes of the groups `n` ready steps are packed into: as few as keep each at most `max`,
 * their count a multiple of the `spread` lanes that run them, and their sizes equal (within
 * one), so that the lanes finish together whichever group each takes when. Groups that shrink
 * toward the end (each a 1/spread share of the steps left) do that only when they run in the
 * order sent, and they do not: the chef takes up several requests at once and submits each task
 * when its checks are done, a small group's sooner (pnpm bench cbuild's header edit: groups of
 * 10, 5, 3, 1 and 1 ran as 10 beside 5, 1, 1, 3, or worse). `n = 201, max = 16, spread = 2`:
 * 14 groups, 5 of 15 and 9 of 14.
 */
export function groupSizes(n: number, max: number, spread: number): number[] {
  if (n <= 0) return [];
  const count = Math.min(n, spread * Math.ceil(n / (spread * max)));
  const base = Math.floor(n / count);
  const larger = n - base * count;
  return Array.from({ length: count }, (_, i) => (i < larger ? base + 1 : base));
}
