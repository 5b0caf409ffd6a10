"""The ``paramcast`` command. One module per subcommand group; this file only wires them up."""

from __future__ import annotations

import typer

from paramcast.cli import bench, data, validate
from paramcast.cli.demo_web import demo_web
from paramcast.cli.device import device
from paramcast.cli.export import export
from paramcast.cli.serve import serve
from paramcast.cli.train import train

app = typer.Typer(
    name="paramcast",
    help="Cloud-device collaborative adaptation of on-device multi-modal models.\n\n"
    "Typical flow: `paramcast data prepare` builds the EmojiClips benchmark, "
    "`paramcast bench videoqa` trains every method and compares them, "
    "`paramcast serve` runs the cloud service and `paramcast device` a simulated device against it.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(data.app, name="data", help="Build, describe and look at the EmojiClips benchmark.")
app.add_typer(bench.app, name="bench", help="Benchmarks: accuracy, payload sizes, latency, serving, links.")
app.command("validate", help="Check every YAML config under benchmarks/ and report all errors at once.")(
    validate.validate)
app.command("train", help="Train one method on the cloud history (EmojiClips, a real dataset or a service's store); save a checkpoint.")(
    train)
app.command("serve", help="Run the cloud service (FastAPI + uvicorn) for a trained method.")(serve)
app.command("device", help="Run a simulated device (an EmojiClips stream of one device) against a server.")(
    device)
app.command("demo-web", help="Serve a page that runs the device model in the browser and adapts it through the cloud.")(
    demo_web)
app.command("export", help="Export the device model of a checkpoint to ONNX (generated layer as inputs).")(export)

if __name__ == "__main__":
    app()
