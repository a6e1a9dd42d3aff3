/**
 * The chef runtime: loads a chef definition (YAML/JSON rules), declares it, and turns build
 * requests into runner tasks.
 *
 *   CP_PROJECT=demo CP_CHEF=text CP_WORKSPACE=/work/demo CP_CHEF_DEFINITION=generic \
 *     tsx services/chef/src/main.ts
 */
export { startChef } from './chef.js';
export { fillCommand } from './command.js';
export { type ChefConfig, chefConfig } from './config.js';
export {
  ChefDefinition,
  ChefDefinitionError,
  loadDefinition,
  parseDefinition,
} from './definition.js';
