// The device side of docs/wire.md §6-§7: the exported ONNX model and the HTTP client with its retry rules.
// Runtime-agnostic: the onnxruntime module is passed in (onnxruntime-node in src/node.ts, onnxruntime-web
// in src/web.ts); the network is `fetch`.

import type * as OrtCommon from "onnxruntime-common";

import { Quant, QUANTS } from "./quant.ts";
import { asFloat32, readSafetensors } from "./safetensors.ts";
import { Ids, Message, Tensor, WireError, decode, encodeUpload } from "./wire.ts";

export interface DeviceInfo {
  onnx: string;
  static_head: string;
  anchor_frame: number;
  upload_shape: [number, number];
  method: string;
  task: string;
  model_version: string;
  inputs: Record<string, (number | string)[]>;
}

export type Ort = typeof OrtCommon;

/** device.onnx + device.json + static_head.safetensors of `paramcast export`. */
export class DeviceModel {
  private constructor(readonly ort: Ort, readonly session: OrtCommon.InferenceSession, readonly info: DeviceInfo,
                      public head: { weight: Tensor; bias: Tensor }, readonly staticHead: { weight: Tensor; bias: Tensor }) {}

  /** From the three files' contents (read from disk or fetched). */
  static async create(ort: Ort, onnx: Uint8Array, info: DeviceInfo, staticHead: Uint8Array,
                      options: OrtCommon.InferenceSession.SessionOptions = {}): Promise<DeviceModel> {
    const session = await ort.InferenceSession.create(onnx, options);
    const { tensors } = readSafetensors(staticHead);
    const w = tensors.get("weight")!, b = tensors.get("bias")!;
    const head = { weight: { shape: w.shape, data: asFloat32(w) }, bias: { shape: b.shape, data: asFloat32(b) } };
    return new DeviceModel(ort, session, info, head, head);
  }

  /** frames (B, T, S, S, 3) uint8, question (B, L) int64 -> features (B, T, C), logits (B, V) with the installed head. */
  async run(frames: Uint8Array, question: BigInt64Array, batch: number) {
    const [, T, S, , ] = this.info.inputs.frames as number[];
    const L = this.info.inputs.question[1] as number;
    const ort = this.ort;
    const feeds = {
      frames: new ort.Tensor("uint8", frames, [batch, T, S, S, 3]),
      question: new ort.Tensor("int64", question, [batch, L]),
      weight: new ort.Tensor("float32", this.head.weight.data, this.head.weight.shape),
      bias: new ort.Tensor("float32", this.head.bias.data, this.head.bias.shape),
    };
    const out = await this.session.run(feeds);
    return { features: out.features.data as Float32Array, featureDims: out.features.dims as number[],
             logits: out.logits.data as Float32Array, logitDims: out.logits.dims as number[] };
  }

  /** Install a head: the next run uses it (no graph is rebuilt). */
  install(update: Message): void {
    const w = update.floats.weight, b = update.floats.bias;
    if (update.kind !== "head" || !w || !b) throw new WireError(`this device installs heads, got a ${update.kind}`);
    if (w.shape.join() !== this.head.weight.shape.join() || b.shape.join() !== this.head.bias.shape.join()) {
      throw new WireError(`head of shape [${w.shape}] / [${b.shape}] does not fit this device model [${this.head.weight.shape}]`);
    }
    this.head = { weight: w, bias: b };
  }

  reset(): void {
    this.head = this.staticHead;
  }
}

export type Source = "cloud" | "last_good" | "static";
export interface AdaptResult { source: Source; latencyMs: number; attempts: number; bytesUp: number; bytesDown: number; error?: string }

export interface ClientOptions { quant?: Quant; deadlineMs?: number; attemptTimeoutMs?: number; maxAttempts?: number; backoffMs?: number; maxResponseBytes?: number }

/** One device talking to one service; retries as §6 says, and never installs a bad answer. */
export class DeviceClient {
  readonly quant: Quant;
  private lastGood: Message | null = null;
  private opts: Required<ClientOptions>;

  constructor(readonly model: DeviceModel, readonly baseUrl: string, private token: string, readonly deviceId: string, opts: ClientOptions = {}) {
    this.opts = { quant: "fp32", deadlineMs: 2000, attemptTimeoutMs: 1000, maxAttempts: 4, backoffMs: 50, maxResponseBytes: 64 * 2 ** 20, ...opts };
    if (!QUANTS.includes(this.opts.quant)) throw new Error(`quant must be one of ${QUANTS}`);
    this.quant = this.opts.quant;
  }

  ids(): Ids {
    const i = this.model.info;
    return { device_id: this.deviceId, method: i.method, task: i.task, model_version: i.model_version };
  }

  /** Upload `feature` (1, C), install the answer (or fall back). */
  async adapt(feature: Tensor): Promise<AdaptResult> {
    const t0 = performance.now();
    const body = encodeUpload(this.ids(), feature);
    const deadline = t0 + this.opts.deadlineMs;
    let attempts = 0, up = 0, down = 0, error = "deadline passed before the first attempt";
    while (attempts < this.opts.maxAttempts) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        error = `deadline of ${this.opts.deadlineMs} ms passed (${error})`;
        break;
      }
      attempts++;
      up += body.length;
      let retry = true;
      try {
        const r = await fetch(`${this.baseUrl}/v1/adapt?quant=${this.quant}`, {
          method: "POST", body, signal: AbortSignal.timeout(Math.max(1, Math.ceil(Math.min(remaining, this.opts.attemptTimeoutMs)))),  // an integer: Node 20 refuses fractions
          headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/octet-stream" },
        });
        const answer = new Uint8Array(await r.arrayBuffer());
        down += answer.length;
        if (r.status === 200) {
          try {
            const update = decode(answer, { maxBytes: this.opts.maxResponseBytes });
            if (update.device_id && update.device_id !== this.deviceId) throw new WireError(`the update is for device ${update.device_id}`);
            this.model.install(update);
            this.lastGood = update;
            return { source: "cloud", latencyMs: performance.now() - t0, attempts, bytesUp: up, bytesDown: down };
          } catch (e) {
            error = `unusable answer: ${(e as Error).message}`;
          }
        } else {
          error = `HTTP ${r.status}: ${new TextDecoder().decode(answer).slice(0, 300)}`;
          retry = r.status === 408 || r.status === 429 || r.status >= 500;
        }
      } catch (e) {
        error = `${(e as Error).name}: ${(e as Error).message}`;
      }
      if (!retry) break;
      const delay = this.opts.backoffMs * 2 ** (attempts - 1) * (0.5 + Math.random());
      await new Promise((res) => setTimeout(res, Math.max(0, Math.min(delay, deadline - performance.now()))));
    }
    let source: Source = "static";
    if (this.lastGood) {
      this.model.install(this.lastGood);
      source = "last_good";
    } else {
      this.model.reset();
    }
    return { source, latencyMs: performance.now() - t0, attempts, bytesUp: up, bytesDown: down, error };
  }
}
