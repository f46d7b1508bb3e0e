"""Model cards: ``model_cards/dcicnn.md.jinja`` rendered for a model's config and spec, and the evaluation rows
(``EvalResult``) that fill its table and ``model-index`` metadata."""

from __future__ import annotations

import importlib.resources
import json
import math
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from dcicnn.errors import InvalidArgumentError
from dcicnn.spec import ModelSpec

__all__ = ["METRIC_LABELS", "eval_results_from_evaluation", "protocol_result", "render_model_card"]

CARD_TEMPLATE = "dcicnn.md.jinja"
PAPER = (
    'R. Menassel, A. Gattal, F. Kerdoud, "Deblurring image compression algorithm using deep convolutional '
    'neural network", 2024'
)


def render_model_card(
    config: dict[str, Any],
    spec: ModelSpec,
    parameters: int,
    card_data: ModelCardData,
    *,
    model_name: str | None = None,
    repo_id: str | None = None,
    eval_results: list[EvalResult] | None = None,
    training: str | None = None,
    datasets: list[str] | None = None,
    reproduce: str | None = None,
    summary: str | None = None,
) -> ModelCard:
    """Render ``model_cards/dcicnn.md.jinja`` for a model of ``config`` (its ``config.json``) and ``spec``.

    Args:
        parameters: the model's parameter count.
        card_data: the Hub metadata to start from (library, pipeline tag, license, tags).
        model_name: title of the card (and ``model-index`` name); defaults to a name built from the config.
        repo_id: the Hub id shown in the usage snippet.
        eval_results: evaluation results; they fill the ``model-index`` metadata and the evaluation table.
            Use ``dataset_config`` for the protocol name (e.g. ``jpeg-q10``) and ``metric_name`` for the column.
        training: how the weights were trained (data, degradations, schedule, time, hardware).
        datasets: Hub dataset ids or names of the training data, for the metadata.
        reproduce: shell commands that reproduce the training and the evaluation.
        summary: one paragraph under the title.
    """
    if config.get("arch") == "unet":
        default_name = f"dcicnn-unet-w{config.get('width')}-s{config.get('scales')}-b{config.get('blocks')}"
    else:
        bn = "" if config.get("batch_norm", True) else "-nobn"
        default_name = f"dcicnn-w{config.get('width')}-d{config.get('depth')}{bn}"
    name = model_name or default_name
    data = ModelCardData(**card_data.to_dict())
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
        config=config,
        parameters=parameters,
        receptive_field=spec.receptive_field,
        flops_per_pixel=spec.flops_per_pixel,
        model=config,  # the template reads model.depth, model.dilation, model.batch_norm, model.residual
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
    path: str | Path,
    dataset_type: str,
    dataset_name: str | None = None,
    method: str = "DCI-CNN",
    variant: str | None = None,
) -> list[EvalResult]:
    """``EvalResult`` rows (PSNR, SSIM and the input's PSNR per protocol) from a ``results.json`` of
    ``dcicnn evaluate``, for a model card. ``variant`` (e.g. the JPEG hint mode) is appended to each protocol's
    config name, ``"jpeg-q90 [file]"``: model-index keeps one result per (dataset, config), so two ways of running
    the model on one dataset need two configs."""
    data = json.loads(Path(path).read_text())
    name = dataset_name or data["dataset"]
    results = []
    for protocol, methods in data["summary"].items():
        if method not in methods:
            raise InvalidArgumentError(f"{path}: no results for method {method!r} (has {sorted(methods)})")
        values = {
            "psnr": methods[method]["psnr"],
            "ssim": methods[method]["ssim"],
            "psnr_input": methods["input"]["psnr"],
        }
        # `clean` has an infinite input PSNR: not a value model-index metadata can carry
        config = protocol if variant is None else f"{protocol} [{variant}]"
        results += [protocol_result(dataset_type, name, config, k, v) for k, v in values.items() if math.isfinite(v)]
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
