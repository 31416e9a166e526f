"""The one-shot search's config keys and defaults, in one place for both spellings: a detection config's top-level
keys (`subnet_count: 500`) and a segmentation config's SLIM keys (`SLIM.BIGNAS_SUBNET_COUNT 500`).

United-Perception's names are kept where it has them (docs/oneshot.md lists the correspondence).
"""

from typing import Any, Dict, Tuple

ONESHOT_KEYS: Dict[str, Any] = {
    "supernet": None,  # None: the task's own (BlazeFaceSupernet, DeepLabV3PSupernet)
    "custom_imports": [],  # modules that register a user's supernet (mmengine's custom_imports)
    "space": None,  # United-Perception declarations merged over the supernet's (ppnas/oneshot/space.py)
    "image_size_list": None,  # None: the task's input size only
    "share_interpolation": False,  # true: every subnet of an iteration at one random size
    "interpolation_type": "bilinear",  # how a batch is resized to a subnet's size
    "sample_strategy": ["max", "random", "random", "min"],
    "sandwich_sampling": "uniform",  # uniform (BigNAS) | window: random members inside the Constraint window
    "distill_weight": 1.0,
    "checkpoint_every": 50,
    "calib_batches": 10,
    "calib_transforms": "train",  # train | eval: the reader whose transforms BN calibration's images go through
    "calib_file": None,  # a fixed list of calibration images in the task's list format; None: the train set
    "search_mode": "random",  # random | traverse | sanas (ppnas/samplers/); nsga2 | tpe: the device-front search
    "tables": None,  # latency tables of the device-front search (ppnas/oneshot/fronts.py); None: the Constraint's
    "budgets_ms": None,  # latency budgets (ms): a list for every table, or a mapping table name -> list
    "storage": None,  # Optuna storage URL of the device-front search; None: sqlite in save_dir
    "population_size": 20,  # NSGA-II's population
    "predictor_after": 0,  # front search: screen draws with an accuracy predictor once this many are evaluated; 0: off
    "subnet_count": 500,
    "traverse_stride": 2,
    "flops_samples": 10000,
    "flops_range": None,  # sample_accuracy: [min, max] FLOPs ('200M', 1.5e8); None: the Constraint's window
    "baseline_flops": None,  # sample_accuracy: top-k at most these FLOPs; None: the baseline subnet's
    "subnet_tokens": None,  # one subnet (evaluate_subnet, finetune_subnet): tokens ...
    "subnet_settings": None,  # ... or United-Perception's subnet_settings (a mapping, or a file holding one)
    "finetune_iters": 200,
    "finetune_lr_scale": 0.1,
    "supernet_dir": None,  # None: <save_dir>/supernet; else the supernet trained there
}
# a segmentation config's own: where the one-shot search writes, how long the supernet trains
SEG_ONLY_KEYS: Dict[str, Any] = {
    "save_dir": "output/deeplabv3p_bignas",
    "max_iters": 1000,
    "max_rejects": 500,
    "use_gpu": False,  # the detection config's key of the same name
}

SLIM_TYPES: Dict[str, Tuple[type, ...]] = {
    "supernet": (str, type(None)),
    "custom_imports": (list, str),
    "space": (dict, type(None)),
    "image_size_list": (list, dict, type(None)),
    "share_interpolation": (bool,),
    "interpolation_type": (str,),
    "sample_strategy": (list,),
    "sandwich_sampling": (str,),
    "distill_weight": (int, float),
    "checkpoint_every": (int,),
    "calib_batches": (int,),
    "calib_transforms": (str,),
    "calib_file": (str, type(None)),
    "search_mode": (str,),
    "tables": (list, str, type(None)),
    "budgets_ms": (list, dict, int, float, type(None)),
    "storage": (str, type(None)),
    "population_size": (int,),
    "predictor_after": (int,),
    "subnet_count": (int,),
    "traverse_stride": (int,),
    "flops_samples": (int,),
    "flops_range": (list, type(None)),
    "baseline_flops": (int, float, str, type(None)),
    "subnet_tokens": (str, list, tuple, int, type(None)),
    "subnet_settings": (dict, str, type(None)),
    "finetune_iters": (int,),
    "finetune_lr_scale": (int, float),
    "supernet_dir": (str, type(None)),
    "save_dir": (str,),
    "max_iters": (int,),
    "max_rejects": (int,),
    "use_gpu": (bool,),
}


def slim_key(key: str) -> str:
    """`subnet_count` -> `BIGNAS_SUBNET_COUNT` (under SLIM)."""
    return f"BIGNAS_{key.upper()}"


def slim_defaults() -> Dict[str, Any]:
    return {slim_key(k): v for k, v in {**ONESHOT_KEYS, **SEG_ONLY_KEYS}.items()}


def slim_types() -> Dict[str, Tuple[type, ...]]:
    return {slim_key(k): SLIM_TYPES[k] for k in {**ONESHOT_KEYS, **SEG_ONLY_KEYS}}
