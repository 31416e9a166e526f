"""THE FBNet search loop (NNI's FBNetTrainer schedule, in Paddle dygraph).

  for epoch in range(start, epochs):
      weight pass on the train part (angle-weighted PFLD loss, Gumbel-softmax mixing at temperature T)
      if epoch >= warmup_epochs:
          architecture pass on the HELD-OUT part of the train list (plain L2 loss combined with the
          expected latency, see `latency_loss`; AdamW on alpha only); then T *= anneal_rate
      test NME (softmax(alpha / T) mixing, no noise), expected latency, choice probabilities, the
      derived subnet (argmax, repaired to meet the Constraint of Search.max_latency) and its LUT price
      checkpoint (one file, atomic) -> history line (kind "epoch") -> VisualDL
  derive: subnet.yml + subnet_init.pdparams (the supernet's weights of the chosen blocks), a "derived"
  history line, choice_probabilities.png

The test list is used for NME only; NNI's example trained the architecture on it. Each epoch draws its
data order, augmentations and Gumbel noise from (seed, epoch), so a resumed run repeats no finished epoch
and redoes an interrupted one from its start.
"""

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional

import paddle

from ppnas import parallel
from ppnas.fbnet.derive import (
    STRUCTURE_FILE,
    check_bound,
    chosen_names,
    derive_choices,
    structure_dict,
    subnet_from_supernet,
    write_structure,
)
from ppnas.fbnet.lut import LOSS_FLOPS_SCALE, US_PER_MS, LookupTable
from ppnas.fbnet.settings import FBNetConfig
from ppnas.fbnet.supernet import FBNetSupernet
from ppnas.fbnet.train import CHECKPOINT_SUFFIX, load_checkpoint, record_once, save_checkpoint, train_pass
from ppnas.history import DerivedRecord, EpochRecord, History
from ppnas.observers import ScalarLog
from ppnas.report.figures.probabilities import plot_choice_probabilities
from ppnas.storage import refuse_existing
from ppnas.tasks.landmarks import LandmarkData, evaluate_nme, pfld_loss
from ppnas.units import format_count, format_ms

SUBNET_WEIGHTS = "subnet_init.pdparams"
PROBABILITIES_PNG = "choice_probabilities.png"
CHECKPOINT = "search" + CHECKPOINT_SUFFIX
# below these the loss term is held (no gradient): log(lat) < 0 would make log(lat)^beta NaN, and
# lat^beta has an infinite slope at 0. Latency units (us, kFLOPs) keep real subnets far above them.
MUL_FLOOR, ADD_FLOOR = math.e, 1.0

BatchLoss = Callable[[paddle.Tensor, paddle.Tensor, paddle.Tensor], paddle.Tensor]


def latency_loss(
    task_loss: paddle.Tensor, latency: paddle.Tensor, mode: str, alpha: float, beta: float
) -> paddle.Tensor:
    """FBNet's hardware-aware loss: `mul`: task * alpha * log(lat)^beta; `add`: task + alpha * lat^beta."""
    if mode == "mul":
        return task_loss * alpha * paddle.pow(paddle.log(paddle.clip(latency, min=MUL_FLOOR)), beta)
    return task_loss + alpha * paddle.pow(paddle.clip(latency, min=ADD_FLOOR), beta)


@dataclass
class SearchOutcome:
    choices: List[str]
    structure_path: str
    weights_path: str
    records: List[Dict[str, Any]]
    png: Optional[str]


@dataclass
class SearchState:
    """What the loop carries from epoch to epoch: the supernet, its two optimizers, the temperature."""

    model: FBNetSupernet
    wrapped: paddle.nn.Layer  # the model, under paddle.distributed.launch in paddle.DataParallel
    weight_opt: paddle.optimizer.Optimizer
    arch_opt: paddle.optimizer.Optimizer
    temperature: float
    start: int = 0  # epochs already done


def run_search(
    cfg: FBNetConfig,
    lut: LookupTable,
    data: LandmarkData,
    resume: bool = False,
    quiet: bool = False,
    vdl_dir: Optional[str] = None,
) -> SearchOutcome:
    """Search (or resume) in cfg.save_dir; see the module docstring."""
    check_bound(lut, cfg.constraint)
    ckpt_path = os.path.join(cfg.save_dir, CHECKPOINT)
    if not resume:
        refuse_existing(cfg.save_dir, "a search", os.path.isfile(ckpt_path))
    history = History.in_dir(cfg.save_dir)
    # fresh parameter and optimizer-accumulator names in every run: a checkpoint's optimizer state loads by name
    with paddle.utils.unique_name.guard():
        state = _start(cfg, lut, ckpt_path if resume else None, history)
        losses = _losses(state, cfg)
        scalars = ScalarLog(vdl_dir, "fbnet_search") if vdl_dir and parallel.is_main() else None
        for epoch in range(state.start, int(cfg.search["epochs"])):
            record = _epoch(cfg, lut, data, state, losses, epoch, quiet)
            save_checkpoint(ckpt_path, _checkpoint(state, epoch + 1, record))
            record_once(history, record)
            if scalars is not None:
                scalars.log(epoch + 1, _scalars(record, cfg))
            _print_epoch(record, cfg, quiet)
        if scalars is not None:
            scalars.close()
        return derive(cfg, lut, state.model, history)


def _start(cfg: FBNetConfig, lut: LookupTable, checkpoint: Optional[str], history: History) -> SearchState:
    """The supernet and optimizers, fresh (seeded) or restored from the checkpoint of a killed run."""
    s = cfg.search
    paddle.seed(cfg.seed)
    model = FBNetSupernet(cfg.spec, lut.vectors())
    state = SearchState(
        model=model,
        wrapped=parallel.wrap(model),
        weight_opt=paddle.optimizer.Adam(
            learning_rate=float(s["lr"]), parameters=model.weight_parameters(), weight_decay=float(s["weight_decay"])
        ),
        arch_opt=paddle.optimizer.AdamW(
            learning_rate=float(s["nas_lr"]),
            parameters=model.arch_parameters(),
            weight_decay=float(s["nas_weight_decay"]),
        ),
        temperature=float(s["init_temperature"]),
    )
    saved = load_checkpoint(checkpoint) if checkpoint else None
    if saved is not None:
        model.set_state_dict(saved["model"])
        state.weight_opt.set_state_dict(saved["weight_opt"])
        state.arch_opt.set_state_dict(saved["arch_opt"])
        state.start, state.temperature = int(saved["epoch"]), float(saved["temperature"])
        record_once(history, saved["record"])  # a kill between checkpoint and line: the line now
    return state


def _losses(state: SearchState, cfg: FBNetConfig) -> Dict[str, BatchLoss]:
    """The weight pass's loss (angle-weighted PFLD) and the architecture pass's (L2 with the latency term)."""
    wrapped, s = state.wrapped, cfg.search

    def weights(images: paddle.Tensor, landmarks_gt: paddle.Tensor, angles_gt: paddle.Tensor) -> paddle.Tensor:
        landmarks, angles, _ = wrapped(images, state.temperature, True)
        return pfld_loss(landmarks, angles, landmarks_gt, angles_gt)[0]

    def architecture(images: paddle.Tensor, landmarks_gt: paddle.Tensor, angles_gt: paddle.Tensor) -> paddle.Tensor:
        landmarks, angles, latency = wrapped(images, state.temperature, True)
        task = pfld_loss(landmarks, angles, landmarks_gt, angles_gt)[1]
        return latency_loss(task, latency, s["mode"], float(s["alpha"]), float(s["beta"]))

    return {"weights": weights, "architecture": architecture}


def _epoch(
    cfg: FBNetConfig,
    lut: LookupTable,
    data: LandmarkData,
    state: SearchState,
    losses: Dict[str, BatchLoss],
    epoch: int,
    quiet: bool,
) -> Dict[str, Any]:
    """One weight pass, one architecture pass after warm-up, then the epoch's record."""
    started = time.time()
    paddle.seed(cfg.seed + epoch)
    searching = epoch >= int(cfg.search["warmup_epochs"])
    model = state.model
    model.train()
    train = data.loader(data.train, True, epoch)
    w_loss = train_pass(train, losses["weights"], state.weight_opt, model, f"epoch {epoch + 1} weights", quiet)
    a_loss = None
    if searching:
        held = data.loader(data.holdout, True, epoch)
        desc = f"epoch {epoch + 1} architecture"
        a_loss = train_pass(held, losses["architecture"], state.arch_opt, model, desc, quiet)
        state.temperature *= float(cfg.search["anneal_rate"])
    return _epoch_record(cfg, lut, data, state, epoch, "search" if searching else "warmup", w_loss, a_loss, started)


def _epoch_record(
    cfg: FBNetConfig,
    lut: LookupTable,
    data: LandmarkData,
    state: SearchState,
    epoch: int,
    phase: str,
    weight_loss: float,
    arch_loss: Optional[float],
    started: float,
) -> Dict[str, Any]:
    """Test NME, expected latency, probabilities and the subnet the search would derive now."""
    model, temperature = state.model, state.temperature
    model.eval()
    nme = evaluate_nme(lambda x, t=temperature: model(x, t, False)[0], data.loader(data.test, False))
    probabilities = model.probabilities()
    choices = derive_choices(probabilities, lut, cfg.constraint)
    with paddle.no_grad():
        expected = float(model.expected_latency(model.mixing_weights(temperature, False)))
    return asdict(
        EpochRecord(
            epoch=epoch + 1,
            phase=phase,
            temperature=temperature,
            weight_loss=weight_loss,
            arch_loss=arch_loss,
            nme=nme,
            expected_latency=expected,
            latency_unit=lut.loss_unit,
            probabilities=probabilities,
            choices=chosen_names(cfg.spec, choices),
            predicted=lut.total(choices),
            lut_unit=lut.unit,
            predicted_ms=lut.latency_ms(choices),
            seconds=time.time() - started,
        )
    )


def _checkpoint(state: SearchState, epochs_done: int, record: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "model": state.model.state_dict(),
        "weight_opt": state.weight_opt.state_dict(),
        "arch_opt": state.arch_opt.state_dict(),
        "epoch": epochs_done,
        "temperature": state.temperature,
        "record": record,
    }


def _print_epoch(record: Dict[str, Any], cfg: FBNetConfig, quiet: bool) -> None:
    if quiet or not parallel.is_main():
        return
    print(epoch_line(record, int(cfg.search["epochs"])), flush=True)


def epoch_line(record: Dict[str, Any], epochs: int) -> str:
    """An epoch record as one line, the distribution's expected price and the subnet's in one unit (ms with a
    table, FLOPs without: the loss itself counts us or kFLOPs)."""
    if record["predicted_ms"] is not None:
        expected, subnet = format_ms(record["expected_latency"] / US_PER_MS), format_ms(record["predicted_ms"])
    else:
        expected = format_count(record["expected_latency"] / LOSS_FLOPS_SCALE, "FLOPs")
        subnet = format_count(record["predicted"], "FLOPs")
    return (
        f"epoch {record['epoch']}/{epochs} {record['phase']}: test NME {record['nme']:.4f}, expected latency "
        f"{expected}, T {record['temperature']:.3f}, subnet {subnet}"
    )


def _scalars(record: Dict[str, Any], cfg: FBNetConfig) -> Dict[str, Optional[float]]:
    out = {
        "search/nme": record["nme"],
        "search/expected_latency": record["expected_latency"],
        "search/temperature": record["temperature"],
        "search/weight_loss": record["weight_loss"],
        "search/arch_loss": record["arch_loss"],
        "search/subnet_latency": record["predicted"],
    }
    for slot, probs in zip(cfg.spec.layers, record["probabilities"]):
        for name, p in zip(slot.candidates, probs):
            out[f"prob/layer{slot.index}/{name}"] = p
    return out


def probabilities_figure(cfg: FBNetConfig, records: List[Dict[str, Any]], path: str) -> str:
    """choice_probabilities.png of the epoch records (also drawn by tools/report.py)."""
    layer_names = [f"layer {s.index} ({s.stage})" for s in cfg.spec.layers]
    candidates = [list(s.candidates) for s in cfg.spec.layers]
    return plot_choice_probabilities(records, layer_names, candidates, path)


def derive(cfg: FBNetConfig, lut: LookupTable, model: FBNetSupernet, history: History) -> SearchOutcome:
    """The subnet of the final probabilities: structure YAML, reused weights, history line, PNG."""
    choices = derive_choices(model.probabilities(), lut, cfg.constraint)
    names = chosen_names(cfg.spec, choices)
    structure_path = os.path.join(cfg.save_dir, STRUCTURE_FILE)
    weights_path = os.path.join(cfg.save_dir, SUBNET_WEIGHTS)
    records = history.of_kind("epoch")
    png = None
    if parallel.is_main():
        write_structure(structure_path, structure_dict(cfg.spec, names, lut))
        paddle.save(subnet_from_supernet(model, choices).state_dict(), weights_path)
        derived = DerivedRecord(
            epoch=records[-1]["epoch"] if records else 0,
            choices=names,
            predicted=lut.total(choices),
            lut_unit=lut.unit,
            predicted_ms=lut.latency_ms(choices),
            structure=STRUCTURE_FILE,
        )
        history.append_once(derived)
        if records:
            png = probabilities_figure(cfg, records, os.path.join(cfg.save_dir, PROBABILITIES_PNG))
    return SearchOutcome(names, structure_path, weights_path, records, png)
