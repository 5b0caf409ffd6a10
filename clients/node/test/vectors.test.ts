// The golden vectors of tests/vectors/ (docs/wire.md §8), decoded by this client.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { DYN, NF4 } from "../src/quant.ts";
import { asFloat32, asInt64, readSafetensors } from "../src/safetensors.ts";
import { WireError, decode, decodeHistory, encodeHistory, encodeUpload } from "../src/wire.ts";

const VECTORS = join(import.meta.dirname, "..", "..", "..", "tests", "vectors");
const manifest = JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8"));
const codebooks = JSON.parse(readFileSync(join(VECTORS, "codebooks.json"), "utf8"));
const read = (f: string) => new Uint8Array(readFileSync(join(VECTORS, f)));

function expected(file: string) {
  return readSafetensors(read(file)).tensors;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

test("the int8 dynamic map built from the spec's recipe is the committed table, bit for bit", () => {
  assert.equal(DYN.length, 256);
  assert.ok(sameBits(DYN, Float32Array.from(codebooks.int8_dynamic_map)));
  assert.ok(sameBits(NF4, Float32Array.from(codebooks.nf4_levels)));
});

for (const vec of manifest.valid) {
  test(`decodes ${vec.name} bit-exactly`, () => {
    const data = read(vec.file);
    assert.equal(data.length, vec.bytes);
    const want = expected(vec.expected);
    if (vec.kind === "history") {
      const h = decodeHistory(data);
      assert.equal(h.device_id, vec.device_id);
      assert.ok(sameBits(h.features.data, asFloat32(want.get("features")!)));
      assert.deepEqual(h.labels.data, asInt64(want.get("labels")!));
      if (want.has("question")) assert.deepEqual(h.question!.data, asInt64(want.get("question")!));
      // encoding the decoded rows again gives a body the decoder accepts with the same digest
      const again = encodeHistory(h);
      const meta = (b: Uint8Array) => readSafetensors(b).metadata as Record<string, string>;
      assert.equal(meta(again).sha256, meta(data).sha256);
      return;
    }
    const m = decode(data);
    assert.equal(m.kind, vec.kind);
    assert.equal(m.quant, vec.quant);
    assert.equal(m.blocksize, vec.blocksize);
    assert.equal(m.device_id, vec.device_id);
    assert.equal(m.model_version, vec.model_version);
    if (vec.kind === "delta") assert.equal(m.base_version, vec.base_version);
    const names = [...Object.keys(m.floats), ...Object.keys(m.ints)].sort();
    assert.deepEqual(names, [...want.keys()].sort());
    for (const [name, t] of Object.entries(m.floats)) {
      assert.deepEqual(t.shape, want.get(name)!.shape);
      assert.ok(sameBits(t.data, asFloat32(want.get(name)!)), `${name} differs`);
    }
    for (const [name, t] of Object.entries(m.ints)) assert.deepEqual(t.data, asInt64(want.get(name)!));
    if (vec.kind === "upload" && vec.quant === "fp32" && Object.keys(m.ints).length === 0) {
      // our encoder writes the same canonical metadata and bytes: the same checksum as Python's
      const mine = encodeUpload(m, m.floats.features);
      const sha = (b: Uint8Array) => (readSafetensors(b).metadata as Record<string, string>).sha256;
      assert.equal(sha(mine), sha(data));
      assert.ok(sameBits(decode(mine).floats.features.data, m.floats.features.data));
    }
  });
}

for (const vec of manifest.malformed) {
  test(`refuses ${vec.name} (${vec.why})`, () => {
    const data = read(vec.file);
    assert.throws(() => (vec.decoder === "history" ? decodeHistory(data) : decode(data)), WireError);
  });
}

test("expect= refuses another kind", () => {
  assert.throws(() => decode(read("head-fp32.bin"), { expect: "upload" }), WireError);
  assert.throws(() => decode(read("head-fp32.bin"), { maxBytes: 100 }), WireError);
});
