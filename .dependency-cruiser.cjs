// The layer order of src/ (ARCHITECTURE.md "Layers"), checked by `bun run deps`.
//
// LAYERS lists every folder under src/ from the bottom up. A module may import its own folder
// and any folder listed before its own, never one listed after it — not even a type. Because
// the order is total, no two folders can import each other, so there is no cycle between
// folders either. A new folder must be added here, or the "unlisted-folder" rule fails.
const LAYERS = [
  ["domain", "version.ts", "log"], // types, const tables, END_REASONS: import nothing of the project
  ["ip", "tls", "proxy-protocol"], // pure codecs
  ["config", "store"], // TOML → validated values; SQLite
  ["route", "firewall"], // pure compiled tables
  ["runtime"], // swappable state: route tables + certificates, firewall, admission, explain, stats
  ["wire"], // gen/ ⇄ domain mapping shared by admin and client
  ["l7", "net"], // sockets
  ["metrics", "admin", "client"],
  ["server"], // composition root
  ["cli", "cmd"],
];

const ORDER = LAYERS.flat();
const path = (name) =>
  name.endsWith(".ts") ? `^src/${name.replace(".", "\\.")}$` : `^src/${name}/`;

const forbidden = ORDER.slice(0, -1).map((name, index) => ({
  name: `layer-${name}`,
  comment: `src/${name} may import only folders below it: ${ORDER.slice(0, index).join(", ") || "nothing"}`,
  severity: "error",
  from: { path: path(name) },
  to: { path: ORDER.slice(index + 1).map(path) },
}));

forbidden.push({
  name: "unlisted-folder",
  comment: "every folder under src/ has a place in LAYERS (.dependency-cruiser.cjs)",
  severity: "error",
  from: { path: "^src/", pathNot: ORDER.map(path) },
  to: {},
});

forbidden.push({
  name: "no-folder-cycle",
  comment: "no import cycle that leaves its folder (the order above already rules them out)",
  severity: "error",
  from: { path: "^src/([^/]+)/" },
  to: { circular: true, viaSomeNot: "^src/$1/" },
});

module.exports = {
  forbidden,
  options: {
    includeOnly: "^src/",
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js", ".json"] },
  },
};
