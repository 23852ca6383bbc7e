// The release version, baked in from package.json at build time (no file read at run time).
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;
