// `version`: prints `<program> vX.Y.Z`.
import { defineCommand } from "citty";
import { VERSION } from "../version.ts";

export function versionCommand(program: string) {
  return defineCommand({
    meta: { name: "version", description: `print ${program}'s version` },
    run() {
      console.log(`${program} v${VERSION}`);
    },
  });
}
