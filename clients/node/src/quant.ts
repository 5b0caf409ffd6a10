// The quantisation layouts of docs/wire.md §4.2: part specs, codebooks, dequantisation (bit-exact).

import { DType, RawTensor, numel } from "./safetensors.ts";

export const QUANTS = ["fp32", "fp16", "int8", "nf4"] as const;
export type Quant = (typeof QUANTS)[number];
export const BLOCKSIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096];
export const ABSMAX_BLOCKSIZE = 256;

const f32 = Math.fround;

/** The 16 NF4 levels (QLoRA appendix E), float32. */
export const NF4: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** bitsandbytes' signed dynamic map, built as §4.2 describes (256 float32 values, ascending). */
export function dynamicMap(): Float32Array {
  const values: number[] = [];
  for (let i = 0; i < 7; i++) {
    const k = 2 ** i + 1;
    const step = f32(f32(1 - f32(0.1)) / (k - 1));
    const b: number[] = [];
    for (let t = 0; t < k; t++) {
      // t * step is exact in float64 (a small integer times a float32): one rounding, as PyTorch's linspace
      b.push(t < Math.floor(k / 2) ? f32(f32(0.1) + t * step) : f32(1 - (k - 1 - t) * step));
    }
    const scale = f32(10 ** (i - 6));
    for (let t = 0; t < k - 1; t++) {
      const m = f32(f32(b[t] + b[t + 1]) / 2);
      const v = f32(scale * m);
      values.push(v, -v);
    }
  }
  values.push(0, 1);
  return Float32Array.from(values).sort();
}

export const DYN = dynamicMap();

/** Name -> [dtype, shape] of every part a tensor of `shape` travels as. */
export function partSpecs(shape: number[], quant: Quant, blocksize: number): Record<string, [DType, number[]]> {
  if (quant === "fp32") return { values: ["F32", shape] };
  if (quant === "fp16") return { values: ["F16", shape] };
  const n = numel(shape);
  const nb = Math.ceil(n / blocksize);
  return {
    codes: ["U8", [quant === "int8" ? n : Math.ceil(n / 2)]],
    absmax_codes: ["U8", [nb]],
    absmax_scale: ["F32", [Math.ceil(nb / ABSMAX_BLOCKSIZE)]],
    absmax_offset: ["F32", [1]],
  };
}

/** IEEE binary16 -> float (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function f32Array(t: RawTensor): Float32Array {
  return new Float32Array(t.bytes.slice().buffer);
}

/** Parts (already checked against partSpecs) -> the float32 tensor of `shape`, row-major. */
export function dequantise(parts: Record<string, RawTensor>, quant: Quant, shape: number[], blocksize: number): Float32Array {
  const n = numel(shape);
  if (quant === "fp32") return f32Array(parts.values);
  if (quant === "fp16") {
    const b = parts.values.bytes;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(b[2 * i] | (b[2 * i + 1] << 8));
    return out;
  }
  const scale = f32Array(parts.absmax_scale);
  const offset = f32Array(parts.absmax_offset)[0];
  const ac = parts.absmax_codes.bytes;
  const absmax = new Float32Array(ac.length);
  for (let j = 0; j < ac.length; j++) {
    absmax[j] = f32(f32(DYN[ac[j]] * scale[Math.floor(j / ABSMAX_BLOCKSIZE)]) + offset);
  }
  const codes = parts.codes.bytes;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const level = quant === "int8" ? DYN[codes[i]] : NF4[i % 2 === 0 ? codes[i >> 1] >> 4 : codes[i >> 1] & 15];
    out[i] = f32(level * absmax[Math.floor(i / blocksize)]);
  }
  return out;
}
