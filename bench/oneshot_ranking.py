"""Does the one-shot supernet rank subnets as training from scratch does, and how much cheaper is it?

`--task detection` (default; issue 16, bench/det_ranking.py): 16 subnets stratified by FLOPs over the demo
window, each trained from scratch with 3 seeds for 800 iterations at 160 px on the hard demo set (1000 train,
300 val images; bench/scratch_reference.py's reference set, every run cached in
bench/results/scratch_reference.jsonl so a killed run resumes); the reference = the seed-mean AP@0.5, its
noise = `reference_tau_ceiling` (Kendall tau of each seed alone against the mean of the others, averaged). The
supernet is the demo one-shot config (configs/demo/blazeface_bignas_demo.yml) on the same data, trained for 4x a
candidate's iterations (resumable); each subnet is then evaluated with inherited weights + BN calibration.
Every cost is thread CPU time; `break_even_subnets` counts the supernet's training.
    python bench/scratch_reference.py run --shard 0/2 & python bench/scratch_reference.py run --shard 1/2
    python bench/oneshot_ranking.py --stage supernet      # the supernet only (resumable), beside the reference
    python bench/oneshot_ranking.py                       # bench/results/oneshot_ranking.json
    python bench/oneshot_ranking.py --sandwich window     # its own supernet: bench/results/oneshot_ranking_window.json

`--task segmentation` does the same for the DeepLabV3+ supernet (configs/demo/cityscape_bignas_demo.yaml) with
issue 14's method (bench/seg_ranking.py): `--subnets` subnets spread over the FLOPs of random subnets
(seg_ranking.PICK_WINDOW), each trained from scratch with the segmentation search's training for SEG_EPOCHS
epochs with every seed of SEG_SEEDS (seed-major; each run cached in bench/results/scratch_reference.jsonl), and
Kendall tau of the inherited mIoU against the seed-mean reference. The demo's train images with SEG_VAL_IMAGES
val images (more than the demo's 10: a steadier mIoU) score both; the supernet is the demo config's, trained here.
    python bench/oneshot_ranking.py --task segmentation --subnets 12 --stage scratch   # from-scratch runs only
    python bench/oneshot_ranking.py --task segmentation --subnets 12
"""

import ppnas  # noqa: F401  # isort: skip
import argparse
from typing import List, Optional

from common import save_result

from ppnas.cli import run_main


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["detection", "segmentation"], default="detection")
    parser.add_argument("--stage", choices=["scratch", "supernet", "all"], default="all")
    parser.add_argument("--subnets", type=int, default=12, help="segmentation: how many subnets")
    parser.add_argument("--reuse", default=None, help="segmentation: save_dir of a finished train_supnet run")
    parser.add_argument("--sandwich", choices=["uniform", "window"], default="uniform", help="detection supernet")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="detection: the reference's seeds to use (default all)"
    )
    args = parser.parse_args(argv)
    if args.task == "segmentation" and args.stage == "supernet":
        parser.error("--stage supernet is for --task detection (segmentation: scratch or all)")
    # run_main: SIGTERM stops it like Ctrl-C, in one line; the supernet checkpoint and every finished run are kept
    if args.task == "segmentation":
        from seg_ranking import segmentation_ranking

        result = segmentation_ranking(args.subnets, args.stage, args.reuse)
        name = "oneshot_ranking_segmentation"
    else:
        from det_ranking import REFERENCE_SEEDS, detection_ranking, run_name

        result = detection_ranking(args.stage, args.sandwich, args.seeds or REFERENCE_SEEDS)
        name = run_name(args.sandwich)
    if result is not None:
        save_result(name, result)
    return 0


if __name__ == "__main__":
    run_main(main)
