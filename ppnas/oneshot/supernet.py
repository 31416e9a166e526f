"""What a supernet is to the one-shot search, and the registry a user's own supernet plugs into.

A supernet is a Paddle layer built from the dynamic ops and blocks (ppnas/oneshot/dynamic/), registered with

    from ppnas.oneshot.supernet import SUPERNETS, Supernet

    @SUPERNETS.register
    class MySupernet(Supernet):
        task = "segmentation"                      # whose data, loss, metric and reports it uses
        @classmethod
        def default_space(cls, cfg): return {"backbone": {"depth": {...}, "out_channel": {...}}}
        def __init__(self, space, cfg): super().__init__(space, cfg); ...  # the largest network
        def apply_settings(self, settings): ...   # set the dynamic blocks' active_* from subnet_settings
        def forward(self, x): ...                  # the task's forward (segmentation: a list of logits)

and named in the config (`supernet: MySupernet`, with `custom_imports: [my_module]` to import the module that
registers it; SLIM.BIGNAS_SUPERNET and SLIM.BIGNAS_CUSTOM_IMPORTS in a segmentation config). Training,
calibration, the search modes, the constraint, history, report, export and every phase then work on it
unchanged (United-Perception's "plugin mode"). The space is declared the United-Perception way
(ppnas/oneshot/space.py): the supernet gives the default declaration, a config may narrow or extend it.

A subnet's plain model is, by default, a copy of the supernet with every dynamic op replaced by its plain Paddle
layer (so `forward` must only call sublayers, as United-Perception's supernets do: settings are set before,
not read during the call); a supernet of a library model overrides `plain_model` to build that model instead,
with parameter keys equal to its own (`source_key` maps any that differ), so its weights are slices by key.
"""

import importlib
import sys
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence

import paddle
import paddle.nn as nn
import yaml
from paddleslim.core import Registry

from ppnas.errors import ConfigError
from ppnas.oneshot.dynamic.convert import plain_copy
from ppnas.oneshot.pricing import PricePart
from ppnas.oneshot.space import ElasticSpace, Subnet, merge_declaration, resolve_image_sizes
from ppnas.oneshot.subnet_file import export_subnet

SUPERNETS = Registry("supernet")
# the project's own supernets, imported when named (so a detection search never imports PaddleSeg)
BUILT_IN = {
    "BlazeFaceSupernet": "ppnas.oneshot.supernets.blazeface",
    "DeepLabV3PSupernet": "ppnas.oneshot.supernets.deeplab",
}


class Supernet(nn.Layer):
    """Base of every registered supernet (see the module docstring)."""

    task: ClassVar[str] = ""  # "detection" | "segmentation" (ppnas/oneshot/adapters/)
    token_order: ClassVar[str] = "stage"  # "stage" | "dim": how the declaration's positions become tokens
    report_module: ClassVar[str] = "ppnas.oneshot.subnet_file"  # write_fragment and the report's hints

    @classmethod
    def default_space(cls, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        """The United-Perception declaration of the supernet's modules and dimensions."""
        raise NotImplementedError

    @classmethod
    def space_name(cls, cfg: Mapping[str, Any]) -> str:
        """How messages, search_meta.json and the report name the space."""
        return cls.__name__

    @classmethod
    def baseline(cls, cfg: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        """The reference subnet ({subnet_settings, image_size}) of sample_flops and the annealing's start;
        None: the largest."""
        return None

    @classmethod
    def check_space(cls, space: ElasticSpace) -> None:
        """Refuse a declaration the network cannot follow (with a ConfigError naming the key)."""

    def __init__(self, space: ElasticSpace, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.space = space
        self.subnet = space.decode(space.max_tokens())

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        """Set the dynamic blocks' active settings from United-Perception's subnet_settings."""
        raise NotImplementedError

    def set_subnet(self, subnet: Subnet) -> None:
        self.subnet = subnet
        self.apply_settings(subnet.settings)

    def structure(self, subnet: Subnet) -> Dict[str, Any]:
        """What the history records of a subnet besides its settings (a library supernet: its model's config)."""
        return {}

    def summary(self, subnet: Subnet) -> str:
        """The subnet as the search prints it at its end."""
        return yaml.safe_dump(subnet.to_dict(), default_flow_style=None, sort_keys=False).rstrip()

    def source_key(self, key: str, subnet: Subnet) -> str:
        """The supernet's key of the plain model's parameter `key`."""
        return key

    def plain_model(self, subnet: Subnet) -> nn.Layer:
        """A model of the subnet with plain Paddle layers (weights are filled by slicing, see export.py)."""
        self.set_subnet(subnet)
        training = self.training
        self.eval()
        with paddle.no_grad():  # one call records every op's input width; eval mode leaves BN statistics alone
            self(paddle.zeros(subnet.image_size))
        if training:
            self.train()
        return plain_copy(self)

    def price_parts(self, subnet: Subnet) -> Optional[List[PricePart]]:
        """The parts the subnet's measurable model is priced by (ppnas/oneshot/pricing.py: a list of PricePart, in
        execution order, holding every op and parameter of the model once); None: trace the whole model."""
        return None

    def export(self, subnet: Subnet, model: nn.Layer, save_dir: str) -> List[str]:
        """The files that rebuild the subnet: by default its subnet file and weights (ppnas/oneshot/subnet_file.py)."""
        return export_subnet(record_structure(self, subnet), model, save_dir)


def record_structure(supernet: Supernet, subnet: Subnet) -> Dict[str, Any]:
    """A subnet as history.jsonl records it: the supernet's structure, its name, settings and image size."""
    return {**supernet.structure(subnet), "supernet": type(supernet).__name__, **subnet.to_dict()}


def import_custom(modules: Optional[Sequence[str]], config_dir: str) -> None:
    """Import the modules that register a user's supernets (mmengine's `custom_imports`); a module next to the
    config is found too."""
    if not modules:
        return
    if isinstance(modules, str):
        modules = [modules]
    sys.path.insert(0, config_dir)
    try:
        for name in modules:
            try:
                importlib.import_module(str(name))
            except ImportError as err:
                raise ConfigError(
                    f"custom_imports: cannot import {name!r} ({err}); give a module importable from PYTHONPATH or "
                    f"a module file in the config's folder {config_dir}"
                ) from None
    finally:
        sys.path.remove(config_dir)


def supernet_class(name: str) -> type:
    """The registered supernet `name` (a built-in one is imported on first use)."""
    if SUPERNETS.get(name) is None and name in BUILT_IN:
        importlib.import_module(BUILT_IN[name])
    cls = SUPERNETS.get(name)
    if cls is None:
        known = sorted(set(SUPERNETS.module_dict) | set(BUILT_IN))
        raise ConfigError(
            f"unknown supernet '{name}'; registered supernets: {', '.join(known)} (a module of your own that "
            f"registers one goes in custom_imports)"
        )
    return cls


def build_space(cls: type, cfg: Mapping[str, Any]) -> ElasticSpace:
    """The supernet's default declaration with the config's `space` and `image_size_list` applied, checked."""
    declaration = merge_declaration(cls.default_space(cfg), cfg.get("space"), "space")
    sizes = resolve_image_sizes(cfg.get("image_size_list"), cfg["input_shape"])
    space = ElasticSpace(declaration, sizes, cls.token_order, cls.baseline(cfg), cls.space_name(cfg))
    cls.check_space(space)
    return space


def build_supernet(cfg: Mapping[str, Any]) -> Supernet:
    """The config's supernet at its largest setting (random weights: load a checkpoint into it)."""
    cls = supernet_class(cfg["supernet"])
    return cls(build_space(cls, cfg), cfg)


def supernet_space(cfg: Mapping[str, Any]) -> ElasticSpace:
    """The config's space without building the network (sample_flops, checks)."""
    return build_space(supernet_class(cfg["supernet"]), cfg)
