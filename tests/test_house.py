"""The code's own shape, as a newcomer relies on it: no import circle, the Flask-free modules
really free of Flask, background work only where the app serves."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = (ROOT / "docs/architecture.md").read_text()


def imports() -> dict[str, set[str]]:
    """webapp's modules and the webapp modules each imports (at any depth of its code)."""
    graph = {}
    for path in (ROOT / "webapp").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps, named_modules = set(), []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
                named = {f"{base}.{alias.name}" for alias in node.names}
                deps.update(named)
                deps.add(base)  # `from .x import y` needs x; `from . import x` only x (kept below)
                named_modules.append((base, named))
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
        graph[name] = (deps, named_modules)
    modules = set(graph)
    for name, (deps, named_modules) in graph.items():
        for base, named in named_modules:
            if named & modules:   # `from . import x, y`: the package's modules, not the package
                deps.discard(base)
        graph[name] = deps
    return {name: {d for d in deps if d in graph and d != name} for name, deps in graph.items()}


def test_the_import_graph_has_no_circle():
    graph, state, path = imports(), {}, []

    def visit(name):
        state[name] = "open"
        path.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                raise AssertionError("import circle: " + " → ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep)
        state[name] = "done"
        path.pop()

    assert len(graph) > 20
    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_modules_the_architecture_calls_flask_free_import_without_flask():
    found = re.findall(r"\| `(webapp/[\w/]+?)(\.py|/)` \*\(no Flask\)\*", ARCHITECTURE)
    assert len(found) >= 12, found
    names = []
    for module, kind in found:  # a package (`webapp/video/`) stands for every module in it
        names.append(module.replace("/", "."))
        if kind == "/":
            names += sorted(f"{names[-1]}.{p.stem}" for p in (ROOT / module).glob("*.py") if p.stem != "__init__")
    assert "webapp.video.pipeline" in names and "webapp.video.mp4" in names, names
    script = (
        "import sys\n"
        "class NoFlask:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('flask', 'flask_wtf', 'flask_limiter', 'werkzeug'):\n"
        "            raise ImportError('Flask imported: ' + name)\n"
        "sys.meta_path.insert(0, NoFlask())\n"
        f"for name in {names!r}:\n"
        "    __import__(name)\n"
        "print('ok', len(sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-2000:]


def test_building_the_app_starts_no_background_thread(tmp_path, monkeypatch):
    """`flask purge` and the Celery worker build the app; only gunicorn's workers run the loop."""
    from webapp.app import create_app
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    create_app()
    assert not [t for t in threading.enumerate() if t.name == "liveness-background"]


def test_the_architecture_names_every_module():
    """docs/architecture.md lists every module and package of webapp/, and nothing that is gone."""
    tree = {str(p.relative_to(ROOT)) for p in (ROOT / "webapp").glob("*.py")}
    tree |= {f"{p.relative_to(ROOT)}/" for p in (ROOT / "webapp").iterdir()
             if p.is_dir() and (p / "__init__.py").exists()}
    named = set(re.findall(r"`(webapp/[\w/]+?(?:\.py|/))`", ARCHITECTURE))
    assert tree - named == set(), "not in docs/architecture.md"
    assert {n for n in named if not (ROOT / n).exists()} == set(), "in docs/architecture.md, not in the tree"
