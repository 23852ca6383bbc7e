// mcproxyctl's subcommands; only re-exports.
export { firewallCommand } from "./firewall.ts";
export { routesCommand } from "./routes.ts";
export { ctlStatusCommand } from "./status.ts";
