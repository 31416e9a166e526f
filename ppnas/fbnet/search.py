"""THE FBNet search loop (NNI's FBNetTrainer schedule, in Paddle dygraph).

  for epoch in range(start, epochs):
      weight pass on the train part (angle-weighted PFLD loss, Gumbel-softmax mixing at temperature T)
      if epoch >= warmup_epochs:
          architecture pass on the HELD-OUT part of the train list (plain L2 loss combined with the
          expected latency, see `latency_loss`; AdamW on alpha only); then T *= anneal_rate
      test NME (softmax(alpha / T) mixing, no noise), expected latency, choice probabilities, the
      derived subnet (argmax, repaired to meet max_latency) and its LUT price
      checkpoint (one file, atomic) -> history line -> VisualDL
  derive: subnet.yml + subnet_init.pdparams (the supernet's weights of the chosen blocks), a "derived"
  history line, choice_probabilities.png

The test list is used for NME only; NNI's example trained the architecture on it. Each epoch draws its
data order, augmentations and Gumbel noise from (seed, epoch), so a resumed run repeats no finished epoch
and redoes an interrupted one from its start.
"""

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

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
from ppnas.fbnet.lut import LookupTable
from ppnas.fbnet.settings import FBNetConfig
from ppnas.fbnet.supernet import FBNetSupernet
from ppnas.fbnet.train import (
    CHECKPOINT_SUFFIX,
    ensure_recorded,
    load_checkpoint,
    refuse_existing,
    save_checkpoint,
    train_pass,
)
from ppnas.history import History
from ppnas.observers import EpochScalars
from ppnas.report import plot_choice_probabilities
from ppnas.tasks.landmarks import LandmarkData, evaluate_nme, pfld_loss

SUBNET_WEIGHTS = "subnet_init.pdparams"
PROBABILITIES_PNG = "choice_probabilities.png"
CHECKPOINT = "search" + CHECKPOINT_SUFFIX
# below these the loss term is held (no gradient): log(lat) < 0 would make log(lat)^beta NaN, and
# lat^beta has an infinite slope at 0. Latency units (us, kFLOPs) keep real subnets far above them.
MUL_FLOOR, ADD_FLOOR = math.e, 1.0


def latency_loss(
    task_loss: paddle.Tensor, latency: paddle.Tensor, mode: str, alpha: float, beta: float
) -> paddle.Tensor:
    """FBNet's hardware-aware loss: `mul`: task * alpha * log(lat)^beta; `add`: task + alpha * lat^beta."""
    if mode == "mul":
        return task_loss * alpha * paddle.pow(paddle.log(paddle.clip(latency, min=MUL_FLOOR)), beta)
    return task_loss + alpha * paddle.pow(paddle.clip(latency, min=ADD_FLOOR), beta)


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    phase: str  # warmup | search
    temperature: float  # after this epoch's annealing
    weight_loss: float
    arch_loss: Optional[float]
    nme: float  # test list
    expected_latency: float  # softmax(alpha / T) mix, calibrated, in `latency_unit`
    latency_unit: str  # us (a table) or kFLOPs
    probabilities: List[List[float]]  # softmax(alpha) per layer, in the order of the candidates
    choices: List[str]  # the derived subnet now
    predicted: float  # its LUT price, in `lut_unit`
    lut_unit: str
    predicted_ms: Optional[float]
    seconds: float
    kind: str = "epoch"
    time: float = field(default_factory=time.time)


@dataclass
class SearchOutcome:
    choices: List[str]
    structure_path: str
    weights_path: str
    records: List[Dict[str, Any]]
    png: Optional[str]


def run_search(
    cfg: FBNetConfig,
    lut: LookupTable,
    data: LandmarkData,
    resume: bool = False,
    quiet: bool = False,
    vdl_dir: Optional[str] = None,
) -> SearchOutcome:
    """Search (or resume) in cfg.save_dir; see the module docstring."""
    # fresh parameter and optimizer-accumulator names in every run: a checkpoint's optimizer state loads by name
    with paddle.utils.unique_name.guard():
        return _search(cfg, lut, data, resume, quiet, vdl_dir)


def _search(
    cfg: FBNetConfig, lut: LookupTable, data: LandmarkData, resume: bool, quiet: bool, vdl_dir: Optional[str]
) -> SearchOutcome:
    s = cfg.search
    bound = s["max_latency"]
    check_bound(lut, bound)
    ckpt_path = os.path.join(cfg.save_dir, CHECKPOINT)
    if not resume:
        refuse_existing(ckpt_path, cfg.save_dir, "search")
    history = History.in_dir(cfg.save_dir)
    paddle.seed(cfg.seed)
    model = FBNetSupernet(cfg.spec, lut.vectors())
    wrapped = parallel.wrap(model)
    weight_opt = paddle.optimizer.Adam(
        learning_rate=float(s["lr"]), parameters=model.weight_parameters(), weight_decay=float(s["weight_decay"])
    )
    arch_opt = paddle.optimizer.AdamW(
        learning_rate=float(s["nas_lr"]), parameters=model.arch_parameters(), weight_decay=float(s["nas_weight_decay"])
    )
    start, temperature = 0, float(s["init_temperature"])
    state = load_checkpoint(ckpt_path) if resume else None
    if state is not None:
        model.set_state_dict(state["model"])
        weight_opt.set_state_dict(state["weight_opt"])
        arch_opt.set_state_dict(state["arch_opt"])
        start, temperature = int(state["epoch"]), float(state["temperature"])
        ensure_recorded(history, state["record"])
    scalars = EpochScalars(vdl_dir) if vdl_dir and parallel.is_main() else None
    epochs, warmup = int(s["epochs"]), int(s["warmup_epochs"])

    def weight_loss(images: paddle.Tensor, landmarks_gt: paddle.Tensor, angles_gt: paddle.Tensor) -> paddle.Tensor:
        landmarks, angles, _ = wrapped(images, temperature, True)
        return pfld_loss(landmarks, angles, landmarks_gt, angles_gt)[0]

    def arch_loss(images: paddle.Tensor, landmarks_gt: paddle.Tensor, angles_gt: paddle.Tensor) -> paddle.Tensor:
        landmarks, angles, latency = wrapped(images, temperature, True)
        task = pfld_loss(landmarks, angles, landmarks_gt, angles_gt)[1]
        return latency_loss(task, latency, s["mode"], float(s["alpha"]), float(s["beta"]))

    for epoch in range(start, epochs):
        started = time.time()
        paddle.seed(cfg.seed + epoch)
        searching = epoch >= warmup
        model.train()
        train_batches = data.loader(data.train, True, epoch)
        w_loss = train_pass(train_batches, weight_loss, weight_opt, model, f"epoch {epoch + 1} weights", quiet)
        a_loss = None
        if searching:
            held_batches = data.loader(data.holdout, True, epoch)
            a_loss = train_pass(held_batches, arch_loss, arch_opt, model, f"epoch {epoch + 1} architecture", quiet)
            temperature *= float(s["anneal_rate"])
        model.eval()
        nme = evaluate_nme(lambda x, t=temperature: model(x, t, False)[0], data.loader(data.test, False))
        probabilities = model.probabilities()
        choices = derive_choices(probabilities, lut, bound)
        with paddle.no_grad():
            expected = float(model.expected_latency(model.mixing_weights(temperature, False)))
        record = asdict(
            EpochRecord(
                epoch=epoch + 1,
                phase="search" if searching else "warmup",
                temperature=temperature,
                weight_loss=w_loss,
                arch_loss=a_loss,
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
        save_checkpoint(
            ckpt_path,
            {
                "model": model.state_dict(),
                "weight_opt": weight_opt.state_dict(),
                "arch_opt": arch_opt.state_dict(),
                "epoch": epoch + 1,
                "temperature": temperature,
                "record": record,
            },
        )
        ensure_recorded(history, record)
        if scalars is not None:
            scalars.log(epoch + 1, _scalars(record, cfg))
        if not quiet and parallel.is_main():
            print(
                f"epoch {epoch + 1}/{epochs} {record['phase']}: test NME {nme:.4f}, expected latency "
                f"{expected:.4g} {lut.loss_unit}, T {temperature:.3f}, subnet {lut.total(choices):.4g} {lut.unit}",
                flush=True,
            )
    if scalars is not None:
        scalars.close()
    return derive(cfg, lut, model, history)


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


def derive(cfg: FBNetConfig, lut: LookupTable, model: FBNetSupernet, history: History) -> SearchOutcome:
    """The subnet of the final probabilities: structure YAML, reused weights, history line, PNG."""
    choices = derive_choices(model.probabilities(), lut, cfg.search["max_latency"])
    names = chosen_names(cfg.spec, choices)
    structure_path = os.path.join(cfg.save_dir, STRUCTURE_FILE)
    weights_path = os.path.join(cfg.save_dir, SUBNET_WEIGHTS)
    records = [r for r in history.read() if r.get("kind") == "epoch"]
    png = None
    if parallel.is_main():
        write_structure(structure_path, structure_dict(cfg.spec, names, lut))
        paddle.save(subnet_from_supernet(model, choices).state_dict(), weights_path)
        last_epoch = records[-1]["epoch"] if records else 0
        ensure_recorded(
            history,
            {
                "kind": "derived",
                "epoch": last_epoch,
                "choices": names,
                "predicted": lut.total(choices),
                "lut_unit": lut.unit,
                "predicted_ms": lut.latency_ms(choices),
                "structure": STRUCTURE_FILE,
                "time": time.time(),
            },
        )
        if records:
            layer_names = [f"layer {s.index} ({s.stage})" for s in cfg.spec.layers]
            candidates = [list(s.candidates) for s in cfg.spec.layers]
            png = plot_choice_probabilities(
                records, layer_names, candidates, os.path.join(cfg.save_dir, PROBABILITIES_PNG)
            )
    return SearchOutcome(names, structure_path, weights_path, records, png)
