"""How leaky is a target recipe? Train it on 32 (or ``members``) Fashion-MNIST images, score members vs 500 non-members.

The statistic is EncoderMI-T's mean pairwise cosine of 10 views on the encoder output h, averaged over 3
independent view draws, with the ``simclr`` (the target's own) and the ``encodermi`` query views. Each
argument is a JSON object of recipe fields overriding ``overfit`` (``base`` picks another recipe,
``seed`` the split / training seed); one JSON line per argument is printed:

    OMP_NUM_THREADS=1 python benchmarks/membership_recipes.py '{"epochs": 500}' '{"temperature": 0.1, "epochs": 500}'
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from encoder_audit.attacks.membership.features import pairwise_similarities, view_embeddings
from encoder_audit.attacks.membership.targets import recipe, train_encoder
from encoder_audit.data import create_dataset, make_splits
from encoder_audit.victim import LocalEncoder


def main(specs: list[str]) -> None:
    torch.set_num_threads(1)
    full = create_dataset("fashion-mnist", "train")
    for text in specs:
        over = json.loads(text)
        seed, base = over.pop("seed", 0), over.pop("base", "overfit")
        spec = recipe(base, **over)
        m = make_splits(full, {"members": spec.members, "nonmembers": 500}, seed=seed)
        mem, non = m.select(full, "members"), m.select(full, "nonmembers")
        t0 = time.perf_counter()
        net = train_encoder(mem, spec, seed=seed).net
        seconds = time.perf_counter() - t0
        enc = LocalEncoder(net)
        out: dict[str, object] = {"spec": text, "seed": seed, "train_s": round(seconds, 1)}
        for views in ("simclr", "encodermi"):
            total = 0.0
            for draw in range(3):
                s = [
                    pairwise_similarities(view_embeddings(enc, d.float_images(), 10, views=views, seed=draw))
                    .mean(1)
                    .numpy()
                    for d in (mem, non)
                ]
                total = total + np.r_[s[0], s[1]]
            y = np.r_[np.ones(len(mem)), np.zeros(len(non))]
            out[views] = round(float(roc_auc_score(y, total)), 3)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
