"""Hugging Face Hub helpers: weight files, clear loading errors, the model card, push and download.

Transfers go through ``huggingface_hub`` (``hf_hub_download``, ``snapshot_download``, ``HfApi.upload_folder``);
this module only adds what DCI-CNN needs on top: strict, safetensors-first loading, errors a user can act on,
and a model card rendered from the Jinja template in ``model_cards/``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from dcicnn.errors import WeightsMismatchError, WeightsNotFoundError

if TYPE_CHECKING:
    from dcicnn.model import DCICNN

__all__ = [
    "CONFIG_FILE",
    "HUB_FILES",
    "PICKLE_FILE",
    "WEIGHTS_FILE",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "bundled_model_dir",
    "download_model",
    "push_model",
    "render_model_card",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PICKLE_FILE = "pytorch_model.bin"
CARD_FILE = "README.md"
HUB_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
CARD_TEMPLATE = "dcicnn.md.jinja"
PAPER = (
    'R. Menassel, A. Gattal, F. Kerdoud, "Deblurring image compression algorithm using deep convolutional '
    'neural network", 2024'
)


# --------------------------------------------------------------------------------------------------------------------
# Locating and reading weights.
def bundled_model_dir(name: str = "default") -> Path:
    """Directory (Hub layout) of a model shipped inside the package."""
    path = Path(str(importlib.resources.files("dcicnn.pretrained").joinpath(name)))
    if not (path / WEIGHTS_FILE).is_file():
        raise WeightsNotFoundError(
            f"this version of dcicnn ships no trained '{name}' weights yet; pass a local directory or a Hub "
            "repo id to DCICNN.from_pretrained(...)"
        )
    return path


def has_bundled_weights(name: str = "default") -> bool:
    """Whether the package ships trained weights under ``name``."""
    try:
        bundled_model_dir(name)
    except WeightsNotFoundError:
        return False
    return True


def check_source(source: str) -> None:
    """Reject, with a clear message, a source that is neither an existing directory nor a valid Hub repo id."""
    path = Path(source).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise WeightsNotFoundError(f"{source}: is a file; expected a model directory or a Hub repo id")
    try:
        validate_repo_id(source)
    except HFValidationError:
        raise WeightsNotFoundError(f"{source}: no such directory, and not a valid Hub repo id") from None
    if source.startswith((".", "/", "~")) or os.sep in source.replace("/", "") or source.count("/") > 1:
        raise WeightsNotFoundError(f"{source}: no such directory")


@contextlib.contextmanager
def translated_hub_errors(source: str, revision: str | None) -> Iterator[None]:
    """Turn ``huggingface_hub`` lookup errors into one-line ``WeightsNotFoundError`` messages."""
    try:
        yield
    except RepositoryNotFoundError:
        raise WeightsNotFoundError(
            f"{source}: no such repository on the Hub (or it is private: log in or pass token=...)"
        ) from None
    except RevisionNotFoundError:
        raise WeightsNotFoundError(f"{source}: no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        raise WeightsNotFoundError(
            f"{source}: not in the local cache, and the Hub could not be reached or local_files_only=True"
        ) from None
    except EntryNotFoundError as err:
        raise WeightsNotFoundError(f"{source}: missing file ({_first_line(err)})") from None


def fetch_weights(
    source: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
    allow_pickle: bool = False,
) -> Path:
    """Path of the weights file of a local directory or Hub repo: safetensors, or a pickle only if allowed."""
    names = (WEIGHTS_FILE, PICKLE_FILE) if allow_pickle else (WEIGHTS_FILE,)
    hint = "" if allow_pickle else f" (a {PICKLE_FILE} is only read with allow_pickle=True)"
    if Path(source).expanduser().is_dir():
        for name in names:
            candidate = Path(source).expanduser() / name
            if candidate.is_file():
                return candidate
        raise WeightsNotFoundError(f"{source}: no {' or '.join(names)}{hint}")
    for name in names:
        try:
            return Path(
                hf_hub_download(
                    source,
                    name,
                    revision=revision,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    local_files_only=local_files_only,
                    token=token,
                )
            )
        except RemoteEntryNotFoundError:
            continue
    raise WeightsNotFoundError(f"{source}: no {' or '.join(names)} at revision {revision or 'main'}{hint}")


def ensure_config(source: str, **download_kwargs: Any) -> None:
    """Raise the real reason a Hub repo's ``config.json`` could not be read (the mixin only logs it)."""
    if not Path(source).expanduser().is_dir():
        hf_hub_download(source, CONFIG_FILE, **download_kwargs)
    raise WeightsNotFoundError(f"{source}: no {CONFIG_FILE}, so the architecture is unknown")


def read_state_dict(path: Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file, or a pickle with ``weights_only=True`` (never arbitrary code)."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(map_location))
        except (SafetensorError, OSError) as err:
            raise WeightsMismatchError(f"{path}: not a readable safetensors file ({_first_line(err)})") from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise WeightsMismatchError(f"{path}: not a readable weights file ({_first_line(err)})") from None


def load_state_dict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], *, strict: bool, source: str) -> None:
    """``load_state_dict`` with a message that names the source when config and weights disagree."""
    try:
        model.load_state_dict(state_dict, strict=strict)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise WeightsMismatchError(
            f"{source}: {CONFIG_FILE} does not match the stored weights: {detail[:400]}"
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------------------------------
# The model card.
def render_model_card(
    model: DCICNN,
    *,
    model_name: str | None = None,
    repo_id: str | None = None,
    eval_results: list[EvalResult] | None = None,
    training: str | None = None,
    datasets: list[str] | None = None,
    reproduce: str | None = None,
    summary: str | None = None,
) -> ModelCard:
    """Render ``model_cards/dcicnn.md.jinja`` for ``model``.

    Args:
        model_name: title of the card (and ``model-index`` name); defaults to a name built from the config.
        repo_id: the Hub id shown in the usage snippet.
        eval_results: evaluation results; they fill the ``model-index`` metadata and the evaluation table.
            Use ``dataset_config`` for the protocol name (e.g. ``jpeg-q10``) and ``metric_name`` for the column.
        training: how the weights were trained (data, degradations, schedule, time, hardware).
        datasets: Hub dataset ids or names of the training data, for the metadata.
        reproduce: shell commands that reproduce the training and the evaluation.
        summary: one paragraph under the title.
    """
    name = model_name or f"dcicnn-w{model.width}-d{model.depth}{'' if model.batch_norm else '-nobn'}"
    data = ModelCardData(**model._hub_mixin_info.model_card_data.to_dict())
    data.model_name = name
    if datasets:
        data.datasets = list(datasets)
    if eval_results:
        data.eval_results = list(eval_results)
        data.metrics = sorted({r.metric_type for r in eval_results})
    template = importlib.resources.files("dcicnn.model_cards").joinpath(CARD_TEMPLATE).read_text(encoding="utf-8")
    headers, rows = _eval_table(eval_results or [])
    return ModelCard.from_template(
        data,
        template_str=template,
        model_name=name,
        repo_id=repo_id or "path/to/model",
        summary=summary,
        training=training,
        reproduce=reproduce,
        paper=PAPER,
        config=model._hub_mixin_config or {},
        parameters=sum(p.numel() for p in model.parameters()),
        receptive_field=model.receptive_field,
        flops_per_pixel=model.flops_per_pixel,
        model=model,
        eval_headers=headers,
        eval_rows=rows,
    )


#: Model card columns of the metrics a DCI-CNN card reports, by ``EvalResult.metric_type``.
METRIC_LABELS = {"psnr": "PSNR RGB (dB)", "ssim": "SSIM", "psnr_input": "PSNR of the input (dB)"}


def protocol_result(dataset_type: str, dataset_name: str, protocol: str, metric: str, value: float) -> EvalResult:
    """One ``EvalResult`` of a metric in ``METRIC_LABELS`` on a dataset under a protocol."""
    return EvalResult(
        task_type="image-to-image",
        dataset_type=dataset_type,
        dataset_name=dataset_name,
        dataset_config=protocol,
        metric_type=metric,
        metric_name=METRIC_LABELS[metric],
        metric_value=round(float(value), 4),
    )


def eval_results_from_evaluation(
    path: str | Path, dataset_type: str, dataset_name: str | None = None, method: str = "DCI-CNN"
) -> list[EvalResult]:
    """``EvalResult`` rows (PSNR, SSIM and the input's PSNR per protocol) from a ``results.json`` of
    ``dcicnn evaluate``, for a model card."""
    data = json.loads(Path(path).read_text())
    name = dataset_name or data["dataset"]
    results = []
    for protocol, methods in data["summary"].items():
        if method not in methods:
            raise ValueError(f"{path}: no results for method {method!r} (has {sorted(methods)})")
        values = {
            "psnr": methods[method]["psnr"],
            "ssim": methods[method]["ssim"],
            "psnr_input": methods["input"]["psnr"],
        }
        # `clean` has an infinite input PSNR: not a value model-index metadata can carry
        results += [protocol_result(dataset_type, name, protocol, k, v) for k, v in values.items() if math.isfinite(v)]
    return results


def _eval_table(results: list[EvalResult]) -> tuple[list[str], list[list[str]]]:
    """One row per (dataset, protocol), one column per metric name, in the order first seen."""
    headers: list[str] = []
    table: dict[tuple[str, str], dict[str, str]] = {}
    for r in results:
        column = r.metric_name or r.metric_type
        if column not in headers:
            headers.append(column)
        value = f"{r.metric_value:.4f}" if isinstance(r.metric_value, float) else str(r.metric_value)
        table.setdefault((r.dataset_name, r.dataset_config or ""), {})[column] = value
    rows = [[ds, proto, *(cells.get(h, "") for h in headers)] for (ds, proto), cells in table.items()]
    return headers, rows


# --------------------------------------------------------------------------------------------------------------------
# Push and download of a saved model directory.
def push_model(
    directory: str | Path,
    repo_id: str,
    *,
    branch: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload DCI-CNN weights",
) -> str:
    """Upload a ``save_pretrained`` directory as is (after checking it loads strictly); returns the commit URL."""
    from dcicnn.model import DCICNN

    directory = Path(directory)
    model = DCICNN.from_pretrained(directory)
    if not (directory / CARD_FILE).is_file():
        model.generate_model_card(repo_id=repo_id).save(directory / CARD_FILE)
    ModelCard.load(directory / CARD_FILE).validate()
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if branch is not None:
        api.create_branch(repo_id, branch=branch, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=directory,
        allow_patterns=list(HUB_FILES),
        revision=branch,
        commit_message=commit_message,
    )
    return str(info)


def download_model(
    repo_id: str,
    out_dir: str | Path,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Download a model's Hub files into ``out_dir`` and check that they load; returns ``out_dir``."""
    from dcicnn.model import DCICNN

    check_source(repo_id)
    with translated_hub_errors(repo_id, revision):
        path = snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            local_dir=out_dir,
            allow_patterns=list(HUB_FILES),
        )
    DCICNN.from_pretrained(path)
    return Path(path)
