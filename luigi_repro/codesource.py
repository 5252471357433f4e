"""The user's source code as it was imported: what its text said, and where each name is bound.

A code fingerprint must describe the code that runs, not a file edited on disk since it was
imported: a record written later would otherwise vouch for code that never ran. So the text of
each user module is read once and kept here (not in ``linecache``, which ``traceback`` refreshes
from disk): when a task class is created, for the class's own module and every user module
already imported, and otherwise the first time the text is needed. It is read again only when
the module is executed again (``importlib.reload`` gives it a new ``__spec__``).

Which modules are the user's is decided in :mod:`luigi_repro.usercode`; how module-level
statements bind names, in :mod:`luigi_repro.codestatements`.
"""

from __future__ import annotations

import ast
import os
import symtable
import sys
import threading
import tokenize
import types
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import attrs

from luigi_repro.codestatements import (
    first_line,
    is_compound,
    module_statements,
    mutation_receiver,
    names_bound_by,
    strip_docstrings,
)
from luigi_repro.usercode import (
    OUR_PACKAGES,
    is_stdlib_path,
    is_user_namespace,
    note_task_module,
)

__all__ = [
    "OUR_PACKAGES",
    "Binding",
    "ModuleSource",
    "Scope",
    "SourceIndex",
    "first_line",
    "is_stdlib_path",
    "is_user_namespace",
    "mutation_receiver",
    "note_task_module",
    "snapshot_imported_modules",
    "source_of_namespace",
]


#: Nodes that open a scope of their own (and so a step of ``__qualname__``).
ScopeNode = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda]
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

_lock = threading.Lock()


# --- snapshots -----------------------------------------------------------------------------------


@attrs.frozen
class Binding:
    """A module-level statement that binds (or mutates) a name, with the tests it sits under."""

    headers: Tuple[Tuple[str, ast.AST], ...]
    statement: ast.stmt


@attrs.frozen(eq=False)
class Scope:
    """One ``def``, ``class`` or ``lambda`` in a module's source.

    ``parents`` are the enclosing scopes, outermost first; ``statement`` is the module-level
    statement that holds it; ``first_line`` is where its code object starts (its first
    decorator, as ``co_firstlineno`` counts).
    """

    qualname: str
    node: ScopeNode
    first_line: int
    parents: Tuple[ScopeNode, ...]
    statement: ast.stmt


class SourceIndex:
    """A parsed module (docstrings removed) and what the code closure looks up in it."""

    def __init__(self, tree: ast.Module, text: str, filename: str) -> None:
        self.tree = tree
        self._text = text
        self._filename = filename
        self.by_qualname: Dict[str, List[Scope]] = {}
        self.by_first_line: Dict[int, List[Scope]] = {}
        self.bindings: Dict[str, List[Binding]] = {}
        self._names_by_statement: Dict[int, List[str]] = {}
        self.star_imports: List[ast.ImportFrom] = []
        self._tables: Optional[Dict[Tuple[Tuple[str, int], ...], symtable.SymbolTable]] = None
        for headers, statement in module_statements(tree.body, ()):
            self._bind(headers, statement)
            self._index_scopes(statement)

    def _bind(self, headers: Tuple[Tuple[str, ast.AST], ...], statement: ast.stmt) -> None:
        binding = Binding(headers, statement)
        for name in names_bound_by(statement):
            self.bindings.setdefault(name, []).append(binding)
            self._names_by_statement.setdefault(id(statement), []).append(name)
        if isinstance(statement, ast.ImportFrom) and any(a.name == "*" for a in statement.names):
            self.star_imports.append(statement)

    def _index_scopes(self, statement: ast.stmt) -> None:
        """Index every scope inside one module-level statement, with its ``__qualname__``."""
        stack: List[Tuple[ast.AST, str, Tuple[ScopeNode, ...]]] = [(statement, "", ())]
        while stack:
            node, prefix, parents = stack.pop()
            if isinstance(node, _SCOPE_NODES):
                name = "<lambda>" if isinstance(node, ast.Lambda) else node.name
                qualname = prefix + name
                scope = Scope(qualname, node, first_line(node), parents, statement)
                self.by_qualname.setdefault(qualname, []).append(scope)
                self.by_first_line.setdefault(scope.first_line, []).append(scope)
                prefix = qualname + (".<locals>." if isinstance(node, _FUNCTION_NODES) else ".")
                parents = (*parents, node)
            for child in ast.iter_child_nodes(node):
                if node is statement and isinstance(child, ast.stmt) and is_compound(node):
                    continue  # the statements of a module-level block are indexed on their own
                stack.append((child, prefix, parents))

    def names_bound_by(self, statement: ast.stmt) -> List[str]:
        """The module-level names a module-level statement binds (looked up, not searched)."""
        return self._names_by_statement.get(id(statement), [])

    def scope_of(self, node: ast.AST) -> Optional[Scope]:
        """The scope entry of a ``def``/``class``/``lambda`` node of this module."""
        for scope in self.by_first_line.get(first_line(node), ()):
            if scope.node is node:
                return scope
        return None

    def global_names(self, scope: Scope) -> Optional[Set[str]]:
        """Names that code inside ``scope`` (at any depth) looks up among the module's globals.

        From Python's own symbol tables, so a name that is a local somewhere else is still
        seen where it is global. None when the tables cannot be matched with the source.
        """
        table = self._table_of(scope)
        if table is None:
            return None
        found: Set[str] = set()
        stack = [table]
        while stack:
            current = stack.pop()
            for symbol in current.get_symbols():
                if symbol.is_global() and symbol.is_referenced():
                    found.add(symbol.get_name())
            stack.extend(current.get_children())
        return found

    def _table_of(self, scope: Scope) -> Optional[symtable.SymbolTable]:
        if self._tables is None:
            self._tables = self._all_tables()
        path = []
        for node in (*scope.parents, scope.node):
            if isinstance(node, ast.Lambda):
                return None
            path.append((node.name, node.lineno))
        return self._tables.get(tuple(path))

    def _all_tables(self) -> Dict[Tuple[Tuple[str, int], ...], symtable.SymbolTable]:
        """Every symbol table of the module by its path of (name, line) from the top.

        Built once: ``get_children()`` makes new objects on every call.
        """
        try:
            top = symtable.symtable(self._text, self._filename, "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return {}
        tables: Dict[Tuple[Tuple[str, int], ...], symtable.SymbolTable] = {}
        stack: List[Tuple[Tuple[Tuple[str, int], ...], symtable.SymbolTable]] = [((), top)]
        while stack:
            path, table = stack.pop()
            for child in table.get_children():
                child_path = (*path, (child.get_name(), child.get_lineno()))
                tables.setdefault(child_path, child)
                stack.append((child_path, child))
        return tables


@attrs.define(eq=False)
class ModuleSource:
    """The text of one module as it was when first needed, and what was learned from it.

    ``analyses`` belongs to the code closure: what it worked out from this text, dropped with
    it when the module is executed again. ``spec`` is the ``__spec__`` the module had when the
    text was read: ``importlib.reload`` replaces it.
    """

    name: str
    namespace: Dict[str, Any]
    user: bool
    spec: Any = None
    filename: Optional[str] = None
    text: Optional[str] = None
    analyses: Dict[Any, Any] = attrs.field(factory=dict)
    _text_read: bool = attrs.field(default=False, init=False)
    _index: Optional[SourceIndex] = attrs.field(default=None, init=False)
    _parsed: bool = attrs.field(default=False, init=False)

    def read(self) -> None:
        """Read the module's text now (once)."""
        if self._text_read:
            return
        self._text_read = True
        spec = self.namespace.get("__spec__")
        origin = self.namespace.get("__file__")
        if spec is not None and getattr(spec, "has_location", False):
            origin = spec.origin
        if isinstance(origin, str) and origin:
            self.text = _text_of(self.namespace, spec, self.name, origin)
            if self.text is not None:
                self.filename = os.path.realpath(origin)

    @property
    def package(self) -> str:
        """The package that relative imports in this module start from."""
        package = self.namespace.get("__package__")
        if isinstance(package, str):
            return package
        return self.name.rpartition(".")[0]

    def absolute(self, module: Optional[str], level: int) -> str:
        """The absolute name of ``from <level dots><module> import …`` written in this module."""
        if not level:
            return module or ""
        base = self.package.split(".") if self.package else []
        if level > 1:
            base = base[: len(base) - (level - 1)]
        return ".".join([*base, *([module] if module else [])])

    @property
    def index(self) -> Optional[SourceIndex]:
        """The parsed source, or None when there is no source (or it does not parse)."""
        if not self._parsed:
            self._parsed = True
            self.read()
            if self.text is not None:
                try:
                    tree = ast.parse(self.text, self.filename or "<unknown>")
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    tree = None  # described by its bytecode, as code without source
                if tree is not None:
                    strip_docstrings(tree)
                    self._index = SourceIndex(tree, self.text, self.filename or "<unknown>")
        return self._index

    def holds(self, code: types.CodeType) -> bool:
        """Was ``code`` compiled from this module's file?"""
        if self.filename is None or self.text is None:
            return False
        if code.co_filename == self.namespace.get("__file__"):
            return True
        return os.path.realpath(code.co_filename) == self.filename


#: id(namespace) -> (the spec it was read under, the namespace, its snapshot).
_snapshots: Dict[int, Tuple[Any, Dict[str, Any], ModuleSource]] = {}
_snapshot_listeners: List[Any] = []
#: Namespaces of modules :func:`snapshot_imported_modules` has looked at (kept, so ids stay unique).
_considered: Dict[int, Dict[str, Any]] = {}


def on_reload(listener: Any) -> None:
    """Call ``listener()`` whenever a module is found to have been executed again."""
    _snapshot_listeners.append(listener)


def source_of_namespace(namespace: Dict[str, Any]) -> ModuleSource:
    """The snapshot of the module whose globals are ``namespace``, read now if not yet read."""
    spec = namespace.get("__spec__")
    entry = _snapshots.get(id(namespace))
    if entry is not None and entry[0] is spec and entry[1] is namespace:
        return entry[2]
    source = _snapshot(namespace, spec)
    with _lock:
        _snapshots[id(namespace)] = (spec, namespace, source)
    if entry is not None and entry[1] is namespace:
        # What was learned from any module may lead into the old text of this one.
        for _, _, other in list(_snapshots.values()):
            other.analyses.clear()
        for listener in _snapshot_listeners:
            listener()
    return source


def _snapshot(namespace: Dict[str, Any], spec: Any) -> ModuleSource:
    """A snapshot: the text of a user module is read now, an installed one's when needed."""
    name = str(namespace.get("__name__") or "")
    user = is_user_namespace(namespace)
    source = ModuleSource(name=name, namespace=namespace, user=user, spec=spec)
    if source.user:
        source.read()
    return source


def _text_of(namespace: Dict[str, Any], spec: Any, name: str, origin: str) -> Optional[str]:
    loader = namespace.get("__loader__")
    get_source = getattr(loader, "get_source", None)
    if get_source is not None:
        try:
            text = get_source(getattr(spec, "name", None) or name)
        except (ImportError, OSError, SyntaxError, UnicodeDecodeError, ValueError):
            text = None
        if isinstance(text, str):
            return text
    if not origin.endswith(".py"):
        return None
    try:
        with tokenize.open(origin) as stream:
            return stream.read()
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def snapshot_imported_modules() -> None:
    """Snapshot every user module imported since the last call (once per module).

    ``sys.modules`` keeps import order, so the modules not yet looked at are the last ones: the
    walk stops at the first module it has seen before.
    """
    for module in reversed(list(sys.modules.values())):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        if _considered.get(id(namespace)) is namespace:
            break
        _considered[id(namespace)] = namespace
        if id(namespace) not in _snapshots and is_user_namespace(namespace):
            source_of_namespace(namespace)
