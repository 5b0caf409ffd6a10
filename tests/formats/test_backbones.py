"""load_local_backbones: tiny save_pretrained ViT / BERT directories load offline; bad directories fail clearly."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel, ViTConfig, ViTModel

from paramcast.data.formats import DatasetLayoutError, load_local_backbones


@pytest.fixture
def tiny_dirs(tmp_path):
    torch.manual_seed(0)
    vit = ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=48), add_pooling_layer=False)
    bert = BertModel(BertConfig(vocab_size=50, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=48, max_position_embeddings=16))
    vit.save_pretrained(tmp_path / "vit")
    bert.save_pretrained(tmp_path / "bert")
    return tmp_path / "vit", tmp_path / "bert", vit, bert


def test_round_trip(tiny_dirs):
    vit_dir, bert_dir, vit_ref, bert_ref = tiny_dirs
    vit, bert = load_local_backbones(vit_dir, bert_dir)
    assert any(".q_proj." in k for k in vit.state_dict())         # transformers 5 attention names
    for k, v in vit_ref.state_dict().items():
        assert torch.equal(vit.state_dict()[k], v), k
    assert torch.equal(bert.embeddings.word_embeddings.weight, bert_ref.embeddings.word_embeddings.weight)
    assert load_local_backbones(vit_dir=vit_dir)[1] is None


def test_missing_config_or_weights(tiny_dirs, tmp_path):
    vit_dir = tiny_dirs[0]
    (vit_dir / "model.safetensors").unlink()
    with pytest.raises(DatasetLayoutError, match="has no weights"):
        load_local_backbones(vit_dir=vit_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no config.json"):
        load_local_backbones(bert_dir=tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_local_backbones(vit_dir=tmp_path / "absent")
