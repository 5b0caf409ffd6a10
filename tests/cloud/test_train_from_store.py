"""`paramcast train --from-store`: the history devices uploaded becomes a checkpoint the service loads."""

import torch
from typer.testing import CliRunner

from paramcast import catalog as registry
from paramcast.cli.main import app
from paramcast.cloud import load_method
from paramcast.cloud.store import open_store
from paramcast.types import Upload
from pg_server import raw_sql


def test_train_from_store_writes_a_servable_checkpoint(tmp_path, store_target):
    g = torch.Generator().manual_seed(0)
    C, V = 16, 5
    with open_store(store_target) as store:
        for d in range(3):
            feats = torch.randn(24, C, generator=g) + d
            store.add(f"dev-{d}", "videoqa-open", {"features": feats, "labels": torch.randint(V, (24,), generator=g)})
    out = tmp_path / "run"
    small = ["head_hidden=8", "proj_dim=8", "hyper_hidden=8", "latent_dim=4", "vae_hidden=16", "epochs=1",
             "adr_epochs=1", "group_size=4", "groups_per_step=4", "batch_size=16"]
    res = CliRunner().invoke(app, ["train", "--method", "cdc-mmpg", "--from-store", str(store_target),
                                   "--answers", str(V), "--out", str(out), "--device", "cpu",
                                   *[a for kv in small for a in ("--method-arg", kv)]])
    assert res.exit_code == 0, res.output
    assert "72 stored samples of 3 devices" in res.output
    m = load_method(None, out / "checkpoint.safetensors", device="cpu")
    assert m.name == "cdc-mmpg" and m.num_answers == V and m.feature_dim == C and m.config.head_hidden == 8
    up = Upload(device_id="dev-0", method="cdc-mmpg", task="videoqa-open", model_version=m.model_version,
                features=torch.randn(1, C))
    head = m.cloud_step(up)
    assert head.weight.shape == (V, 8) and torch.isfinite(head.weight).all()


def test_train_from_store_skips_and_reports_bad_rows(tmp_path, store_target):
    """One bad row must not refuse the whole store (a label of 2**62 did): it is skipped and named."""
    path = str(store_target)
    with open_store(path) as store:
        store.add("dev-0", "t", {"features": torch.randn(6, 8), "labels": torch.tensor([0, 1, 2, 3, 4, 0])})  # 1-6
        store.add("dev-1", "t", {"features": torch.randn(2, 8), "labels": torch.tensor([9, 2**62])})  # 7, 8
        store.add("dev-1", "t", {"features": torch.full((1, 8), float("inf")), "labels": torch.tensor([1])})  # 9
        store.add("dev-2", "t", {"features": torch.randn(1, 5), "labels": torch.tensor([1])})  # 10: other width
        store.add("dev-2", "t", {"features": torch.randn(1, 8), "labels": torch.tensor([1])})  # 11: corrupted below
    raw_sql(path, "UPDATE samples SET tensors = '\\x00' WHERE id = 11" if path.startswith("postgres")
            else "UPDATE samples SET tensors = x'00' WHERE id = 11")
    res = CliRunner().invoke(app, ["train", "--from-store", path, "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--answers" in res.output
    small = ["epochs=1", "adr_epochs=1", "head_hidden=8", "proj_dim=8", "hyper_hidden=8", "latent_dim=4",
             "vae_hidden=16", "group_size=2", "groups_per_step=2", "batch_size=4"]
    res = CliRunner().invoke(app, ["train", "--from-store", path, "--answers", "5", "--out", str(tmp_path / "o"),
                                   "--device", "cpu", *[a for kv in small for a in ("--method-arg", kv)]])
    assert res.exit_code == 0, res.output
    assert "skipped 2 store rows (label outside [-1, 5)): ids [7, 8]" in res.output
    assert "skipped 1 store rows (non-finite features): ids [9]" in res.output
    assert "skipped 1 store rows (feature width other than the store's 8): ids [10]" in res.output
    assert "skipped 1 store rows (corrupt blob): ids [11]" in res.output
    assert "training cdc-mmpg on 6 stored samples of 1 devices" in res.output
    with open_store(path) as store:
        store.add("dev-0", "u", {"features": torch.randn(1, 8), "labels": torch.tensor([7])})
    res = CliRunner().invoke(app, ["train", "--from-store", path, "--task", "u", "--answers", "5",
                                   "--out", str(tmp_path / "o2")])
    assert res.exit_code != 0 and "no usable samples" in " ".join(res.output.replace("│", " ").split())


def test_serving_a_checkpoint_of_another_method_is_refused(tmp_path):
    m = registry.create("source-only", num_answers=3, feature_dim=4, device="cpu", head_hidden=4)
    path = m.save_checkpoint(tmp_path / "so.safetensors")
    try:
        load_method("cdc-mmpg", path)
    except ValueError as exc:
        assert "'source-only' checkpoint" in str(exc)
    else:
        raise AssertionError("a source-only checkpoint was served as cdc-mmpg")
