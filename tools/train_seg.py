"""Train a searched DeepLabV3+ fully with PaddleSeg's own trainer (`paddleseg.core.train`):

    python tools/train_seg.py --config configs/cityscape.yaml \
        --model output/deeplabv3p_nas/best_model/deeplabv3p_nas.yml \
        --epochs 108 --do_eval --save_dir output/deeplabv3p_nas_full

(108 epochs: PaddleSeg's 80000 iterations of batch 4 over Cityscapes' 2975 training images; `--epochs` scales
to any dataset, `--iters N` sets the iterations instead.)

`--config` is any PaddleSeg config (a SLIM block is ignored); `--model` is a fragment written by the search
(its `model:` replaces the config's, keys it lacks such as num_classes come from the config). PaddleSeg's
own tools/train.py cannot do this: it does not know the searched backbone, and its training and evaluation
break on paddle 2.6's 0-D tensors (ppnas/tasks/paddleseg_compat.py).
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
import argparse
import os
from typing import List, Optional

import search_space  # noqa: F401  # registers MobileNetV2SegBackbone in PaddleSeg's BACKBONES
from ppnas.cli import run_main
from ppnas.device import select_device
from ppnas.errors import ConfigError
from ppnas.tasks import paddleseg_compat
from ppnas.tasks.segmentation_config import check_datasets, config_with_model, iters_for, paddleseg_config


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="PaddleSeg config (datasets, optimizer, schedule)")
    parser.add_argument("--model", required=True, help="model fragment written by the search")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--iters", type=int, default=None, help="training iterations (default: the config's)")
    length.add_argument(
        "--epochs", type=int, default=None, help="training epochs: iterations = epochs x (train images // batch_size)"
    )
    parser.add_argument("--batch_size", type=int, default=None, help="batch size (default: the config's)")
    parser.add_argument("--save_dir", default="output/deeplabv3p_nas_full")
    parser.add_argument("--do_eval", action="store_true", help="evaluate mIoU at every save_interval")
    parser.add_argument("--save_interval", type=int, default=1000)
    parser.add_argument("--log_iters", type=int, default=10)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--use_vdl", action="store_true")
    parser.add_argument("--use_gpu", action="store_true")
    parser.add_argument("--resume_model", default=None, help="a checkpoint folder of this run to continue")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    select_device(args.use_gpu)
    paddleseg_compat.apply()
    dic = config_with_model(args.config, args.model)
    if args.batch_size:
        dic["batch_size"] = args.batch_size
    if args.iters:
        dic["iters"] = args.iters
    if args.epochs:
        dic["epochs"] = args.epochs
        dic.pop("iters", None)
    check_datasets(dic, args.config)
    cfg = paddleseg_config(dic)
    train_dataset = cfg.train_dataset
    if not dic.get("iters"):  # a search config may give epochs: PaddleSeg's trainer counts iterations
        if not dic.get("epochs"):
            raise ConfigError(f"{args.config} sets neither iters nor epochs: pass --iters")
        dic["iters"] = iters_for(dic, len(train_dataset) // cfg.batch_size)[1]
        cfg = paddleseg_config(dic)
    from paddleseg.core import train

    train(
        cfg.model,
        train_dataset,
        val_dataset=cfg.val_dataset if args.do_eval else None,
        optimizer=cfg.optimizer,
        save_dir=args.save_dir,
        iters=cfg.iters,
        batch_size=cfg.batch_size,
        resume_model=args.resume_model,
        save_interval=args.save_interval,
        log_iters=args.log_iters,
        num_workers=args.num_workers,
        use_vdl=args.use_vdl,
        losses=cfg.loss,
        test_config=cfg.test_config,
    )
    print(f"trained model: {os.path.join(args.save_dir, 'iter_' + str(cfg.iters), 'model.pdparams')}")
    return 0


if __name__ == "__main__":
    run_main(main)
