import torch

from paramcast.models.encoder import AllInOneEncoder, EncoderConfig


def _tiny(fusion="per-frame"):
    torch.manual_seed(0)
    return AllInOneEncoder(EncoderConfig(fusion=fusion, vision="patch", text="scratch", vocab_size=20, image_size=16, patch_size=8, hidden=16, heads=2,
                                         fusion_layers=1, max_frames=8, max_question_len=16)).eval()


def _inputs(B=2, T=3):
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (B, T, 16, 16, 3), generator=g, dtype=torch.uint8)
    q = torch.randint(4, 20, (B, 6), generator=g)
    q[:, 0], q[:, -2:] = 1, 0
    return frames, q


def test_per_frame_features_shape_and_independence():
    enc, (frames, q) = _tiny(), _inputs()
    with torch.no_grad():
        out = enc(frames, q)
        assert out.shape == (2, 3, 16) and torch.isfinite(out).all()
        changed = frames.clone()
        changed[:, 2] = 255 - changed[:, 2]
        out2 = enc(changed, q)
    # F_m^i depends on frame i and the question only
    torch.testing.assert_close(out[:, :2], out2[:, :2])
    assert not torch.allclose(out[:, 2], out2[:, 2])


def test_joint_fusion_sees_every_frame():
    enc, (frames, q) = _tiny("joint"), _inputs()
    changed = frames.clone()
    changed[:, 2] = 255 - changed[:, 2]
    with torch.no_grad():
        out, out2 = enc(frames, q), enc(changed, q)
    assert out.shape == (2, 3, 16)
    # every frame's feature attends to the changed frame: motion across frames is visible to each
    assert not torch.allclose(out[:, 0], out2[:, 0]) and not torch.allclose(out[:, 2], out2[:, 2])


def test_question_padding_is_masked():
    enc, (frames, q) = _tiny(), _inputs()
    longer = torch.cat([q, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(enc(frames, q), enc(frames, longer), atol=1e-5, rtol=1e-5)


def test_save_load_round_trip(tmp_path):
    enc, (frames, q) = _tiny(), _inputs()
    enc.save(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "config.json").exists()
    again = AllInOneEncoder.load(tmp_path, device="cpu").eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(frames, q), again(frames, q))


def test_from_pretrained_local_dirs(tmp_path):
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    vit = ViTModel(ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=32), add_pooling_layer=False)
    bert = BertModel(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=16))
    vit.save_pretrained(tmp_path / "vit")
    bert.save_pretrained(tmp_path / "bert")
    enc = AllInOneEncoder.from_pretrained(tmp_path / "vit", tmp_path / "bert",
                                          EncoderConfig(fusion_layers=1), device="cpu")
    assert enc.config.hidden == 16 and enc.config.vocab_size == 30 and len(enc.fusion) == 1
    torch.testing.assert_close(enc.fusion[0].attention.q_proj.weight, vit.layers[0].attention.q_proj.weight)
    torch.testing.assert_close(enc.text.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)
