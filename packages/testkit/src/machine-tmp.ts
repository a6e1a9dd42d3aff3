/**
 * Where the test kit keeps what every process on the machine must share (port reservations,
 * locks): /tmp, whatever TMPDIR says. `pnpm bench` gives its benches a TMPDIR of their own
 * (scripts/bench.ts); their servers must still see the tests' reservations and locks.
 */
export const MACHINE_TMP = '/tmp';
