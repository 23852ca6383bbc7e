// `mc-proxy server -c <config>`: run the proxy in the foreground, logging to stderr.
import { defineCommand } from "citty";
import { createProcessLogger } from "../log/logger.ts";
import { runServer } from "../server/server.ts";

export const serverCommand = defineCommand({
  meta: { name: "server", description: "start the proxy in the foreground; logs to stderr" },
  args: {
    config: { type: "string", alias: "c", description: "path of the TOML config", required: true },
  },
  async run({ args }) {
    await runServer(args.config, createProcessLogger());
  },
});
