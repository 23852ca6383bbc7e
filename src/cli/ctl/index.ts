// mcproxyctl's subcommands; only re-exports.
export { explainCommand } from "./explain.ts";
export { firewallCommand } from "./firewall.ts";
export { routesCommand } from "./routes.ts";
export { statsCommand } from "./stats.ts";
export { ctlStatusCommand } from "./status.ts";
