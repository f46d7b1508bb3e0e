"""The training system: RestorationModule, `dcicnn fit` end to end, configs, DDP, W&B offline, kill-and-resume."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from dcicnn import DCICNN, Degradation, DegradationDataModule, DegradationMix, RestorationModule
from dcicnn.train.module import TrainingDivergedError, _triplet, charbonnier, quantise
from tests.conftest import REPO_ROOT
from tests.helpers import RecordBatches, optimizer_digest

EXE = str(Path(sys.executable).with_name("dcicnn"))
SMOKE = str(REPO_ROOT / "configs" / "smoke.yaml")


def dcicnn(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run([EXE, *args], cwd=REPO_ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def run_dir_args(root: Path) -> list[str]:
    return [f"--trainer.default_root_dir={root}", f"--trainer.logger.init_args.save_dir={root}"]


# ----------------------------------------------------------------------------------------------------------------------
# Unit tests.
def test_module_wraps_a_network_and_checks_arguments() -> None:
    module = RestorationModule(DCICNN(width=8, depth=3), loss="l1", lr=0.01)
    assert isinstance(module.network, DCICNN) and module.hparams["network"]["width"] == 8
    rebuilt = RestorationModule(**{**module.hparams})  # how load_from_checkpoint rebuilds it
    assert rebuilt.network.width == 8 and rebuilt.network.depth == 3
    with pytest.raises(ValueError, match="loss must be one of"):
        RestorationModule(loss="huber")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr must be a positive"):
        RestorationModule(lr=0.0)
    with pytest.raises(ValueError, match="unknown protocols"):
        RestorationModule(val_protocols=["jpeg-q11"])


def test_warm_start_from_a_saved_model(tmp_path: Path) -> None:
    source = DCICNN(width=8, depth=3, batch_norm=False)
    source.save_pretrained(tmp_path / "m")
    module = RestorationModule(DCICNN(width=8, depth=3, batch_norm=False), init_from=str(tmp_path / "m"))
    assert all(
        torch.equal(a, b)
        for a, b in zip(module.network.state_dict().values(), source.state_dict().values(), strict=True)
    )
    from dcicnn import WeightsMismatchError

    with pytest.raises(WeightsMismatchError, match="does not match"):
        RestorationModule(DCICNN(width=16, depth=3, batch_norm=False), init_from=str(tmp_path / "m"))


def test_he_initialisation_keeps_a_deep_network_alive(tmp_path: Path) -> None:
    def activity(network: DCICNN) -> list[float]:
        """Standard deviation after each hidden ReLU for a random input."""
        torch.manual_seed(1)
        h = torch.nn.functional.pixel_unshuffle(torch.rand(2, 3, 48, 48), 2)
        stds = []
        for layer in network.body:
            h = layer(h)
            if isinstance(layer, torch.nn.ReLU):
                stds.append(float(h.detach().std()))
        return stds

    shape = {"width": 32, "depth": 12, "downscale": 2, "batch_norm": False}
    torch.manual_seed(0)
    plain = RestorationModule(DCICNN(**shape)).network
    torch.manual_seed(0)
    he = RestorationModule(DCICNN(**shape), weight_init="he").network
    assert activity(plain)[-1] < 0.25 * activity(plain)[0]  # PyTorch's default: the signal fades with depth
    assert activity(he)[-1] > 0.5 * activity(he)[0]  # He: it keeps its scale
    assert all(float(conv.bias.detach().abs().max()) == 0 for conv in he.body if isinstance(conv, torch.nn.Conv2d))
    source = DCICNN(width=8, depth=3, batch_norm=False)
    source.save_pretrained(tmp_path / "m")  # a warm start's weights win over any initialisation
    warm = RestorationModule(
        DCICNN(width=8, depth=3, batch_norm=False), init_from=str(tmp_path / "m"), weight_init="he"
    )
    assert all(torch.equal(a, b) for a, b in zip(warm.network.parameters(), source.parameters(), strict=True))
    with pytest.raises(ValueError, match="weight_init must be"):
        RestorationModule(weight_init="xavier")  # type: ignore[arg-type]


def test_losses_and_quantisation() -> None:
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert math.isclose(float(charbonnier(a, b)), math.sqrt(0.25 + 1e-6), rel_tol=1e-6)
    assert math.isclose(float(charbonnier(a, a)), 1e-3, rel_tol=1e-6)
    q = quantise(torch.tensor([-0.2, 0.1, 0.50196, 1.3]))
    assert torch.equal(q, torch.tensor([0.0, 26 / 255, 128 / 255, 1.0]))


def test_cosine_schedule_with_warmup() -> None:
    module = RestorationModule(DCICNN(width=4, depth=2), lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    trainer = L.Trainer(max_steps=110, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    module.trainer = trainer
    config = module.configure_optimizers()
    scheduler = config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(110):
        lrs.append(scheduler.get_last_lr()[0])
        config["optimizer"].step()
        scheduler.step()
    assert math.isclose(lrs[0], 1e-4) and math.isclose(lrs[9], 1e-3)
    assert math.isclose(lrs[10], 1e-3) and lrs[60] < lrs[30] < lrs[10]
    assert math.isclose(lrs[-1], 1e-4, rel_tol=0.01)


def test_cosine_schedule_runs_over_max_time_without_max_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.callbacks import Timer

    module = RestorationModule(DCICNN(width=4, depth=2), lr=1e-3, warmup_steps=0, min_lr_ratio=0.1)
    trainer = L.Trainer(max_time="00:00:01:40", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert trainer.max_steps == -1
    module.trainer = trainer
    config = module.configure_optimizers()
    scheduler, optimizer = config["lr_scheduler"]["scheduler"], config["optimizer"]
    lrs = {}
    for elapsed in (0.0, 25.0, 50.0, 75.0, 100.0, 130.0):  # seconds of the 100 s budget
        monkeypatch.setattr(Timer, "time_elapsed", lambda self, stage="train", t=elapsed: t)
        optimizer.step()
        scheduler.step()
        lrs[elapsed] = scheduler.get_last_lr()[0]
    assert math.isclose(lrs[0.0], 1e-3)
    assert math.isclose(lrs[50.0], 1e-4 + 0.5 * 9e-4)  # half-way down the cosine
    assert lrs[75.0] < lrs[50.0] < lrs[25.0] < lrs[0.0]
    assert math.isclose(lrs[100.0], 1e-4) and math.isclose(lrs[130.0], 1e-4)  # the floor, also past the limit
    # neither a step nor a time limit: a constant rate after warm-up
    module.trainer = L.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    config = module.configure_optimizers()
    config["optimizer"].step()
    config["lr_scheduler"]["scheduler"].step()
    assert math.isclose(config["lr_scheduler"]["scheduler"].get_last_lr()[0], 1e-3)


def test_test_stage_logs_under_test(tmp_path: Path) -> None:
    assets = [str(REPO_ROOT / "dcicnn" / "assets")]
    protocols = ["jpeg-q10", "clean"]
    dm = DegradationDataModule(train_dirs=assets, val_dirs=assets, val_crop=32, num_workers=0, val_protocols=protocols)
    module = RestorationModule(DCICNN(width=4, depth=2), val_protocols=protocols, log_images=0)
    trainer = L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.test(module, datamodule=dm)
    keys = set(trainer.callback_metrics)
    assert {"test/jpeg-q10/psnr", "test/clean/psnr", "test/psnr"} <= keys
    assert not any(k.startswith(("val/", "best/")) for k in keys), keys
    assert module.best == {}  # testing never moves the best validation scores
    # The aggregate that picks checkpoints is the damaged protocols' mean: clean's unbounded PSNR stays out of it.
    metrics = trainer.callback_metrics
    assert float(metrics["test/psnr"]) == pytest.approx(float(metrics["test/jpeg-q10/psnr"]))
    assert float(metrics["test/clean/psnr"]) != pytest.approx(float(metrics["test/jpeg-q10/psnr"]))
    only_clean = DegradationDataModule(val_dirs=assets, val_crop=32, num_workers=0, val_protocols=["clean"])
    module = RestorationModule(DCICNN(width=4, depth=2), val_protocols=["clean"], log_images=0)
    trainer.test(module, datamodule=only_clean)  # nothing damaged: the clean score is all there is
    assert float(trainer.callback_metrics["test/psnr"]) == float(trainer.callback_metrics["test/clean/psnr"])


def test_the_data_owns_the_validation_protocols(tmp_path: Path) -> None:
    assets = [str(REPO_ROOT / "dcicnn" / "assets")]
    dm = DegradationDataModule(val_dirs=assets, val_crop=32, num_workers=0, val_protocols=["noise-s5", "jpeg-q95"])
    trainer_args = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    module = RestorationModule(DCICNN(width=4, depth=2), log_images=0)  # no protocols of its own
    L.Trainer(**trainer_args, enable_model_summary=False, default_root_dir=tmp_path).validate(module, datamodule=dm)
    assert module.val_protocols == ["noise-s5", "jpeg-q95"] and set(module.val_metrics) == {"noise-s5", "jpeg-q95"}
    conflicting = RestorationModule(DCICNN(width=4, depth=2), val_protocols=["jpeg-q10"], log_images=0)
    with pytest.raises(ValueError, match=r"differ from data.val_protocols .*leave model.val_protocols unset"):
        L.Trainer(**trainer_args, enable_model_summary=False, default_root_dir=tmp_path).validate(
            conflicting, datamodule=dm
        )


def test_triplet_is_uint8() -> None:
    image = _triplet(torch.rand(3, 8, 10), torch.rand(3, 8, 10), torch.rand(3, 8, 10))
    assert image.dtype == np.uint8 and image.shape == (8, 38, 3) and image.max() > 128


def flat_folder(root: Path, colours: list[int]) -> Path:
    root.mkdir(parents=True)
    for i, colour in enumerate(colours):
        Image.fromarray(np.full((24, 24, 3), colour, np.uint8)).save(root / f"{i:02d}.png")
    return root


def textured_folder(root: Path, count: int) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        # from flat to busy: per-image PSNRs differ widely, so a per-rank mean differs from the global one
        base = rng.integers(0, 256, size=(8, 8, 3)) if i % 2 else np.full((8, 8, 3), 40 + 50 * i)
        Image.fromarray(np.kron(base, np.ones((4, 4, 1))).astype(np.uint8)).save(root / f"{i:02d}.png")
    return root


@pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning")
def test_nan_loss_stops_training_before_writing_a_broken_model(tmp_path: Path) -> None:
    class Poisoned(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            bad = torch.full((3, 8, 8), float("nan")) if i >= 4 else torch.rand(3, 8, 8)
            return bad, torch.rand(3, 8, 8)

    module = RestorationModule(DCICNN(width=4, depth=2), log_images=0)
    before = {k: v.clone() for k, v in module.network.state_dict().items()}
    trainer = L.Trainer(
        max_steps=4,
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        limit_val_batches=0,
        enable_model_summary=False,
    )
    loader = torch.utils.data.DataLoader(Poisoned(), batch_size=4)
    with pytest.raises(TrainingDivergedError, match="loss became nan at step 1"):
        trainer.fit(module, train_dataloaders=loader)
    after = module.network.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the good first step was applied


# ----------------------------------------------------------------------------------------------------------------------
# End to end through the console script.
@pytest.mark.slow
def test_fit_smoke_end_to_end(tmp_path: Path) -> None:
    result = dcicnn("fit", "--config", SMOKE, *run_dir_args(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    (version,) = (tmp_path / "lightning_logs").iterdir()
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("best-step=") for name in checkpoints)
    hub = tmp_path / "hub"
    model = DCICNN.from_pretrained(hub)
    assert (model.width, model.depth) == (16, 4)
    best = next((tmp_path / "checkpoints").glob("best-step=*.ckpt"))
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    exported = load_file(str(hub / "model.safetensors"))
    assert all(torch.equal(exported[k], state[f"network.{k}"]) for k in exported)  # the export is the best model
    card = (hub / "README.md").read_text()
    assert "| bundled sample | jpeg-q10 |" in card and "model-index" in card
    metrics = (version / "metrics.csv").read_text().splitlines()[0].split(",")
    throughput = json.loads((version / "throughput.json").read_text())
    assert throughput["steps_measured"] > 0 and throughput["patches_per_s"] > 0
    assert 0 <= throughput["data_wait_share"] < 1 and throughput["gpu_util_mean"] is None
    for key in (
        "train/loss",
        "val/jpeg-q10/psnr",
        "val/noise-s25/ssim",
        "val/noise-s25/mse",
        "val/jpeg-q10/psnr_input",
        "best/val/jpeg-q10/psnr",
        "val/psnr",
    ):
        assert key in metrics


@pytest.mark.slow
def test_weight_ema_is_what_is_validated_checkpointed_and_exported(tmp_path: Path) -> None:
    ema = yaml.safe_load((REPO_ROOT / "configs" / "ema.yaml").read_text())
    assert ema["trainer"]["callbacks"][0]["class_path"].endswith("EMAWeightAveraging")
    ema["trainer"]["callbacks"][0]["init_args"] = {"decay": 0.5, "update_starting_at_step": 0}  # visible in 6 steps
    config = tmp_path / "ema.yaml"
    config.write_text(yaml.safe_dump(ema))
    result = dcicnn("fit", "--config", SMOKE, "--config", str(config), *run_dir_args(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    best = next((tmp_path / "checkpoints").glob("best-step=*.ckpt"))
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    averaged, trained = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert any(not torch.equal(averaged[k], trained[k]) for k in averaged if k.startswith("network."))
    exported = load_file(str(tmp_path / "hub" / "model.safetensors"))
    assert all(torch.equal(exported[k], averaged[f"network.{k}"]) for k in exported)  # the scored, averaged weights


@pytest.mark.slow
def test_everything_a_run_writes_is_under_its_root(tmp_path: Path) -> None:
    root = tmp_path / "experiment"
    result = dcicnn("fit", "--config", SMOKE, f"--trainer.default_root_dir={root}", "--trainer.max_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr  # a clean console: each message once, no notices about other projects
    assert console.count("Seed set to 0") == 1 and "litlogger" not in console and "LeafSpec" not in console, console
    (version,) = (root / "lightning_logs").iterdir()  # the CSV logger followed the root ...
    assert (version / "metrics.csv").is_file() and (version / "config.yaml").is_file()  # ... and the saved config
    assert (root / "checkpoints" / "last.ckpt").is_file() and (root / "hub" / "model.safetensors").is_file()
    elsewhere = tmp_path / "logs"  # a logger the user points elsewhere stays there
    result = dcicnn(
        "fit",
        "--config",
        SMOKE,
        f"--trainer.default_root_dir={root}",
        "--trainer.max_steps=2",
        f"--trainer.logger.init_args.save_dir={elsewhere}",
    )
    assert result.returncode == 0 and (elsewhere / "lightning_logs").is_dir(), result.stderr[-3000:]


def print_config(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    """`dcicnn fit ... --print_config` in this process (LightningCLI prints, then exits 0)."""
    from dcicnn_cli.train import main

    with pytest.raises(SystemExit) as stop, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["dcicnn"])  # LightningCLI warns when sys.argv also holds arguments
        main(["fit", *args, "--print_config"])
    assert stop.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.slow
def test_predict_writes_restored_images(tmp_path: Path) -> None:
    assert dcicnn("fit", "--config", SMOKE, *run_dir_args(tmp_path)).returncode == 0
    result = dcicnn(
        "predict",
        "--config",
        SMOKE,
        *run_dir_args(tmp_path),
        "--ckpt_path=last",
        f"--predict_writer.output_dir={tmp_path / 'out'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["jpeg-q10/sample.png", "noise-s25/sample.png"]
    with Image.open(tmp_path / "out" / "jpeg-q10" / "sample.png") as image:
        assert image.size == (64, 64) and image.mode == "RGB"


@pytest.mark.slow
def test_print_config_through_the_console_script() -> None:
    result = dcicnn("fit", "--config", SMOKE, "--config", "configs/wandb.yaml", "--model.lr", "0.01", "--print_config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["model"]["lr"] == 0.01 and config["model"]["network"]["init_args"]["width"] == 16


def test_configs_compose(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    config = print_config(capsys, "--config", SMOKE, "--config", "configs/wandb.yaml", "--model.lr", "0.01")
    assert config["model"]["lr"] == 0.01 and config["model"]["network"]["init_args"]["width"] == 16
    assert config["trainer"]["logger"]["class_path"] == "dcicnn.train.loggers.WandbLogger"
    wandb_args = config["trainer"]["logger"]["init_args"]  # dict_kwargs in the YAML reach wandb.init's arguments
    assert (wandb_args["group"], wandb_args["job_type"], wandb_args["tags"]) == (
        "default",
        "train",
        ["dcicnn", "blind"],
    )
    for name in ("paper.yaml", "default.yaml", "ddp.yaml", "wandb.yaml"):
        print_config(capsys, "--config", SMOKE, "--config", f"configs/{name}")
    paper = print_config(capsys, "--config", "configs/paper.yaml")
    assert paper["model"]["lr"] == 0.01 and paper["model"]["loss"] == "mse"
    assert paper["model"]["schedule"] == "constant"
    assert paper["data"]["degradation"]["noise_levels"] == [5.0, 10.0, 15.0, 20.0]
    assert paper["data"]["degradation"]["resize"] == 64
    assert paper["model"]["network"]["init_args"]["residual"] is False
    blind = print_config(capsys, "--config", "configs/default.yaml", "--config", "configs/blind.yaml")
    assert blind["model"]["network"]["init_args"]["dilation"] is None
    assert blind["model"]["network"]["init_args"]["batch_norm"] is False
    mix = blind["data"]["degradation"]
    assert len(mix["components"]) == len(mix["weights"]) == 4 and mix["components"][0]["noise_prob"] == 1.0
    gpu = print_config(
        capsys,
        "--config",
        "configs/default.yaml",
        "--config",
        "configs/blind.yaml",
        "--config",
        "configs/blind-gpu.yaml",
        "--config",
        "configs/gpu.yaml",
    )
    assert gpu["trainer"]["max_steps"] == -1 and gpu["trainer"]["max_time"] and gpu["data"]["cache_images"]
    mix = gpu["data"]["degradation"]
    untouched = mix["components"][0]
    assert untouched["blur_prob"] == untouched["noise_prob"] == untouched["jpeg_prob"] == 0.0
    assert len(mix["components"]) == len(mix["weights"]) and math.isclose(sum(mix["weights"]), 1.0)
    assert {"clean", "jpeg-q90"} <= set(gpu["data"]["val_protocols"])
    v3 = print_config(capsys, "--config", "configs/default.yaml", "--config", "configs/v3.yaml")
    assert v3["model"]["network"]["init_args"]["conditions"] == ["jpeg", "noise"]
    assert v3["data"]["noise_hint"] == "calibrated" and {"clean", "jpeg-q95"} <= set(v3["data"]["val_protocols"])
    assert math.isclose(sum(v3["data"]["degradation"]["weights"]), 1.0)
    wide = print_config(
        capsys, "--config", "configs/default.yaml", "--config", "configs/v3.yaml", "--config", "configs/v3-wide.yaml"
    )
    network = wide["model"]["network"]["init_args"]
    assert (network["downscale"], network["width"], network["depth"]) == (2, 96, 12)
    assert wide["model"]["init_from"] is None and wide["model"]["weight_init"] == "he"
    deep = print_config(
        capsys, "--config", "configs/default.yaml", "--config", "configs/v3.yaml", "--config", "configs/v3-deep.yaml"
    )
    network = deep["model"]["network"]["init_args"]
    assert (network["depth"], network["width"], network["batch_norm"], network["downscale"]) == (17, 64, True, 1)
    assert deep["model"]["init_from"] is None and network["conditions"] == ["jpeg", "noise"]
    ema = print_config(
        capsys, "--config", "configs/default.yaml", "--config", "configs/v3.yaml", "--config", "configs/ema.yaml"
    )
    assert ema["trainer"]["callbacks"][0]["init_args"]["decay"] == 0.999

    ddp = print_config(capsys, "--config", "configs/default.yaml", "--config", "configs/ddp.yaml")
    assert ddp["trainer"]["strategy"] == "ddp" and ddp["trainer"]["sync_batchnorm"] is True


# LightningCLI 2.6 registers its checkpoint instantiator through an API jsonargparse 4.53 deprecates.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:lightning.pytorch.cli")
def test_blind_recipe_builds_a_batchnorm_free_net_and_a_degradation_mixture(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dcicnn_cli.train import build

    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr(sys, "argv", ["dcicnn"])
    args = [
        "--config",
        "configs/default.yaml",
        "--config",
        "configs/blind.yaml",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    cli = build(args, run=False)
    assert cli.model.network.receptive_field == 17 and not cli.model.network.batch_norm
    mix = cli.datamodule.degradation
    assert isinstance(mix, DegradationMix) and mix.weights == [0.3, 0.25, 0.2, 0.25]
    assert all(isinstance(c, Degradation) for c in mix.components)


def test_sweep_parameters_are_valid_overrides(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    sweep = yaml.safe_load((REPO_ROOT / "configs" / "sweep.yaml").read_text())
    assert sweep["metric"] == {"name": "val/psnr", "goal": "maximize"}
    overrides = []
    for key, spec in sweep["parameters"].items():
        value = spec["values"][0] if "values" in spec else spec["min"]
        overrides.append(f"--{key}={value}")
    command = [arg for arg in sweep["command"] if not arg.startswith("${")]
    assert command[:2] == ["dcicnn", "fit"]
    config = print_config(capsys, *command[2:], *overrides)
    assert config["model"]["lr"] == 0.0001 and config["model"]["loss"] == "mse"
    assert config["model"]["network"]["init_args"]["width"] == 32
    assert config["model"]["network"]["init_args"]["depth"] == 6


@pytest.mark.slow
def test_user_errors_in_fit_are_one_line(tmp_path: Path) -> None:
    result = dcicnn("fit", "--config", SMOKE, "--data.train_dirs=[/no/such/folder]", *run_dir_args(tmp_path))
    assert result.returncode == 1 and "no such image folder" in result.stderr and "Traceback" not in result.stderr
    diverged = dcicnn("fit", "--config", SMOKE, "--model.lr=1e30", "--model.schedule=constant", *run_dir_args(tmp_path))
    assert diverged.returncode == 1, diverged.stderr[-2000:]
    assert "training loss became" in diverged.stderr and "Traceback" not in diverged.stderr


@pytest.mark.slow
def test_wandb_runs_offline_without_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update({"HOME": str(tmp_path), "NETRC": str(tmp_path / "none"), "PYTHONPATH": str(REPO_ROOT)})
    result = subprocess.run(
        [EXE, "fit", "--config", SMOKE, "--config", "configs/wandb.yaml", *run_dir_args(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "logging offline" in result.stderr
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    images = list((run / "files" / "media" / "images").rglob("*.png"))
    assert images, "no sample images in the W&B run"
    with Image.open(images[0]) as image:
        assert image.mode == "RGB" and np.asarray(image).max() > 50  # uint8 content, not a black float image
    # wandb 0.31 keeps config, summary and run metadata in the binary run log until `wandb sync`.
    (log,) = run.glob("run-*.wandb")
    data = log.read_bytes()
    for key in (
        b"flops_per_pixel",
        b"parameters",
        b"receptive_field",
        b"val_protocols",
        b"min_lr_ratio",
        b"data.patch_size",  # the whole merged config, flattened, not only the module's hyper-parameters
        b"trainer.max_steps",
        b"model.network.init_args.width",
        b"best/val/jpeg-q10/psnr",
        b"val/noise-s25/ssim",
        b"train/loss",
        b"blind",
        b"default",
    ):
        assert key in data, key


@pytest.mark.slow
def test_kill_and_resume_continues_from_the_last_checkpoint(tmp_path: Path) -> None:
    args = [
        "fit",
        "--config",
        SMOKE,
        *run_dir_args(tmp_path),
        "--trainer.max_steps=100000",
        "--trainer.limit_val_batches=0",
        "--resume_checkpoint.every_n_train_steps=3",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [EXE, *args], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    last = tmp_path / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if last.exists():
                try:
                    if torch.load(last, map_location="cpu", weights_only=False)["global_step"] >= 9:
                        break
                except Exception:  # noqa: BLE001 - a checkpoint being written can be read half-way
                    pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    step = checkpoint["global_step"]
    assert step >= 9 and step % 3 == 0
    # the loggers are flushed with every checkpoint: the killed run kept its metrics up to the checkpoint
    metrics = tmp_path / "lightning_logs" / "version_0" / "metrics.csv"
    logged = [int(row["step"]) for row in csv.DictReader(metrics.read_text().splitlines()) if row.get("train/loss")]
    assert logged and max(logged) >= step - 3, (logged, step)

    record = tmp_path / "start.json"
    resumed = dcicnn(
        *args[:-3],
        "--trainer.limit_val_batches=0",
        "--resume_checkpoint.every_n_train_steps=3",
        f"--trainer.max_steps={step + 2}",
        "--ckpt_path=last",
        "--trainer.callbacks+=tests.helpers.RecordStart",
        f"--trainer.callbacks.path={record}",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    start = json.loads(record.read_text())
    assert start["global_step"] == step

    assert start["optimizer"] == optimizer_digest(checkpoint["optimizer_states"][0])
    assert checkpoint["optimizer_states"][0]["state"], "the checkpoint holds Adam's moments"
    final = torch.load(last, map_location="cpu", weights_only=False)
    assert final["global_step"] == step + 2
    assert (tmp_path / "lightning_logs" / "version_1").is_dir()  # the resumed run logs beside the first


# ----------------------------------------------------------------------------------------------------------------------
# DDP on CPU (ddp_spawn inside pytest: `strategy="ddp"` would re-launch the pytest command itself).
def ddp_datamodule(train: Path, val: Path, protocols: list[str]) -> DegradationDataModule:
    """Tiny training and validation sets for the two-process CPU DDP tests."""
    return DegradationDataModule(
        train_dirs=[str(train)],
        val_dirs=[str(val)],
        patch_size=8,
        batch_size=2,
        val_batch_size=1,
        num_workers=0,
        patches_per_image=1,
        val_crop=32,
        val_protocols=protocols,
    )


def ddp_fit(module: RestorationModule, dm: DegradationDataModule, root: Path, **trainer_args: Any) -> L.Trainer:
    """Fit on two CPU processes (ddp_spawn) without loggers or checkpoints; returns the trainer."""
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **trainer_args,
    )
    trainer.fit(module, datamodule=dm)
    return trainer


def single_process_psnrs(module: RestorationModule, dm: DegradationDataModule) -> list[tuple[int, float]]:
    """(protocol index, PSNR) of every validation item, restored by ``module`` in this one process."""
    module.eval()
    dm.setup("validate")
    scores = []
    with torch.no_grad():
        for group in (group for batch in dm.val_dataloader() for group in batch):
            restored = quantise(module.network(group.degraded))
            mse = torch.mean((restored - group.clean) ** 2)
            scores.append((int(group.protocol[0]), float(10 * torch.log10(1.0 / mse))))
    return scores


@pytest.mark.slow
def test_ddp_ranks_see_distinct_samples_and_metrics_are_synced(tmp_path: Path) -> None:
    train = flat_folder(tmp_path / "train", [10 * i + 5 for i in range(8)])
    val = textured_folder(tmp_path / "val", 4)
    record = tmp_path / "record"
    record.mkdir()

    L.seed_everything(0)
    module = RestorationModule(
        DCICNN(width=8, depth=3, batch_norm=False), val_protocols=["noise-s25"], log_images=0, channels_last=False
    )
    trainer = ddp_fit(
        module,
        ddp_datamodule(train, val, ["noise-s25"]),
        tmp_path,
        max_steps=2,
        num_sanity_val_steps=0,
        callbacks=[RecordBatches(str(record))],
    )
    seen = [[int(line) for line in (record / f"rank{r}.txt").read_text().split()] for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 4
    assert not set(seen[0]) & set(seen[1])  # each rank its own shard
    assert sorted(seen[0] + seen[1]) == [10 * i + 5 for i in range(8)]  # together: the whole epoch, once
    logged = float(trainer.callback_metrics["val/noise-s25/psnr"])

    # The same weights, one process: per-image PSNRs, their mean, and what rank 0 alone would have reported.
    per_image = [psnr for _, psnr in single_process_psnrs(module, ddp_datamodule(train, val, ["noise-s25"]))]
    rank0_alone = float(np.mean(per_image[0::2]))  # DistributedSampler gives rank 0 the items 0 and 2
    assert abs(logged - float(np.mean(per_image))) < 1e-3
    assert abs(rank0_alone - float(np.mean(per_image))) > 0.1  # so the check above could tell them apart


@pytest.mark.slow
def test_ddp_with_fewer_validation_items_than_ranks_per_protocol(tmp_path: Path) -> None:
    """One validation image under two protocols on two ranks: each rank holds one protocol only, yet every rank must
    take part in every metric's sync (before the fix, gloo aborted: 'Received data size doesn't match')."""
    train = flat_folder(tmp_path / "train", [20, 120, 220, 60])
    val = textured_folder(tmp_path / "val", 1)
    protocols = ["jpeg-q10", "noise-s25"]

    L.seed_everything(0)
    module = RestorationModule(DCICNN(width=8, depth=3, batch_norm=False), log_images=0, channels_last=False)
    trainer = ddp_fit(module, ddp_datamodule(train, val, protocols), tmp_path, max_steps=1)
    logged = {p: float(trainer.callback_metrics[f"val/{p}/psnr"]) for p in protocols}

    # the same weights in one process: the synced value is that of the one image, whichever rank held it
    for index, expected in single_process_psnrs(module, ddp_datamodule(train, val, protocols)):
        assert abs(logged[protocols[index]] - expected) < 1e-3


@pytest.mark.slow
def test_the_smoke_recipe_on_two_ddp_processes_from_the_command_line(tmp_path: Path) -> None:
    """The new-user report's command: smoke validates 1 image x 2 protocols, so each rank holds one protocol."""
    result = dcicnn(
        "fit",
        "--config",
        SMOKE,
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        *run_dir_args(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (version,) = (tmp_path / "lightning_logs").iterdir()
    header = (version / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/jpeg-q10/psnr", "val/noise-s25/psnr", "val/psnr"} <= set(header)
    assert json.loads((version / "throughput.json").read_text())["world_size"] == 2


def test_our_wandb_logger_does_not_pass_the_deprecated_anonymous_setting(tmp_path: Path) -> None:
    from dcicnn.train.loggers import WandbLogger

    assert "anonymous" not in WandbLogger(save_dir=str(tmp_path), offline=True)._wandb_init
    assert WandbLogger(save_dir=str(tmp_path), offline=True, anonymous=True)._wandb_init["anonymous"] == "allow"
