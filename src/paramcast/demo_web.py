"""``paramcast demo-web``: a page that runs the exported device model in the browser and adapts it.

    paramcast demo-web --checkpoint runs/train/checkpoint.safetensors --preset quick --port 8000
    # open http://127.0.0.1:8000/

One process serves the cloud API (:func:`paramcast.cloud.create_app` for the checkpoint's method)
and, beside it, the page: ``device.onnx`` run by onnxruntime-web, one device's EmojiClips clips
playing on a canvas, and an *Adapt* button that shows the static head's answer and the adapted one
side by side with the bytes sent and received and the adaptation latency. The page's code is the
TypeScript client (``clients/node/src/web.ts``, the same wire decoder as the Node client), bundled
by ``make node-client`` into ``clients/node/dist/web.js``; onnxruntime-web's files come from
``clients/node/node_modules``. Nothing is fetched from outside the machine.

It serves both halves, so it lives beside ``device/`` and ``cloud/`` (which never import each other),
not in either.

Decision: the page gets a bearer token minted for the demo device at start-up (in memory, in
``/demo/meta.json``): a local demonstration, not a deployment. Listen on loopback only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["NODE_DIR", "PAGE", "create_demo_app"]

NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>paramcast device demo</title>
<script type="importmap">{"imports": {"onnxruntime-web": "/demo/ort/ort.min.mjs"}}</script>
<style>
 body { font: 15px system-ui, sans-serif; margin: 24px; color: #222; }
 main { display: grid; grid-template-columns: 260px 1fr; gap: 24px; max-width: 860px; }
 canvas { width: 256px; height: 256px; image-rendering: pixelated; border: 1px solid #999; }
 table { border-collapse: collapse; } td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
 .answer { font-size: 20px; font-weight: 600; } #status { color: #666; }
</style></head>
<body><h1>paramcast: a device adapts through the cloud</h1>
<main>
 <div><canvas id="video" width="256" height="256"></canvas>
  <p>Question: <b id="question"></b><br>Ground truth: <span id="truth"></span></p></div>
 <div>
  <p><label>Clip <select id="clip"></select></label>
     <label>Downlink <select id="quant"><option>fp32</option><option>fp16</option><option>int8</option><option>nf4</option></select></label>
     <button id="adapt">Adapt</button> <span id="status">loading</span></p>
  <table>
   <tr><th>static head</th><th>adapted head</th></tr>
   <tr><td class="answer" id="static-answer">–</td><td class="answer" id="adapted-answer">–</td></tr>
  </table>
  <table>
   <tr><td>answer from</td><td id="source">–</td></tr>
   <tr><td>bytes sent</td><td id="bytes-up">–</td></tr>
   <tr><td>bytes received</td><td id="bytes-down">–</td></tr>
   <tr><td>adaptation latency (ms)</td><td id="latency-ms">–</td></tr>
   <tr><td>adapted answer index</td><td id="adapted-index">–</td></tr>
  </table>
  <p>The device model (frozen encoder + static head) runs in this page (onnxruntime-web); the cloud
  generates the last layer from one uploaded frame feature; the page verifies, dequantises and installs it.</p>
 </div>
</main>
<script type="module" src="/demo/app.js"></script>
</body></html>
"""


def create_demo_app(method: Any, export_dir: str | Path, frames, question, question_text: list[str],
                    answer_text: list[str], answers: list[str], device_id: str, *, node_dir: str | Path = NODE_DIR):
    """The cloud app for ``method`` plus the demo page and its files.

    ``frames`` (N, T, S, S, 3) uint8 and ``question`` (N, L) int64: one device's clips, with their question
    and true answer as text; ``answers``: the answer vocabulary (index -> text).
    """
    import torch
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from safetensors.torch import save

    from paramcast.cloud import TokenStore, create_app
    from paramcast.cloud.errors import ApiError

    export_dir, node_dir = Path(export_dir), Path(node_dir)
    bundle, ort_dir = node_dir / "dist" / "web.js", node_dir / "node_modules" / "onnxruntime-web" / "dist"
    if not bundle.is_file() or not ort_dir.is_dir():
        raise FileNotFoundError(f"{bundle} or {ort_dir} is missing: run `make node-client` first")
    import secrets

    token = "pct_" + secrets.token_urlsafe(32)
    tokens = TokenStore()
    tokens.add_token(device_id, token)
    app = create_app(method, tokens=tokens)
    clips = save({"frames": frames.to(torch.uint8).contiguous(), "question": question.to(torch.int64).contiguous()})
    meta = {"device_id": device_id, "token": token, "answers": list(answers),
            "clips": [{"question": q, "answer": a} for q, a in zip(question_text, answer_text, strict=True)]}
    files = {"device.onnx", "device.json", "static_head.safetensors"}

    def _file(folder: Path, name: str, allowed=None) -> FileResponse:
        path = (folder / name).resolve()
        if (allowed is not None and name not in allowed) or path.parent != folder.resolve() or not path.is_file():
            raise ApiError(404, "not_found", f"no demo file {name[:64]!r}")
        media = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}.get(path.suffix)
        return FileResponse(path, media_type=media)

    app.get("/", include_in_schema=False)(lambda: HTMLResponse(PAGE))
    app.get("/demo/app.js", include_in_schema=False)(lambda: _file(bundle.parent, bundle.name))
    app.get("/demo/meta.json", include_in_schema=False)(lambda: JSONResponse(meta))
    app.get("/demo/clips.safetensors", include_in_schema=False)(
        lambda: Response(clips, media_type="application/octet-stream"))

    @app.get("/demo/model/{name}", include_in_schema=False)
    def model_file(name: str):
        return _file(export_dir, name, files)

    @app.get("/demo/ort/{name}", include_in_schema=False)
    def ort_file(name: str):
        return _file(ort_dir, name)

    return app

