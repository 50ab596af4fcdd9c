"""The "Membership inference" section: a pure function of :class:`~..membership.MembershipResult`.

Rules (stated in the section too):

* **strongest attack**: the non-diagnostic attack with the highest AUC on the positive control (a
  target whose members the audit knows and the victim's labels play no part in), so the headline is
  not chosen on the victim's evaluation labels; without a control, EncoderMI-T.
* **fired**: AUC >= ``fire_auc`` and the lower end of its bootstrap 95% interval above 0.5.
* **level** from the strongest attack on every output of the victim attacked (``h``, and ``z`` when
  the head is at hand): high when AUC >= 0.75 or TPR at 1% FPR >= 10% (where resolved), with the
  interval above 0.5; medium when it fired; low otherwise. The worst output counts. The blind baseline
  or the null split firing makes it inconclusive (the split, not the encoder, would be measured).
"""

from __future__ import annotations

from ...report.model import (
    Column,
    Control,
    Figure,
    Section,
    Table,
    Text,
    Verdict,
    WhatToDo,
    count,
    key,
    num,
    pct,
)
from ..membership import NEGATIVE, POSITIVE, VICTIM, AttackScore, MembershipResult

__all__ = ["HIGH_AUC", "HIGH_TPR", "build_membership_section", "level_of", "strongest_attack"]

HIGH_AUC = 0.75
HIGH_TPR = 0.10
_ORDER = {"high": 3, "medium": 2, "low": 1}
_OUTPUT = {"h": "served features h", "z": "projection-head output z"}


def fired(row: AttackScore, fire_auc: float) -> bool:
    """The attack separated members on this target: AUC >= ``fire_auc`` and the interval above 0.5."""
    return row.auc >= fire_auc and row.auc_lo > 0.5


def level_of(row: AttackScore, fire_auc: float) -> str:
    """``high`` / ``medium`` / ``low`` for one row (see the module docstring)."""
    if row.auc_lo > 0.5 and (
        row.auc >= HIGH_AUC or (row.tpr_at_1pct_fpr is not None and row.tpr_at_1pct_fpr >= HIGH_TPR)
    ):
        return "high"
    return "medium" if fired(row, fire_auc) else "low"


def strongest_attack(result: MembershipResult) -> tuple[str, str]:
    """``(attack, why)``: the highest positive-control AUC among non-diagnostic attacks."""
    candidates = [a for a in result.attacks if a not in result.diagnostics]
    if not candidates:
        return result.attacks[0], "the only attack run"
    on_control = [
        (r.auc, -candidates.index(r.attack), r.attack)
        for r in result.rows
        if r.target == POSITIVE and r.attack in candidates
    ]
    if on_control:
        return max(on_control)[2], "highest AUC on the positive control"
    if "encodermi-t" in candidates:
        return "encodermi-t", "EncoderMI-T (no positive control to choose on)"
    return candidates[0], "the first attack (no positive control to choose on)"


def _victim_table(result: MembershipResult) -> Table:
    rows = [r for r in result.rows if r.target == VICTIM]
    n_out = max((r.nonmembers for r in rows), default=0)
    table = Table(
        "Membership inference against the victim (members positive)",
        [
            key("attack"),
            key("output"),
            pct("balanced acc."),
            pct("precision"),
            pct("recall"),
            num("AUC"),
            num("AUC 95% lo"),
            num("AUC 95% hi"),
            num("AUC sd over view draws"),
            pct("TPR@1%FPR"),
            pct("TPR@0.1%FPR"),
            count("queries/img"),
        ],
        note=f"{rows[0].members if rows else 0} members vs {n_out} non-members drawn i.i.d. from one split; "
        "thresholds chosen on the shadow; AUC intervals: stratified bootstrap; n/a: TPR at 1% FPR needs "
        ">= 100 non-members, at 0.1% >= 1,000 (below that it is TPR at FPR 0). Output h: the served "
        "features; z: the projection head's output.",
    )
    for r in rows:
        table.add(
            r.attack,
            r.output,
            r.balanced_accuracy,
            r.precision,
            r.recall,
            r.auc,
            r.auc_lo,
            r.auc_hi,
            r.auc_draw_std,
            r.tpr_at_1pct_fpr,
            r.tpr_at_01pct_fpr,
            r.queries_per_image,
        )
    return table


def _controls_table(result: MembershipResult) -> Table | None:
    rows = [r for r in result.rows if r.target in (POSITIVE, NEGATIVE)]
    if not rows:
        return None
    table = Table(
        "Controls: the same attacks on a known-leaking target and on a null split",
        [
            key("target"),
            key("attack"),
            num("AUC"),
            num("AUC 95% lo"),
            num("AUC 95% hi"),
            count("members"),
            count("non-members"),
            Column("fired"),
        ],
        note=f"positive control: a target the audit trains with the leaking recipe and scores on its own "
        f"members / non-members (must fire); negative control: victim non-members labelled as members "
        f"(must not fire). Fired: AUC >= {result.fire_auc:.2f} and the interval above 0.5.",
    )
    for r in rows:
        table.add(r.target, r.attack, r.auc, r.auc_lo, r.auc_hi, r.members, r.nonmembers, fired(r, result.fire_auc))
    return table


def _head_table(result: MembershipResult) -> Table | None:
    if "z" not in result.outputs:
        return None
    table = Table(
        "Where the leak is: the served features h vs the projection head's output z",
        [key("attack"), num("AUC on h"), num("AUC on z"), num("z - h")],
        note=f"the victim's {result.head_kind} projection head was {result.head_source}.",
    )
    for a in result.attacks:
        h, z = result.find(a, VICTIM, "h"), result.find(a, VICTIM, "z")
        if h is not None and z is not None:
            table.add(a, h.auc, z.auc, z.auc - h.auc)
    return table


def _controls(result: MembershipResult, attack: str) -> list[Control]:
    out = []
    pos, neg = result.find(attack, POSITIVE), result.find(attack, NEGATIVE)
    if pos is not None:
        out.append(
            Control(
                f"known-leaking target trained by the audit ({pos.members} members, {pos.nonmembers} non-members)",
                "positive",
                f"{attack} AUC",
                pos.auc,
                result.fire_auc,
                fired(pos, result.fire_auc),
            )
        )
    if neg is not None:
        out.append(
            Control(
                f"null split: {neg.members} victim non-members labelled as members",
                "negative",
                f"{attack} AUC",
                neg.auc,
                result.fire_auc,
                fired(neg, result.fire_auc),
            )
        )
    return out


def _verdict(result: MembershipResult, attack: str, controls: list[Control]) -> Verdict:
    rule = (
        f"strongest attack = {attack} (the highest AUC on the positive control); per output of the victim: "
        f"high if AUC >= {HIGH_AUC} or TPR@1%FPR >= {HIGH_TPR:.0%} with the 95% interval above 0.5, medium if "
        f"AUC >= {result.fire_auc} with the interval above 0.5, else low; the worst of "
        + " and ".join(result.outputs)
        + " counts; inconclusive if the blind baseline or the null split fires"
    )
    levels = [level_of(r, result.fire_auc) for o in result.outputs if (r := result.find(attack, VICTIM, o))]
    level = max(levels, key=lambda v: _ORDER[v]) if levels else "inconclusive"
    blind = [r for r in result.rows if r.target == VICTIM and r.attack in result.diagnostics]
    if any(fired(r, result.fire_auc) for r in blind):
        return Verdict("inconclusive", rule + " — the blind baseline fired: the split itself leaks", controls)
    if any(c.kind == "negative" and c.fired for c in controls):
        return Verdict("inconclusive", rule + " — the null split fired: the measurement is not trustworthy", controls)
    return Verdict(level, rule, controls)


def _headline(result: MembershipResult, attack: str, why: str) -> Text:
    h = result.find(attack, VICTIM, "h")
    if h is None:
        return Text("no attack was scored against the victim")
    values: dict = {"attack": attack, "why": why, "auc_h": h.auc, "lo_h": h.auc_lo, "hi_h": h.auc_hi}
    if "z" in result.outputs and (z := result.find(attack, VICTIM, "z")) is not None:
        template = (
            "{attack} ({why}) recovers members from the projection head's output at AUC {auc_z:.3f} "
            "[{lo_z:.3f}, {hi_z:.3f}], from the served features at AUC {auc_h:.3f} [{lo_h:.3f}, {hi_h:.3f}]"
        )
        values |= {"auc_z": z.auc, "lo_z": z.auc_lo, "hi_z": z.auc_hi}
    else:
        template = "{attack} ({why}) separates members from non-members at AUC {auc_h:.3f} [{lo_h:.3f}, {hi_h:.3f}]"
    if (pos := result.find(attack, POSITIVE)) is not None:
        template += "; on the known-leaking control {auc_pos:.3f}"
        values["auc_pos"] = pos.auc
    if (neg := result.find(attack, NEGATIVE)) is not None:
        template += ", on the null split {auc_neg:.3f}"
        values["auc_neg"] = neg.auc
    return Text(template + ".", values)


def _todo(result: MembershipResult, attack: str) -> WhatToDo:
    advice: list[Text] = []
    defenses = None
    h, z = result.find(attack, VICTIM, "h"), result.find(attack, VICTIM, "z")
    if h is not None and z is not None:
        defenses = Table(
            "Defenses measured here",
            [key("defense"), num("AUC before"), num("AUC after"), Column("cost to honest users")],
            [["keep the projection head private (serve h only)", z.auc, h.auc, "none: downstream users use h"]],
        )
        if z.auc - h.auc > 0.05:
            advice.append(
                Text(
                    "Do not release the projection head with the encoder: its output leaks membership at AUC "
                    "{z:.3f} against {h:.3f} for the served features.",
                    {"z": z.auc, "h": h.auc},
                )
            )
    if h is not None and fired(h, result.fire_auc):
        advice.append(
            Text(
                "Stop pre-training earlier or train on more images (EncoderMI's countermeasure): the gap comes "
                "from images seen many times; {attack} reaches AUC {auc:.3f} here. docs/benchmarks/membership.md "
                "measures the AUC / downstream-accuracy trade-off of early stopping.",
                {"attack": attack, "auc": h.auc},
            )
        )
    not_covered = [
        "Reference-model attacks (LiRA / RMIA adapted to encoders) are not run: a 'low' verdict bounds only "
        "the attacks listed.",
        "Non-members are drawn from the victim's own distribution; membership of images from other sources "
        "is not measured.",
    ]
    if "z" not in result.outputs:
        not_covered.append(
            "The projection head was not available, so its output z (which can leak far more than h) was not attacked."
        )
    return WhatToDo(advice, defenses, not_covered)


def build_membership_section(result: MembershipResult) -> Section:
    """The section: headline, verdict with controls, victim / controls / head tables, ROC figures."""
    attack, why = strongest_attack(result)
    controls = _controls(result, attack)
    tables = [t for t in (_victim_table(result), _controls_table(result), _head_table(result)) if t is not None]
    blind = result.find("blind") if "blind" in result.attacks else None
    caveats = [
        "Members and non-members are drawn i.i.d. from one split"
        + (
            f"; the blind (image-only) baseline's AUC is {blind.auc:.3f} (a cross-fitted classifier without "
            "signal reads below 0.5 when the classes are unbalanced; only AUC >= the firing level counts)."
            if blind
            else "."
        ),
        f"Queries use the {result.views} augmentation ({result.views_source}), {result.n_views} views x "
        f"{result.view_draws} draws per image.",
        f"Shadow: {result.shadow.get('members', '?')} members / {result.shadow.get('nonmembers', '?')} non-members, "
        f"{result.shadow.get('recipe', {}).get('arch', '?')} {result.shadow.get('recipe', {}).get('method', '?')}, "
        f"{result.shadow.get('recipe', {}).get('epochs', '?')} epochs (EncoderMI's shadow mirrors the target; "
        "ours is the leaking recipe).",
        *result.notes,
    ]
    if not result.control:
        caveats.append("No positive control was run: a 'low' verdict is not checked against a known leak.")
    return Section(
        key="membership",
        title="Membership inference",
        headline=_headline(result, attack, why),
        verdict=_verdict(result, attack, controls),
        tables=tables,
        figures=[Figure(f.path, f.caption) for f in result.figures],
        costs={
            "query_images": result.query_images,
            "api_calls": result.api_calls,
            "wall_seconds": result.wall_seconds,
            "shadow_training_seconds": result.shadow_seconds,
            "control_training_seconds": result.control_seconds,
        },
        config={
            "attacks": list(result.attacks),
            "views": result.views,
            "n_views": result.n_views,
            "view_draws": result.view_draws,
            "outputs": list(result.outputs),
            "shadow": result.shadow,
            "positive_control": result.control,
            "fire_auc": result.fire_auc,
            "bootstrap": result.bootstrap,
        },
        caveats=caveats,
        todo=_todo(result, attack),
    )
