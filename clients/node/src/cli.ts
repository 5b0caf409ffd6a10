// paramcast-node adapt: stream samples through the exported device model, adapting through the service.
//
//   node --import tsx src/cli.ts --model runs/export --url http://127.0.0.1:8000 --token "$TOKEN" \
//        --device-id dev-0 --samples samples.safetensors --batch 5 --quant fp32,int8 --out node.json \
//        [--deadline-ms 2000 --attempt-timeout-ms 1000]
//
// samples.safetensors: frames (N, T, S, S, 3) U8, question (N, L) I64. For every batch of --batch samples
// (per quant, from the static head): run the model, upload the first sample's anchor-frame feature, install
// the answer, run again and record the logits (what `paramcast device` does with the Python client).

import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { DeviceClient } from "./client.ts";
import { loadDeviceModel } from "./node.ts";
import { Quant } from "./quant.ts";
import { asInt64, readSafetensors } from "./safetensors.ts";

const { values: a } = parseArgs({
  options: {
    model: { type: "string" }, url: { type: "string", default: "http://127.0.0.1:8000" }, token: { type: "string" },
    "device-id": { type: "string" }, samples: { type: "string" }, batch: { type: "string", default: "5" },
    quant: { type: "string", default: "fp32" }, out: { type: "string" },
    // the client's budget per adapt (defaults: the client's, 2000 / 1000 ms); a cold server's first answer can take longer
    "deadline-ms": { type: "string" }, "attempt-timeout-ms": { type: "string" },
  },
});
for (const k of ["model", "token", "device-id", "samples"] as const) {
  if (!a[k]) {
    console.error(`--${k} is required`);
    process.exit(2);
  }
}

const model = await loadDeviceModel(a.model!);
const { tensors } = readSafetensors(new Uint8Array(readFileSync(a.samples!)));
const frames = tensors.get("frames")!, question = tensors.get("question")!;
const n = frames.shape[0];
const perFrames = frames.bytes.length / n, L = question.shape[1];
const q = asInt64(question);
const batch = Number(a.batch);
const [, C] = model.info.upload_shape;
const T = frames.shape[1];
const report: Record<string, unknown> = {};
for (const quant of a.quant!.split(",") as Quant[]) {
  model.reset();
  const budget = {
    ...(a["deadline-ms"] ? { deadlineMs: Number(a["deadline-ms"]) } : {}),
    ...(a["attempt-timeout-ms"] ? { attemptTimeoutMs: Number(a["attempt-timeout-ms"]) } : {}),
  };
  const client = new DeviceClient(model, a.url!, a.token!, a["device-id"]!, { quant, ...budget });
  const logits: number[][] = [], pred: number[] = [], results = [];
  for (let s = 0; s < n; s += batch) {
    const b = Math.min(batch, n - s);
    const f = frames.bytes.slice(s * perFrames, (s + b) * perFrames);
    const qs = q.slice(s * L, (s + b) * L);
    const before = await model.run(f, qs, b);
    const anchor = model.info.anchor_frame;
    const upload = { shape: [1, C], data: before.features.slice(anchor * C, (anchor + 1) * C) }; // sample 0 of the batch
    if (before.featureDims[1] !== T) throw new Error(`model gave ${before.featureDims} features`);
    results.push(await client.adapt(upload));
    const after = await model.run(f, qs, b);
    const V = after.logitDims[1];
    for (let i = 0; i < b; i++) {
      const row = Array.from(after.logits.slice(i * V, (i + 1) * V));
      logits.push(row);
      pred.push(row.indexOf(Math.max(...row)));
    }
  }
  report[quant] = { results, logits, pred };
}
const text = JSON.stringify(report);
if (a.out) writeFileSync(a.out, text);
else console.log(text);
