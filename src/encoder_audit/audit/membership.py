"""The membership stage of the audit: EncoderMI-V/S/T and baselines against the victim, beside controls.

What is measured (Liu et al., "EncoderMI", CCS 2021, for the attacks; Carlini et al., S&P 2022, for
the metrics):

* every attack is fitted on a shadow encoder the audit trains on its own images, then scores the
  victim's members against i.i.d. non-members (500 by default) with several independent draws of
  views (scores averaged; the AUC's spread across draws kept); AUCs carry bootstrap 95% intervals and
  TPR at an FPR is reported only where the non-member count resolves it;
* the served features ``h`` are attacked and, when the victim's projection head is at hand (saved
  beside its checkpoint), the head's output ``z = g(h)`` too: memorisation that the head absorbs is
  invisible in ``h`` but real for whoever holds the head;
* a **positive control**: the same attacks against a target the audit trains with the leaking
  ``overfit`` recipe (the victim's architecture when known) and scores on its own members and
  non-members; a **negative control**: victim non-members labelled as members (a null split through the
  same query path) must not fire.

:func:`audit_membership` does the work for any encoder and image sets (the ``encoder-audit
membership`` command calls it); :func:`run` adapts a :class:`~.family.StageContext` to it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..attacks.membership.base import MIAScores, save_scores
from ..attacks.membership.engine import FittedAttacks, fit_attacks, score_attacks
from ..attacks.membership.features import FeatureConfig
from ..attacks.membership.metrics import evaluate_scores, plot_roc
from ..attacks.membership.shadow import Shadow, ShadowConfig, train_shadow
from ..attacks.membership.targets import TargetRecipe, head_encoder, load_head, train_encoder
from ..attacks.registry import attack_class
from ..data.base import ImageDataset, subsample
from ..data.splits import make_splits
from ..runs import derive_seed
from ..victim import Encoder, HasMetadata, LocalEncoder, WhiteBox
from .family import Family, StageContext, register_family, relative_to_run
from .membership_config import MembershipAuditConfig

log = logging.getLogger(__name__)

__all__ = [
    "AttackScore",
    "FigureRef",
    "MembershipResult",
    "audit_membership",
    "run",
    "skip",
    "victim_views",
]

VICTIM, POSITIVE, NEGATIVE = "victim", "positive control", "negative control"


@dataclass
class AttackScore:
    """One attack on one target through one output (all rates are fractions).

    Attributes:
        attack: attack name.
        target: ``victim``, ``positive control`` or ``negative control``.
        output: ``h`` (the served features) or ``z`` (the projection head's output).
        auc, auc_lo, auc_hi: AUC and its bootstrap 95% interval.
        auc_draw_std: standard deviation of the AUC across view draws (None with one draw).
        accuracy, balanced_accuracy, precision, recall: at the threshold chosen on the shadow.
        tpr_at_1pct_fpr, tpr_at_01pct_fpr: None where the non-member count cannot resolve the FPR.
        members, nonmembers: scored images.
        queries_per_image: victim images per scored image (all draws).
        fit_seconds, score_seconds: time to fit on the shadow / to score.
    """

    attack: str
    target: str
    output: str
    auc: float
    auc_lo: float
    auc_hi: float
    auc_draw_std: float | None
    accuracy: float
    balanced_accuracy: float
    precision: float
    recall: float
    tpr_at_1pct_fpr: float | None
    tpr_at_01pct_fpr: float | None
    members: int
    nonmembers: int
    queries_per_image: int
    fit_seconds: float = 0.0
    score_seconds: float = 0.0


@dataclass
class FigureRef:
    """A figure written by the stage: path relative to the run directory, caption."""

    path: str
    caption: str


@dataclass
class MembershipResult:
    """Raw numbers of the membership stage.

    Attributes:
        victim_label: how the report names the victim.
        rows: one :class:`AttackScore` per attack, target and output.
        attacks: attacks run, in order.
        diagnostics: attacks that check the split rather than the encoder (the blind baseline).
        outputs: outputs of the victim attacked (``["h"]`` or ``["h", "z"]``).
        head_kind: the victim's projection head (``mlp`` / ``linear`` / ``none``) when known.
        head_source: where the head came from (empty when no head was available).
        views, views_source: the query augmentation and why it was chosen.
        n_views, view_draws: views per draw and draws per image.
        shadow: the shadow's recipe and sizes.
        control: the positive control's recipe and sizes (empty when disabled).
        fire_auc: AUC at which an attack counts as having fired.
        bootstrap: resamples of the AUC intervals.
        query_images, api_calls: what the victim was asked.
        wall_seconds, shadow_seconds, control_seconds: time.
        figures: ROC plots.
        notes: adaptations made to fit the data (smaller shadow, fewer non-members, ...).
    """

    victim_label: str
    rows: list[AttackScore]
    attacks: list[str]
    diagnostics: list[str]
    outputs: list[str]
    head_kind: str | None
    head_source: str
    views: str
    views_source: str
    n_views: int
    view_draws: int
    shadow: dict[str, Any]
    control: dict[str, Any]
    fire_auc: float
    bootstrap: int
    query_images: int
    api_calls: int
    wall_seconds: float
    shadow_seconds: float
    control_seconds: float
    figures: list[FigureRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def find(self, attack: str, target: str = VICTIM, output: str = "h") -> AttackScore | None:
        """The row of ``attack`` on ``target`` through ``output``, if it was run."""
        for r in self.rows:
            if (r.attack, r.target, r.output) == (attack, target, output):
                return r
        return None


# --------------------------------------------------------------------------------------------- helpers


def victim_views(victim: Encoder, requested: str = "auto") -> tuple[str, str]:
    """The query augmentation and where it came from.

    ``auto`` reads the victim's training augmentation from its sidecar (``training.views``, or the
    method's own recipe); a victim without one (a remote service, a foreign checkpoint) gets ``simclr``,
    the family SimCLR / MoCo / EncoderMI all draw from, and the report says so.
    """
    if requested != "auto":
        return requested, "chosen in the configuration"
    meta = victim.meta if isinstance(victim, HasMetadata) else {}
    training = meta.get("training", {}) if isinstance(meta, dict) else {}
    if isinstance(training, dict):
        if isinstance(training.get("views"), str):
            return training["views"], "the victim's training augmentation (from its checkpoint sidecar)"
        mc = training.get("method_config")
        if isinstance(mc, dict) and isinstance(mc.get("views"), str):
            return mc["views"], "the victim's training augmentation (from its checkpoint sidecar)"
        method = str(training.get("method", "")).lower()
        if method == "moco" and isinstance(mc, dict):
            return ("moco-v1" if mc.get("version") == "v1" else "moco-v2"), "the victim's MoCo version's augmentation"
        if method == "simclr":
            return "simclr", "the victim's SimCLR training augmentation"
    return "simclr", "default: the victim records no training augmentation, so SimCLR's family is assumed"


def _victim_arch(victim: Encoder) -> str | None:
    if isinstance(victim, WhiteBox):
        return str(victim.net.arch)
    meta = victim.meta if isinstance(victim, HasMetadata) else {}
    arch = meta.get("architecture") if isinstance(meta, dict) else None
    return str(arch) if arch else None


def _select_attacks(config: MembershipAuditConfig, labelled: bool, reference: int) -> list[str]:
    out = []
    for name in config.attacks:
        cls = attack_class("membership", name)
        if cls.needs_labels and not labelled:
            log.info("%s skipped: the images have no labels", name)
            continue
        if cls.needs_reference and reference == 0:
            log.info("%s skipped: no reference images (membership.reference = 0)", name)
            continue
        out.append(name)
    return out


@dataclass
class _Pools:
    """Disjoint image sets the stage draws from."""

    members: ImageDataset
    nonmembers: ImageDataset
    pseudo: ImageDataset | None
    shadow: ImageDataset
    control_in: ImageDataset | None
    control_out: ImageDataset | None


def _split(
    members: ImageDataset,
    nonmembers: ImageDataset,
    shadow_data: ImageDataset,
    config: MembershipAuditConfig,
    seed: int,
    notes: list[str],
) -> _Pools:
    """Cap the victim's sets, carve the null split out of its non-members and the control out of the shadow data."""
    mem = subsample(members, config.members, derive_seed(seed, "members"))
    n_out = min(config.nonmembers, len(nonmembers))
    if n_out < config.nonmembers:
        notes.append(f"only {n_out} victim non-members were available (configured: {config.nonmembers})")
    pseudo = None
    if config.negative_control:
        n_pseudo = min(len(mem), len(nonmembers) - n_out)
        if n_pseudo < 2:
            n_out = max(2, len(nonmembers) - len(mem))
            n_pseudo = min(len(mem), len(nonmembers) - n_out)
            notes.append(f"victim non-members cut to {n_out} to hold the negative control's null split")
        if n_pseudo >= 2:
            parts = make_splits(nonmembers, {"out": n_out, "pseudo": n_pseudo}, seed=derive_seed(seed, "null"))
            non, pseudo = parts.select(nonmembers, "out"), parts.select(nonmembers, "pseudo")
        else:
            non = subsample(nonmembers, n_out, derive_seed(seed, "nonmembers"))
    else:
        non = subsample(nonmembers, n_out, derive_seed(seed, "nonmembers"))
    control_in = control_out = None
    shadow = shadow_data
    pc = config.positive_control
    if pc is not None:
        n_in = min(pc.members, len(shadow_data) // 4)
        n_cout = min(config.control_nonmembers, len(shadow_data) // 2 - n_in)
        if n_in < pc.members or n_cout < config.control_nonmembers:
            notes.append(
                f"the positive control got {n_in} members / {n_cout} non-members "
                f"(configured: {pc.members} / {config.control_nonmembers}): too little shadow data"
            )
        rest = len(shadow_data) - n_in - n_cout
        parts = make_splits(
            shadow_data, {"cin": n_in, "cout": n_cout, "shadow": rest}, seed=derive_seed(seed, "control-split")
        )
        control_in, control_out = parts.select(shadow_data, "cin"), parts.select(shadow_data, "cout")
        shadow = parts.select(shadow_data, "shadow")
    return _Pools(mem, non, pseudo, shadow, control_in, control_out)


def _shadow_config(config: MembershipAuditConfig, pool: int, reference: int, notes: list[str]) -> ShadowConfig:
    recipe = config.shadow
    reference = min(reference, pool // 3)
    n_out = config.shadow_nonmembers or recipe.members
    room = pool - reference
    if recipe.members + n_out > room:
        half = max(2, room // 2)
        notes.append(f"shadow data is small: {half} shadow members (configured: {recipe.members})")
        recipe = replace(recipe, members=half, batch_size=min(recipe.batch_size, half))
        n_out = half
    return ShadowConfig(recipe=recipe, nonmembers=n_out, reference=reference)


def _rows(
    results: list[MIAScores],
    target: str,
    output: str,
    fitted: FittedAttacks,
    usage: dict[str, Any],
    config: MembershipAuditConfig,
    seed: int,
) -> list[AttackScore]:
    rows = []
    for r in results:
        m = evaluate_scores(
            r.scores, r.labels, r.threshold, bootstrap=config.bootstrap, seed=derive_seed(seed, r.attack)
        )
        draw_aucs = [evaluate_scores(s, r.labels)["auc"] for s in r.per_draw]
        rows.append(
            AttackScore(
                attack=r.attack,
                target=target,
                output=output,
                auc=m["auc"],
                auc_lo=m.get("auc_lo", m["auc"]),
                auc_hi=m.get("auc_hi", m["auc"]),
                auc_draw_std=float(np.std(draw_aucs, ddof=1)) if len(draw_aucs) > 1 else None,
                accuracy=m["accuracy"],
                balanced_accuracy=m["balanced_accuracy"],
                precision=m["precision"],
                recall=m["recall"],
                tpr_at_1pct_fpr=m["tpr_at_1pct_fpr"],
                tpr_at_01pct_fpr=m["tpr_at_0.1pct_fpr"],
                members=m["members"],
                nonmembers=m["nonmembers"],
                queries_per_image=r.queries_per_image,
                fit_seconds=fitted.fit_seconds.get(r.attack, 0.0),
                score_seconds=float(usage.get("score_seconds", {}).get(r.attack, 0.0)),
            )
        )
    return rows


def _plot(
    scored: dict[str, list[MIAScores]], out_dir: Path, run_dir: Path | None, n_in: int, n_out: int
) -> list[FigureRef]:
    figs = []
    for key, title, caption in (
        (
            f"{VICTIM}/h",
            f"victim, served features h ({n_in} members / {n_out} non-members)",
            "ROC of every attack against the victim's served features, log-log axes (Carlini et al. 2022).",
        ),
        (
            f"{VICTIM}/z",
            f"victim, projection-head output z ({n_in} / {n_out})",
            "ROC of every attack against the victim's projection-head output z.",
        ),
        (
            f"{POSITIVE}/h",
            "positive control (known-leaking target trained by the audit)",
            "ROC of every attack against the positive control: what a leak looks like at this scale.",
        ),
    ):
        if key not in scored:
            continue
        name = "membership_roc_" + key.replace(" ", "_").replace("/", "_") + ".png"
        path = plot_roc({r.attack: (r.scores, r.labels) for r in scored[key]}, out_dir / name, title=title)
        rel = relative_to_run(path, run_dir) if run_dir is not None else str(path)
        figs.append(FigureRef(rel, caption))
    return figs


def _victim_head(victim: Encoder, head: Any) -> Encoder | None:
    if head is None or not isinstance(victim, WhiteBox):
        return None
    return LocalEncoder(head_encoder(victim.net, head))


def remote_head_output(victim: Encoder) -> tuple[Encoder, str] | None:
    """``(z-encoder, head kind)`` when ``victim`` is a service that serves its head's output (``?output=z``)."""
    with_output = getattr(victim, "with_output", None)
    if with_output is None or "z" not in getattr(victim, "outputs", ()):
        return None
    return with_output("z"), str(getattr(victim, "head_kind", None) or "unknown")


# --------------------------------------------------------------------------------------------- the audit


def audit_membership(
    victim: Encoder,
    members: ImageDataset,
    nonmembers: ImageDataset,
    shadow_data: ImageDataset,
    config: MembershipAuditConfig,
    out_dir: Path,
    *,
    seed: int = 0,
    head: tuple[Any, str] | None = None,
    head_source: str = "",
    victim_label: str = "the encoder under audit",
    run_dir: Path | None = None,
    device: str = "cpu",
    progress: bool | None = False,
) -> MembershipResult:
    """EncoderMI-V/S/T and the baselines against ``victim``, beside a positive and a negative control.

    Args:
        victim: the encoder (local or remote).
        members: images known to be in its pre-training set.
        nonmembers: images known not to be, drawn i.i.d. with ``members`` (also the null split's source).
        shadow_data: the inferrer's own images, disjoint from both: the shadow encoder, its reference
            images and the positive control are drawn from them.
        config: the membership settings.
        out_dir: where ``scores.npz`` and the ROC plots go.
        seed: seed of the splits, training, views and classifiers.
        head: the victim's projection head ``(module, kind)`` when at hand (attacks ``z`` too).
        head_source: where the head came from, for the report.
        victim_label: how the report names the victim.
        run_dir: figure paths are made relative to it (None: absolute paths).
        device: where the shadow and control train.
        progress: progress bars.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    views, views_source = victim_views(victim, config.views)
    features = FeatureConfig(n_views=config.n_views, views=views)
    pools = _split(members, nonmembers, shadow_data, config, seed, notes)
    labelled = all(d.labels is not None for d in (pools.members, pools.nonmembers, pools.shadow))
    names = _select_attacks(config, labelled, config.reference)
    sconf = _shadow_config(
        config,
        len(pools.shadow),
        config.reference if any(attack_class("membership", n).needs_reference for n in names) else 0,
        notes,
    )

    t0 = time.perf_counter()
    shadow, _ = train_shadow(pools.shadow, sconf, seed=seed, progress=progress, device=device)
    shadow_seconds = time.perf_counter() - t0
    fitted = {"h": fit_attacks(shadow, names, features=features, attack_params=config.attack_params, seed=seed)}
    z_victim: Encoder | None = None
    if config.outputs == "auto":
        remote = remote_head_output(victim) if head is None else None
        if remote is not None:
            z_victim, head, head_source = remote[0], (None, remote[1]), "served by the victim's service (?output=z)"
        elif head is not None:
            z_victim = _victim_head(victim, head[0])
    if head is not None and head[1] == "none":  # trained without a head: z is h, nothing more to attack
        notes.append("the victim was trained without a projection head: its served features h are what the loss saw")
        head, z_victim = None, None
    if z_victim is not None:
        z_shadow: Shadow = shadow.head_output()
        fitted["z"] = (
            fitted["h"]
            if z_shadow is shadow
            else fit_attacks(z_shadow, names, features=features, attack_params=config.attack_params, seed=seed)
        )

    scored: dict[str, list[MIAScores]] = {}
    rows: list[AttackScore] = []
    pairs: dict[str, tuple[ImageDataset, ImageDataset]] = {VICTIM: (pools.members, pools.nonmembers)}
    if pools.pseudo is not None:
        pairs[NEGATIVE] = (pools.pseudo, pools.nonmembers)
    res, usage = score_attacks(
        fitted["h"], victim, pairs, features=features, draws=config.view_draws, seed=seed, progress=progress
    )
    for target, results in res.items():
        scored[f"{target}/h"] = results
        rows += _rows(results, target, "h", fitted["h"], usage, config, seed)
    query_images, api_calls = int(usage["query_images"]), int(usage["api_calls"])
    if z_victim is not None:
        res_z, usage_z = score_attacks(
            fitted["z"],
            z_victim,
            {VICTIM: pairs[VICTIM]},
            features=features,
            draws=config.view_draws,
            seed=seed,
            progress=progress,
        )
        scored[f"{VICTIM}/z"] = res_z[VICTIM]
        rows += _rows(res_z[VICTIM], VICTIM, "z", fitted["z"], usage_z, config, seed)
        query_images += int(usage_z["query_images"])
        api_calls += int(usage_z["api_calls"])

    control_seconds = 0.0
    control: dict[str, Any] = {}
    pc = config.positive_control
    if pc is not None and pools.control_in is not None and pools.control_out is not None:
        arch = _victim_arch(victim) or pc.arch
        pc = replace(pc, arch=arch, members=len(pools.control_in), batch_size=min(pc.batch_size, len(pools.control_in)))
        t0 = time.perf_counter()
        trained = train_encoder(pools.control_in, pc, seed=derive_seed(seed, "positive-control"), device=device)
        control_seconds = time.perf_counter() - t0
        res_c, _ = score_attacks(
            fitted["h"],
            LocalEncoder(trained.net),
            {POSITIVE: (pools.control_in, pools.control_out)},
            features=features,
            draws=config.view_draws,
            seed=derive_seed(seed, "control-views"),
        )
        scored[f"{POSITIVE}/h"] = res_c[POSITIVE]
        rows += _rows(res_c[POSITIVE], POSITIVE, "h", fitted["h"], {}, config, seed)
        control = {"recipe": pc.to_dict(), "members": len(pools.control_in), "nonmembers": len(pools.control_out)}

    save_scores([r for rs in scored.values() for r in rs], out_dir / "scores.npz")
    figures = _plot(scored, out_dir, run_dir, len(pools.members), len(pools.nonmembers))
    return MembershipResult(
        victim_label=victim_label,
        rows=rows,
        attacks=names,
        diagnostics=[n for n in names if attack_class("membership", n).diagnostic],
        outputs=["h", "z"] if z_victim is not None else ["h"],
        head_kind=head[1] if head else None,
        head_source=head_source if head else "",
        views=views,
        views_source=views_source,
        n_views=config.n_views,
        view_draws=config.view_draws,
        shadow={**shadow.describe(), "recipe": sconf.recipe.to_dict()},
        control=control,
        fire_auc=config.fire_auc,
        bootstrap=config.bootstrap,
        query_images=query_images,
        api_calls=api_calls,
        wall_seconds=round(time.perf_counter() - t_start, 1),
        shadow_seconds=round(shadow_seconds, 1),
        control_seconds=round(control_seconds, 1),
        figures=figures,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------- the stage


def _stage_head(ctx: StageContext) -> tuple[tuple[Any, str] | None, str]:
    """The victim's projection head, when saved beside its checkpoint."""
    candidates: list[tuple[Path, str]] = []
    if ctx.victim_trained_here:
        candidates.append((ctx.out_dir.parent / "victim" / "encoder.safetensors", "saved by the audit's training"))
    elif ctx.config.victim and not ctx.config.victim.startswith(("http://", "https://")):
        candidates.append((Path(ctx.config.victim), "saved beside the victim's checkpoint"))
    for path, source in candidates:
        if path.exists() or path.parent.is_dir():
            found = load_head(path)
            if found is not None:
                return found, source
    return None, ""


def skip(ctx: StageContext) -> str | None:
    """Membership inference needs the victim's real members."""
    if ctx.victim_trained_here or ctx.config.data.members_known:
        return None
    return (
        "the victim's training members are unknown: give a split manifest whose members part names "
        "them (--splits, data.members_known) to score membership inference against it"
    )


def run(ctx: StageContext, config: MembershipAuditConfig) -> MembershipResult:
    """The membership stage: :func:`audit_membership` on the audit's splits."""
    victim = ctx.victim()
    head, source = _stage_head(ctx)
    return audit_membership(
        victim,
        ctx.data.members,
        ctx.data.nonmembers,
        ctx.data.shadow,
        config,
        ctx.out_dir,
        seed=ctx.seed,
        head=head,
        head_source=source,
        victim_label=ctx.victim_label,
        run_dir=ctx.run_dir,
        device=ctx.device,
        progress=ctx.progress,
    )


def _build(result: MembershipResult) -> Any:
    from .sections.membership import build_membership_section

    return build_membership_section(result)


register_family(
    Family(
        key="membership",
        title="Membership inference",
        config_attr="membership",
        result_type=MembershipResult,
        run=run,
        build=_build,
        skip=skip,
    )
)


# --------------------------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class MembershipJob:
    """What ``encoder-audit membership`` was asked (the CLI only fills this in).

    Attributes:
        victim: checkpoint path or service URL.
        api_key: key of a URL victim.
        members, nonmembers, shadow_data: image specs (``MANIFEST.json[:PART]``, ``imagefolder:PATH``,
            ``DATASET[:SPLIT]``); ``splits`` fills the missing ones from one manifest.
        splits: a manifest with parts members / nonmembers / shadow.
        attacks: attack names (``all`` / ``encodermi`` expand).
        shadow_recipe: ``auto`` (the victim's own recipe from its sidecar, else ``overfit``) or a recipe name.
        shadow_overrides: fields of the shadow recipe to change.
        views: query augmentation (``auto``: the victim's own).
        config: the rest of the membership settings.
    """

    victim: str
    api_key: str | None = None
    members: str | None = None
    nonmembers: str | None = None
    shadow_data: str | None = None
    splits: str | None = None
    attacks: tuple[str, ...] = ("all",)
    shadow_recipe: str = "auto"
    shadow_overrides: dict[str, Any] = field(default_factory=dict)
    config: MembershipAuditConfig = field(default_factory=MembershipAuditConfig)


def expand_attacks(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``all`` (every default attack), ``encodermi`` (V/S/T) or names, comma-separated or repeated.

    Raises:
        UnknownNameError: an unknown attack.
    """
    from ..attacks.membership import ENCODERMI
    from .membership_config import DEFAULT_ATTACKS

    out: list[str] = []
    for v in values or ("all",):
        for name in (n.strip() for n in v.split(",")):
            if name == "all":
                out += list(DEFAULT_ATTACKS)
            elif name == "encodermi":
                out += list(ENCODERMI)
            elif name:
                attack_class("membership", name)
                out.append(name)
    return tuple(dict.fromkeys(out))


def load_images(spec: str, default_part: str, *, root: Path | None = None, download: bool = False) -> ImageDataset:
    """``MANIFEST.json[:PART]``, ``imagefolder:PATH`` or ``DATASET[:SPLIT]`` as an :class:`ImageDataset`."""
    from ..data import SplitManifest, create_dataset

    path, sep, part = spec.partition(".json")
    if sep:
        manifest = SplitManifest.load(path + ".json")
        full = create_dataset(manifest.dataset, manifest.split, root=root, download=download)
        return manifest.select(full, part.lstrip(":") or default_part)
    if spec.startswith("imagefolder:"):
        return create_dataset(spec, "train", root=root, download=download)
    name, _, split = spec.partition(":")
    return create_dataset(name, split or "train", root=root, download=download)


def shadow_recipe_for(victim: Encoder, name: str = "auto", overrides: dict[str, Any] | None = None) -> TargetRecipe:
    """The shadow's recipe: the victim's own (``auto``, from its sidecar) or a named one, with fields changed."""
    from ..attacks.membership.targets import recipe

    base = None
    if name == "auto":
        meta = victim.meta if isinstance(victim, HasMetadata) else {}
        rec = (meta.get("training") or {}).get("recipe") if isinstance(meta, dict) else None
        base = TargetRecipe.from_dict(rec) if isinstance(rec, dict) else recipe("overfit")
    else:
        base = recipe(name)
    changes = dict(overrides or {})
    if "members" in changes and "batch_size" not in changes:
        changes["batch_size"] = min(base.batch_size, int(changes["members"]))
    return replace(base, **changes)


def membership_job(
    job: MembershipJob,
    run_dir: Path,
    *,
    seed: int = 0,
    device: str = "cpu",
    data_root: Path | None = None,
    download: bool = False,
    progress: bool | None = False,
) -> MembershipResult:
    """``encoder-audit membership``: open the victim, load the sets, audit, write the run directory.

    Writes ``results.json`` (the result and its section), ``summary.md``, ``scores.npz``, the ROC plots,
    ``config.yaml`` and ``env.json`` into ``run_dir``.

    Raises:
        ValueError: missing image sets.
    """
    from ..config import config_to_dict
    from ..runs import RunDir
    from .family import result_to_json
    from .runner import open_victim
    from .sections.membership import build_membership_section

    specs = {
        "members": job.members or (f"{job.splits}:members" if job.splits else None),
        "nonmembers": job.nonmembers or (f"{job.splits}:nonmembers" if job.splits else None),
        "shadow": job.shadow_data or (f"{job.splits}:shadow" if job.splits else None),
    }
    if not all(specs.values()):
        raise ValueError("give --splits, or all of --members, --nonmembers and --shadow-data")
    sets = {k: load_images(str(v), k, root=data_root, download=download) for k, v in specs.items()}
    victim = open_victim(job.victim, api_key=job.api_key, device=device)
    head = None if job.victim.startswith(("http://", "https://")) else load_head(job.victim)
    config = replace(
        job.config,
        attacks=expand_attacks(job.attacks),
        shadow=shadow_recipe_for(victim, job.shadow_recipe, job.shadow_overrides),
    )
    run = RunDir.open(run_dir)
    run.save_config({"command": "membership", "job": config_to_dict(job), "resolved": config_to_dict(config)})
    run.save_env(seed)
    result = audit_membership(
        victim,
        sets["members"],
        sets["nonmembers"],
        sets["shadow"],
        config,
        run.path,
        seed=seed,
        head=head,
        head_source="saved beside the victim's checkpoint" if head else "",
        victim_label=job.victim,
        run_dir=run.path,
        device=device,
        progress=progress,
    )
    section = build_membership_section(result)
    section.verdict = section.verdict.checked()
    run.save_results({"result": result_to_json(result), "section": section.to_dict()}, kind="membership")
    lines = [
        f"# Membership inference\n\n{section.headline.render()}\n",
        f"Verdict: **{section.label()}** — {section.verdict.rule}\n",
    ]
    for t in section.tables:
        lines.append(f"\n## {t.title}\n\n| " + " | ".join(c.name for c in t.columns) + " |")
        lines.append("|" + "---|" * len(t.columns))
        for row in t.rows:
            lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        if t.note:
            lines.append(f"\n{t.note}")
    run.save_summary("\n".join(lines) + "\n")
    return result


def _cell(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
