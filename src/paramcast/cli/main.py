"""The ``paramcast`` command. One module per subcommand group; this file only wires them up.

Every subcommand is imported when it runs (:mod:`paramcast.cli._lazy`): ``paramcast --help`` loads
neither torch nor transformers nor the methods (tests/core/test_cli_import.py).
"""

from __future__ import annotations

import typer

from paramcast.cli._lazy import lazy_group

COMMANDS = {  # name -> ("module:attribute", help)
    "validate": ("paramcast.cli.validate:validate",
                 "Check every YAML config under benchmarks/ and report all errors at once."),
    "train": ("paramcast.cli.train:train",
              "Train one method on the cloud history (EmojiClips, a real dataset or a service's store); save a checkpoint."),
    "serve": ("paramcast.cli.serve:serve", "Run the cloud service (FastAPI + uvicorn) for a trained method."),
    "device": ("paramcast.cli.device:device",
               "Run a simulated device (an EmojiClips stream of one device) against a server."),
    "demo-web": ("paramcast.cli.demo_web:demo_web",
                 "Serve a page that runs the device model in the browser and adapts it through the cloud."),
    "export": ("paramcast.cli.export:export",
               "Export the device model of a checkpoint to ONNX (generated layer as inputs)."),
    "data": ("paramcast.cli.data:app", "Build, describe and look at the EmojiClips benchmark."),
    "bench": ("paramcast.cli.bench:app", "Benchmarks: accuracy, payload sizes, latency, serving, links."),
}

app = typer.Typer(
    name="paramcast",
    cls=lazy_group(COMMANDS),
    help="Cloud-device collaborative adaptation of on-device multi-modal models.\n\n"
    "Typical flow: `paramcast data prepare` builds the EmojiClips benchmark, "
    "`paramcast bench videoqa` trains every method and compares them, "
    "`paramcast serve` runs the cloud service and `paramcast device` a simulated device against it.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    pass


if __name__ == "__main__":
    app()
