// Node: load an export folder with onnxruntime-node.

import { readFileSync } from "node:fs";
import { join } from "node:path";

import * as ort from "onnxruntime-node";

import { DeviceInfo, DeviceModel } from "./client.ts";

export async function loadDeviceModel(dir: string): Promise<DeviceModel> {
  const info = JSON.parse(readFileSync(join(dir, "device.json"), "utf8")) as DeviceInfo;
  return DeviceModel.create(ort, new Uint8Array(readFileSync(join(dir, info.onnx))), info,
                            new Uint8Array(readFileSync(join(dir, info.static_head))), { executionProviders: ["cpu"] });
}
