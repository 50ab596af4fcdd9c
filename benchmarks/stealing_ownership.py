"""Ownership checks on stolen surrogates: does RDA's copy inherit a trigger watermark, and does
dataset inference flag it?

    python benchmarks/stealing_ownership.py --victim /tmp/victim_steal/encoder.safetensors \
        --out docs/benchmarks/stealing_ownership.json

1. Watermark the quick victim (BadEncoder-style trigger -> secret direction, fine-tuned on 2,000 of
   its own training images), 2. steal the watermarked victim with RDA (2,500 query images charged),
3. verify the key on: the watermarked victim, its stolen surrogate, the clean victim, a random-init
   encoder; 4. dataset inference (GMM, t-test) on the clean victim, an RDA surrogate and a random-init
   encoder, with the victim's 20,000 training images as the private set and the F-MNIST test split
   as public data.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from stealing_common import QUICK_COMMON, QUICK_OPTIONS, query_pool

from encoder_audit.attacks.stealing.compare import draw_queries
from encoder_audit.attacks.stealing.compute import ComputeRule, plan_run
from encoder_audit.data import create_dataset
from encoder_audit.defenses.ownership import OwnershipConfig, dataset_inference
from encoder_audit.defenses.watermark import WatermarkConfig, embed_watermark, new_watermark_key, verify_watermark
from encoder_audit.evaluate.downstream import random_init_baseline
from encoder_audit.models.checkpoint import load_encoder_net
from encoder_audit.victim import LocalEncoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--victim", required=True)
    ap.add_argument("--budget", type=int, default=2500)
    ap.add_argument("--steps", type=int, default=120, help="optimizer steps of each RDA run")
    ap.add_argument("--wm-images", type=int, default=2000)
    ap.add_argument("--wm-epochs", type=int, default=2)
    ap.add_argument("--verify-images", type=int, default=300)
    ap.add_argument("--di-images", type=int, default=1000, help="images per GMM fit / private test / public set")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    net, _meta = load_encoder_net(args.victim)
    clean = LocalEncoder(net)
    full = create_dataset("fashion-mnist", "train")
    used = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))[:20_000]
    private = full.subset(used.sort().values)
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(len(private), generator=g)
    wm_data = private.subset(order[: args.wm_images])
    key = new_watermark_key(net.input_shape, net.feature_dim)
    wm_net = embed_watermark(net, key, wm_data, WatermarkConfig(epochs=args.wm_epochs), seed=0)
    watermarked = LocalEncoder(wm_net)
    logging.info("watermarked in %.0fs", time.perf_counter() - t0)
    rule = ComputeRule("steps", args.steps)
    opts = {**QUICK_COMMON, **QUICK_OPTIONS["rda"], "seed": 0}
    point = plan_run("rda", arm="images", level=args.budget, rule=rule, options=opts)
    pool = query_pool()
    stolen_wm = point.attack.extract(watermarked, draw_queries(pool, point.n, 0))
    point2 = plan_run("rda", arm="images", level=args.budget, rule=rule, options=opts)
    stolen_clean = point2.attack.extract(clean, draw_queries(pool, point2.n, 0))
    norm = net.normalization()
    rand = random_init_baseline(net.arch, net.input_shape, seed=123, **norm)
    test = create_dataset("fashion-mnist", "test")
    vimg = test.float_images(
        torch.randperm(len(test), generator=torch.Generator().manual_seed(2))[: args.verify_images]
    )
    suspects = {
        "watermarked victim": watermarked,
        "RDA surrogate of watermarked victim": stolen_wm.encoder(),
        "clean victim (never watermarked)": clean,
        "random-init cnn-small": rand,
    }
    out: dict = {"watermark": {}, "dataset_inference": {}, "stolen_usage": stolen_wm.usage, "n_query": point.n}
    for name, enc in suspects.items():
        v = verify_watermark(enc, key, vimg)
        out["watermark"][name] = v.to_dict()
        logging.info("watermark %s: p=%.4f z=%.1f", name, v.p_value, v.z)
    n = args.di_images
    rest = order[args.wm_images :]
    fit, held = private.subset(rest[:n]), private.subset(rest[n : 2 * n])
    public = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(3))[:n])
    for name, enc in {
        "clean victim": clean,
        "RDA surrogate of clean victim": stolen_clean.encoder(),
        "random-init cnn-small": rand,
    }.items():
        r = dataset_inference(enc, fit, held, public, OwnershipConfig())
        out["dataset_inference"][name] = r.to_dict()
        logging.info("DI %s: p=%.4g t=%.2f", name, r.p_value, r.t_statistic)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
