"""Configs from YAML / ``--set`` text: type coercion, unknown keys, validation, round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from encoder_audit.config import build_config, config_to_dict, load_yaml, override, parse_overrides


@dataclass(frozen=True)
class Demo:
    eps: float = 8 / 255
    steps: int = 10
    flag: bool = False
    name: str = "x"
    scale: tuple[float, float] = (0.2, 1.0)
    sizes: tuple[int, ...] = (1, 2)
    tags: list[str] = field(default_factory=list)
    mode: Literal["a", "b"] = "a"
    limit: int | None = None
    tau: float | None = None
    path: Path = Path("out")

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def test_coercion_from_strings() -> None:
    cfg = build_config(
        Demo,
        {
            "eps": "16/255",
            "steps": "12",
            "flag": "true",
            "name": 5,
            "scale": ["0.5", 1],
            "sizes": [3, "4", 5.0],
            "tags": "solo",
            "mode": "b",
            "limit": "7",
            "tau": None,
        },
    )
    assert cfg.eps == pytest.approx(16 / 255) and isinstance(cfg.eps, float)
    assert cfg.steps == 12 and cfg.flag is True and cfg.name == "5"
    assert cfg.scale == (0.5, 1.0) and isinstance(cfg.scale, tuple)
    assert cfg.sizes == (3, 4, 5) and all(isinstance(v, int) for v in cfg.sizes)
    assert cfg.tags == ["solo"] and cfg.mode == "b" and cfg.limit == 7 and cfg.tau is None
    assert build_config(Demo, {}) == Demo()
    assert build_config(Demo, None) == Demo()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("False", False), ("yes", True), ("no", False), ("1", True), ("0", False), (1, True), (0, False)],
)
def test_bool_strings(text: str, expected: bool) -> None:
    assert build_config(Demo, {"flag": text}).flag is expected


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"epz": 1}, r"unknown option\(s\) epz for Demo; valid: eps, flag"),
        ({"steps": "3.5"}, "steps must be an integer"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"steps": True}, "steps must be an integer"),
        ({"steps": 0}, "steps must be >= 1"),  # the config's own validation
        ({"eps": "abc"}, "eps must be a number"),
        ({"eps": "1/0"}, "eps must be a number"),
        ({"eps": True}, "eps must be a number"),
        ({"flag": "maybe"}, "flag must be true or false"),
        ({"flag": 2}, "flag must be true or false"),
        ({"scale": [1, 2, 3]}, "scale needs 2 values, got 3"),
        ({"mode": "c"}, r"mode must be one of \['a', 'b'\]"),
        ({"limit": "lots"}, "limit"),
    ],
)
def test_bad_values_are_value_errors(values: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        build_config(Demo, values)


def test_not_a_dataclass() -> None:
    with pytest.raises(TypeError):
        build_config(dict, {})


def test_parse_overrides_nesting_and_yaml_types() -> None:
    out = parse_overrides(["a=1", "b.c=x", "b.d.e=[1, 2]", "f=16/255", "g=true", "h=", " i = 0.5 ", "b.c=y"])
    assert out == {"a": 1, "b": {"c": "y", "d": {"e": [1, 2]}}, "f": "16/255", "g": True, "h": "", "i": 0.5}


@pytest.mark.parametrize(
    "pairs",
    [["novalue"], ["=3"], ["a..b=1"], ["a=1", "a.b=2"], ["a.b=2", "a=1"], ["a=[1,"], ["a=!!python/name:os.system"]],
)
def test_parse_overrides_errors_are_value_errors(pairs: list[str]) -> None:
    with pytest.raises(ValueError):
        parse_overrides(pairs)


def test_overrides_feed_build_config() -> None:
    cfg = build_config(Demo, parse_overrides(["eps=4/255", "scale=[0.1, 0.9]", "limit=null", "flag=on"]))
    assert cfg.eps == pytest.approx(4 / 255) and cfg.scale == (0.1, 0.9) and cfg.limit is None
    assert cfg.flag is True  # YAML 1.1 reads "on" as true


@pytest.mark.parametrize(
    "config",
    [
        Demo(eps=0.25, scale=(0.3, 0.4), tags=["a"], limit=3, path=Path("runs/x")),
        "views",
        "moco",
        "eval",
        "train",
    ],
)
def test_config_to_dict_round_trip(config: object) -> None:
    if config == "views":
        from encoder_audit.augment import ViewConfig

        config = ViewConfig(crop_scale=(0.5, 0.9), jitter=(0.1, 0.2, 0.3, 0.05))
    elif config == "moco":
        from encoder_audit.train import MoCoConfig

        config = MoCoConfig(version="v1", temperature=0.1)
    elif config == "eval":
        from encoder_audit.evaluate import EvalConfig

        config = EvalConfig(max_train=None, max_test=50)
    elif config == "train":
        from encoder_audit.train import TrainConfig

        config = TrainConfig()
    plain = config_to_dict(config)
    assert not any(isinstance(v, tuple) for v in plain.values())  # YAML/JSON friendly
    import json

    assert build_config(type(config), json.loads(json.dumps(plain))) == config


def test_override_revalidates() -> None:
    cfg = override(Demo(), {"steps": "4"})
    assert cfg.steps == 4 and cfg.eps == Demo().eps
    with pytest.raises(ValueError):
        override(cfg, {"steps": -1})


def test_load_yaml(tmp_path: Path) -> None:
    good = tmp_path / "c.yaml"
    good.write_text("eps: 16/255\nscale: [0.1, 0.2]\n")
    assert build_config(Demo, load_yaml(good)).scale == (0.1, 0.2)
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "empty.yaml") == {}
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ValueError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")
    with pytest.raises(ValueError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1,\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_yaml(tmp_path / "broken.yaml")
    marker = tmp_path / "PWNED"
    (tmp_path / "evil.yaml").write_text(f"a: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_yaml(tmp_path / "evil.yaml")
    assert not marker.exists()
