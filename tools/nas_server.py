"""The controller alone (no training) for the detection or the segmentation search; clients join it.

    python tools/nas_server.py -c CONFIG [--port P] [-o key=value ...] [-r SAVE_DIR]

Detection configs give search_space, kernel_choices, search_steps, init_temperature, reduce_rate,
init_tokens, server_ip, server_port, server_key, seed, save_dir; segmentation configs (a `SLIM:` block)
give SLIM.NAS_SPACE_NAME, NAS_SEARCH_STEPS, NAS_ADDRESS, NAS_PORT, NAS_KEY, NAS_SEED. Other keys are
the clients' business and are not checked here. The server binds to server_ip (127.0.0.1 when empty),
writes <save_dir>/history.jsonl, the SANAS checkpoint and search_meta.json (the constraint and task the
report needs: python tools/report.py SAVE_DIR works on the server's folder), and leaves once the search is
done; -r resumes.
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ppnas.cli import run_main
from ppnas.config import add_override_option, config_kind, load_config, merge, override_pairs, parse_overrides
from ppnas.constraint import Constraint
from ppnas.controller_server.serve import SERVER_OPTIONS, build_service, server_settings, space_decoder
from ppnas.controller_server.service import ServiceSettings
from ppnas.controller_server.tcp import ControllerServer
from ppnas.engine.options import SEARCH_DEFAULTS, SearchOptions
from ppnas.engine.runner import open_history
from ppnas.errors import ConfigError
from ppnas.spaces import build_space

SEG_SAVE_DIR = "output/deeplabv3p_nas"


@dataclass
class ServedSearch:
    """What the server needs of a search config: the options, the space's arguments, and for
    search_meta.json the constraint and the task (its module and input shape; the task itself, with its
    datasets, is the clients' business)."""

    options: SearchOptions
    space_kwargs: Dict[str, Any]
    constraint: Constraint
    task_module: str
    input_shape: List[int]


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="the search config the clients use")
    parser.add_argument("--port", type=int, default=None, help="listen on this port (0: a free one, printed)")
    add_override_option(parser, example="server_ip=0.0.0.0 SLIM.NAS_PORT=0")
    parser.add_argument("-r", "--resume_checkpoint", default=None, help="save_dir of a search to resume")
    parser.add_argument("--save_dir", default=None, help="where history and checkpoint go (default: the config's)")
    for name, (settings, meaning) in SERVER_OPTIONS.items():
        default = getattr(settings, name)
        parser.add_argument(f"--{name}", type=float, default=default, help=f"{meaning} (s, default {default})")
    return parser.parse_args(argv)


def _detection_search(cfg: Dict[str, Any], args: argparse.Namespace) -> ServedSearch:
    from ppnas.tasks.detection import TASK_KEYS, BlazeFaceTask

    cfg = {**SEARCH_DEFAULTS, **TASK_KEYS, **cfg}
    options = SearchOptions(
        space_name=cfg["search_space"],
        search_steps=int(cfg["search_steps"]),
        save_dir=cfg["save_dir"],
        config_path=args.config,
        kind="detection",
        init_temperature=cfg["init_temperature"],
        reduce_rate=float(cfg["reduce_rate"]),
        init_tokens=cfg["init_tokens"],
        server_ip=cfg["server_ip"] or "",
        server_port=int(cfg["server_port"]),
        server_key=cfg["server_key"],
        seed=cfg["seed"],
    )
    side = int(cfg["input_size"])
    constraint = Constraint.from_config(cfg.get("Constraint"), cfg)
    kwargs = {"kernel_choices": cfg["kernel_choices"]}
    return ServedSearch(options, kwargs, constraint, BlazeFaceTask.__module__, [1, 3, side, side])


def _segmentation_search(args: argparse.Namespace) -> ServedSearch:
    from ppnas.tasks.segmentation import DeepLabTask, crop_input_shape
    from ppnas.tasks.segmentation_config import load_seg_config

    seg = load_seg_config(args.config, override_pairs(args.opt))
    slim = seg.slim
    options = SearchOptions(
        space_name=slim["NAS_SPACE_NAME"],
        search_steps=int(slim["NAS_SEARCH_STEPS"]),
        save_dir=SEG_SAVE_DIR,
        config_path=args.config,
        kind="segmentation",
        server_ip=slim["NAS_ADDRESS"] or "",
        server_port=int(slim["NAS_PORT"]),
        server_key=slim["NAS_KEY"],
        seed=slim["NAS_SEED"],
    )
    return ServedSearch(options, {}, seg.constraint(), DeepLabTask.__module__, crop_input_shape(seg.paddleseg))


def served_search(args: argparse.Namespace) -> ServedSearch:
    """The search either kind of config describes, with the command line's port, save_dir and resume."""
    raw = load_config(args.config)
    if config_kind(raw) == "segmentation":
        search = _segmentation_search(args)
    else:
        search = _detection_search(merge(raw, parse_overrides(args.opt)), args)
    options = search.options
    if args.port is not None:
        options.server_port = args.port
    if args.save_dir:
        options.save_dir = args.save_dir
    if args.resume_checkpoint:
        if not os.path.isdir(args.resume_checkpoint):
            raise ConfigError(f"resume directory not found: {args.resume_checkpoint}")
        options.save_dir = options.resume_dir = args.resume_checkpoint
    return search


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    search = served_search(args)
    options = search.options
    space = build_space(options.space_name, **search.space_kwargs)
    history = open_history(options, search.constraint, space, search.task_module, search.input_shape, weights=False)
    init_tokens = options.init_tokens or space.init_tokens()
    settings = ServiceSettings(options.search_steps, beat_timeout=args.beat_timeout, lease_seconds=args.lease_seconds)
    service = build_service(options, space.range_table(), init_tokens, history, settings, space_decoder(space))
    tuning = {"linger_seconds": args.linger_seconds, "request_timeout": args.request_timeout}
    server = ControllerServer(service, space.range_table(), server_settings(options, **tuning))
    server.start()
    print(f"search: {options.space_name}, {service.trained}/{options.search_steps} rewards, writing {history.path}")
    server.serve_until_done()
    info = service.info()
    print(f"search finished: {service.trained} rewards; best reward {info['best_reward']} tokens {info['best_tokens']}")
    return 0


if __name__ == "__main__":
    run_main(main)
