"""`--phase sample_flops`: FLOPs (and table latency) of random subnets, measured as the search measures them,
with the baseline (init tokens) marked: is the baseline near the peak, and how much of the space is inside the
window (United-Perception's sample_flops). It measures the constraint only: no dataset and no trained supernet
are read (the supernet is built with random weights, only to cut the parts the pricer traces from it). Subnets are
priced by cached parts (ppnas/oneshot/pricing.py: the first ones trace their new blocks, later ones cost tens of
microseconds; 10,000 at 640 px in about 25 s of CPU, see docs/oneshot.md), so the progress shows an ETA and
`flops_samples` sets the count."""

import json
import os
import random
import sys
from typing import Any, Dict, List, Mapping

from ppnas.constraint import Constraint
from ppnas.errors import ConfigError
from ppnas.observers import Progress
from ppnas.oneshot.pricing import subnet_pricer
from ppnas.oneshot.supernet import build_supernet
from ppnas.report.figures.distribution import plot_sample_distribution
from ppnas.report.selection import Window

SAMPLE_FLOPS_PNG = "sample_flops.png"
SAMPLE_FLOPS_JSON = "sample_flops.json"


def constraint_meta(constraint: Constraint) -> Dict[str, Any]:
    """The window as the report reads it from search_meta.json."""
    return {
        "ctype": constraint.ctype,
        "min_constraint": constraint.min_constraint,
        "max_constraint": constraint.max_constraint,
        "unit": constraint.window_text().split("]")[-1].strip(),
    }


def sample_flops(cfg: Mapping[str, Any], constraint: Constraint, quiet: bool = False) -> Dict[str, Any]:
    """Draw `flops_samples` random subnets, measure each as the search does, plot the distribution."""
    supernet = build_supernet(cfg)  # random weights: it only builds the parts the pricer traces
    pricer, space = subnet_pricer(supernet, constraint, cfg), supernet.space
    count = int(cfg["flops_samples"])
    if count < 1:
        raise ConfigError(f"flops_samples must be at least 1, got {count}")
    rng = random.Random(int(cfg["seed"]))

    def measure(tokens: List[int]) -> Dict[str, Any]:
        subnet = space.decode(tokens)
        m = pricer.measure(subnet)
        return {
            "tokens": tokens,
            "flops": m.flops,
            "params": m.params,
            "latency_ms": m.latency_ms,
            "inside": constraint.admits(m),
        }

    sides = sorted({size[-1] for size in space.image_size_list})
    size_text = "-".join(map(str, sides[:1] + sides[1:][-1:]))
    if not quiet:
        print(f"sample_flops: measuring {count} random subnets (flops_samples) at {size_text} px", file=sys.stderr)
    bar = Progress(count, "sample_flops", "subnets", quiet=quiet, stream=sys.stderr)  # stdout: the JSON summary
    samples = []
    for _ in range(count):
        samples.append(measure([rng.randrange(n) for n in space.range_table()]))
        bar.update(1)
    bar.close()
    baseline = measure(space.init_tokens())
    save_dir = cfg["save_dir"]
    os.makedirs(save_dir, exist_ok=True)
    window = Window.from_meta(constraint_meta(constraint))
    title = f"{count} random subnets of {space.name} at {size_text} px"
    png = plot_sample_distribution(samples, baseline, window, title, os.path.join(save_dir, SAMPLE_FLOPS_PNG))
    flops = sorted(s["flops"] for s in samples)
    summary = {
        "samples": count,
        "inside_window": sum(s["inside"] for s in samples),
        "window": constraint.window_text(),
        "baseline": baseline,
        "baseline_flops_percentile": 100.0 * sum(f <= baseline["flops"] for f in flops) / count,
        "flops_quantiles": {q: flops[min(count - 1, int(q / 100 * count))] for q in (5, 25, 50, 75, 95)},
        "png": png,
    }
    with open(os.path.join(save_dir, SAMPLE_FLOPS_JSON), "w", encoding="utf-8") as f:
        json.dump({**summary, "subnets": samples}, f)
    return summary
