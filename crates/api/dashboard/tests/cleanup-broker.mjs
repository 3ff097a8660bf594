// Deletes every queue and exchange whose name starts with `<prefix>.` (the browser run's own),
// through the RabbitMQ management api (enabled by `just services`); falls back to `rabbitmqctl`
// for the queues when the management api is not there.
//
// Usage: node cleanup-broker.mjs <prefix>

import { execFileSync } from "node:child_process";

const prefix = process.argv[2];
if (!prefix || prefix === "burrow") {
  console.error("cleanup-broker: refusing to clean without a private prefix");
  process.exit(2);
}
const base = process.env.RABBITMQ_MANAGEMENT_URL ?? "http://127.0.0.1:15672";
const auth = "Basic " + Buffer.from(process.env.RABBITMQ_MANAGEMENT_USER ?? "guest:guest").toString("base64");
const ours = (name) => name.startsWith(`${prefix}.`);

async function call(method, path) {
  const response = await fetch(`${base}/api${path}`, { method, headers: { authorization: auth } });
  if (!response.ok && response.status !== 404) throw new Error(`${method} ${path}: ${response.status}`);
  return method === "GET" ? response.json() : null;
}

try {
  for (const kind of ["queues", "exchanges"]) {
    const items = await call("GET", `/${kind}/%2F?columns=name`);
    for (const { name } of items.filter((item) => ours(item.name))) {
      await call("DELETE", `/${kind}/%2F/${encodeURIComponent(name)}`);
    }
  }
} catch (e) {
  console.error(`cleanup-broker: management api unavailable (${e.message}); deleting queues with rabbitmqctl`);
  const names = execFileSync("rabbitmqctl", ["-q", "list_queues", "name"], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.trim())
    .filter(ours);
  for (const name of names) execFileSync("rabbitmqctl", ["-q", "delete_queue", name]);
}
