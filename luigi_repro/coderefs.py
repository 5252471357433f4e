"""What a piece of code refers to: names, attribute chains, imports, dynamic look-ups.

Only what the code *says* is gathered here; :mod:`luigi_repro.codeclosure` decides what each
name stands for. A name is used *bare* (``impute(x)``, ``Clean()``) or through attributes
(``preproc.impute``, ``cfg.THRESHOLD``): the chain matters, since ``utils.config.THRESHOLD``
reaches one constant of a module, not the whole module. Look-ups whose target is only known at
run time (``getattr(module, name)``, ``exec``, ``importlib.import_module(name)``,
``globals()[name]``) are noted with where they are, so that they are listed rather than ignored.
Code without source is read from its bytecode instead (the globals it loads).
"""

from __future__ import annotations

import ast
import dis
import importlib
import sys
import types
from typing import Dict, List, Optional, Set, Tuple, Union

import attrs

from luigi_repro.codesource import ModuleSource

__all__ = [
    "References",
    "Use",
    "bound_names",
    "bytecode_uses",
    "definition_names",
    "static_chain",
]


@attrs.define
class Use:
    """How code uses one name: bare (``f(x)``, ``Clean(…)``) and/or through attributes."""

    bare: bool = False
    chains: Set[Tuple[str, ...]] = attrs.field(factory=set)


class References(ast.NodeVisitor):
    """Names, attribute chains, imports and dynamic look-ups in a piece of source."""

    def __init__(self, source: ModuleSource, where: str) -> None:
        self.source = source
        self.where: List[str] = [where]
        self.uses: Dict[str, Use] = {}
        #: Local imports: name -> (module, attribute or None).
        self.aliases: Dict[str, Tuple[str, Optional[str]]] = {}
        #: ``getattr(x, <not a constant>)``: (root name, chain, text, where).
        self.lookups: List[Tuple[str, Tuple[str, ...], str, str]] = []
        self.whole_modules: List[Tuple[str, str]] = []
        #: ``import a.b.c`` inside a function: ``a.b.c`` is imported to follow ``a.b.c.x``.
        self.imported: List[Tuple[str, str]] = []
        self.unresolved: List[str] = []

    def use(self, name: str) -> Use:
        found = self.uses.get(name)
        if found is None:
            found = self.uses[name] = Use()
        return found

    # scopes, for the "where" of what cannot be followed
    def _scoped(self, node: Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef]) -> None:
        index = self.source.index
        scope = index.scope_of(node) if index is not None else None
        if scope is None:
            self.generic_visit(node)
            return
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        self.where.append(f"{kind} {self.source.name}.{scope.qualname}")
        try:
            self.generic_visit(node)
        finally:
            self.where.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scoped(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.use(node.id).bare = True

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = static_chain(node)
        if chain is None:
            self.generic_visit(node)
            return
        root, attributes = chain
        self.use(root).chains.add(attributes)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = (alias.name, None)
            else:
                top = alias.name.partition(".")[0]
                self.aliases[top] = (top, None)
                self.imported.append((alias.name, self.where[-1]))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = self.source.absolute(node.module, node.level)
        for alias in node.names:
            if alias.name == "*":
                self.whole_modules.append((module, self.where[-1]))
            else:
                self.aliases[alias.asname or alias.name] = (module, alias.name)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id not in self.source.namespace:
            if func.id in ("exec", "eval"):
                self.unresolved.append(f"{func.id}() in {self.where[-1]}")
            elif func.id == "getattr" and len(node.args) >= 2:
                self._getattr(node)
            elif func.id == "__import__":
                self._import_call("__import__", node)
        elif self._is_import_module(func):
            self._import_call("importlib.import_module", node)
        if _is_globals_lookup(func, self.source):
            self.unresolved.append(f"globals()[...] in {self.where[-1]}")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        value = node.value
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "globals"
            and "globals" not in self.source.namespace
        ):
            self.unresolved.append(f"globals()[...] in {self.where[-1]}")
        elif (
            static_chain(value) == ("sys", ("modules",)) and self.source.namespace.get("sys") is sys
        ):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                self.whole_modules.append((key.value, self.where[-1]))
            else:
                self.unresolved.append(f"sys.modules[...] in {self.where[-1]}")
        self.generic_visit(node)

    def _getattr(self, node: ast.Call) -> None:
        chain = static_chain(node.args[0])
        if chain is None:
            return
        root, attributes = chain
        name = node.args[1]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            self.use(root).chains.add((*attributes, name.value))
        else:
            text = _shorten(ast.unparse(node))
            self.lookups.append((root, attributes, text, self.where[-1]))

    def _is_import_module(self, func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            if self.aliases.get(func.id) == ("importlib", "import_module"):
                return True
            return self.source.namespace.get(func.id) is importlib.import_module
        chain = static_chain(func)
        return (
            chain is not None
            and chain[1] == ("import_module",)
            and (
                self.source.namespace.get(chain[0]) is importlib
                or self.aliases.get(chain[0]) == ("importlib", None)
            )
        )

    def _import_call(self, callee: str, node: ast.Call) -> None:
        first = node.args[0] if node.args else None
        if (
            isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and not first.value.startswith(".")
        ):
            self.whole_modules.append((first.value, self.where[-1]))
        else:
            self.unresolved.append(f"{callee}(<non-constant>) in {self.where[-1]}")


def _is_globals_lookup(func: ast.expr, source: ModuleSource) -> bool:
    """``globals().get(name)`` and the like."""
    return (
        isinstance(func, ast.Attribute)
        and func.attr in ("get", "pop", "setdefault", "__getitem__")
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "globals"
        and "globals" not in source.namespace
    )


def static_chain(node: ast.expr) -> Optional[Tuple[str, Tuple[str, ...]]]:
    """``a.b.c`` as ``("a", ("b", "c"))``; None for anything but a name and attributes."""
    attributes: List[str] = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return node.id, tuple(reversed(attributes))


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def definition_names(node: ast.AST) -> Set[str]:
    """Names in what is evaluated where a ``def``/``class`` stands: decorators, defaults, bases."""
    expressions: List[ast.AST] = []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        expressions.extend(node.decorator_list)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        expressions.extend(node.args.defaults)
        expressions.extend(d for d in node.args.kw_defaults if d is not None)
    if isinstance(node, ast.ClassDef):
        expressions.extend(node.bases)
        expressions.extend(keyword.value for keyword in node.keywords)
    return {
        inner.id
        for expression in expressions
        for inner in ast.walk(expression)
        if isinstance(inner, ast.Name)
    }


def bound_names(node: ast.AST) -> Set[str]:
    """Names a piece of source binds itself (parameters, assignments, imports, definitions)."""
    bound: Set[str] = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and not isinstance(inner.ctx, ast.Load):
            bound.add(inner.id)
        elif isinstance(inner, ast.arg):
            bound.add(inner.arg)
        elif isinstance(inner, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).partition(".")[0] for a in inner.names)
        elif (
            isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and inner is not node
        ):
            bound.add(inner.name)
    return bound


def bytecode_uses(code: types.CodeType) -> Dict[str, Use]:
    """Globals a code object (and the code nested in it) loads, with attribute chains."""
    uses: Dict[str, Use] = {}

    def flush(chain: List[str]) -> None:
        use = uses.setdefault(chain[0], Use())
        if len(chain) == 1:
            use.bare = True
        else:
            use.chains.add(tuple(chain[1:]))

    stack = [code]
    while stack:
        current_code = stack.pop()
        chain: List[str] = []
        for instruction in dis.get_instructions(current_code):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                if chain:
                    flush(chain)
                chain = [str(instruction.argval)]
            elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and chain:
                chain.append(str(instruction.argval))
            elif chain:
                flush(chain)
                chain = []
        if chain:
            flush(chain)
        stack.extend(c for c in current_code.co_consts if isinstance(c, types.CodeType))
    return uses
