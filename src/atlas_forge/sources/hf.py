"""hf: a Hugging Face dataset through `datasets`, by Hub id at a pinned revision or from a local
folder laid out as a Hub dataset repository (a README.md whose `configs:` block names the data files,
or the default layouts `data/<split>-*`, `<config>/<split>-*`).

A local folder is never read through the shared `datasets` cache: that cache keys a local folder by its
folder name (and config), not by its path or content, so a second folder called `belebele` was served
the rows cached from the first one, without a warning. A local folder is built from its own files into
a private cache made for that one read and deleted after it (`_private_cache`). The rows are those
`datasets.load_dataset` gives for the folder on a fresh cache (same rows, order, columns and types;
pyarrow's type inference and the README's `dataset_info` features included), because `datasets` itself
reads the files. A Hub id at a pinned revision keeps the shared cache: its key holds the revision.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atlas_forge.sources.base import RawRow
from atlas_forge.sources.registry import register

log = logging.getLogger(__name__)

COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


def is_local_folder(name: str) -> bool:
    """Whether `name` is a local dataset folder (read from its own files) rather than a Hub id. An
    existing directory wins, as it does in `datasets.load_dataset`."""
    return Path(name).is_dir()


@contextlib.contextmanager
def _private_cache(name: str) -> Iterator[str | None]:
    """A cache_dir for reading `name`: None (the shared cache) for a Hub id; for a local folder an
    empty directory of this read's own, deleted afterwards, so nothing cached from another folder of
    the same name can be served and nothing of this one is left for others."""
    if not is_local_folder(name):
        yield None
        return
    # TMPDIR holds the Arrow copy datasets builds of the split while it is read
    with tempfile.TemporaryDirectory(prefix="atlas_forge-hf-local-", ignore_cleanup_errors=True) as tmp:
        yield os.path.join(tmp, "datasets")


def _check_built_in(ds: Any, cache_dir: str, name: str) -> None:
    """The split must come from the private cache just built, never from anywhere else."""
    root = os.path.realpath(cache_dir) + os.sep
    for f in getattr(ds, "cache_files", None) or []:
        if not os.path.realpath(f["filename"]).startswith(root):
            raise RuntimeError(
                f"local Hugging Face dataset folder {name!r}: datasets served {f['filename']}, not a "
                f"copy built from the folder's own files under {cache_dir}"
            )


def read_hf(name: str, revision: str, split: str = "train", config: str | None = None) -> Iterator[RawRow]:
    """A Hugging Face dataset at a pinned revision; only reached when params name one.

    `config: "*"` reads every configuration the dataset declares (DarijaMMLU: one per subject), in
    the dataset's order, so an overlay needs no hand-written list. `name` may be a local dataset folder
    (a README.md with a `configs:` block and its data files), resolved by the same call as a Hub id but
    read from its own files through a private cache (see the module docstring).
    """
    import datasets  # heavy and networked: imported only for hf sources

    try:
        revision = resolve_revision(name, revision)
        with _private_cache(name) as cache_dir:
            if cache_dir is not None:
                log.info("hf source %s: a local folder, read from its own files (private cache %s)",
                         name, cache_dir)
            kwargs = {} if cache_dir is None else {"cache_dir": cache_dir}
            configs = (
                datasets.get_dataset_config_names(name, revision=revision, **kwargs)
                if config == "*"
                else [config]
            )
            for cfg in configs:
                ds = datasets.load_dataset(name, cfg, split=split, revision=revision, **kwargs)
                if cache_dir is not None:
                    _check_built_in(ds, cache_dir, name)
                where = f"hf://{name}@{revision}/{split}" + (f"/{cfg}" if cfg else "")
                for i, row in enumerate(ds, 1):
                    yield RawRow(where, i, dict(row), config=cfg)
    except (ConnectionError, OSError, ValueError) as e:
        if _hub_offline() and not Path(name).exists():
            raise RuntimeError(
                f"Hugging Face dataset {name!r} (revision {revision}, split {split}"
                f"{', config ' + str(config) if config else ''}) cannot be fetched: the Hub is offline "
                "(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set, or no network). Run on an online machine once, "
                "or point `name` at a local copy."
            ) from e
        raise


def resolve_revision(name: str, revision: str, api=None) -> str:
    """The commit a moving ref (a branch such as `main`, or a tag) of a Hub dataset points at now.

    Rows then record an exact commit (`hf://name@<sha>/...`), so a score traces back to the data it
    was computed on even where the overlay could not pin one (DarijaHellaSwag), and the log says which
    commit to pin. A full commit SHA, or a local dataset folder, is returned as it is.
    """
    if COMMIT_SHA.fullmatch(revision) or Path(name).exists():
        return revision
    from huggingface_hub import HfApi

    sha = (api or HfApi()).dataset_info(name, revision=revision).sha
    if not sha or not COMMIT_SHA.fullmatch(sha):
        raise ValueError(f"Hugging Face dataset {name!r}: revision {revision!r} gave no commit: {sha!r}")
    log.warning("Hugging Face dataset %s: revision %r is not a commit; reading commit %s (pin it: "
                "revision: %s)", name, revision, sha, sha)
    return sha


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in
               ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


@register("hf")
def _read_hf_source(cfg: Any) -> Iterator[RawRow]:
    yield from read_hf(cfg.name, cfg.revision, cfg.split, cfg.config)
