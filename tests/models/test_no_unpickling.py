"""Static guard: no code under ``src/`` can unpickle untrusted bytes.

Fails on any ``torch.load(`` without ``weights_only=True``, any ``pickle.load``/``pickle.loads`` (or
``dill``/``joblib``/``cloudpickle`` loads, ``pandas.read_pickle``, ``numpy.load(allow_pickle=True)``,
``yaml.load`` without a safe loader) outside a restricted-unpickler class, i.e. a subclass of
``pickle.Unpickler`` that overrides ``find_class``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "encoder_audit"
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def _restricted_unpickler(cls: ast.ClassDef) -> bool:
    bases = {_dotted(b) for b in cls.bases}
    overrides = any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in cls.body)
    return bool(bases & {"pickle.Unpickler", "Unpickler", "_pickle.Unpickler"}) and overrides


class _Finder(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        self.aliases: dict[str, str] = {}  # local name -> module.function imported with "from x import y"
        self.in_safe_class = 0

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.asname:
                self.aliases[a.asname] = a.name
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        safe = _restricted_unpickler(node)
        self.in_safe_class += safe
        self.generic_visit(node)
        self.in_safe_class -= safe

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        name = f"{self.aliases.get(head, head)}{'.' + rest if rest else ''}"
        where = f"{self.path.relative_to(SRC.parent)}:{node.lineno}"
        module, _, func = name.rpartition(".")
        if name == "torch.load" and not _is_true(node, "weights_only"):
            self.problems.append(f"{where}: torch.load without weights_only=True")
        if module.split(".")[-1] in PICKLE_MODULES and func in {"load", "loads"} and not self.in_safe_class:
            self.problems.append(f"{where}: {name} outside a restricted Unpickler")
        if name in {"pandas.read_pickle", "pd.read_pickle"}:
            self.problems.append(f"{where}: {name}")
        if name in {"numpy.load", "np.load"} and _is_true(node, "allow_pickle"):
            self.problems.append(f"{where}: {name}(allow_pickle=True)")
        if name in {"yaml.load", "yaml.unsafe_load", "yaml.full_load"}:
            loader = [k for k in node.keywords if k.arg == "Loader"] or node.args[1:2]
            safe = loader and "Safe" in ast.unparse(loader[0] if isinstance(loader[0], ast.AST) else loader[0].value)
            if name != "yaml.load" or not safe:
                self.problems.append(f"{where}: {name} without SafeLoader")
        self.generic_visit(node)


def scan(root: Path) -> list[str]:
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        finder = _Finder(path)
        finder.visit(ast.parse(path.read_text(), filename=str(path)))
        problems += finder.problems
    return problems


def test_no_unsafe_deserialization_in_src() -> None:
    assert SRC.is_dir()
    assert scan(SRC) == []


def test_scanner_catches_unsafe_calls(tmp_path: Path) -> None:
    """The guard itself can fail: each unsafe pattern is reported, the safe ones are not."""
    pkg = tmp_path / "encoder_audit"
    pkg.mkdir()
    (pkg / "bad.py").write_text(
        "import pickle, torch, yaml\n"
        "import numpy as np\n"
        "from pickle import loads as pl\n"
        "torch.lo" "ad('a')\n"  # split so that repository greps for unsafe loads do not match this fixture
        "torch.lo" "ad('a', weights_only=False)\n"
        "pickle.load(open('a', 'rb'))\n"
        "pickle.loads(b'')\n"
        "pl(b'')\n"
        "np.load('a', allow_pickle=True)\n"
        "yaml.load('a')\n"
        "class Sneaky(pickle.Unpickler):\n"
        "    pass\n"
        "def f():\n"
        "    return pickle.loads(b'')\n"
    )
    (pkg / "good.py").write_text(
        "import pickle, torch, yaml\n"
        "import numpy as np\n"
        "torch.load('a', weights_only=True)\n"
        "np.load('a', allow_pickle=False)\n"
        "yaml.safe_load('a')\n"
        "yaml.load('a', Loader=yaml.SafeLoader)\n"
        "class Restricted(pickle.Unpickler):\n"
        "    def find_class(self, module, name):\n"
        "        raise pickle.UnpicklingError(name)\n"
        "    def read(self, data):\n"
        "        return pickle.loads(data)\n"
    )
    global SRC
    old, SRC = SRC, pkg
    try:
        problems = scan(pkg)
    finally:
        SRC = old
    assert all("bad.py" in p for p in problems), problems
    assert len(problems) == 8, problems
