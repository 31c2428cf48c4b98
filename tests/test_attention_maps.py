"""Attention maps (seed 004 Figures 6-8): the encoder's explicit-softmax path.

The explicit path gives the fused path's hidden states, its probabilities are
transformers' PyTorch attentions (eager), rows sum to 1 over the unmasked keys and
masked keys get 0; `use.attention_maps` reads a saved model and writes the PNG + CSV.
"""
import csv

import jax
import numpy as np
import pytest

from lcl_jax import models
from lcl_jax.inference import use
from lcl_jax.models import pretrained
from lcl_jax.models.encoder import attention_probabilities

TEXTS = ["the parcel arrived broken and nobody answers me", "so scared"]


@pytest.fixture(scope="module")
def tiny_paper(tiny_bert_dir):
  module, params = models.build_classifier("paper", tiny_bert_dir, 3, rng=jax.random.key(0))
  return module, jax.device_get(params)


def test_explicit_path_matches_fused_path_and_transformers(tiny_paper, tiny_bert_dir):
  import torch
  import transformers
  module, params = tiny_paper
  tokenizer = pretrained.load_tokenizer(tiny_bert_dir)
  encoded = tokenizer(TEXTS, padding="max_length", max_length=16, return_tensors="np")
  ids = encoded["input_ids"].astype(np.int32)
  mask = encoded["attention_mask"].astype(np.int32)
  types = encoded["token_type_ids"].astype(np.int32)
  encoder = module.build_encoder()
  fused = encoder.apply({"params": params["encoder"]}, ids, mask, types)
  hidden, probs = attention_probabilities(encoder, params["encoder"], ids, mask, types)
  np.testing.assert_allclose(np.asarray(hidden), np.asarray(fused), atol=1e-5, rtol=1e-5)
  probs = np.asarray(probs)
  config = module.config
  assert probs.shape == (config.num_hidden_layers, 2, config.num_attention_heads, 16, 16)
  keys = mask.astype(bool)[None, :, None, None, :]  # [1, B, 1, 1, S]
  np.testing.assert_array_equal(np.where(keys, 0.0, probs), 0.0)  # masked keys: exactly 0
  np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-6)  # over the unmasked keys
  model = transformers.BertModel.from_pretrained(str(tiny_bert_dir),
                                                 attn_implementation="eager").eval()
  with torch.no_grad():
    out = model(input_ids=torch.tensor(ids, dtype=torch.long),
                attention_mask=torch.tensor(mask, dtype=torch.long),
                token_type_ids=torch.tensor(types, dtype=torch.long), output_attentions=True)
  for layer, reference in enumerate(out.attentions):
    real = mask.astype(bool)  # compare the real query rows (padding rows are arbitrary)
    for b in range(len(TEXTS)):
      np.testing.assert_allclose(probs[layer, b][:, real[b]][:, :, real[b]],
                                 reference[b].numpy()[:, real[b]][:, :, real[b]], atol=1e-5)


def test_attention_maps_of_a_saved_model_write_png_and_csv(tiny_paper, tiny_bert_dir,
                                                           tmp_path):
  module, params = tiny_paper
  folder = models.save_classifier(tmp_path / "export", module, params,
                                  label_names=["a", "b", "c"])
  pretrained.load_tokenizer(tiny_bert_dir).save_pretrained(str(folder))
  out = use.attention_maps(folder, TEXTS[1], layers=[0, -1], heads=[1],
                           output=tmp_path / "maps" / "fear.png")
  tokens = out["tokens"]
  assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and out["layers"] == [0, 1]
  probs = out["probabilities"]
  assert probs.shape == (2, 1, len(tokens), len(tokens))
  ids = np.asarray([pretrained.load_tokenizer(tiny_bert_dir).convert_tokens_to_ids(tokens)],
                   np.int32)
  _, full = attention_probabilities(module.build_encoder(), params["encoder"], ids,
                                    np.ones_like(ids), np.zeros_like(ids))
  np.testing.assert_allclose(probs, np.asarray(full)[[0, 1], 0][:, [1]], atol=1e-6)
  png = (tmp_path / "maps" / "fear.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n"
  with open(tmp_path / "maps" / "fear.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2 * len(tokens) ** 2
  first = rows[len(tokens) ** 2 + 1]  # layer 1, head 1, query 0, key 1
  assert (first["layer"], first["head"], first["query_token"], first["key_token"]) == (
      "1", "1", "[CLS]", tokens[1])
  assert float(first["probability"]) == pytest.approx(float(probs[1, 0, 0, 1]), abs=1e-6)
  with pytest.raises(ValueError, match="layer 5 is out of range"):
    use.attention_maps(folder, TEXTS[1], layers=[5], heads=[0])
  with pytest.raises(ValueError, match="head 2 is out of range"):
    use.attention_maps(folder, TEXTS[1], layers=[0], heads=[2])
