"""What an engine adapter is: how a saved Paddle model becomes the engine's model file, and how it is opened."""

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from latency import convert
from latency.engines.time_ops import engine_version


@dataclass(frozen=True)
class Engine:
    """`name` as in tables and manifests; models are `<stem><suffix>` files; `target` is the convert.py format
    ('' for Paddle's own files)."""

    name: str
    suffix: str
    target: str = ""
    folds: Tuple[str, ...] = ()  # op kinds it folds into the conv before them (latency/fusion.py), measured
    prefixed_ops: Tuple[str, ...] = ()  # op kinds timed behind a 1x1-conv prefix (its layout is kept in a chain)

    def fuses(self, settings: Any) -> Tuple[str, ...]:
        return self.folds

    def check_available(self) -> None:
        """Fail before any work when a package the engine needs is missing (the message says how to install)."""
        if self.target:
            convert.check_available(self.target)

    def version(self) -> str:
        return engine_version(self.name)

    def options(self, settings: Any) -> Dict[str, Any]:
        """What the timer needs to open a model as the table was built (manifest `engine_options`)."""
        return {}

    def convert(self, stems: Sequence[str], opset: int, describe: Sequence[str] = ()) -> List[str]:
        """`<stem><suffix>` of each saved Paddle model `<stem>.pdmodel` (+ .pdiparams); returns the files."""
        jobs = []
        for stem in stems:
            params = f"{stem}.pdiparams"
            onnx = f"{stem}.onnx"
            jobs.append(
                convert.Job(
                    model=f"{stem}.pdmodel",
                    params=params if os.path.exists(params) else "",
                    onnx=onnx,
                    mnn=f"{stem}.mnn" if self.target == "mnn" else None,
                )
            )
        convert.convert(jobs, opset, describe)
        return [f"{stem}{self.suffix}" for stem in stems]
