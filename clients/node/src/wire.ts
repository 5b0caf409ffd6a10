// Messages of docs/wire.md §2-§4 (upload / head / delta) and the history body of §5.

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

import { BLOCKSIZES, QUANTS, Quant, dequantise, partSpecs } from "./quant.ts";
import {
  FormatError, MAX_HEADER_BYTES, RawTensor, TORCH_DTYPE, asInt64, bytesOf, numel, readSafetensors, writeSafetensors,
} from "./safetensors.ts";

export const SCHEMA_VERSION = 1;
export const HISTORY_SCHEMA = "paramcast.history/1";
const ID = /^[A-Za-z0-9_.:@+=/-]{0,128}$/;
const PARAM = /^[A-Za-z0-9_.-]{1,200}$/;
const MAX_ELEMENTS = 2 ** 24;
const MAX_TOTAL_ELEMENTS = 2 ** 26;
const MAX_INDEX = 2n ** 24n;
const META_KEYS = ["blocksize", "device_id", "kind", "method", "model_version", "quant", "schema", "shapes", "task"];
const IDS = ["device_id", "method", "task", "model_version"] as const;

/** Every malformation of a message or history body. */
export class WireError extends Error {}

export type Kind = "upload" | "head" | "delta";
export interface Ids { device_id: string; method: string; task: string; model_version: string }
export interface Tensor { shape: number[]; data: Float32Array }
export interface IntTensor { shape: number[]; data: BigInt64Array }
export interface Message extends Ids {
  kind: Kind;
  quant: Quant;
  blocksize: number;
  base_version?: string;
  floats: Record<string, Tensor>;   // features | weight, bias | deltas/<param>: dequantised, float32
  ints: Record<string, IntTensor>;  // positions, samples, text (uploads only)
}

/** Canonical JSON: sorted keys, no whitespace (ids are ASCII by their pattern). */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0; // names are ASCII: UTF-16 order is byte order
}

/** §3: sha256(meta string, then [name,dtype,shape] compact JSON + bytes of each tensor in name order). */
const utf8 = (s: string) => new TextEncoder().encode(s);

// @noble/hashes, not node:crypto: the same code runs in the browser demo (synchronously)
export function checksum(metaJson: string, tensors: Map<string, RawTensor>): string {
  const h = sha256.create().update(utf8(metaJson));
  for (const name of [...tensors.keys()].sort(byteOrder)) {
    const t = tensors.get(name)!;
    h.update(utf8(JSON.stringify([name, TORCH_DTYPE[t.dtype], t.shape])));
    h.update(t.bytes);
  }
  return bytesToHex(h.digest());
}

/** §5: the history digest: no metadata first, Python's default separators (", ") in the JSON. */
export function historyDigest(tensors: Map<string, RawTensor>): string {
  const h = sha256.create();
  for (const name of [...tensors.keys()].sort(byteOrder)) {
    const t = tensors.get(name)!;
    h.update(utf8(`[${JSON.stringify(name)}, ${JSON.stringify(TORCH_DTYPE[t.dtype])}, [${t.shape.join(", ")}]]`));
    h.update(t.bytes);
  }
  return bytesToHex(h.digest());
}

function checkShape(name: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.length < 1 || shape.length > 4 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw new WireError(`shape of ${JSON.stringify(name)} must be 1 to 4 dims, each an int >= 1`);
  }
  if (numel(shape) > MAX_ELEMENTS) throw new WireError(`${JSON.stringify(name)} has more than ${MAX_ELEMENTS} elements`);
  return shape as number[];
}

function parse(data: Uint8Array) {
  try {
    return readSafetensors(data);
  } catch (e) {
    if (e instanceof FormatError) throw new WireError(e.message);
    throw e;
  }
}

export interface DecodeOptions { maxBytes?: number; expect?: Kind }

/** Parse and validate a message; floats come back dequantised. Throws WireError for anything malformed. */
export function decode(data: Uint8Array, opts: DecodeOptions = {}): Message {
  const maxBytes = opts.maxBytes ?? 64 * 2 ** 20;
  if (data.length > maxBytes) throw new WireError(`message of ${data.length} bytes exceeds ${maxBytes}`);
  const { metadata, tensors } = parse(data);
  const raw = metadata as Record<string, unknown> | undefined;
  if (typeof raw !== "object" || raw === null || Object.keys(raw).sort().join() !== "paramcast,sha256") {
    throw new WireError("safetensors __metadata__ must hold exactly 'paramcast' and 'sha256'");
  }
  if (typeof raw.paramcast !== "string" || typeof raw.sha256 !== "string" || raw.paramcast.length > MAX_HEADER_BYTES) {
    throw new WireError("safetensors __metadata__ values must be strings");
  }
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(raw.paramcast);
  } catch {
    throw new WireError("paramcast metadata is not valid JSON");
  }
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) throw new WireError("paramcast metadata must be an object");
  if (meta.schema !== SCHEMA_VERSION) throw new WireError(`schema version ${JSON.stringify(meta.schema)} is not supported`);
  const kind = meta.kind as Kind;
  if (!["upload", "head", "delta"].includes(kind)) throw new WireError(`kind must be upload, head or delta`);
  if (opts.expect && opts.expect !== kind) throw new WireError(`expected a ${opts.expect} message, got kind ${kind}`);
  const keys = kind === "delta" ? [...META_KEYS, "base_version"].sort() : META_KEYS;
  if (Object.keys(meta).sort().join() !== keys.join()) throw new WireError(`${kind} metadata keys must be ${keys}`);
  const idFields = kind === "delta" ? [...IDS, "base_version"] : [...IDS];
  for (const f of idFields) {
    if (typeof meta[f] !== "string" || !ID.test(meta[f] as string)) throw new WireError(`${f} is not a valid id`);
  }
  const quant = meta.quant as Quant;
  if (!QUANTS.includes(quant)) throw new WireError(`quant must be one of ${QUANTS}`);
  const blocksize = meta.blocksize as number;
  if (!BLOCKSIZES.includes(blocksize)) throw new WireError(`blocksize must be one of ${BLOCKSIZES}`);
  const rawShapes = meta.shapes;
  if (typeof rawShapes !== "object" || rawShapes === null || Array.isArray(rawShapes)) throw new WireError("shapes must be an object");
  const shapes: Record<string, number[]> = {};
  for (const [name, s] of Object.entries(rawShapes as Record<string, unknown>)) {
    if (name.startsWith("deltas/") ? !PARAM.test(name.slice(7)) : kind === "delta") {
      throw new WireError(`a delta carries only deltas/<parameter> tensors; got ${JSON.stringify(name)}`);
    }
    shapes[name] = checkShape(name, s);
  }
  const names = Object.keys(shapes).sort();
  if (kind === "upload" && (names.join() !== "features" || shapes.features.length !== 2)) {
    throw new WireError("an upload carries one 2-D 'features' (N, C)");
  }
  if (kind === "head") {
    const w = shapes.weight, b = shapes.bias;
    if (names.join() !== "bias,weight" || w.length !== 2 || b.length !== 1 || b[0] !== w[0]) {
      throw new WireError("a head carries weight (V, H) and bias (V,)");
    }
  }
  if (kind === "delta" && names.length > 4096) throw new WireError("at most 4096 deltas");
  if (names.reduce((a, k) => a + numel(shapes[k]), 0) > MAX_TOTAL_ELEMENTS) throw new WireError("too many float elements");

  // the exact set of entries, each with its dtype and shape
  const expected = new Map<string, [string, number[]]>();
  for (const name of names) {
    for (const [part, spec] of Object.entries(partSpecs(shapes[name], quant, blocksize))) expected.set(`${name}#${part}`, spec);
  }
  if (kind === "upload") {
    const rows = shapes.features[0];
    for (const name of ["positions", "samples"]) if (tensors.has(name)) expected.set(name, ["I64", [rows]]);
    if (tensors.has("text")) {
      const s = tensors.get("text")!.shape;
      if (s.length !== 2) throw new WireError("'text' must be 2-D (S, L)");
      expected.set("text", ["I64", checkShape("text", s)]);
    }
  }
  const got = [...tensors.keys()].sort(byteOrder), want = [...expected.keys()].sort(byteOrder);
  if (got.join("\n") !== want.join("\n")) throw new WireError(`tensors ${got} do not match the layout ${want}`);
  for (const [name, [dtype, shape]] of expected) {
    const t = tensors.get(name)!;
    if (t.dtype !== dtype || t.shape.join() !== shape.join()) {
      throw new WireError(`tensor ${name} must be ${dtype} [${shape}], got ${t.dtype} [${t.shape}]`);
    }
  }
  if (checksum(raw.paramcast, tensors) !== raw.sha256) throw new WireError("sha256 checksum mismatch: the message was corrupted in transit");

  const floats: Record<string, Tensor> = {};
  for (const name of names) {
    const parts: Record<string, RawTensor> = {};
    for (const part of Object.keys(partSpecs(shapes[name], quant, blocksize))) parts[part] = tensors.get(`${name}#${part}`)!;
    const values = dequantise(parts, quant, shapes[name], blocksize);
    if (!values.every(Number.isFinite)) throw new WireError(`${name} holds NaN or Inf after dequantisation`);
    floats[name] = { shape: shapes[name], data: values };
  }
  const ints: Record<string, IntTensor> = {};
  for (const name of ["positions", "samples", "text"]) {
    const t = tensors.get(name);
    if (!t) continue;
    const v = asInt64(t);
    if (v.some((x) => x < 0n || x >= MAX_INDEX)) throw new WireError(`${name} values must lie in [0, 2^24)`);
    ints[name] = { shape: t.shape, data: v };
  }
  if (ints.samples && ints.text && ints.samples.data.some((s) => s >= BigInt(ints.text.shape[0]))) {
    throw new WireError("'samples' indexes a row beyond 'text'");
  }
  const ids = Object.fromEntries(IDS.map((k) => [k, meta[k] as string])) as unknown as Ids;
  return {
    ...ids, kind, quant, blocksize, floats, ints,
    ...(kind === "delta" ? { base_version: meta.base_version as string } : {}),
  };
}

/** An fp32 upload of `features` (N, C), as §2-§4 describe it (devices upload fp32). */
export function encodeUpload(ids: Ids, features: Tensor): Uint8Array<ArrayBuffer> {
  for (const f of IDS) if (!ID.test(ids[f])) throw new WireError(`${f} is not a valid id`);
  checkShape("features", features.shape);
  if (features.shape.length !== 2 || features.data.length !== numel(features.shape)) throw new WireError("features must be (N, C)");
  if (!features.data.every(Number.isFinite)) throw new WireError("features hold NaN or Inf");
  const meta = {
    schema: SCHEMA_VERSION, kind: "upload", device_id: ids.device_id, method: ids.method, task: ids.task,
    model_version: ids.model_version, quant: "fp32", blocksize: 64, shapes: { features: features.shape },
  };
  const metaJson = canonical(meta);
  const tensors = new Map<string, RawTensor>([
    ["features#values", { dtype: "F32", shape: features.shape, bytes: bytesOf(Float32Array.from(features.data)) }],
  ]);
  return writeSafetensors(tensors, { paramcast: metaJson, sha256: checksum(metaJson, tensors) });
}

export interface History { device_id: string; task: string; features: Tensor; labels: IntTensor; question?: IntTensor }

/** §5: a history body. */
export function encodeHistory(h: History): Uint8Array<ArrayBuffer> {
  const tensors = new Map<string, RawTensor>([
    ["features", { dtype: "F32", shape: h.features.shape, bytes: bytesOf(Float32Array.from(h.features.data)) }],
    ["labels", { dtype: "I64", shape: h.labels.shape, bytes: bytesOf(BigInt64Array.from(h.labels.data)) }],
  ]);
  if (h.question) tensors.set("question", { dtype: "I64", shape: h.question.shape, bytes: bytesOf(BigInt64Array.from(h.question.data)) });
  return writeSafetensors(tensors, { schema: HISTORY_SCHEMA, device_id: h.device_id, task: h.task, sha256: historyDigest(tensors) });
}

/** §5, strictly (the service's checks, so a device learns of a bad body before sending it). */
export function decodeHistory(data: Uint8Array, maxRows = 4096): History {
  const { metadata, tensors } = parse(data);
  const m = metadata as Record<string, unknown> | undefined;
  if (typeof m !== "object" || m === null || Object.keys(m).sort().join() !== "device_id,schema,sha256,task") {
    throw new WireError("history __metadata__ must have exactly device_id, schema, sha256, task");
  }
  if (m.schema !== HISTORY_SCHEMA) throw new WireError(`history schema ${JSON.stringify(m.schema)} is not supported`);
  const spec: Record<string, [string, number]> = { features: ["F32", 2], labels: ["I64", 1], question: ["I64", 2] };
  if (!tensors.has("features") || !tensors.has("labels") || [...tensors.keys()].some((k) => !(k in spec))) {
    throw new WireError("a history body holds features, labels and optionally question");
  }
  let rows = -1;
  for (const [name, t] of tensors) {
    if (t.dtype !== spec[name][0] || t.shape.length !== spec[name][1]) throw new WireError(`${name} must be ${spec[name][1]}-D ${spec[name][0]}`);
    if (rows >= 0 && t.shape[0] !== rows) throw new WireError("every tensor needs the same number of rows");
    rows = t.shape[0];
  }
  if (rows < 1 || rows > maxRows) throw new WireError(`a history body holds 1..${maxRows} rows`);
  const features = { shape: tensors.get("features")!.shape, data: new Float32Array(tensors.get("features")!.bytes.slice().buffer) };
  const labels = { shape: tensors.get("labels")!.shape, data: asInt64(tensors.get("labels")!) };
  const q = tensors.get("question");
  const question = q ? { shape: q.shape, data: asInt64(q) } : undefined;
  if (features.shape[1] === 0 || !features.data.every(Number.isFinite)) throw new WireError("features must be non-empty and finite");
  if (labels.data.some((l) => l < -1n)) throw new WireError("labels must be >= -1");
  if (question && question.data.some((w) => w < 0n)) throw new WireError("question word ids must be >= 0");
  if (historyDigest(tensors) !== m.sha256) throw new WireError("sha256 checksum does not match the tensors");
  if (typeof m.task !== "string" || m.task.length < 1 || m.task.length > 64) throw new WireError("task must be 1-64 characters");
  return { device_id: String(m.device_id), task: m.task, features, labels, ...(question ? { question } : {}) };
}
