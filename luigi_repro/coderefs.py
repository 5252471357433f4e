"""What a piece of code refers to: names, attribute chains, imports, dynamic look-ups.

Only what the code *says* is gathered here; :mod:`luigi_repro.codereach` decides what each
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
import operator
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


#: Pushed on the walk's stack to leave a ``def``/``class`` once its body has been looked at.
_LEAVE = object()
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class References:
    """Names, attribute chains, imports and dynamic look-ups in a piece of source.

    The source is walked with a stack of its own rather than by recursion: a 400-branch
    ``elif`` chain or a 1,000-term expression is as easy to follow as a flat one.
    """

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

    def visit(self, node: ast.AST) -> None:
        """Gather what ``node`` and everything inside it refers to, in source order."""
        stack: List[object] = [node]
        while stack:
            item = stack.pop()
            if item is _LEAVE:
                self.where.pop()
                continue
            assert isinstance(item, ast.AST)
            if isinstance(item, _SCOPES) and self._enter(item):
                stack.append(_LEAVE)
            children = self._look(item)
            if children is None:
                children = list(ast.iter_child_nodes(item))
            stack.extend(reversed(children))

    def _enter(self, node: Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef]) -> bool:
        """Note the scope a ``def``/``class`` opens, for the "where" of what cannot be followed."""
        index = self.source.index
        scope = index.scope_of(node) if index is not None else None
        if scope is None:
            return False
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        self.where.append(f"{kind} {self.source.name}.{scope.qualname}")
        return True

    def _look(self, node: ast.AST) -> Optional[List[ast.AST]]:
        """Note what one node refers to; the nodes inside it to look at (None: all of them)."""
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.use(node.id).bare = True
            return []
        if isinstance(node, ast.Attribute):
            chain = static_chain(node)
            if chain is None:
                return None
            root, attributes = chain
            self.use(root).chains.add(attributes)
            return []
        if isinstance(node, ast.Import):
            self._import(node)
            return []
        if isinstance(node, ast.ImportFrom):
            self._import_from(node)
            return []
        if isinstance(node, ast.Call):
            self._call(node)
            return None
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        return None

    def _import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = (alias.name, None)
            else:
                top = alias.name.partition(".")[0]
                self.aliases[top] = (top, None)
                self.imported.append((alias.name, self.where[-1]))

    def _import_from(self, node: ast.ImportFrom) -> None:
        module = self.source.absolute(node.module, node.level)
        for alias in node.names:
            if alias.name == "*":
                self.whole_modules.append((module, self.where[-1]))
            else:
                self.aliases[alias.asname or alias.name] = (module, alias.name)

    def _call(self, node: ast.Call) -> None:
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
        elif self._is_operator_getter(func):
            self._getter(node)
        if _is_globals_lookup(func, self.source):
            self.unresolved.append(f"globals()[...] in {self.where[-1]}")
        if isinstance(func, ast.Call) and self._is_operator_getter(func.func) and node.args:
            # ``attrgetter("compute")(backend)``: ``backend.compute``, when the names are constant.
            names = _constant_strings(func.args)
            chain = static_chain(node.args[0])
            if names is not None and chain is not None:
                for name in names:
                    self.use(chain[0]).chains.add((*chain[1], *name.split(".")))

    def _subscript(self, node: ast.Subscript) -> Optional[List[ast.AST]]:
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
        else:
            namespace_of = self._namespace_lookup(value)
            if namespace_of is not None:
                # ``vars(module)[name]`` / ``module.__dict__[name]``: a getattr by another name.
                root, attributes = namespace_of
                key = node.slice
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    self.use(root).chains.add((*attributes, key.value))
                else:
                    self.lookups.append((root, attributes, _text(node), self.where[-1]))
                return [node.slice]
        return None

    def _namespace_lookup(self, value: ast.expr) -> Optional[Tuple[str, Tuple[str, ...]]]:
        """``x.y`` in ``vars(x.y)`` or ``x.y.__dict__``: the object whose namespace is read."""
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "vars"
            and "vars" not in self.source.namespace
            and len(value.args) == 1
        ):
            return static_chain(value.args[0])
        if isinstance(value, ast.Attribute) and value.attr == "__dict__":
            return static_chain(value.value)
        return None

    def _getattr(self, node: ast.Call) -> None:
        chain = static_chain(node.args[0])
        if chain is None:
            return
        root, attributes = chain
        name = node.args[1]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            self.use(root).chains.add((*attributes, name.value))
        else:
            self.lookups.append((root, attributes, _text(node), self.where[-1]))

    def _getter(self, node: ast.Call) -> None:
        """``operator.attrgetter(name)`` with a name only known at run time: listed."""
        if _constant_strings(node.args) is None or node.keywords:
            self.unresolved.append(f"{_text(node)} in {self.where[-1]}")

    def _is_operator_getter(self, func: ast.expr) -> bool:
        """``operator.attrgetter`` / ``operator.methodcaller``, however it was imported."""
        getters = (operator.attrgetter, operator.methodcaller)
        if isinstance(func, ast.Name):
            alias = self.aliases.get(func.id)
            if alias is not None:
                return alias[0] == "operator" and alias[1] in ("attrgetter", "methodcaller")
            return any(self.source.namespace.get(func.id) is g for g in getters)
        chain = static_chain(func)
        return (
            chain is not None
            and chain[1] in (("attrgetter",), ("methodcaller",))
            and (
                self.source.namespace.get(chain[0]) is operator
                or self.aliases.get(chain[0]) == ("operator", None)
            )
        )

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


def _constant_strings(arguments: List[ast.expr]) -> Optional[List[str]]:
    """The values of arguments that are all string constants, else None."""
    names = []
    for argument in arguments:
        if not (isinstance(argument, ast.Constant) and isinstance(argument.value, str)):
            return None
        names.append(argument.value)
    return names


def _text(node: ast.AST) -> str:
    """Source text of a look-up, shortened, for a message."""
    try:
        return _shorten(ast.unparse(node))
    except (RecursionError, ValueError):
        return type(node).__name__


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
        # ``dis`` writes every constant with repr(), which refuses ints of over 4,300 digits;
        # only names matter here.
        blank = current_code.replace(co_consts=(None,) * len(current_code.co_consts))
        for instruction in dis.get_instructions(blank):
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
