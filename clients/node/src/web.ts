// The browser demo (`paramcast demo-web`): one device's clips, the static and the adapted answer side by side.
// Bundled by `npm run build:web` into dist/web.js; onnxruntime-web is loaded through the page's import map.

import * as ort from "onnxruntime-web";

import { DeviceClient, DeviceInfo, DeviceModel, Ort } from "./client.ts";
import { Quant } from "./quant.ts";
import { asInt64, readSafetensors } from "./safetensors.ts";

interface Meta { device_id: string; token: string; clips: { question: string; answer: string }[]; answers: string[] }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const bytes = async (url: string) => new Uint8Array(await (await fetch(url)).arrayBuffer());
const argmax = (a: Float32Array) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

async function main() {
  ort.env.wasm.numThreads = 1;
  const meta = (await (await fetch("/demo/meta.json")).json()) as Meta;
  const info = (await (await fetch("/demo/model/device.json")).json()) as DeviceInfo;
  const model = await DeviceModel.create(ort as unknown as Ort, await bytes(`/demo/model/${info.onnx}`), info,
                                         await bytes(`/demo/model/${info.static_head}`));
  const { tensors } = readSafetensors(await bytes("/demo/clips.safetensors"));
  const frames = tensors.get("frames")!, question = asInt64(tensors.get("question")!);
  const [n, T, S] = frames.shape;
  const L = question.length / n, perClip = T * S * S * 3;
  const clip = (i: number) => ({ frames: frames.bytes.slice(i * perClip, (i + 1) * perClip), question: question.slice(i * L, (i + 1) * L) });

  const select = $<HTMLSelectElement>("clip");
  meta.clips.forEach((c, i) => select.add(new Option(`${i}: ${c.question}`, String(i))));
  const canvas = $<HTMLCanvasElement>("video"), ctx = canvas.getContext("2d")!;
  let t = 0;
  setInterval(() => {  // play the selected clip's frames
    const f = clip(Number(select.value)).frames.subarray((t++ % T) * S * S * 3, (t % T || T) * S * S * 3);
    const img = ctx.createImageData(S, S);
    for (let p = 0; p < S * S; p++) img.data.set([f[3 * p], f[3 * p + 1], f[3 * p + 2], 255], 4 * p);
    createImageBitmap(img).then((bmp) => ctx.drawImage(bmp, 0, 0, canvas.width, canvas.height));
  }, 250);
  const show = () => {
    const c = meta.clips[Number(select.value)];
    $("question").textContent = c.question;
    $("truth").textContent = c.answer;
  };
  select.onchange = show;
  show();

  $<HTMLButtonElement>("adapt").onclick = async () => {
    $("status").textContent = "adapting";
    const i = Number(select.value), c = clip(i);
    const client = new DeviceClient(model, location.origin, meta.token, meta.device_id,
                                    // a page on a loaded desktop: more generous than a phone's defaults
                                    { quant: $<HTMLSelectElement>("quant").value as Quant, deadlineMs: 10000, attemptTimeoutMs: 5000 });
    model.reset();
    const before = await model.run(c.frames, c.question, 1);
    $("static-answer").textContent = meta.answers[argmax(before.logits)];
    const [, C] = info.upload_shape, a = info.anchor_frame;
    const result = await client.adapt({ shape: [1, C], data: before.features.slice(a * C, (a + 1) * C) });
    const after = await model.run(c.frames, c.question, 1);
    $("adapted-answer").textContent = meta.answers[argmax(after.logits)];
    $("adapted-index").textContent = String(argmax(after.logits));
    $("source").textContent = result.source + (result.error ? ` (${result.error})` : "");
    $("bytes-up").textContent = String(result.bytesUp);
    $("bytes-down").textContent = String(result.bytesDown);
    $("latency-ms").textContent = result.latencyMs.toFixed(1);
    $("status").textContent = "adapted";
  };
  $("status").textContent = "ready";
}

main().catch((e) => {
  $("status").textContent = `error: ${(e as Error).message}`;
});
