"""Conversion between Hugging Face PyTorch state dicts and our Flax parameters.

A Flax leaf path maps to a Hugging Face tensor name by joining the module path
with dots and renaming the leaf: ``kernel`` -> ``weight`` (transposed, torch's
Linear stores ``[out, in]``), ``embedding`` / ``scale`` -> ``weight``, ``bias``
-> ``bias``. E.g. ``encoder/layer/0/attention/self/query/kernel`` <->
``encoder.layer.0.attention.self.query.weight``.

Loading is strict and explicit (`CheckpointReader`): every parameter must be
found with the right shape and every checkpoint tensor must be used, except
tensors that are known not to belong to the encoder -- the non-persistent
``position_ids`` buffer, BERT's pooler (loaded separately), and the
pre-training / task heads of transformers' BERT and ELECTRA classes -- which are
listed in the `LoadReport` as ignored, with the reason. Missing or unexpected
names raise `CheckpointMismatchError` naming them, unless allowed by pattern.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from lcl_jax.models.config import BASE_MODEL_PREFIXES

_logger = logging.getLogger(__name__)

Params = dict[str, Any]

# Leaf renames Flax -> HF, and which leaves are stored transposed by torch.
_LEAF_TO_HF = {"kernel": "weight", "embedding": "weight", "scale": "weight", "bias": "bias"}
_TRANSPOSED_LEAVES = ("kernel",)

# Old TF-converted BERT checkpoints name LayerNorm parameters gamma/beta
# (transformers renames them on load too).
_LEGACY_SUFFIXES = {".weight": ".gamma", ".bias": ".beta"}

# Tensors of transformers' BERT/ELECTRA task heads, outside the base model.
# Pattern -> why it is not part of the encoder.
KNOWN_HEAD_PATTERNS: dict[str, str] = {
    "cls.predictions.*": "BERT masked-LM pre-training head",
    "cls.seq_relationship.*": "BERT next-sentence pre-training head",
    "lm_head.*": "RoBERTa masked-LM pre-training head",
    "discriminator_predictions.*": "ELECTRA replaced-token-detection head",
    "generator_predictions.*": "ELECTRA generator masked-LM head",
    "generator_lm_head.*": "ELECTRA generator masked-LM head",
    "classifier.*": "sequence/token-classification head",
    "sequence_summary.*": "ELECTRA multiple-choice head",
    "qa_outputs.*": "question-answering head",
    "pooler_fc.*": "LCL paper head (lcl_jax PaperClassifier)",
    "label.*": "LCL paper head (lcl_jax PaperClassifier)",
}


class CheckpointMismatchError(ValueError):
  """The checkpoint's tensors do not match the model's parameters."""


def flax_path_to_hf_name(path: Sequence[str]) -> str:
  """``('encoder', 'layer', '0', ..., 'kernel')`` -> ``'encoder.layer.0....weight'``."""
  *modules, leaf = path
  if leaf not in _LEAF_TO_HF:
    raise ValueError(f"cannot map parameter {'/'.join(path)}: unknown leaf {leaf!r}")
  return ".".join([*modules, _LEAF_TO_HF[leaf]])


def to_hf_array(path: Sequence[str], value: Any) -> np.ndarray:
  """Our parameter as the HF tensor (float32, C-contiguous, kernels transposed)."""
  array = np.asarray(jax.device_get(value), dtype=np.float32)
  if path[-1] in _TRANSPOSED_LEAVES:
    array = array.T
  return np.ascontiguousarray(array)


def to_hf_state_dict(params: Mapping[str, Any], *, prefix: str = "") -> dict[str, np.ndarray]:
  """Flax params (our HF-mirroring layout) -> ``{hf_name: float32 array}``.

  Args:
    params: a parameter tree, e.g. the encoder's, or ``{'dense': ...}`` of a pooler.
    prefix: module path to prepend, e.g. ``"pooler."`` or ``"electra."``.
  """
  return {prefix + flax_path_to_hf_name(path): to_hf_array(path, value)
          for path, value in traverse_util.flatten_dict(dict(params)).items()}


@dataclasses.dataclass
class LoadReport:
  """What happened to every tensor of a checkpoint during a load.

  Attributes:
    source: the checkpoint file(s) read.
    base_prefix: ``"bert."``, ``"electra."``, ``"roberta."`` or ``""`` -- the prefix of the
      base-model tensors found in the checkpoint.
    loaded: checkpoint names that filled a parameter.
    ignored: checkpoint name -> reason, for tensors known not to belong to what
      was loaded (task heads, buffers, the pooler).
    unexpected: checkpoint names that match nothing (allowed ones only; a load
      with disallowed unexpected names raises).
    missing: parameter names (HF naming, with the base prefix) absent from the
      checkpoint and filled by fresh initialisation (allowed ones only).
    initialised: parameters that are new by design (classifier heads) and were
      initialised from the RNG.
  """

  source: str
  base_prefix: str = ""
  loaded: list[str] = dataclasses.field(default_factory=list)
  ignored: dict[str, str] = dataclasses.field(default_factory=dict)
  unexpected: list[str] = dataclasses.field(default_factory=list)
  missing: list[str] = dataclasses.field(default_factory=list)
  initialised: list[str] = dataclasses.field(default_factory=list)

  def summary(self) -> str:
    """A multi-line human-readable account of the load."""
    lines = [f"loaded {len(self.loaded)} tensors from {self.source}"
             + (f" (prefix {self.base_prefix!r})" if self.base_prefix else "")]
    by_reason: dict[str, list[str]] = {}
    for name, reason in sorted(self.ignored.items()):
      by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
      lines.append(f"ignored {len(names)} tensor(s), {reason}: {_short_list(names)}")
    if self.unexpected:
      lines.append(f"UNEXPECTED (allowed, unused): {_short_list(self.unexpected)}")
    if self.missing:
      lines.append(f"MISSING (allowed, freshly initialised): {_short_list(self.missing)}")
    if self.initialised:
      lines.append(f"newly initialised head parameters: {_short_list(self.initialised)}")
    return "\n".join(lines)

  def log(self, logger: logging.Logger = _logger) -> None:
    """Logs the summary: WARNING if anything was unexpected or missing, else INFO.

    An INFO summary already logged by this process (the same checkpoint loaded again,
    e.g. once per objective of a sweep) is logged at DEBUG, so the console says it once.
    """
    summary = self.summary()
    level = logging.WARNING if (self.unexpected or self.missing) else logging.INFO
    if level == logging.INFO:
      if summary in _LOGGED_SUMMARIES:
        level = logging.DEBUG
      _LOGGED_SUMMARIES.add(summary)
    logger.log(level, "%s", summary)


_LOGGED_SUMMARIES: set[str] = set()


def _short_list(names: Sequence[str], limit: int = 12) -> str:
  names = list(names)
  shown = ", ".join(names[:limit])
  return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _matches_any(name: str, patterns: Iterable[str]) -> bool:
  return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def detect_base_prefix(names: Iterable[str], model_type: str) -> str:
  """``"bert."`` / ``"electra."`` / ``"roberta."`` for a headed model's checkpoint, else ``""``.

  The prefix is transformers' ``base_model_prefix`` of ``model_type`` (XLM-R's
  is ``roberta``, see `config.BASE_MODEL_PREFIXES`).
  """
  prefix = BASE_MODEL_PREFIXES.get(model_type, model_type) + "."
  return prefix if any(name.startswith(prefix) for name in names) else ""


class CheckpointReader:
  """Takes parameters out of a state dict and accounts for every tensor.

  Usage: `take` each parameter tree the model needs (encoder, pooler, head),
  then `finish` to classify the leftovers and raise on anything disallowed.
  """

  def __init__(self, state_dict: Mapping[str, np.ndarray], *, model_type: str,
               source: str):
    self._state = dict(state_dict)
    self.report = LoadReport(source=source,
                             base_prefix=detect_base_prefix(self._state, model_type))
    self._used: set[str] = set()
    self._missing: list[str] = []

  @property
  def base_prefix(self) -> str:
    return self.report.base_prefix

  def has(self, module_path: str, *, in_base_model: bool) -> bool:
    """Whether any tensor lives under ``module_path`` (e.g. ``"pooler"``)."""
    start = (self.base_prefix if in_base_model else "") + module_path + "."
    return any(name.startswith(start) for name in self._state)

  def _lookup(self, name: str) -> str | None:
    if name in self._state:
      return name
    for suffix, legacy in _LEGACY_SUFFIXES.items():
      if name.endswith(suffix) and ".LayerNorm" in name:
        candidate = name[: -len(suffix)] + legacy
        if candidate in self._state:
          return candidate
    return None

  def take(self, template: Mapping[str, Any], *, module_path: str = "",
           in_base_model: bool = True) -> dict[tuple[str, ...], np.ndarray]:
    """Reads the tensors for a parameter tree.

    Args:
      template: the parameter tree to fill (arrays or `jax.ShapeDtypeStruct`s).
      module_path: HF module path of the tree's root (``""`` for the base
        model, ``"pooler"``, ``"classifier"``).
      in_base_model: whether the module sits under the base-model prefix
        (``bert.``/``electra.``); task heads do not.

    Returns:
      ``{flax_path: float32 array}`` for every parameter found; absent ones are
      recorded as missing (see `finish`).

    Raises:
      CheckpointMismatchError: a tensor with the wrong shape (always fatal).
    """
    prefix = (self.base_prefix if in_base_model else "") + (
        module_path + "." if module_path else "")
    found = {}
    for path, spec in traverse_util.flatten_dict(dict(template)).items():
      hf_name = prefix + flax_path_to_hf_name(path)
      stored = self._lookup(hf_name)
      if stored is None:
        self._missing.append(hf_name)
        continue
      array = np.asarray(self._state[stored], dtype=np.float32)
      if path[-1] in _TRANSPOSED_LEAVES:
        array = array.T
      if tuple(array.shape) != tuple(spec.shape):
        stored_shape = tuple(self._state[stored].shape)
        raise CheckpointMismatchError(
            f"{self.report.source}: tensor {stored!r} has shape {stored_shape}, but "
            f"parameter {'/'.join(path)} needs {tuple(spec.shape)}"
            + (" (transposed)" if path[-1] in _TRANSPOSED_LEAVES else ""))
      found[path] = np.ascontiguousarray(array)
      self._used.add(stored)
    return found

  def finish(self, *, allow_missing: Sequence[str] = (),
             allow_unexpected: Sequence[str] = (),
             ignore: Mapping[str, str] | None = None) -> LoadReport:
    """Classifies unused tensors and raises on disallowed missing/unexpected ones.

    Args:
      allow_missing: fnmatch patterns of parameter names (HF naming as in the
        error message) that may be absent.
      allow_unexpected: fnmatch patterns of checkpoint names that may be left
        unused.
      ignore: extra ``{pattern: reason}`` of tensors deliberately not loaded
        (e.g. the pooler when loading the encoder alone).

    Raises:
      CheckpointMismatchError: naming every disallowed missing/unexpected tensor.
    """
    report = self.report
    base = self.base_prefix
    ignore_patterns = {f"{base}embeddings.position_ids": "non-persistent buffer",
                       **{pattern: reason for pattern, reason in (ignore or {}).items()}}
    if base:
      ignore_patterns.update(KNOWN_HEAD_PATTERNS)
    report.loaded = sorted(self._used)
    unexpected = []
    for name in sorted(set(self._state) - self._used):
      reason = next((reason for pattern, reason in ignore_patterns.items()
                     if fnmatch.fnmatchcase(name, pattern)), None)
      if reason is not None:
        report.ignored[name] = reason
      else:
        unexpected.append(name)
    bad_missing = [name for name in self._missing if not _matches_any(name, allow_missing)]
    bad_unexpected = [name for name in unexpected if not _matches_any(name, allow_unexpected)]
    if bad_missing or bad_unexpected:
      parts = [f"{report.source} does not match the model"]
      if bad_missing:
        parts.append(f"missing {len(bad_missing)} tensor(s): {_short_list(bad_missing, 20)}")
      if bad_unexpected:
        parts.append(f"unexpected {len(bad_unexpected)} tensor(s): "
                     f"{_short_list(bad_unexpected, 20)}")
      parts.append("refusing a partial load; pass allow_missing=/allow_unexpected= "
                   "(fnmatch patterns) to accept it")
      raise CheckpointMismatchError("; ".join(parts))
    report.missing = list(self._missing)
    report.unexpected = unexpected
    return report


def assemble(found: Mapping[tuple[str, ...], np.ndarray],
             template: Mapping[str, Any]) -> Params:
  """The parameter tree from ``found``; every template leaf must be present."""
  flat = traverse_util.flatten_dict(dict(template))
  absent = [("/".join(path)) for path in flat if path not in found]
  if absent:
    raise CheckpointMismatchError(f"parameters not loaded: {_short_list(absent)}")
  return traverse_util.unflatten_dict({path: found[path] for path in flat})
