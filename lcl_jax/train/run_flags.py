"""The absl flags of one training run's settings, shared by every binary.

`experiments/train.py` and the table/figure binaries (through
`lcl_jax.studies.cli`) define the same per-run flags here and build their
`TrainConfig`s with `run_config`, so a setting means the same thing everywhere.
"""
from __future__ import annotations

import pathlib
from typing import Any, Callable

from absl import flags

from lcl_jax.train import config
from lcl_jax.train.config import TrainConfig, parse_thresholds

FLAGS = flags.FLAGS
# The flags defined below (by the functions of this module) are key flags of the binary
# that calls them, so its --help lists them (not only --helpfull).
flags.disclaim_key_flags()


# The run flags that are not TrainConfig fields (process settings).
_PROCESS_FLAGS = ("compilation_cache",)
# The flags experiments/evaluate.py defines alone (`define_embed_mix_flags`).
EMBED_MIX_FIELDS = ("embed_mix", "embed_mix_weight", "embed_mix_similarity",
                    "paraphrase_file", "t5_checkpoint")


def run_fields() -> list[Any]:
  """The TrainConfig fields that are run flags (`config.setting(flag=...)`), in order."""
  return [f for f in config.settings() if f.metadata["flag"] is not None]


def flag_default(field: Any) -> Any:
  """The default of `field`'s flag, in the flag's own form (a list flag's strings; the
  --thresholds string)."""
  default = field.metadata["flag_default"]
  if field.metadata["flag"] == "list" and default is not None:
    return [str(v) for v in default]
  if field.name == "thresholds" and not isinstance(default, str):
    return ",".join(str(v) for v in default) if isinstance(default, tuple) else str(default)
  return default


def _define(field: Any, **override: Any) -> None:
  """Defines the absl flag of one TrainConfig field from its `setting` metadata."""
  meta = field.metadata
  default, help_text = override.get("default", flag_default(field)), override.get(
      "help", meta["help"])
  if meta["flag"] == "enum":
    flags.DEFINE_enum(field.name, default, list(meta["choices"]), help_text,
                      **meta["flag_options"])
  else:
    define = getattr(flags, f"DEFINE_{meta['flag']}")
    define(field.name, default, help_text, **meta["flag_options"])


def define_run_flags(*, encoder_default: str, encoder_help: str) -> None:
  """Defines the per-run flags (None: the paper's per-dataset preset / release default):
  one per TrainConfig field with a flag (`config.setting`), and --compilation_cache."""
  for field in run_fields():
    if field.name == "encoder":
      _define(field, default=encoder_default, help=encoder_help)
    elif field.name not in EMBED_MIX_FIELDS:
      _define(field)
  define_embed_mix_flags()
  flags.DEFINE_string("compilation_cache", None,
                      "JAX persistent compilation cache folder ('' disables; default "
                      "$LCL_JAX_COMPILATION_CACHE or <user cache dir>/lcl_jax/jax_cache).")


def define_embed_mix_flags() -> None:
  """Seed 004's inference-time embedding mixing (also defined by experiments/evaluate.py)."""
  by_name = {f.name: f for f in run_fields()}
  for name in EMBED_MIX_FIELDS:
    _define(by_name[name])


def _length_buckets(values: Any) -> tuple[int, ...]:
  """--length_buckets '32,64,128' -> (32, 64, 128); a clear error naming the flag."""
  items = values.split(",") if isinstance(values, str) else list(values or ())
  try:
    buckets = tuple(int(str(b).strip()) for b in items if str(b).strip())
  except ValueError:
    raise ValueError(f"--length_buckets={','.join(map(str, items))!r}: expected a "
                     "comma-separated list of integers (token lengths)") from None
  if not buckets:
    raise ValueError("--length_buckets is empty: give at least one token length")
  return buckets


def _flag_value(name: str) -> Any:
  return FLAGS[name].value


def flag_to_field(field: Any, value: Any, fields: dict[str, Any]) -> Any:
  """The TrainConfig value of `field` given its flag's `value` (`fields`: the values
  converted so far, in field order; --length_buckets is capped at --max_length)."""
  kind = field.metadata["flag"]
  if value is None:  # an unset flag without a default of its own: the field's default
    return field.default
  if field.name == "thresholds":
    return parse_thresholds(value)
  if field.name == "length_buckets":
    buckets = _length_buckets(value)
    max_length = fields["max_length"]
    return tuple(b for b in buckets if b <= max_length) or (max_length,)
  if kind == "integer":
    return int(value)
  if kind == "float":
    return float(value)
  if kind == "bool":
    return bool(value)
  return value


def run_config(*, value: Callable[[str], Any] | None = None, **overrides: Any) -> TrainConfig:
  """A TrainConfig from the run flags; `value(name)` may substitute flag values (e.g.
  --smoke settings) and `overrides` set fields directly (dataset, objective, seed, ...)."""
  value = value or _flag_value
  fields: dict[str, Any] = {}
  for field in run_fields():
    fields[field.name] = flag_to_field(field, value(field.name), fields)
  fields.update(overrides)
  return TrainConfig(**fields)


# The path fields of a run: (field, what it must be). Checked by `check_paths`.
_PATH_FIELDS = (("data_dir", "folder"), ("glove_path", "file"), ("paraphrase_file", "file"),
                ("t5_checkpoint", "folder"))


def check_paths(cfg: TrainConfig) -> None:
  """Every path flag of `cfg` that is set names an existing file or folder (issue 18:
  a bad file is refused before anything runs, naming its flag).

  Raises:
    FileNotFoundError: naming the flag and the path.
  """
  for name, kind in _PATH_FIELDS:
    value = getattr(cfg, name)
    if value is None:
      continue
    path = pathlib.Path(value).expanduser()
    ok = path.is_dir() if kind == "folder" else path.is_file()
    if not ok:
      what = "no such " + kind if not path.exists() else f"not a {kind}"
      raise FileNotFoundError(f"--{name}={value}: {what}")
