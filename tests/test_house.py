"""The code's own shape, as a newcomer relies on it: no import circle, Flask only in web/, api/
and the wiring (read from the imports), background work only where the app serves."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = (ROOT / "docs/architecture.md").read_text()


def import_statements() -> dict[str, list[tuple[str, set[str]]]]:
    """Each webapp module and its imports (at any depth of its code) as (base, names): `from .x
    import y` in webapp/ is ("webapp.x", {"webapp.x.y"}), `import a.b` is ("a.b", set())."""
    found = {}
    for path in (ROOT / "webapp").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        statements: list[tuple[str, set[str]]] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                statements.append((base, {f"{base}.{alias.name}" for alias in node.names}))
            elif isinstance(node, ast.Import):
                statements.extend((alias.name, set()) for alias in node.names)
        found[name] = statements
    return found


def imports() -> dict[str, set[str]]:
    """webapp's modules and the webapp modules each imports."""
    statements = import_statements()
    graph = {}
    for name, imported in statements.items():
        deps = set()
        for base, named in imported:
            deps |= named
            if not named & set(statements):  # `from . import x, y` needs x and y, not the package
                deps.add(base)
        graph[name] = {d for d in deps if d in statements and d != name}
    return graph


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


# The folder rule: Flask lives in web/ (the pages, the console), api/ (the operator API) and the
# wiring that builds the app; the core at the top, and juhe/, delivery/, video/ and guidance/,
# import neither Flask nor any module that does.
WIRING = {"webapp", "webapp.app", "webapp.extensions", "webapp.commands", "webapp.limits",
          "webapp.ratelimit_storage", "webapp.worker"}
FLASK = ("flask", "flask_wtf", "flask_limiter", "werkzeug", "wtforms")


def on_the_flask_side(name: str) -> bool:
    """(`webapp` itself imports the app only when create_app is called: importing it is free.)"""
    return name in WIRING or name.split(".")[:2] in (["webapp", "web"], ["webapp", "api"])


def direct_imports() -> dict[str, set[str]]:
    """Each webapp module and every module it names in an import (webapp's and others')."""
    return {name: {base for base, _ in imported}.union(*(named for _, named in imported))
            for name, imported in import_statements().items()}


def test_flask_lives_only_in_web_api_and_the_wiring():
    found = direct_imports()
    core = sorted(name for name in found if not on_the_flask_side(name))
    assert {"webapp.verification", "webapp.juhe.client", "webapp.delivery.webhooks",
            "webapp.video.pipeline", "webapp.guidance.table"} <= set(core), core
    broken = {name: sorted(dep for dep in found[name]
                           if dep.split(".")[0] in FLASK
                           or (dep in found and dep != "webapp" and on_the_flask_side(dep)))
              for name in core}
    assert {name: deps for name, deps in broken.items() if deps} == {}


def test_the_flask_free_modules_import_without_flask():
    """What the folder rule says, proven by importing them all with Flask made unimportable."""
    names = sorted(name for name in direct_imports() if not on_the_flask_side(name))
    script = (
        "import sys\n"
        "class NoFlask:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {FLASK!r}:\n"
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
