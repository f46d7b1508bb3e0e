"""The Hugging Face Hub side of a model: ``HubMixin`` (strict, safetensors-only loading, saving with a generated
card, push and download of saved directories) and the weight-file helpers behind it.

Transfers go through ``huggingface_hub`` (``hf_hub_download``, ``snapshot_download``, ``HfApi.upload_folder``);
this module only adds what DCI-CNN needs on top: strict, safetensors-first loading, errors a user can act on, and
the model card of ``dcicnn.hub.card``. It knows models only through the mixin's ``cls``/``self``: it imports no network.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from huggingface_hub import HfApi, ModelCard, PyTorchModelHubMixin, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from torch import nn

from dcicnn import __version__
from dcicnn.errors import WeightsMismatchError, WeightsNotFoundError
from dcicnn.hub import card
from dcicnn.imageio import atomic_path
from dcicnn.spec import ModelSpec

__all__ = [
    "CONFIG_FILE",
    "HUB_FILES",
    "PICKLE_FILE",
    "WEIGHTS_FILE",
    "DownloadOptions",
    "HubMixin",
    "PRETRAINED",
    "bundled_model_dir",
    "has_bundled_weights",
    "resolve_source",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PICKLE_FILE = "pytorch_model.bin"
CARD_FILE = "README.md"
HUB_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
Model = TypeVar("Model", bound="HubMixin")
#: Downloads and uploads say which library made them (the Hub's download statistics), as timm does.
LIBRARY = "dcicnn"


@dataclass(frozen=True)
class DownloadOptions:
    """How to fetch a model's files from the Hub (``huggingface_hub``'s own keywords, in one object)."""

    revision: str | None = None
    cache_dir: str | Path | None = None
    force_download: bool = False
    local_files_only: bool = False
    token: str | bool | None = None


# --------------------------------------------------------------------------------------------------------------------
# Named weights.
#: The weights shipped inside the package, by the name ``DCICNN.from_pretrained(name)`` and ``--model NAME`` take,
#: with one line on what each is; each folder holds its card (``README.md``: how it was trained and evaluated) and
#: its ``config.json``, which carries the ``Tuning`` it was measured with.
PRETRAINED: dict[str, str] = {
    "default": "v4: 3-scale U-Net, 1.05 M parameters, 0.39 MFLOP/px; told the JPEG quality and noise level",
    "v3": "the paper's plain 8-layer network, 0.23 M parameters, 0.45 MFLOP/px; told the JPEG quality and noise "
    "level; loads in spandrel (chaiNNer, ComfyUI) once exported",
}
#: Other names for the same folders.
ALIASES = {"v4": "default"}


def resolve_source(source: str | Path | None) -> str:
    """Where ``from_pretrained(source)`` loads from: an existing directory as given, a name of ``PRETRAINED`` (or
    of ``ALIASES``; ``None`` is ``"default"``) as its bundled folder, anything else as a Hub repo id (checked by
    ``check_source`` when loaded). A directory wins over a name it shares."""
    if source is None:
        return str(bundled_model_dir())
    text = str(source)
    if not Path(text).expanduser().is_dir():
        name = ALIASES.get(text, text)
        if name in PRETRAINED:
            return str(bundled_model_dir(name))
    return text


# --------------------------------------------------------------------------------------------------------------------
# Locating and reading weights.
def bundled_model_dir(name: str = "default") -> Path:
    """Directory (Hub layout) of a model shipped inside the package, by its name in ``PRETRAINED``."""
    path = Path(str(importlib.resources.files("dcicnn.pretrained").joinpath(ALIASES.get(name, name))))
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
        if not (path / CONFIG_FILE).is_file():  # before the mixin, which would log its own notice first
            raise WeightsNotFoundError(f"{source}: no {CONFIG_FILE}, so the architecture is unknown")
        return
    if path.exists():
        raise WeightsNotFoundError(f"{source}: is a file; expected a model directory or a Hub repo id")
    try:
        validate_repo_id(source)
    except HFValidationError:
        raise WeightsNotFoundError(f"{source}: no such directory, and not a valid Hub repo id") from None
    if "/" not in source:  # the Hub's models all have an owner now: a bare word is a mistyped name or folder
        names = ", ".join([*PRETRAINED, *ALIASES])
        raise WeightsNotFoundError(
            f"{source}: no such directory, and not the name of weights shipped with dcicnn ({names}); a Hub repo id "
            "is OWNER/NAME"
        )
    if source.startswith((".", "/", "~")) or os.sep in source.replace("/", "") or source.count("/") > 1:
        raise WeightsNotFoundError(f"{source}: no such directory")
    if "/" in source and Path(source.split("/")[0]).is_dir():
        # "runs/hubb" where ./runs exists is a mistyped path, not a Hub repo: say so now, not after the Hub's retries
        raise WeightsNotFoundError(
            f"{source}: no such directory (./{source.split('/')[0]} exists here; for a Hub repo of that name, run "
            "from another folder)"
        )


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
    except json.JSONDecodeError as err:
        raise WeightsMismatchError(f"{source}: {CONFIG_FILE} is not valid JSON ({_first_line(err)})") from None
    except Exception as err:
        if not _is_transport_error(err):
            raise
        raise WeightsNotFoundError(
            f"{source}: the Hub could not be reached or broke off ({_first_line(err)}); check the connection or "
            "HF_ENDPOINT, or pass local_files_only=True to use the cache"
        ) from None


def _is_transport_error(err: BaseException) -> bool:
    """A dropped connection, a refused one, a timeout, a malformed answer: ``httpx``'s ``TransportError`` (the
    HTTP client of ``huggingface_hub``; named ``httpx2`` in its newer releases)."""
    return any(
        cls.__name__ == "TransportError" and cls.__module__.split(".")[0] in ("httpx", "httpx2")
        for cls in type(err).__mro__
    )


def fetch_weights(source: str, download: DownloadOptions, *, allow_pickle: bool = False) -> Path:
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
                hf_hub_download(source, name, **asdict(download), library_name=LIBRARY, library_version=__version__)
            )
        except RemoteEntryNotFoundError:
            continue
    raise WeightsNotFoundError(f"{source}: no {' or '.join(names)} at revision {download.revision or 'main'}{hint}")


def ensure_config(source: str, download: DownloadOptions) -> None:
    """Raise the real reason a Hub repo's ``config.json`` could not be read (the mixin only logs it)."""
    if not Path(source).expanduser().is_dir():
        hf_hub_download(source, CONFIG_FILE, **asdict(download), library_name=LIBRARY, library_version=__version__)
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
# The mixin.
class HubMixin(PyTorchModelHubMixin):
    """``PyTorchModelHubMixin`` with the rules this package keeps: loading is strict by default (the stock mixin
    accepts mismatched weights silently), reads ``model.safetensors`` only unless ``allow_pickle=True``, turns Hub
    errors into one-line ``WeightsNotFoundError``/``WeightsMismatchError``; saving writes our generated card.

    For ``nn.Module`` subclasses that describe themselves with a ``spec`` (``dcicnn.spec.ModelSpec``).
    """

    @property
    def spec(self) -> ModelSpec:
        raise NotImplementedError

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments this model was built with: what ``config.json`` holds."""
        return dict(self._hub_mixin_config or {})  # type: ignore[arg-type]  # a dict for plain-argument models

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls: type[Model],
        pretrained_model_name_or_path: str | Path | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
        allow_pickle: bool = False,
    ) -> Model:
        """Load a model from a local directory, a Hub repo id, or weights shipped with the package: by name
        (``dcicnn.hub.PRETRAINED``: ``"default"``, also called ``"v4"``, and ``"v3"``), or the default with no
        argument. A directory wins over a name it shares.

        Loading is strict (every tensor must match the config) and reads only ``model.safetensors``; pass
        ``allow_pickle=True`` to accept a ``pytorch_model.bin`` (loaded with ``weights_only=True``).

        Raises:
            WeightsNotFoundError: the repo, revision, directory or weights file does not exist.
            WeightsMismatchError: ``config.json`` does not describe the stored weights.
        """
        source = resolve_source(pretrained_model_name_or_path)
        check_source(source)
        with translated_hub_errors(source, revision):
            return super().from_pretrained(
                source,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                force_download=force_download,
                map_location=str(map_location),
                strict=strict,
                allow_pickle=allow_pickle,
            )

    @classmethod
    def _from_pretrained(
        cls: type[Model],
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any] | None = None,
        map_location: str = "cpu",
        strict: bool = True,
        allow_pickle: bool = False,
        **model_kwargs: Any,
    ) -> Model:
        download = DownloadOptions(revision, cache_dir, force_download, local_files_only, token)
        if config is None:
            ensure_config(model_id, download)
        known = {k: v for k, v in (config or {}).items() if k in cls._hub_mixin_init_parameters}
        model = cls(**{**known, **model_kwargs})
        weights = fetch_weights(model_id, download, allow_pickle=allow_pickle)
        module = cast(nn.Module, model)
        load_state_dict(module, read_state_dict(weights, map_location=map_location), strict=strict, source=model_id)
        module.eval()
        return model

    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``model.safetensors`` (contiguous copies, so a channels-last model saves too)."""
        from safetensors.torch import save_file

        tensors = cast(nn.Module, self).state_dict().items()
        state = {name: tensor.detach().contiguous().cpu() for name, tensor in tensors}
        with atomic_path(Path(save_directory) / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """Render the model card from ``model_cards/`` (keywords: see ``dcicnn.hub.card.render_model_card``)."""
        parameters = sum(p.numel() for p in cast(nn.Module, self).parameters())
        return card.render_model_card(
            self.config, self.spec, parameters, self._hub_mixin_info.model_card_data, **kwargs
        )

    def save_pretrained(
        self,
        save_directory: str | Path,
        *,
        model_card_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> str | None:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card to ``save_directory``.

        ``model_card_kwargs`` go to ``dcicnn.hub.card.render_model_card`` (e.g. ``eval_results``, ``training``).
        An existing README.md is replaced, so the card always describes the weights beside it.
        """
        (Path(save_directory) / CARD_FILE).unlink(missing_ok=True)
        return super().save_pretrained(save_directory, model_card_kwargs=model_card_kwargs, **kwargs)

    # ----------------------------------------------------------------------------------------------------------------
    @classmethod
    def push_directory(
        cls,
        directory: str | Path,
        repo_id: str,
        *,
        branch: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str = "Upload DCI-CNN weights",
    ) -> str:
        """Upload a ``save_pretrained`` directory as is (after checking it loads strictly); returns the commit URL."""
        directory = Path(directory)
        model = cls.from_pretrained(directory)
        if not (directory / CARD_FILE).is_file():
            model.generate_model_card(repo_id=repo_id).save(directory / CARD_FILE)
        api = HfApi(token=token, library_name=LIBRARY, library_version=__version__)
        with translated_hub_errors(repo_id, branch):
            ModelCard.load(directory / CARD_FILE).validate()  # asks the Hub
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

    @classmethod
    def download_directory(
        cls,
        repo_id: str,
        out_dir: str | Path,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
    ) -> Path:
        """Download a model's Hub files into ``out_dir`` and check that they load; returns ``out_dir``.

        The files go to a temporary folder beside ``out_dir`` first and are moved into place only once they load,
        so weights that do not load (and the download's own ``.cache/``) never land in ``out_dir``."""
        check_source(repo_id)
        out = Path(out_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as staging:
            with translated_hub_errors(repo_id, revision):
                snapshot_download(
                    repo_id,
                    revision=revision,
                    token=token,
                    cache_dir=cache_dir,
                    local_dir=staging,
                    allow_patterns=list(HUB_FILES),
                    library_name=LIBRARY,
                    library_version=__version__,
                )
            cls.from_pretrained(staging)  # raises, and the staging folder goes, if they do not load
            out.mkdir(exist_ok=True)
            for name in HUB_FILES:
                if (Path(staging) / name).is_file():
                    os.replace(Path(staging) / name, out / name)
        return out
