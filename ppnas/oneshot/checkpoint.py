"""The trained supernet on disk (`<save_dir>/supernet/` or `supernet_dir`): weights, optimizer and state.json.

state.json is written last: a checkpoint exists once it names its iteration. It also records what the
supernet was trained for (`trained_for`: the supernet, the token space, kernel_choices, the input size and the
declared space with its depths and input sizes), so a search never inherits weights from a supernet of another
space.
"""

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import paddle

from ppnas.errors import ConfigError
from ppnas.storage import atomic_paddle_save, atomic_write_json

SUPERNET_DIR = "supernet"
WEIGHTS = "supernet.pdparams"
OPTIMIZER = "supernet.pdopt"
STATE = "state.json"
# what a search must agree on with the supernet it inherits from (kernel_choices and input_size: detection only)
MATCHING_KEYS = ("supernet", "search_space", "kernel_choices", "input_size", "space")


def trained_for(cfg: Mapping[str, Any], space: Any) -> Dict[str, Any]:
    """What a supernet of this config is trained for, as state.json records it."""
    return {
        "supernet": cfg["supernet"],
        "search_space": cfg["search_space"],
        "kernel_choices": list(cfg["kernel_choices"]) if "kernel_choices" in cfg else None,
        "input_size": cfg.get("input_size"),
        "space": json.loads(json.dumps(space.definition())),
    }


def _difference(key: str, trained: Any, wanted: Any) -> str:
    """The first entry that differs (a declared space is long), with both values."""
    if isinstance(trained, dict) and isinstance(wanted, dict):
        for part in sorted(set(trained) | set(wanted)):
            if trained.get(part) != wanted.get(part):
                return _difference(f"{key}.{part}", trained.get(part), wanted.get(part))
    return f"{key} {json.dumps(trained)}, this config has {json.dumps(wanted)}"


class Checkpoint:
    """The supernet folder of a config: `supernet_dir` (that folder, or a save_dir holding `supernet/`), or
    `<save_dir>/supernet`."""

    def __init__(self, folder: str) -> None:
        self.dir = folder

    @classmethod
    def of(cls, cfg: Mapping[str, Any]) -> "Checkpoint":
        given = cfg.get("supernet_dir")
        if not given:
            return cls(os.path.join(cfg["save_dir"], SUPERNET_DIR))
        nested = os.path.join(given, SUPERNET_DIR)
        return cls(nested if os.path.isfile(os.path.join(nested, STATE)) else given)

    def state(self) -> Optional[Dict[str, Any]]:
        path = os.path.join(self.dir, STATE)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def save(self, supernet: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer, state: Dict[str, Any]) -> None:
        atomic_paddle_save(supernet.state_dict(), os.path.join(self.dir, WEIGHTS))
        atomic_paddle_save(portable_optimizer_state(optimizer, supernet), os.path.join(self.dir, OPTIMIZER))
        atomic_write_json(os.path.join(self.dir, STATE), state)

    def check_space(self, state: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
        """Refuse a supernet trained for another supernet, space, kernel_choices, input size, depth or input
        sizes (`wanted`: trained_for of this config)."""
        if "space" not in state:
            raise ConfigError(
                f"the supernet checkpoint in {self.dir} was written by an older ppnas, which did not record its "
                f"declared space: train a supernet for this config (--phase train_supnet)"
            )
        for key in MATCHING_KEYS:
            if state.get(key) != wanted[key]:
                difference = _difference(key, state.get(key), wanted[key])
                raise ConfigError(
                    f"the supernet checkpoint in {self.dir} was trained with {difference}: use the same {key}, or "
                    f"train a supernet for this config (--phase train_supnet)"
                )

    def load_weights(self, supernet: paddle.nn.Layer, cfg: Mapping[str, Any], phase: str) -> Dict[str, Any]:
        state = self.state()
        if state is None:
            raise ConfigError(
                f"--phase {phase} needs a trained supernet and {self.dir} holds none: run --phase train_supnet "
                f"first (same config and save_dir), or point -o supernet_dir=DIR at one"
            )
        self.check_space(state, trained_for(cfg, supernet.space))
        supernet.set_state_dict(paddle.load(os.path.join(self.dir, WEIGHTS)))
        return state

    def load_optimizer(self, optimizer: paddle.optimizer.Optimizer, supernet: paddle.nn.Layer) -> None:
        restore_optimizer_state(optimizer, supernet, paddle.load(os.path.join(self.dir, OPTIMIZER)))


def _accumulator_names(supernet: paddle.nn.Layer) -> List[Tuple[str, str]]:
    """(paddle's generated parameter name, its state-dict key), longest generated name first."""
    named = [(p.name, key) for key, p in supernet.named_parameters()]
    return sorted(named, key=lambda pair: -len(pair[0]))


def portable_optimizer_state(optimizer: paddle.optimizer.Optimizer, supernet: paddle.nn.Layer) -> Dict[str, Any]:
    """The optimizer's state keyed by parameter keys: paddle names accumulators after generated parameter
    names (`conv2d_390.w_0_moment1_0`), which differ in another process or another model instance."""
    out = {}
    for key, value in optimizer.state_dict().items():
        for generated, structured in _accumulator_names(supernet):
            if key.startswith(generated + "_"):
                key = f"{structured}/{key[len(generated) + 1 :]}"
                break
        out[key] = value
    return out


def restore_optimizer_state(
    optimizer: paddle.optimizer.Optimizer, supernet: paddle.nn.Layer, state: Mapping[str, Any]
) -> None:
    generated = {structured: name for name, structured in _accumulator_names(supernet)}
    renamed = {}
    for key, value in state.items():
        structured, _, suffix = key.rpartition("/")
        renamed[f"{generated[structured]}_{suffix}" if structured in generated else key] = value
    optimizer.set_state_dict(renamed)
