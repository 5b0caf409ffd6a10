// The safetensors container of docs/wire.md §1: read (strictly, limits first) and write.

export type DType = "F32" | "F16" | "U8" | "I64";
export const ITEMSIZE: Record<DType, number> = { F32: 4, F16: 2, U8: 1, I64: 8 };
/** PyTorch's spelling of each dtype: what the checksums of §3 and §5 hash. */
export const TORCH_DTYPE: Record<DType, string> = {
  F32: "torch.float32", F16: "torch.float16", U8: "torch.uint8", I64: "torch.int64",
};
export const MAX_HEADER_BYTES = 1 << 20;

export interface RawTensor {
  dtype: DType;
  shape: number[];
  bytes: Uint8Array; // little-endian, row-major; a view into the message
}

export class FormatError extends Error {}

export function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Parse a safetensors buffer: (`__metadata__`, tensors by name). Throws FormatError. */
export function readSafetensors(buf: Uint8Array): { metadata: unknown; tensors: Map<string, RawTensor> } {
  if (buf.length < 8) throw new FormatError(`message of ${buf.length} bytes is too short to be safetensors`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES) || n > BigInt(buf.length - 8)) {
    throw new FormatError(`safetensors header length ${n} is beyond the message or ${MAX_HEADER_BYTES} B`);
  }
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw new FormatError(`safetensors header is not UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new FormatError("safetensors header must be a JSON object");
  }
  const data = buf.subarray(8 + headerLen);
  const entries: [string, RawTensor, number, number][] = [];
  let metadata: unknown = undefined;
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = info;
      continue;
    }
    const i = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof i !== "object" || i === null || typeof i.dtype !== "string" || !(i.dtype in ITEMSIZE)) {
      throw new FormatError(`tensor ${JSON.stringify(name)}: dtype must be one of F16, F32, I64, U8`);
    }
    const shape = i.shape, off = i.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FormatError(`tensor ${JSON.stringify(name)}: shape must be a list of non-negative integers`);
    }
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FormatError(`tensor ${JSON.stringify(name)}: data_offsets must be [begin, end]`);
    }
    const dtype = i.dtype as DType;
    const [begin, end] = off as [number, number];
    if (end < begin || end - begin !== numel(shape) * ITEMSIZE[dtype] || end > data.length) {
      throw new FormatError(`tensor ${JSON.stringify(name)}: data_offsets ${begin}..${end} do not fit its shape or the buffer`);
    }
    entries.push([name, { dtype, shape: shape as number[], bytes: data.subarray(begin, end) }, begin, end]);
  }
  // the regions must tile the data buffer: no gaps, no overlap, nothing after
  entries.sort((a, b) => a[2] - b[2]);
  let covered = 0;
  for (const [name, , begin, end] of entries) {
    if (begin !== covered) throw new FormatError(`tensor ${JSON.stringify(name)} does not start where the previous one ends`);
    covered = end;
  }
  if (covered !== data.length) throw new FormatError(`tensor data covers ${covered} of ${data.length} bytes`);
  return { metadata, tensors: new Map(entries.map(([name, t]) => [name, t])) };
}

/** Write a safetensors buffer (header padded with spaces to a multiple of 8; tensors in name order). */
export function writeSafetensors(tensors: Map<string, RawTensor>, metadata: Record<string, string>): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const t = tensors.get(name)!;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let text = JSON.stringify(header);
  text += " ".repeat((8 - ((8 + new TextEncoder().encode(text).length) % 8)) % 8);
  const head = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const name of names) {
    out.set(tensors.get(name)!.bytes, at);
    at += tensors.get(name)!.bytes.length;
  }
  return out;
}

/** Copy of the bytes as an aligned typed array (views into a message may be unaligned). */
export function asFloat32(t: RawTensor): Float32Array {
  if (t.dtype !== "F32") throw new FormatError(`expected F32, got ${t.dtype}`);
  return new Float32Array(t.bytes.slice().buffer);
}

export function asInt64(t: RawTensor): BigInt64Array {
  if (t.dtype !== "I64") throw new FormatError(`expected I64, got ${t.dtype}`);
  return new BigInt64Array(t.bytes.slice().buffer);
}

export function bytesOf(a: Float32Array | BigInt64Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
