"""The user's source code as it was imported: where user code ends, and what its text said.

A code fingerprint must describe the code that runs, not a file edited on disk since it was
imported: a record written later would otherwise vouch for code that never ran. So the text of
each user module is read once and kept here (not in ``linecache``, which ``traceback`` refreshes
from disk): when a task class is created, for the class's own module and every user module
already imported, and otherwise the first time the text is needed. It is read again only when
the module is executed again (``importlib.reload`` gives it a new ``__spec__``).

User code is code the user wrote: not the standard library, not installed packages (in a
folder called site-packages or dist-packages, not merely one whose name contains the words),
not Luigi, not luigi_repro. Installed packages count through the environment check instead
(their versions are recorded). The decision is made per module, by where its file lives rather
than by its name, so a pipeline module called like a standard-library one (``profile.py``) is
still the user's. A module without a file is the user's (code typed into ``__main__``, a
namespace made by ``exec``) unless Python built it in or a library made it to evaluate code it
generates (``namedtuple``'s). The package of a task class that itself lives in site-packages
(an installed pipeline) counts as the user's too.

The module-level statements that bind or change each name are indexed here; the walks over
them use stacks of their own, so a long ``elif`` chain is no deeper for Python than a flat one.
"""

from __future__ import annotations

import ast
import builtins
import functools
import os
import site
import symtable
import sys
import sysconfig
import threading
import tokenize
import types
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple, Union

import attrs

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

#: Top-level packages that are never the user's code, whatever their location.
OUR_PACKAGES = frozenset({"luigi", "luigi_repro", "builtins"})

#: Nodes that open a scope of their own (and so a step of ``__qualname__``).
ScopeNode = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda]
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

_lock = threading.Lock()


# --- where user code ends ------------------------------------------------------------------------


@functools.cache
def _installed_prefixes() -> Tuple[str, ...]:
    """Folders of the standard library and of installed packages, as given and as real paths."""
    paths = sysconfig.get_paths()
    folders = [paths.get(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")]
    try:
        folders.extend(site.getsitepackages())
        folders.append(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - a virtualenv's old site.py lacks them
        pass
    found: Set[str] = set()
    for folder in folders:
        if folder:
            found.add(os.path.join(folder, ""))
            found.add(os.path.join(os.path.realpath(folder), ""))
    return tuple(sorted(found))


@functools.cache
def _stdlib_prefixes() -> Tuple[str, ...]:
    paths = sysconfig.get_paths()
    folders = [paths.get("stdlib"), paths.get("platstdlib")]
    return tuple({os.path.join(os.path.realpath(f), "") for f in folders if f})


_PACKAGE_FOLDERS = frozenset({"site-packages", "dist-packages"})


def _in_package_folder(path: str) -> bool:
    """Is one of the path's folders ``site-packages``/``dist-packages`` (not merely a name
    containing those words, such as a project checked out in ``site-packages-audit/``)?"""
    return not _PACKAGE_FOLDERS.isdisjoint(path.replace("\\", "/").split("/"))


def is_stdlib_path(path: str) -> bool:
    """Is ``path`` a file of the standard library (and not of an installed package)?"""
    real = os.path.realpath(path)
    return not _in_package_folder(real) and real.startswith(_stdlib_prefixes())


def _is_installed_path(path: str) -> bool:
    def installed(candidate: str) -> bool:
        return _in_package_folder(candidate) or candidate.startswith(_installed_prefixes())

    return installed(path) or installed(os.path.realpath(path))


#: Top-level packages of task classes that live among installed packages: still the user's.
_home_packages: Set[str] = set()
_namespace_verdicts: Dict[Tuple[str, Optional[str]], bool] = {}


def note_task_module(module_name: str) -> None:
    """Count the package of a task class's module as user code even if it is installed."""
    top = module_name.partition(".")[0]
    if top in OUR_PACKAGES or top in _home_packages:
        return
    module = sys.modules.get(module_name)
    filename = getattr(module, "__file__", None)
    if filename and _is_installed_path(filename):
        with _lock:
            _home_packages.add(top)
            _namespace_verdicts.clear()


def is_user_namespace(namespace: Mapping[str, Any]) -> bool:
    """Is the module whose globals are ``namespace`` the user's code?"""
    name = str(namespace.get("__name__") or "")
    filename = namespace.get("__file__")
    if not isinstance(filename, str) and _is_library_sandbox(namespace):
        return False
    cache_key = (name, filename if isinstance(filename, str) else None)
    known = _namespace_verdicts.get(cache_key)
    if known is None:
        known = _namespace_verdicts[cache_key] = _decide_namespace(name, namespace)
    return known


def _is_library_sandbox(namespace: Mapping[str, Any]) -> bool:
    """A namespace a library evaluates code it generates in, such as ``namedtuple``'s.

    It is no module (nothing in ``sys.modules`` has it as globals) and it was given builtins
    of its own (none at all for ``namedtuple``), which code typed or ``exec``-ed by the user,
    even in a namespace of its own, never is.
    """
    given = namespace.get("__builtins__", builtins)
    if given is builtins or given is vars(builtins):
        return False
    module = sys.modules.get(str(namespace.get("__name__") or ""))
    return getattr(module, "__dict__", None) is not namespace


def _decide_namespace(name: str, namespace: Mapping[str, Any]) -> bool:
    top = name.partition(".")[0]
    if top in OUR_PACKAGES:
        return False
    if top in _home_packages:
        return True
    filename = namespace.get("__file__")
    if isinstance(filename, str) and filename:
        return not _is_installed_path(filename)
    folders = namespace.get("__path__")  # a namespace package: no file, only folders
    if folders is not None:
        return any(not _is_installed_path(str(folder)) for folder in list(folders))
    spec = namespace.get("__spec__")
    if getattr(spec, "origin", None) in ("built-in", "frozen"):
        return False
    return name not in sys.builtin_module_names


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
        for headers, statement in _module_statements(tree.body, ()):
            self._bind(headers, statement)
            self._index_scopes(statement)

    def _bind(self, headers: Tuple[Tuple[str, ast.AST], ...], statement: ast.stmt) -> None:
        binding = Binding(headers, statement)
        for name in _names_bound_by(statement):
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
                if node is statement and isinstance(child, ast.stmt) and _is_compound(node):
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


def first_line(node: ast.AST) -> int:
    """The line a node's code starts at: its first decorator, as ``co_firstlineno`` counts."""
    lines = [getattr(node, "lineno", 0)]
    lines.extend(d.lineno for d in getattr(node, "decorator_list", ()))
    return min(lines)


def _is_compound(statement: ast.stmt) -> bool:
    return isinstance(statement, _BLOCKS)


_BLOCKS: Tuple[type, ...] = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    *((ast.TryStar,) if hasattr(ast, "TryStar") else ()),
    *((ast.Match,) if hasattr(ast, "Match") else ()),
)


#: The tests of the blocks around a module-level statement (``("if", test)``…).
_Headers = Tuple[Tuple[str, ast.AST], ...]


def _module_statements(
    body: List[ast.stmt], headers: _Headers
) -> Iterator[Tuple[_Headers, ast.stmt]]:
    """Every module-level statement, looking inside ``if``/``for``/``try``/``with`` blocks.

    Each comes with the headers of the blocks around it (``("if", test)`` for the body of an
    ``if``, ``("else", test)`` for its ``else``…), since they decide whether it runs. A ``for``
    or ``with`` is also yielded itself: it binds its targets. Walked with a stack of its own, so
    a long ``elif`` chain at module level is no deeper for Python than a flat one.
    """
    stack: List[Tuple[_Headers, Iterator[ast.stmt]]] = [(headers, iter(body))]
    while stack:
        around, statements = stack[-1]
        statement = next(statements, None)
        if statement is None:
            stack.pop()
            continue
        blocks: List[Tuple[_Headers, List[ast.stmt]]] = []
        if isinstance(statement, ast.If):
            blocks.append(((*around, ("if", statement.test)), statement.body))
            blocks.append(((*around, ("else", statement.test)), statement.orelse))
        elif isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            if not isinstance(statement, ast.While):
                yield around, statement
            header = statement.test if isinstance(statement, ast.While) else statement.iter
            blocks.append(((*around, ("loop", header)), statement.body))
            blocks.append(((*around, ("loop-else", header)), statement.orelse))
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            yield around, statement
            items = ast.Tuple(elts=[item.context_expr for item in statement.items], ctx=ast.Load())
            blocks.append(((*around, ("with", items)), statement.body))
        elif isinstance(statement, _BLOCKS):  # try / match: every branch may run
            for field in ("body", "orelse", "finalbody"):
                blocks.append((around, getattr(statement, field, [])))
            for handler in getattr(statement, "handlers", []):
                caught = handler.type or ast.Constant(value=None)
                blocks.append(((*around, ("except", caught)), handler.body))
            for case in getattr(statement, "cases", []):
                blocks.append(((*around, ("case", case.pattern)), case.body))
        else:
            yield around, statement
        stack.extend((inner, iter(block)) for inner, block in reversed(blocks))


#: Methods that change a list, dict, set or deque in place: ``COLUMNS.append("x")`` at module
#: level changes ``COLUMNS``; ``log.info("…")`` or ``pd.set_option(…)`` changes no constant.
MUTATORS = frozenset(
    {
        "__setitem__",
        "__delitem__",
        "__iadd__",
        "add",
        "append",
        "appendleft",
        "clear",
        "discard",
        "extend",
        "extendleft",
        "insert",
        "pop",
        "popitem",
        "popleft",
        "remove",
        "reverse",
        "rotate",
        "setdefault",
        "sort",
        "update",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
    }
)


def mutation_receiver(statement: ast.stmt) -> Optional[ast.expr]:
    """``COLUMNS`` in a module-level ``COLUMNS.append(…)``: what a mutator call changes."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        func = statement.value.func
        if isinstance(func, ast.Attribute) and func.attr in MUTATORS:
            return func.value
    return None


def _names_bound_by(statement: ast.stmt) -> Iterator[str]:
    """Module-level names a statement binds, or may mutate in place (``X.append(…)``, ``X[k] = v``).

    Whether a mutator call really changes a container is decided with the value at run time
    (:mod:`luigi_repro.codeparts`): ``parser.add(…)`` on an object that is no container
    changes no constant.
    """
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield statement.name
    elif isinstance(statement, ast.Import):
        for alias in statement.names:
            yield alias.asname or alias.name.partition(".")[0]
    elif isinstance(statement, ast.ImportFrom):
        for alias in statement.names:
            if alias.name != "*":
                yield alias.asname or alias.name
    elif isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
        targets: List[ast.expr]
        if isinstance(statement, (ast.Assign, ast.Delete)):
            targets = list(statement.targets)
        else:
            targets = [statement.target]
        for target in targets:
            yield from _target_roots(target)
    elif isinstance(statement, (ast.For, ast.AsyncFor)):
        yield from _target_roots(statement.target)
    elif isinstance(statement, (ast.With, ast.AsyncWith)):
        for item in statement.items:
            if item.optional_vars is not None:
                yield from _target_roots(item.optional_vars)
    else:
        receiver = mutation_receiver(statement)
        if receiver is not None:
            root = _chain_root(receiver)
            if root is not None:
                yield root


def _target_roots(target: ast.expr) -> Iterator[str]:
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_roots(element)
    elif isinstance(target, ast.Starred):
        yield from _target_roots(target.value)
    else:
        root = _chain_root(target)
        if root is not None:
            yield root


def _chain_root(node: ast.expr) -> Optional[str]:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def strip_docstrings(tree: ast.AST) -> None:
    """Remove docstrings in place: they never change what the code does."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


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
