// Type-checks every Grafana dashboard in helm/reserve-mesh/dashboards against Grafana's own
// published schema: each JSON file becomes `const dashboard: Dashboard = <the JSON>;` and
// `tsc --strict` checks it, so a misspelled key, a wrong type or a missing required field fails.
// (Importing the .json directly would skip excess-property checks; an object literal gets them.)
//
// Before the real check, a copy of the first dashboard with one key misspelled must be
// rejected: proof that the check can fail.

import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dashboards = resolve(here, "../../helm/reserve-mesh/dashboards");
const generated = join(here, ".generated");
const tsc = join(here, "node_modules/typescript/bin/tsc");

// Grafana's types use TypeScript string enums (ThresholdsMode.Absolute = "absolute"); JSON holds
// their values. AsJson<T> turns each enum into the union of its values, and leaves every other
// part of the type (required fields, key names, value types) as Grafana publishes it.
const prelude = `import type { Dashboard } from "@grafana/schema";

type AsJson<T> = T extends string
  ? \`\${T}\`
  : T extends readonly (infer Item)[]
    ? AsJson<Item>[]
    : T extends object
      ? { [Key in keyof T]: AsJson<T[Key]> }
      : T;
`;

function typed(json) {
  return `${prelude}\nexport const dashboard: AsJson<Dashboard> = ${json};\n`;
}

function check(files) {
  rmSync(generated, { recursive: true, force: true });
  mkdirSync(generated);
  for (const [name, source] of files) {
    writeFileSync(join(generated, `${name}.ts`), typed(source));
  }
  try {
    execFileSync(process.execPath, [tsc, "-p", here], { stdio: "pipe" });
    return { ok: true, output: "" };
  } catch (err) {
    return { ok: false, output: `${err.stdout ?? ""}${err.stderr ?? ""}` };
  }
}

const files = readdirSync(dashboards)
  .filter((file) => file.endsWith(".json"))
  .sort()
  .map((file) => [file.replace(/\.json$/, ""), readFileSync(join(dashboards, file), "utf8")]);
if (files.length === 0) {
  console.error(`no dashboards in ${dashboards}`);
  process.exit(1);
}

const [firstName, firstSource] = files[0];
const broken = JSON.parse(firstSource);
broken.pannels = broken.panels;
delete broken.panels;
const selfTest = check([[`${firstName}-misspelled`, JSON.stringify(broken, null, 2)]]);
if (selfTest.ok) {
  console.error("self-test failed: a dashboard with `pannels` passed the schema check");
  process.exit(1);
}

const result = check(files);
rmSync(generated, { recursive: true, force: true });
if (!result.ok) {
  console.error(result.output);
  console.error("dashboards do not match Grafana's schema (@grafana/schema Dashboard)");
  process.exit(1);
}
console.log(`dashboards: ${files.length} match Grafana's schema (${files.map(([name]) => name).join(", ")})`);
