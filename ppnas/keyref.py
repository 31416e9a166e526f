"""The config-key reference, docs/config_keys.md: every key of every tool, with default, unit and meaning.

Keys and defaults come from the code's own tables (the dicts and dataclasses the tools check configs
against); this module adds each key's unit and meaning. `render` refuses a key of a table that has no
entry here, and an entry for a key no table has, so the page cannot go stale:
`python tools/config_keys.py` writes it, tests/test_config_keys.py compares it with the code.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import dataclasses
import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from latency.engine import EngineSettings
from ppnas.constraint import CONSTRAINT_KEYS, Constraint
from ppnas.controller_server.serve import SERVER_OPTIONS
from ppnas.engine.options import SEARCH_DEFAULTS
from ppnas.fbnet import settings as fbnet_settings
from ppnas.fbnet.supernet import STAGE_KEYS, SUPERNET_DEFAULTS
from ppnas.oneshot.keys import ONESHOT_KEYS, SEG_ONLY_KEYS, slim_key
from ppnas.tasks.detection import MODEL_KEYS, PPDET_UNUSED_KEYS, TASK_KEYS
from ppnas.tasks.landmarks import DATA_DEFAULTS
from ppnas.tasks.segmentation_config import OPTIONAL_KEYS, SLIM_DEFAULTS

Doc = Tuple[str, str]  # (unit, meaning)
REQUIRED = object()  # a key without a default


@dataclass
class Section:
    title: str
    where: str  # which tools read it, and where it sits in the config
    table: Mapping[str, Any]  # key -> default, from the code
    docs: Mapping[str, Doc]
    note: Optional[str] = None


PATH_RULE = """\
**Paths.** A relative path written in a YAML file is relative to that file's folder; a relative path typed on
the command line (`-o KEY=VALUE`, or PaddleSeg's trailing `KEY VALUE` pairs) is relative to the working
directory, the folder you typed it in. The rule is the same in every tool (`ppnas/config.py`:
`parse_overrides`, `resolve_path`). Output folders are the exception: `save_dir` is relative to the working
directory wherever it is written, as in PaddleDetection and PaddleSeg, and FBNet's `LUT.lut_file` is relative
to `save_dir`. `~` is expanded."""


def _listed(keys: Sequence[str]) -> str:
    return ", ".join(f"`{key}`" for key in keys)


def _prefixed(prefix: str, defaults: Mapping[str, Any]) -> Dict[str, Any]:
    return {f"{prefix}.{key}": value for key, value in defaults.items()}


def _signature_defaults(function: Callable[..., Any], names: Sequence[str]) -> Dict[str, Any]:
    parameters = inspect.signature(function).parameters
    return {name: parameters[name].default for name in names}


DETECTION: Dict[str, Doc] = {
    "search_steps": ("candidates", "rewarded candidates to search (rejected draws do not count)"),
    "init_temperature": ("-", "the annealing's first temperature; null: PaddleSlim's own"),
    "reduce_rate": ("-", "temperature = init_temperature * reduce_rate ** rewards so far"),
    "init_tokens": ("tokens", "where the annealing starts; null: the space's own (BlazeFace-NAS)"),
    "is_server": ("-", "false: join the controller server at server_ip:server_port as a client"),
    "server_ip": ("address", "with is_server: empty searches in one process; set: also serve remote clients there"),
    "server_port": ("port", "the controller server's TCP port; 0 picks a free one"),
    "server_key": ("text", "a secret every client must send; null: PaddleSlim's key (stock clients join)"),
    "client_retry_seconds": ("s", "how long a client retries an unreachable server before it stops"),
    "seed": ("-", "same seed and config: same candidates and rewards on CPU; null: not seeded"),
    "max_rejects": ("draws", "draws outside the window in a row before the window is declared impossible"),
    "max_failures": ("candidates", "failed candidates in a row before the search stops"),
    "search_space": ("-", "the registered space: BlazeFaceNasSpace"),
    "kernel_choices": ("px", "depthwise kernel sizes the space may pick ([3]: what latency_855.txt covers)"),
    "save_dir": ("folder", "history, checkpoint, fragments, weights and report (relative to the working directory)"),
    "max_iters": ("iterations", "training iterations per candidate (one-shot: supernet iterations)"),
    "input_size": ("px", "side of the square image the constraint measures"),
    "use_gpu": ("-", "train on the GPU (paddlepaddle-gpu)"),
    "log_iter": ("iterations", "a training log line every this many iterations"),
    "worker_num": ("processes", "data loader workers"),
    "Constraint": ("block", "the window every candidate must meet before training (next section)"),
}
CONSTRAINT: Dict[str, Doc] = {
    "ctype": ("-", "what is bounded: flops | latency | params"),
    "min_constraint": ("ctype's", "lower bound (FLOPs, params, or the table's unit, e.g. us); null: none"),
    "max_constraint": ("ctype's", "upper bound, same unit; null: none"),
    "table_file": ("path", "latency table (latency_855.txt format); needed for ctype latency"),
    "missing_keys": ("-", "an op the table lacks: error (list them all) | nearest (nearest key, reported)"),
}
SLIM: Dict[str, Doc] = {
    "SLIM.NAS_PORT": ("port", "the controller server's TCP port; 0 picks a free one"),
    "SLIM.NAS_ADDRESS": ("address", "with NAS_IS_SERVER: empty searches in one process; set: also serve clients"),
    "SLIM.NAS_SEARCH_STEPS": ("candidates", "rewarded candidates to search"),
    "SLIM.NAS_START_EVAL_EPOCH": ("epochs", "mIoU is evaluated after every epoch past this one (-1: every epoch)"),
    "SLIM.NAS_IS_SERVER": ("-", "false: join the controller server at NAS_ADDRESS:NAS_PORT as a client"),
    "SLIM.NAS_SPACE_NAME": ("-", "the registered space: MobileNetV2SpaceSeg"),
    "SLIM.NAS_KEY": ("text", "a secret every client must send; null: PaddleSlim's key"),
    "SLIM.NAS_SEED": ("-", "seed of the search; null: not seeded"),
    "SLIM.NAS_CLIENT_RETRY_SECONDS": ("s", "how long a client retries an unreachable server"),
    "SLIM.NAS_CONSTRAINT_TYPE": ("-", "Constraint.ctype: flops | latency | params"),
    "SLIM.NAS_CONSTRAINT_MAX": ("ctype's", "Constraint.max_constraint"),
    "SLIM.NAS_CONSTRAINT_MIN": ("ctype's", "Constraint.min_constraint"),
    "SLIM.NAS_CONSTRAINT_TABLE": ("path", "Constraint.table_file"),
    "SLIM.NAS_CONSTRAINT_MISSING": ("-", "Constraint.missing_keys: error | nearest"),
}
BIGNAS: Dict[str, Doc] = {
    "supernet": ("-", "the registered supernet; null: the task's own (BlazeFaceSupernet, DeepLabV3PSupernet)"),
    "custom_imports": ("modules", "modules that register a user's supernet (relative to the config's folder)"),
    "space": ("block", "United-Perception's {space: {min, max, stride}, sample_strategy} per module and dimension"),
    "image_size_list": ("px", "input sizes to search: {min, max, stride}, a list of sides or shapes; null: one"),
    "share_interpolation": ("-", "true: every subnet of an iteration at one random input size"),
    "interpolation_type": ("-", "how a batch is resized to a subnet's size: nearest | bilinear | bicubic | area"),
    "sample_strategy": ("-", "subnets per supernet iteration, in order: max | min | random | middle"),
    "sandwich_sampling": ("-", "uniform | window: the random subnets of train_supnet only inside the Constraint"),
    "distill_weight": ("-", "weight of in-place distillation from the max subnet (0: none)"),
    "checkpoint_every": ("iterations", "supernet checkpoint interval (a killed run resumes from the last)"),
    "calib_batches": ("batches", "train batches that recalibrate BatchNorm on each subnet before its score"),
    "calib_transforms": ("-", "train | eval: the reader whose transforms the calibration images go through"),
    "calib_file": ("path", "calibration images in the task's list format (WIDER FACE / PaddleSeg); null: train set"),
    "search_mode": ("-", "sampler of the search phase: random | traverse | sanas; nsga2 | tpe (one front per table)"),
    "tables": ("paths", "latency tables of the device-front search, one Pareto front each; null: the Constraint's"),
    "budgets_ms": ("ms", "latency budgets: the subnet to ship under each, per table (a list, or table name -> list)"),
    "storage": ("URL", "Optuna storage the front search's workers share (sqlite:///, postgresql://); null: save_dir"),
    "population_size": ("subnets", "NSGA-II's population (search_mode nsga2)"),
    "predictor_after": ("subnets", "evaluations before a predictor skips draws it rates dominated; 0: off"),
    "subnet_count": ("subnets", "subnets inside the window the search and sample_accuracy phases evaluate"),
    "traverse_stride": ("tokens", "grid step of search_mode traverse"),
    "flops_samples": ("subnets", "random subnets sample_flops prices (10,000 in about 25 s of CPU at 640 px)"),
    "flops_range": ("FLOPs", "sample_accuracy's window, e.g. ['8M', '14M']; null: the Constraint's"),
    "baseline_flops": ("FLOPs", "sample_accuracy's top-k at most these FLOPs; null: the baseline subnet's"),
    "subnet_tokens": ("tokens", "the subnet of evaluate_subnet and finetune_subnet, e.g. 2,1,3,8,2,1,2,1,0"),
    "subnet_settings": ("block", "or that subnet as United-Perception's subnet_settings (or a file holding them)"),
    "finetune_iters": ("iterations", "finetune_subnet's training from the inherited weights"),
    "finetune_lr_scale": ("-", "finetune_subnet's learning rate as a share of the config's"),
    "supernet_dir": ("path", "the trained supernet of any phase after train_supnet; null: <save_dir>/supernet"),
}
BIGNAS_SEG: Dict[str, Doc] = {
    "SLIM.BIGNAS_SAVE_DIR": ("folder", "supernet, history, report, best_model/ (relative to the working directory)"),
    "SLIM.BIGNAS_MAX_ITERS": ("iterations", "supernet iterations"),
    "SLIM.BIGNAS_MAX_REJECTS": ("draws", "draws outside the window in a row before the window is declared impossible"),
    "SLIM.BIGNAS_USE_GPU": ("-", "train on the GPU (paddlepaddle-gpu)"),
}
FBNET_TOP: Dict[str, Doc] = {
    "save_dir": ("folder", "LUT, history, checkpoints, subnet, report (relative to the working directory)"),
    "seed": ("-", "seed of data splits, augmentation and initialisation"),
    "use_gpu": ("-", "train on the GPU"),
    "baseline": ("-", "a reference model trained beside the subnet (the benchmark's): mobilenetv3_pfld; null: none"),
    "Data": ("block", "the 106-point landmark data"),
    "Supernet": ("block", "the searched PFLD supernet"),
    "LUT": ("block", "the latency lookup table"),
    "Search": ("block", "the differentiable search"),
    "Retrain": ("block", "retraining the derived subnet"),
}
FBNET_SEARCH: Dict[str, Doc] = {
    "Search.epochs": ("epochs", "weight epochs in all, warm-up included"),
    "Search.warmup_epochs": ("epochs", "weights only, before architecture epochs start"),
    "Search.optimizer": ("-", "of the weights: adam | rmsprop (NNI's example: rmsprop, lr 1e-4)"),
    "Search.lr": ("-", "the weights' learning rate at the start"),
    "Search.lr_schedule": ("-", "the weights' learning rate over Search.epochs: cosine (to 0) | constant"),
    "Search.weight_decay": ("-", "weight decay of the weights"),
    "Search.nas_lr": ("-", "AdamW learning rate of the architecture parameters"),
    "Search.nas_weight_decay": ("-", "AdamW weight decay of the architecture parameters"),
    "Search.mode": (
        "-",
        "latency term, L the searched part in ms (MFLOPs): mul (loss * alpha * log(1 + L)^beta) | add "
        "(loss + alpha * L^beta) | target (loss * (1 + alpha * max(0, whole / target_latency - 1)))",
    ),
    "Search.alpha": ("-", "weight of the latency term (cancels under Adam in mul mode: docs/fbnet.md)"),
    "Search.beta": ("-", "exponent of the latency term"),
    "Search.target_latency": ("LUT's", "mode target: the whole model's latency to stay under (table unit, or FLOPs)"),
    "Search.init_temperature": ("-", "Gumbel-softmax temperature at the start"),
    "Search.anneal_rate": ("-", "temperature *= anneal_rate after each architecture epoch"),
    "Search.max_latency": ("LUT's", "hard bound on the derived subnet (table unit, or FLOPs); null: none"),
    "Retrain.epochs": ("epochs", "retraining epochs of the derived subnet (and of the baselines)"),
    "Retrain.optimizer": ("-", "adam | rmsprop"),
    "Retrain.lr": ("-", "the retraining's learning rate at the start"),
    "Retrain.lr_schedule": ("-", "cosine (to 0 over Retrain.epochs) | constant"),
    "Retrain.weight_decay": ("-", "weight decay of the retraining"),
    "LUT.table_file": ("path", "latency table pricing each candidate; null: FLOPs"),
    "LUT.missing_keys": ("-", "an op the table lacks: error | nearest"),
    "LUT.lut_file": ("path", "the LUT's file, relative to save_dir"),
}
FBNET_DATA: Dict[str, Doc] = {
    "Data.dataset_dir": ("path", "root holding train_data/ and test_data/ (106-points layout)"),
    "Data.train_list": ("path", "train list, relative to dataset_dir"),
    "Data.test_list": ("path", "test list, relative to dataset_dir"),
    "Data.image_size": ("px", "side the face crops are resized to"),
    "Data.holdout_fraction": ("-", "share of the train list held out for architecture epochs"),
    "Data.batch_size": ("images", "batch size"),
    "Data.num_workers": ("processes", "data loader workers"),
    "Data.flip": ("-", "random horizontal flips (points mirrored)"),
    "Data.max_rotation": ("degrees", "random rotation up to this, either way"),
    "Data.max_scale": ("-", "random zoom in [1 - max_scale, 1 + max_scale]"),
    "Data.nme_norm": ("-", "NME normaliser: eyes (outer eye corners 52, 61) | nni (NNI's points 35, 93)"),
    "Supernet.input_size": ("px", "the supernet's input side"),
    "Supernet.num_points": ("points", "landmarks predicted (106: 212 outputs)"),
    "Supernet.stem_channels": ("channels", "channels of the stem convolutions; a list: searched widths"),
    "Supernet.entry": ("blocks", "the entry block (stride 2) after the stem; a list: searched"),
    "Supernet.head_channels": ("channels", "channels of the multi-scale head; a list: searched widths"),
    "Supernet.stages": ("list", "the searched stages (keys below)"),
    "Supernet.baseline": ("blocks", "one candidate per searched slot: the in-supernet baseline of the benchmark"),
    "Supernet.stages[].name": ("-", "the stage's name in reports"),
    "Supernet.stages[].layers": ("layers", "searched layers in the stage"),
    "Supernet.stages[].channels": ("channels", "output channels of each layer"),
    "Supernet.stages[].stride": ("-", "stride of the stage's first layer"),
    "Supernet.stages[].candidates": ("blocks", "candidate block names (mb_k3_res, sep_k5, gh_k3, ..., skip)"),
}
ENGINE: Dict[str, Doc] = {
    "engine": ("-", "paddle_inference | onnxruntime | mnn: what times the ops, as it deploys (--engine)"),
    "device": ("-", "cpu | gpu (--device)"),
    "threads": ("threads", "CPU math threads; 1 times with thread CPU time (--threads)"),
    "mkldnn": ("-", "oneDNN on the CPU, each op timed behind a 1x1-conv prefix (--mkldnn)"),
    "ir_optim": ("-", "Paddle Inference's graph optimisation"),
    "warmup": ("runs", "untimed runs before timing (--warmup)"),
    "repeats": ("runs", "timed runs per median (--repeats)"),
    "passes": ("medians", "interleaved medians per op key; the least is kept (--passes)"),
    "opset": ("-", "ONNX opset of the onnxruntime and mnn op models (--opset)"),
}

SERVER_DOCS = {f"--{name}": ("s", meaning) for name, (_, meaning) in SERVER_OPTIONS.items()}

SECTIONS: List[Section] = [
    Section(
        "Detection search",
        "tools/train_nas.py, tools/nas_server.py, tools/latency.py: the top level of a PaddleDetection-style YAML",
        {**SEARCH_DEFAULTS, **TASK_KEYS},
        DETECTION,
        f"PaddleDetection's own blocks, passed to ppdet as written: {_listed(MODEL_KEYS)}. Accepted and ignored "
        f"(a stock face config works as a `_BASE_`): {_listed(PPDET_UNUSED_KEYS)}.",
    ),
    Section(
        "Constraint",
        "The `Constraint:` block of detection and one-shot configs (segmentation: `SLIM.NAS_CONSTRAINT_*`)",
        _signature_defaults(Constraint.__init__, CONSTRAINT_KEYS),
        CONSTRAINT,
    ),
    Section(
        "Segmentation search",
        "slim/nas/train.py, tools/nas_server.py: the `SLIM:` block",
        _prefixed("SLIM", {key: value for key, value in SLIM_DEFAULTS.items() if not key.startswith("BIGNAS_")}),
        SLIM,
        "The rest of the file is PaddleSeg's own config (`_base_`, `model`, datasets, optimizer), read by PaddleSeg. "
        f"Top-level keys a config may leave out but an override may set: {_listed(OPTIONAL_KEYS)}.",
    ),
    Section(
        "One-shot search (BigNAS)",
        "tools/bignas.py: a detection config's top level (the detection keys above and these); a segmentation "
        "config writes each as `SLIM.BIGNAS_<KEY>` (`subnet_count` -> `SLIM.BIGNAS_SUBNET_COUNT`)",
        ONESHOT_KEYS,
        BIGNAS,
    ),
    Section(
        "One-shot search, segmentation config only",
        "tools/bignas.py with a PaddleSeg YAML: its `SLIM:` block (the constraint is `SLIM.NAS_CONSTRAINT_*`, the "
        "seed `SLIM.NAS_SEED`)",
        {f"SLIM.{slim_key(key)}": value for key, value in SEG_ONLY_KEYS.items()},
        BIGNAS_SEG,
    ),
    Section(
        "FBNet search (PFLD landmarks)",
        "tools/fbnet.py: the top level",
        {key: fbnet_settings.TOP_DEFAULTS.get(key, "(block)") for key in fbnet_settings.TOP_KEYS},
        FBNET_TOP,
    ),
    Section(
        "FBNet Search, Retrain and LUT blocks",
        "tools/fbnet.py",
        {
            **_prefixed("Search", fbnet_settings.SEARCH_DEFAULTS),
            **_prefixed("Retrain", fbnet_settings.RETRAIN_DEFAULTS),
            **_prefixed("LUT", fbnet_settings.LUT_DEFAULTS),
        },
        FBNET_SEARCH,
    ),
    Section(
        "FBNet Data and Supernet blocks",
        "tools/fbnet.py",
        {
            **_prefixed("Data", DATA_DEFAULTS),
            **_prefixed("Supernet", SUPERNET_DEFAULTS),
            **{f"Supernet.stages[].{key}": REQUIRED for key in STAGE_KEYS},
        },
        FBNET_DATA,
    ),
    Section(
        "Latency tables",
        "tools/build_latency_table.py options, recorded in the table's header (tools/latency.py reads the "
        "Constraint block above)",
        {field.name: field.default for field in dataclasses.fields(EngineSettings)},
        ENGINE,
    ),
    Section(
        "Controller server",
        "tools/nas_server.py options (its config keys: `server_*`, `SLIM.NAS_*` above)",
        {f"--{name}": getattr(settings, name) for name, (settings, _) in SERVER_OPTIONS.items()},
        SERVER_DOCS,
    ),
]


def _default_text(value: Any) -> str:
    if value is REQUIRED:
        return "(required)"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.6g}"
    if isinstance(value, str) and value.startswith("("):
        return value
    return json.dumps(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def section_rows(section: Section) -> List[Tuple[str, str, str, str]]:
    """(key, default, unit, meaning) of every key of the section's code table; an undocumented key, or a
    documented one the code no longer has, is an error."""
    table, docs = section.table, section.docs
    missing = [key for key in table if key not in docs]
    extra = [key for key in docs if key not in table]
    if missing or extra:
        raise KeyError(
            f"config-key reference, {section.title}: undocumented keys {missing}, documented keys the code lacks "
            f"{extra}: describe them in ppnas/keyref.py"
        )
    return [(key, _default_text(table[key]), *docs[key]) for key in table]


def render() -> str:
    """docs/config_keys.md."""
    lines = [
        "# Config keys of every tool",
        "",
        "Generated by `python tools/config_keys.py` from the code's own key tables (ppnas/keyref.py); "
        "tests/test_config_keys.py fails when this page and the code differ.",
        "",
        PATH_RULE,
        "",
    ]
    for section in SECTIONS:
        lines += [f"## {section.title}", "", f"{section.where}.", ""]
        lines += ["| key | default | unit | meaning |", "|---|---|---|---|"]
        lines += [f"| `{k}` | {_cell(d)} | {_cell(u)} | {_cell(m)} |" for k, d, u, m in section_rows(section)]
        if section.note:
            lines += ["", section.note]
        lines.append("")
    return "\n".join(lines)
