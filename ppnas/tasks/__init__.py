"""Evaluation tasks (see ppnas.search.Task): one module per product."""

from typing import Any, Mapping

from ppnas.search import Task


def task_from_config(cfg: Mapping[str, Any]) -> Task:
    """The task a loaded config describes: a PaddleSeg config (with a SLIM block) or a detection config."""
    if "SLIM" in cfg:
        from ppnas.tasks.deeplab import DeepLabTask

        return DeepLabTask.from_config(cfg)
    from ppnas.tasks.blazeface import BlazeFaceTask

    return BlazeFaceTask.from_config(cfg)
