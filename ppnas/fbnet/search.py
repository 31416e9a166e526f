"""THE FBNet search loop (NNI's FBNetTrainer schedule, in Paddle dygraph).

  for epoch in range(start, epochs):
      weight pass on the train part (angle-weighted PFLD loss, Gumbel-softmax mixing at temperature T;
      the weights' learning rate follows Search.lr_schedule)
      if epoch >= warmup_epochs:
          architecture pass on the HELD-OUT part of the train list (plain L2 loss combined with the
          expected latency, see `latency_loss`; AdamW on alpha only, its gradients averaged over the ranks
          of a data-parallel run so that every rank keeps the same alpha); then T *= anneal_rate
      test NME (softmax(alpha / T) mixing, no noise), expected latency, choice probabilities, the
      derived subnet (argmax, repaired to meet the Constraint of Search.max_latency) and its LUT price
      checkpoint (one file, atomic) -> history line (kind "epoch") -> VisualDL
  derive: subnet.yml + subnet_init.pdparams (the supernet's weights of the chosen blocks), a "derived"
  history line, choice_probabilities.png

The test list is used for NME only; NNI's example trained the architecture on it. Each epoch draws its
data order, augmentations and Gumbel noise from (seed, epoch), so a resumed run repeats no finished epoch
and redoes an interrupted one from its start.

Under paddle.distributed.launch the weight pass runs through paddle.DataParallel; the architecture pass runs
on the plain model (its L2 loss leaves the auxiliary net without gradients, which DataParallel's reducer
refuses) and averages alpha's gradients itself (ppnas.parallel.average_gradients).
"""

import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import paddle
import paddle.nn.functional as F

from ppnas import parallel
from ppnas.constraint import Constraint
from ppnas.fbnet.derive import (
    STRUCTURE_FILE,
    check_bound,
    chosen_names,
    derive_choices,
    structure_dict,
    subnet_from_supernet,
    write_structure,
)
from ppnas.fbnet.lut import MFLOPS, LookupTable
from ppnas.fbnet.settings import FBNetConfig
from ppnas.fbnet.supernet import FBNetSupernet, slot_label
from ppnas.fbnet.train import (
    CHECKPOINT_SUFFIX,
    load_checkpoint,
    record_once,
    save_checkpoint,
    train_pass,
    weight_optimizer,
)
from ppnas.history import DerivedRecord, EpochRecord, History
from ppnas.observers import ScalarLog
from ppnas.report.figures.probabilities import plot_choice_probabilities
from ppnas.storage import refuse_existing
from ppnas.tasks.landmarks import LandmarkData, evaluate_nme, pfld_loss
from ppnas.units import format_count, format_ms

SUBNET_WEIGHTS = "subnet_init.pdparams"
PROBABILITIES_PNG = "choice_probabilities.png"
CHECKPOINT = "search" + CHECKPOINT_SUFFIX
# below this (1 us, or 1 kFLOP) the latency term is held: L^beta has an infinite slope at 0
LATENCY_FLOOR = 1e-3

BatchLoss = Callable[[paddle.Tensor, paddle.Tensor, paddle.Tensor], paddle.Tensor]


@dataclass
class LatencyTerm:
    """How the architecture pass weighs latency (Search.mode, alpha, beta; target_latency in loss units)."""

    mode: str
    alpha: float
    beta: float
    target: Optional[float] = None


def latency_loss(
    task_loss: paddle.Tensor, searched: paddle.Tensor, whole: paddle.Tensor, term: LatencyTerm
) -> paddle.Tensor:
    """The architecture pass's loss. `searched`: expected latency of the searched part, `whole`: of the whole
    model, both in ms (or MFLOPs). See docs/fbnet.md for how alpha and beta act under Adam.

    - mul: task * alpha * log(1 + searched)^beta (FBNet / NNI: log(L)^beta with L in us, where the log hides
      all but a tiny relative change and is undefined under one unit; 1 + L keeps milliseconds defined);
    - add: task + alpha * searched^beta;
    - target: task * (1 + alpha * max(0, whole / target - 1)): no pull at or under the target; above it, a
      relative latency excess of x weighs as much as a relative task-loss change of alpha * x.
    """
    if term.mode == "mul":
        return task_loss * term.alpha * paddle.pow(paddle.log1p(paddle.clip(searched, min=LATENCY_FLOOR)), term.beta)
    if term.mode == "add":
        return task_loss + term.alpha * paddle.pow(paddle.clip(searched, min=LATENCY_FLOOR), term.beta)
    return task_loss * (1.0 + term.alpha * F.relu(whole / term.target - 1.0))


def latency_term(cfg: FBNetConfig, lut: LookupTable) -> LatencyTerm:
    """The config's latency term; a target no architecture of the LUT reaches is refused before training."""
    s = cfg.search
    target = s["target_latency"]
    if s["mode"] == "target":
        within = Constraint(cfg.constraint.ctype, max_constraint=target, table_file=cfg.table_file)
        within.check_reachable(*lut.bounds(), what="architecture", key="Search.target_latency")
    loss_target = None if target is None else lut.to_loss_unit(float(target))
    return LatencyTerm(s["mode"], float(s["alpha"]), float(s["beta"]), loss_target)


@dataclass
class SearchOutcome:
    choices: List[str]
    probabilities: List[List[float]]  # softmax(alpha) per slot, this rank's own
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
    schedule: paddle.optimizer.lr.LRScheduler  # the weights' learning rate (its state is in weight_opt's)
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
    term = latency_term(cfg, lut)
    ckpt_path = os.path.join(cfg.save_dir, CHECKPOINT)
    if not resume:
        refuse_existing(cfg.save_dir, "a search", os.path.isfile(ckpt_path))
    history = History.in_dir(cfg.save_dir)
    # fresh parameter and optimizer-accumulator names in every run: a checkpoint's optimizer state loads by name
    with paddle.utils.unique_name.guard():
        state = _start(cfg, lut, ckpt_path if resume else None, history)
        losses = _losses(state, term)
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
    weight_opt, schedule = weight_optimizer(s, model.weight_parameters())
    state = SearchState(
        model=model,
        wrapped=parallel.wrap(model),
        weight_opt=weight_opt,
        schedule=schedule,
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
        schedule.step(state.start)
        record_once(history, saved["record"])  # a kill between checkpoint and line: the line now
    return state


def _losses(state: SearchState, term: LatencyTerm) -> Dict[str, BatchLoss]:
    """The weight pass's loss (angle-weighted PFLD, through DataParallel) and the architecture pass's (L2 with
    the latency term, on the plain model: see the module docstring)."""

    def weights(images: paddle.Tensor, landmarks_gt: paddle.Tensor, angles_gt: paddle.Tensor) -> paddle.Tensor:
        landmarks, angles, _, _ = state.wrapped(images, state.temperature, True)
        return pfld_loss(landmarks, angles, landmarks_gt, angles_gt)[0]

    def architecture(images: paddle.Tensor, landmarks_gt: paddle.Tensor, angles_gt: paddle.Tensor) -> paddle.Tensor:
        landmarks, angles, searched, whole = state.model(images, state.temperature, True)
        task = pfld_loss(landmarks, angles, landmarks_gt, angles_gt)[1]
        return latency_loss(task, searched, whole, term)

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
    lr = state.weight_opt.get_lr()
    train = data.loader(data.train, True, epoch)
    w_loss = train_pass(train, losses["weights"], state.weight_opt, model, f"epoch {epoch + 1} weights", quiet)
    state.schedule.step()
    a_loss = None
    if searching:
        held = data.loader(data.holdout, True, epoch)
        desc = f"epoch {epoch + 1} architecture"
        alphas = model.arch_parameters()
        a_loss = train_pass(
            held, losses["architecture"], state.arch_opt, model, desc, quiet, lambda: parallel.average_gradients(alphas)
        )
        state.temperature *= float(cfg.search["anneal_rate"])
    phase = "search" if searching else "warmup"
    return _epoch_record(cfg, lut, data, state, epoch, phase, (w_loss, a_loss), lr, started)


def _epoch_record(
    cfg: FBNetConfig,
    lut: LookupTable,
    data: LandmarkData,
    state: SearchState,
    epoch: int,
    phase: str,
    losses: Tuple[float, Optional[float]],
    lr: float,
    started: float,
) -> Dict[str, Any]:
    """Test NME, expected latency, probabilities and the subnet the search would derive now."""
    model, temperature = state.model, state.temperature
    model.eval()
    parallel.sync_buffers(model)  # every rank evaluates rank 0's model
    nme = evaluate_nme(lambda x, t=temperature: model(x, t, False)[0], data.loader(data.test, False), data.nme_norm)
    probabilities = model.probabilities()
    choices = derive_choices(probabilities, lut, cfg.constraint)
    with paddle.no_grad():
        searched, whole = model.expected_latency(model.mixing_weights(temperature, False))
    return asdict(
        EpochRecord(
            epoch=epoch + 1,
            phase=phase,
            temperature=temperature,
            lr=lr,
            weight_loss=losses[0],
            arch_loss=losses[1],
            nme=nme,
            nme_norm=data.nme_norm,
            expected_latency=float(whole),
            expected_searched=float(searched),
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
    """An epoch record as one line: NME with its normaliser; the distribution's expected price (whole model,
    and the searched part the architecture can change) and the subnet's in one unit (ms with a table, FLOPs
    without: the loss counts ms or MFLOPs)."""
    if record["predicted_ms"] is not None:
        whole, searched = format_ms(record["expected_latency"]), format_ms(record["expected_searched"])
        subnet = format_ms(record["predicted_ms"])
    else:
        whole = format_count(record["expected_latency"] / MFLOPS, "FLOPs")
        searched = format_count(record["expected_searched"] / MFLOPS, "FLOPs")
        subnet = format_count(record["predicted"], "FLOPs")
    return (
        f"epoch {record['epoch']}/{epochs} {record['phase']}: test NME {record['nme']:.4f} ({record['nme_norm']}), "
        f"expected latency {whole} (searched part {searched}), T {record['temperature']:.3f}, subnet {subnet}"
    )


def _scalars(record: Dict[str, Any], cfg: FBNetConfig) -> Dict[str, Optional[float]]:
    out = {
        "search/nme": record["nme"],
        "search/expected_latency": record["expected_latency"],
        "search/expected_searched": record["expected_searched"],
        "search/lr": record["lr"],
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
    layer_names = [slot_label(s) for s in cfg.spec.layers]
    candidates = [list(s.candidates) for s in cfg.spec.layers]
    return plot_choice_probabilities(records, layer_names, candidates, path)


def derive(cfg: FBNetConfig, lut: LookupTable, model: FBNetSupernet, history: History) -> SearchOutcome:
    """The subnet of the final probabilities: structure YAML, reused weights, history line, PNG."""
    probabilities = model.probabilities()
    choices = derive_choices(probabilities, lut, cfg.constraint)
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
    return SearchOutcome(names, probabilities, structure_path, weights_path, records, png)
