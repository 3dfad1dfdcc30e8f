// Lets the conformance suite (@modelcontextprotocol/conformance, built for
// Node 22) start on Node 20, which the interop set-up supports: the suite
// imports `globSync` from `fs` (new in Node 22) for a command the tests do
// not run, and Node refuses to link a module whose named import is missing.
// On Node 20 the bare `fs` import is resolved to `fs` plus a `globSync` that
// throws; on Node 22 and later this file does nothing.
//
// Use: node --import ./node20-compat.mjs <script>
import fs from "node:fs";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

const SHIM = "node20-compat:fs";

if (isMainThread && typeof fs.globSync !== "function") {
  register(import.meta.url);
}

/** Module resolution hook (runs on the hooks thread). */
export async function resolve(specifier, context, next) {
  if ((specifier === "fs" || specifier === "node:fs") && context.parentURL !== SHIM) {
    return { url: SHIM, shortCircuit: true };
  }
  return next(specifier, context);
}

/** Module loading hook: the source of the `fs` stand-in. */
export async function load(url, context, next) {
  if (url === SHIM) {
    const source = [
      'export * from "node:fs";',
      'export { default } from "node:fs";',
      "export function globSync() {",
      '  throw new Error("fs.globSync needs Node 22 or later");',
      "}",
    ].join("\n");
    return { format: "module", source, shortCircuit: true };
  }
  return next(url, context);
}
