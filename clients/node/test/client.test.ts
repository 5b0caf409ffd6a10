// DeviceClient's retry rules (docs/wire.md §6) against a scripted loopback server.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";

import { DeviceClient, DeviceModel } from "../src/client.ts";
import { Message, decode } from "../src/wire.ts";

const head = new Uint8Array(readFileSync(join(import.meta.dirname, "..", "..", "..", "tests", "vectors", "head-fp32.bin")));

/** A server answering each request with the next [status, body] of `script` (the last one repeats). */
async function scripted(script: [number, Uint8Array | string][]) {
  const seen: { auth?: string; quant: string | null; body: Buffer }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      seen.push({ auth: req.headers.authorization, quant: new URL(req.url!, "http://x").searchParams.get("quant"), body: Buffer.concat(chunks) });
      const [status, body] = script[Math.min(seen.length - 1, script.length - 1)];
      res.writeHead(status, { "Content-Type": "application/octet-stream" }).end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => server.close() };
}

function fakeModel() {
  const log: string[] = [];
  const model = {
    info: { method: "cdc-mmpg", task: "videoqa-open", model_version: "v-test" },
    install: (m: Message) => log.push(`install ${m.device_id}`),
    reset: () => log.push("reset"),
  };
  return { model: model as unknown as DeviceModel, log };
}

const feature = { shape: [1, 8], data: new Float32Array(8).fill(0.5) };
const fast = { backoffMs: 1, deadlineMs: 2000 };

test("retries a 503, then installs the answer; sends the token, the quant and a valid upload", async () => {
  const s = await scripted([[503, "busy"], [200, head]]);
  const { model, log } = fakeModel();
  const r = await new DeviceClient(model, s.url, "tok", "dev-a", { ...fast, quant: "nf4" }).adapt(feature);
  s.close();
  assert.equal(r.source, "cloud");
  assert.equal(r.attempts, 2);
  assert.deepEqual(log, ["install dev-a"]);
  assert.equal(s.seen[0].auth, "Bearer tok");
  assert.equal(s.seen[0].quant, "nf4");
  const upload = decode(new Uint8Array(s.seen[0].body), { expect: "upload" });
  assert.equal(upload.device_id, "dev-a");
  assert.deepEqual(Array.from(upload.floats.features.data), Array.from(feature.data));
  assert.equal(r.bytesDown, 4 + head.length);
});

test("does not retry a 401 and falls back to the static head", async () => {
  const s = await scripted([[401, '{"error":"unauthenticated","detail":"x"}']]);
  const { model, log } = fakeModel();
  const r = await new DeviceClient(model, s.url, "bad", "dev-a", fast).adapt(feature);
  s.close();
  assert.equal(r.source, "static");
  assert.equal(r.attempts, 1);
  assert.match(r.error!, /HTTP 401/);
  assert.deepEqual(log, ["reset"]);
});

test("refuses garbage and an update for another device, retrying up to maxAttempts", async () => {
  const s = await scripted([[200, "not safetensors"], [200, head]]);
  const { model, log } = fakeModel();
  const r = await new DeviceClient(model, s.url, "tok", "dev-b", { ...fast, maxAttempts: 3 }).adapt(feature);
  s.close();
  assert.equal(r.source, "static");            // head-fp32.bin is for dev-a, never installed on dev-b
  assert.equal(r.attempts, 3);
  assert.match(r.error!, /for device dev-a/);
  assert.deepEqual(log, ["reset"]);
});

test("keeps the last good update when the cloud fails later", async () => {
  const s = await scripted([[200, head], [500, "bug"]]);
  const { model, log } = fakeModel();
  const client = new DeviceClient(model, s.url, "tok", "dev-a", { ...fast, maxAttempts: 2 });
  assert.equal((await client.adapt(feature)).source, "cloud");
  const r = await client.adapt(feature);
  s.close();
  assert.equal(r.source, "last_good");
  assert.equal(r.attempts, 2);
  assert.deepEqual(log, ["install dev-a", "install dev-a"]);
});
