/** The version every ComputePods program and package says it is (their package.json files agree: test/src/version.test.ts). */
export const VERSION = '0.1.0';
