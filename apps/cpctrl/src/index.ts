/**
 * cpctrl, the ComputePods command line. Run it as `cpctrl` (bin/cpctrl.js) or `pnpm cpctrl`.
 *
 *   cpctrl status -o json
 */
export { CliConfig, configPath, readConfig, writeConfig } from './config-file.js';
export { type Context, resolveContext } from './context.js';
export { discoverServices, type ServiceSeen } from './discover.js';
