/**
 * Variables of the runner's own environment that a task never inherits: its NATS credentials
 * and client key, and the API token. A build command runs whatever its sources say (a Makefile,
 * a LaTeX document's shell escape); it must not find the runner's identity in its environment.
 */
const SECRET_VARS = [
  'NATS_CREDS',
  'NATS_KEY',
  'NATS_CERT',
  'CP_API_TOKEN',
  'NATS_USER',
  'NATS_PASSWORD',
  'NATS_TOKEN',
];

/** The base environment of local tasks: the runner's, less its secrets. */
export function taskBaseEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of SECRET_VARS) delete out[k];
  return out;
}
