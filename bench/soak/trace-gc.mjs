// Preloaded into each service by the soak bench with CP_SOAK_GC=1 (NODE_OPTIONS=--import=...):
// node refuses --trace-gc in NODE_OPTIONS, but V8 takes it at run time.
import v8 from 'node:v8';

v8.setFlagsFromString('--trace-gc');
