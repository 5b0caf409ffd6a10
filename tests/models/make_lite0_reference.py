"""Writes tests/models/data/lite0_reference.safetensors: Lite0's stride-16 output (blocks 0–10) on a
fixed 32×32 input. Run once (``python tests/models/make_lite0_reference.py``); the test compares
every later load of the packaged weights with it."""

from pathlib import Path

import torch
from safetensors.torch import save_file


def reference_input() -> torch.Tensor:
    """A fixed (2, 3, 32, 32) input in Lite0's normalised range: smooth ramps and a checkerboard."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    a = torch.stack([x, y, x * y])
    b = torch.stack([((torch.arange(32)[:, None] // 4 + torch.arange(32) // 4) % 2).float() * 2 - 1, -x, y.abs()])
    return torch.stack([a, b])


@torch.no_grad()
def backbone_output(model) -> torch.Tensor:
    x = model._swish(model._bn0(model._conv_stem(reference_input())))
    for block in model._blocks[:11]:
        x = block(x)
    return x


if __name__ == "__main__":
    from paramcast.models.pretrained import lite0

    out = Path(__file__).parent / "data" / "lite0_reference.safetensors"
    save_file({"output": backbone_output(lite0(32)).contiguous()}, str(out))
    print(out, out.stat().st_size, "bytes")
