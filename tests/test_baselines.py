"""Non-transformer baselines (biLSTM, RNN, GRU, CharCNN), their tokenizers, the GloVe
reader, and training them through the one trainer."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcl_jax.data import files, glove, text_tokenizers
from lcl_jax.models import baselines
from lcl_jax.train import config as config_lib
from lcl_jax.train import trainer
from lcl_jax.train.config import TrainConfig


def _padded_batch(lengths, width, vocab=40, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(2, vocab, size=(len(lengths), width)).astype(np.int32)
  mask = (np.arange(width)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)
  ids[mask == 0] = 0
  return ids, mask


@pytest.mark.parametrize("name, lengths", [("bilstm", (6, 1, 3)), ("gru", (6, 2)),
                                           ("rnn", (6, 3))])
def test_padded_batch_equals_each_sequence_alone(name, lengths):
  module, params = baselines.build_baseline(name, vocab_size=40, num_classes=3,
                                            rng=jax.random.key(0), hidden_size=8,
                                            embedding_dim=6)
  ids, mask = _padded_batch(lengths, 6)
  apply = jax.jit(lambda p, i, m: module.apply({"params": p}, i, m))
  batch = apply(params, ids, mask)
  expected_width = 16 if name == "bilstm" else 8
  assert batch.features.shape == (len(lengths), expected_width)
  assert batch.logits.shape == (len(lengths), 3)
  for row, length in enumerate(lengths):
    alone = apply(params, ids[row:row + 1, :length], mask[row:row + 1, :length])
    np.testing.assert_allclose(np.asarray(batch.logits[row]), np.asarray(alone.logits[0]),
                               atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(batch.features[row]),
                               np.asarray(alone.features[0]), atol=1e-6, rtol=0)
  # Padding ids are ignored whatever they are.
  noisy = np.where(mask > 0, ids, 7)
  np.testing.assert_allclose(np.asarray(apply(params, noisy, mask).logits),
                             np.asarray(batch.logits), atol=1e-6, rtol=0)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def test_lstm_cell_matches_the_equations_of_seed_000():
  """One step of the LSTM against a NumPy transcription of seed 000 §2.2:
  f = σ(W_f[h, x] + b_f), i = σ(W_i[h, x] + b_i), o = σ(W_o[h, x] + b_o),
  Ĉ = tanh(W_C[h, x] + b_C), C = f·C_prev + i·Ĉ, h = o·tanh(C)."""
  module, params = baselines.build_baseline("bilstm", vocab_size=10, num_classes=2,
                                            rng=jax.random.key(1), hidden_size=5,
                                            embedding_dim=4, num_layers=1)
  cell_params = params["forward_0"]
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 4)).astype(np.float32)
  h_prev = rng.normal(size=(3, 5)).astype(np.float32)
  c_prev = rng.normal(size=(3, 5)).astype(np.float32)
  (c, h), out = baselines._make_cell("lstm", 5).apply({"params": cell_params},
                                                       (jnp.asarray(c_prev), jnp.asarray(h_prev)),
                                                       jnp.asarray(x))

  def gate(letter):
    # W[h, x] = W_h h + W_x x: flax stores the two blocks as h<letter> and i<letter>.
    w = np.concatenate([np.asarray(cell_params[f"h{letter}"]["kernel"]),
                        np.asarray(cell_params[f"i{letter}"]["kernel"])], axis=0)
    return np.concatenate([h_prev, x], axis=1) @ w + np.asarray(cell_params[f"h{letter}"]["bias"])

  f, i, o = _sigmoid(gate("f")), _sigmoid(gate("i")), _sigmoid(gate("o"))
  c_hat = np.tanh(gate("g"))
  c_expected = f * c_prev + i * c_hat
  h_expected = o * np.tanh(c_expected)
  np.testing.assert_allclose(np.asarray(c), c_expected, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(h), h_expected, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(out), h_expected, atol=1e-5, rtol=1e-5)


def test_charcnn_shapes_and_alphabet():
  assert len(text_tokenizers.CHARCNN_ALPHABET) == 70
  assert baselines.charcnn_frames(1014) == 34
  tokenizer = text_tokenizers.CharTokenizer()
  ids = tokenizer.encode("Ab c\u00e9!")  # é is outside the alphabet, so is the space
  # Backward order: the last character first; unknown characters are 0.
  assert ids == [text_tokenizers.CHARCNN_ALPHABET.index("!") + 1, 0,
                 text_tokenizers.CHARCNN_ALPHABET.index("c") + 1, 0, 2, 1]
  assert tokenizer.encode("abcdef", max_length=3) == [3, 2, 1]
  module, params = baselines.build_baseline("charcnn", vocab_size=0, num_classes=4,
                                            rng=jax.random.key(0))
  assert params["dense_0"]["kernel"].shape == (34 * 256, 1024)
  assert params["conv_0"]["kernel"].shape == (7, 70, 256)
  encoded = tokenizer(["hello world", "x"], max_length=1014)["input_ids"]
  ids = np.zeros((2, 11), np.int32)
  mask = np.zeros((2, 11), np.int32)
  for row, seq in enumerate(encoded):
    ids[row, :len(seq)], mask[row, :len(seq)] = seq, 1
  out = jax.jit(lambda p: module.apply({"params": p}, ids, mask))(params)
  assert out.logits.shape == (2, 4) and out.features.shape == (2, 1024)
  # The one-hot input: id 0 (padding / unknown) is the zero vector.
  onehot = jax.nn.one_hot(jnp.asarray([0, 1, 70]) - 1, 70)
  np.testing.assert_array_equal(np.asarray(onehot.sum(-1)), [0, 1, 1])
  assert np.asarray(onehot)[2, 69] == 1


def test_word_tokenizer_preprocessing_and_vocabulary():
  texts = ["The cat sat on the MAT!!", "a cat, a dog", "the the the"]
  tok = text_tokenizers.WordTokenizer.fit(texts, remove_stop_words=True)
  assert tok.words("The cat sat on the MAT!!") == ["cat", "sat", "mat"]
  vocab = tok.get_vocab()
  assert vocab["<PAD>"] == 0 and vocab["<UNK>"] == 1 and vocab["cat"] == 2  # most frequent
  assert "the" not in vocab and "on" not in vocab
  assert tok(["cat zebra", "the"], max_length=5)["input_ids"] == [[2, 1], [1]]
  keep = text_tokenizers.WordTokenizer.fit(texts, remove_stop_words=False)
  assert keep.get_vocab()["the"] == 2  # 5 occurrences


def test_glove_reader(tmp_path):
  path = tmp_path / "glove.txt"
  path.write_text("cat 1 2 3\ndog 0.5 -1 0\n\nemu 2 2 2\ncat 9 9 9\n", encoding="utf-8")
  vocab = {"<PAD>": 0, "<UNK>": 1, "cat": 2, "zebra": 3, "dog": 4}
  matrix, found = glove.embedding_matrix(path, vocab)
  assert found == 2 and matrix.shape == (5, 3) and matrix.dtype == np.float32
  mean = np.mean([[1, 2, 3], [0.5, -1, 0], [2, 2, 2], [9, 9, 9]], axis=0)
  np.testing.assert_array_equal(matrix[0], 0.0)  # <PAD>
  np.testing.assert_allclose(matrix[1], mean)  # <UNK>: the documented mean vector
  np.testing.assert_allclose(matrix[3], mean)  # a word absent from the file
  np.testing.assert_array_equal(matrix[2], [1, 2, 3])  # first occurrence wins
  np.testing.assert_array_equal(matrix[4], [0.5, -1, 0])
  module, params = baselines.build_baseline("bilstm", vocab_size=5, num_classes=2,
                                            rng=jax.random.key(0), embedding_matrix=matrix,
                                            hidden_size=4)
  np.testing.assert_array_equal(np.asarray(params["embedding"]["embedding"]), matrix)
  assert module.embedding_dim == 3


def test_glove_reader_errors(tmp_path):
  with pytest.raises(files.DataFileNotFoundError, match="GloVe file .*missing.txt"):
    glove.embedding_matrix(tmp_path / "missing.txt", {"<PAD>": 0})
  path = tmp_path / "bad.txt"
  path.write_text("cat 1 2 3\ndog 1 2\n")
  with pytest.raises(files.MalformedRowError, match=r"bad\.txt, line 2: expected a word and 3"):
    glove.embedding_matrix(path, {"<PAD>": 0})
  path.write_text("cat 1 x 3\n")
  with pytest.raises(files.MalformedRowError, match="line 1: a value is not a number"):
    glove.embedding_matrix(path, {"<PAD>": 0})


def test_validation_loss_is_the_cross_entropy():
  from sklearn.metrics import log_loss
  rng = np.random.default_rng(0)
  probs = rng.dirichlet(np.ones(4), size=30)
  labels = rng.integers(0, 4, size=30)
  assert trainer._mean_loss(labels, probs, False) == pytest.approx(
      log_loss(labels, probs, labels=range(4)))
  sig = rng.uniform(0.01, 0.99, size=(30, 5))
  multi = rng.integers(0, 2, size=(30, 5))
  expected = np.mean([log_loss(multi[:, c], sig[:, c], labels=[0, 1]) for c in range(5)])
  assert trainer._mean_loss(multi, sig, True) == pytest.approx(expected)
  with pytest.raises(ValueError, match="early_stopping_on"):
    TrainConfig(early_stopping_on="accuracy").resolved()


def test_baseline_names_agree_with_the_config():
  assert set(config_lib.BASELINE_ENCODERS) == set(baselines.BASELINES)


def test_config_checks_for_baselines():
  with pytest.raises(ValueError, match="TrainConfig.glove_path"):
    TrainConfig(encoder="charcnn", glove_path="g.txt").resolved()
  with pytest.raises(ValueError, match="TrainConfig.export_hf"):
    TrainConfig(encoder="gru", export_hf=True).resolved()
  with pytest.raises(ValueError, match="TrainConfig.weighting_encoder"):
    TrainConfig(encoder="gru", objective="lcl", weighting_encoder="minilm").resolved()
  assert TrainConfig(encoder="gru").resolved().learning_rate == 1e-3


# The CharCNN (and the biLSTM) go through the trainer in tests/test_reimplementation_study.py.
@pytest.mark.parametrize("encoder", ["gru"])
def test_baseline_trains_through_the_trainer(encoder, data_dir, tmp_path):
  # gru: seed 000's early stopping on the validation loss (patience 1 here).
  stopping = dict(patience=1, early_stopping_on="loss", epochs=3) if encoder == "gru" else {}
  cfg = TrainConfig(dataset="emoint", objective="ce", encoder=encoder, data_dir=str(data_dir),
                    workdir=str(tmp_path / encoder), **{"epochs": 2, **stopping},
                    max_train_examples=40,
                    max_eval_examples=24, texts_per_batch=8, eval_batch_size=16,
                    max_length=128 if encoder == "charcnn" else 32,
                    length_buckets=(128,) if encoder == "charcnn" else (16, 32),
                    max_steps_per_epoch=3, checkpoint_every_steps=2, log_every_steps=1,
                    progress_bar=False)
  results = trainer.train(cfg)
  assert results["encoder"] == encoder
  if encoder == "gru":
    losses = [h["validation"]["loss"] for h in results["history"]]
    # Stopped after the first epoch whose validation loss did not improve on the best.
    expected = next((i + 1 for i in range(1, 3) if losses[i] >= min(losses[:i])), 3)
    assert results["epochs_trained"] == expected
    assert results["stopped_early"] == (expected < 3)
  else:
    assert results["epochs_trained"] == 2
  assert 0.0 <= results["test"]["accuracy"] <= 1.0
  saved = json.loads((tmp_path / encoder / "results.json").read_text())
  assert saved["split_sizes"] == {"train": 40, "validation": 24, "test": 24}
  assert (tmp_path / encoder / "best").exists()
  losses = [json.loads(line)["loss"] for line in
            (tmp_path / encoder / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == "train"]
  assert all(np.isfinite(losses))
  # Re-running returns the finished results (checkpoints and resume work).
  assert trainer.train(cfg) == saved
