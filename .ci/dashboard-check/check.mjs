// Reads the JSON array printed by `roles/grafana/files/dashboard_queries.py --print-queries` (each item
// with dashboard, panel, ref_id and the query with Grafana's variables substituted) on stdin and prints
// {"schemaVersion": <@grafana/schema's default dashboard>, "errors": [{"id", "query", "error"}]}: every query is parsed with @grafana/lezer-logql in strict mode
// (which throws on the first syntax error). Works offline once `npm ci` has run.
import { defaultDashboard } from "@grafana/schema";
import { parser } from "@grafana/lezer-logql";

const strict = parser.configure({ strict: true });

let input = "";
for await (const chunk of process.stdin) input += chunk;
const queries = JSON.parse(input || "[]");

const errors = [];
for (const { dashboard, panel, ref_id: refId, substituted } of queries) {
  const id = `${dashboard} / ${panel} [${refId}]`;
  try {
    strict.parse(substituted);
  } catch (error) {
    errors.push({ id, query: substituted, error: String(error.message) });
  }
}
process.stdout.write(JSON.stringify({ schemaVersion: defaultDashboard.schemaVersion, errors }) + "\n");
