"""The language layer of the REPL sandbox: model-written code compiled with RestrictedPython.

This is one layer of several (blueprint §8): the worker process, its OS confinement and its
limits are the others, and they must hold even if this layer is bypassed. What this layer
guarantees is that model code cannot *name* its way out of the REPL:

* Compile time (`compile_cell`): RestrictedPython's policy, plus a few rewrites of our own.
  Names and attributes starting with "_" are rejected (no `__class__`, `__globals__`,
  `__subclasses__`, `__traceback__`, ...), and so are the frame/code/generator attributes
  (`gi_frame`, `f_back`, `tb_frame`, ...), `eval(...)`/`exec(...)` calls, `async`, `match`,
  `except*`, `nonlocal` and star imports. Attribute reads become `_getattr_(obj, "name")`,
  subscripts `_getitem_(obj, key)`, iteration `_getiter_(obj)`, every call
  `_call_(f, ...)` and every decorator `_decorate_(d)`; writes go through `_write_(obj)`,
  `print` through a collector. Our own rewrites: the calls and decorators above (to check
  what they return), `d[k] += v` and `obj.attr += v` are allowed (RestrictedPython refuses
  them; `counts[word] += 1` is everywhere in model code), `x: T = v` becomes `x = v`,
  and every annotation is dropped (a string annotation is code that
  `typing.get_type_hints` or `functools.singledispatch` would `eval` unrestricted).
* Run time (`restricted_globals`): a small builtins dict (no open, eval, exec, compile,
  getattr, setattr, vars, globals, locals, dir, type, id, object, super, breakpoint, input,
  help: each is a stub that raises a NameError saying it is not available), an `__import__`
  that allows only ALLOWED_MODULES and returns a read-only *proxy* of the module, and guards:

  - `_getattr_` refuses names starting with "_" and the inspection attributes, refuses
    `AttributeError.obj` (an internal object when the error comes from library code), never
    returns a module (an allowed one becomes its proxy), frame, code, traceback or cell
    object, nor eval/exec/open/getattr/type/... themselves; `str.format`/`format_map` (and
    `collections.UserString`'s) are replaced by a formatter whose field lookups go through
    the same guards (`'{0.__self__}'.format(llm_query)` is the classic escape).
  - `_getitem_`, `_getiter_` (each item) and `_call_` (the callable and what it returns)
    apply the same value check. It also refuses classes, except those model code can name
    anyway (safe builtins, module proxies' attributes) and its own (class statements,
    `collections.namedtuple`); never `type` or another metaclass, `object`, a BaseException
    that is not an Exception (`except` would catch FINAL) nor a class of this package (Hit,
    Chunk, ...: forged results). `mro` (public on every class) is refused like "_" names.
    Residual: a callback receives what the library passes it unchecked (`reduce(f, xs)`),
    so no exposed function may build a container of such classes.
  - `_write_` lets model code modify dicts, lists, deques, bytearrays, UserDict/UserList,
    ChainMap and instances (and classes) of classes defined in the REPL, nothing else: no
    monkey-patching of documents, helpers, module proxies or stdlib classes.

Module proxies expose the public API of a module (its `__all__`, or its public names) minus
other modules (`datetime.sys`, `statistics.sys`, `calendar.sys`, `typing.sys`, `json.decoder`
... are all real attributes) and minus a few callables that reach outside (see
`_EXCLUDED`; `typing` exposes only the annotation names in `_ONLY`);
`operator.attrgetter`/`methodcaller` are replaced by guarded versions (the
originals are an unguarded getattr). `dataclasses` and `enum` are not allowed at all: both
build classes from dicts the caller controls (`make_dataclass(namespace=...)`,
`Enum(module=...)` + `global_enum` writing into any module's globals), and dataclasses
generates methods with `exec`.

Class definitions are allowed (model code sometimes wants a small record type or its own
exception); they are built by `type` itself, may define only `__init__`, `__contains__` and
comparison methods (RestrictedPython's rule) and their instances are the only objects, besides
the containers above, whose attributes model code may set.

The worker uses it as:

    namespace = restricted_globals(helpers, write=lambda text: sys.stdout.write(text))
    cell = compile_cell(code, "<repl>")       # SyntaxError: report it, run nothing
    exec(cell.body, namespace)
    if cell.last_expr is not None:
        value = eval(cell.last_expr, namespace)   # notebook style: show its repr

`print` ignores `file=` (everything goes to `write`); RestrictedPython's `printed` variable
reads as "". Modules passed among the helpers become proxies, so a worker that restores its
helpers after each cell should take them from the returned namespace. Objects of other
libraries are read-only to model code, e.g. a decimal context: use
`decimal.localcontext(prec=...)`.
"""

from __future__ import annotations

import ast
import builtins
import collections
import functools
import importlib
import operator
import string
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, NoReturn

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

__all__ = [
    "ALLOWED_MODULES",
    "SCAFFOLDING_NAMES",
    "CellCode",
    "RestrictedAttributeError",
    "RestrictedImportError",
    "RestrictedNameError",
    "RestrictedSyntaxError",
    "RestrictedWriteError",
    "compile_cell",
    "is_restricted_error",
    "module_proxy",
    "preload_modules",
    "restricted_globals",
]

#: What `import` accepts in the REPL. Not `dataclasses` nor `enum` (see the module docstring).
ALLOWED_MODULES: frozenset[str] = frozenset({
    "re", "json", "math", "statistics", "collections", "collections.abc", "itertools",
    "functools", "datetime", "textwrap", "difflib", "unicodedata", "bisect", "heapq", "string",
    "random", "operator", "fractions", "decimal", "calendar", "time", "typing", "pprint",
})

#: Public names of allowed modules that are not exposed, and why.
_EXCLUDED: dict[str, frozenset[str]] = {
    # A Formatter's get_field is an unguarded getattr on field names ("{0.__class__}").
    "string": frozenset({"Formatter"}),
    # update_wrapper/wraps getattr/setattr any names they are given (assigned=...);
    # singledispatch evaluates string annotations with eval.
    "functools": frozenset({"update_wrapper", "wraps", "singledispatch",
                            "singledispatchmethod"}),
    # calendar.main is the command line: argparse, sys.argv, sys.exit, sys.stdout.buffer.
    "calendar": frozenset({"main", "different_locale"}),
}

#: Allowed modules of which only these names are exposed. typing: the names model code
#: imports for annotations (which the REPL drops anyway). Not the rest: get_type_hints /
#: ForwardRef run strings as code, ABCMeta/NamedTuple/TypedDict/NewType build classes,
#: get_origin/get_args/Type hand out `type` itself (`typing.get_origin(typing.Type[int])`,
#: `typing.Type[int](x)` is `type(x)`), the overload registry reaches other modules.
_ONLY: dict[str, frozenset[str]] = {
    "typing": frozenset({
        "Any", "Callable", "Counter", "DefaultDict", "Deque", "Dict", "FrozenSet", "Iterable",
        "Iterator", "List", "Literal", "Mapping", "Optional", "Sequence", "Set", "Tuple",
        "Union", "cast", "TYPE_CHECKING",
    }),
}

#: Builtins model code gets. print is handled by the print collector (RestrictedPython turns
#: `print` into `_print._call_print`).
_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "classmethod",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash",
    "hex", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "oct", "ord", "pow", "property", "range", "repr", "reversed", "round", "set", "slice",
    "sorted", "staticmethod", "str", "sum", "tuple", "zip",
    "Ellipsis", "NotImplemented",
    # Exceptions model code raises or catches. Not BaseException, SystemExit,
    # KeyboardInterrupt, GeneratorExit (the worker's own control flow) nor ExceptionGroup.
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "ImportError",
    "IndexError", "KeyError", "LookupError", "ModuleNotFoundError", "NameError",
    "NotImplementedError", "OverflowError", "RecursionError", "RuntimeError", "StopIteration",
    "TypeError", "UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError", "ValueError",
    "ZeroDivisionError",
)

#: Builtins that are deliberately missing: a stub raising RestrictedNameError takes their
#: place so that the model learns why instead of suspecting a typo.
_UNAVAILABLE: dict[str, str] = {
    "open": "there is no file access; the documents are in `context`",
    "eval": "run the code directly", "exec": "run the code directly",
    "compile": "run the code directly",
    "getattr": "use attribute syntax: obj.name", "setattr": "use obj.name = value",
    "delattr": "use del obj.name", "hasattr": "use attribute syntax inside try/except",
    "vars": "", "globals": "", "locals": "", "dir": "", "id": "",
    "type": "use isinstance(x, T)", "object": "", "super": "",
    "breakpoint": "", "input": "there is no interactive input", "help": "",
    "memoryview": "", "exit": "end the run with FINAL(answer)",
    "quit": "end the run with FINAL(answer)",
}

#: The objects _getattr_/_getitem_ never hand to model code.
_FORBIDDEN_OBJECTS = tuple(getattr(builtins, name) for name in (
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr", "vars",
    "globals", "locals", "dir", "breakpoint", "input", "__import__", "__build_class__", "type",
    "memoryview", "super",
))
_FORBIDDEN_IDS = frozenset(id(o) for o in _FORBIDDEN_OBJECTS)
_FORBIDDEN_TYPES = (types.FrameType, types.CodeType, types.TracebackType, types.CellType)
#: Attribute names refused at run time besides those starting with "_".
#: `mro` is public on every class: `ValueError.mro()[-2]` is BaseException, `[-1]` object.
_FORBIDDEN_ATTRIBUTES = INSPECT_ATTRIBUTES | {"cell_contents", "f_lineno", "tb_lasti", "mro"}

#: Set in the namespace of every class defined by model code (model code cannot name it).
_MODEL_CLASS_MARK = "_rlm_repl_class_"
#: Containers model code may modify in place (besides instances of its own classes).
_WRITABLE_TYPES = (dict, list, bytearray, collections.deque, collections.UserDict,
                   collections.UserList, collections.ChainMap)


# -- errors ---------------------------------------------------------------------------------

class RestrictedSyntaxError(SyntaxError):
    """The cell uses something the REPL does not allow (raised before anything runs)."""


class RestrictedAttributeError(AttributeError):
    """An attribute the REPL does not give access to."""


class RestrictedImportError(ImportError):
    """An import outside ALLOWED_MODULES (or of a name an allowed module does not expose)."""


class RestrictedNameError(NameError):
    """A builtin that does not exist in the REPL (open, eval, getattr, type, ...)."""


class RestrictedWriteError(TypeError):
    """An assignment to an object model code may not modify."""


_RESTRICTED_ERRORS = (RestrictedSyntaxError, RestrictedAttributeError, RestrictedImportError,
                      RestrictedNameError, RestrictedWriteError)


def is_restricted_error(exc: BaseException) -> bool:
    """True if `exc` was raised by this layer refusing something (not by ordinary code)."""
    return isinstance(exc, _RESTRICTED_ERRORS)


# -- compilation ----------------------------------------------------------------------------

class CellCode(NamedTuple):
    """A compiled cell: run `body` with exec, then, if there is one, `last_expr` with eval
    and show the value (the cell's last statement when it is a bare expression)."""

    body: types.CodeType
    last_expr: types.CodeType | None


def _refuse_attribute_name(policy: RestrictingNodeTransformer, node: ast.AST, name: str) -> None:
    if name.startswith("_") and name != "_":
        policy.error(node, f'"{name}" is an invalid attribute name because it starts with "_".')
    elif name.endswith("__roles__"):
        policy.error(node, f'"{name}" is an invalid attribute name.')
    elif name in INSPECT_ATTRIBUTES:
        policy.error(node, f'"{name}" is a restricted name, that is forbidden to access in '
                           "RestrictedPython.")


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy with augmented item/attribute assignment, plain annotated
    assignment and no annotations."""

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        target = node.target
        op = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        if isinstance(target, ast.Subscript):
            if any(isinstance(n, ast.Slice) for n in ast.walk(target.slice)):
                self.error(node, "Augmented assignment to a slice is not allowed; write "
                                 "a[i:j] = a[i:j] + ... instead.")
                return node
            call = ast.Call(func=ast.Name("_inplaceitem_", ast.Load()),
                            args=[op, self.visit(target.value), self.visit(target.slice),
                                  self.visit(node.value)],
                            keywords=[])
        elif isinstance(target, ast.Attribute):
            _refuse_attribute_name(self, node, target.attr)
            call = ast.Call(func=ast.Name("_inplaceattr_", ast.Load()),
                            args=[op, self.visit(target.value), ast.Constant(target.attr),
                                  self.visit(node.value)],
                            keywords=[])
        else:
            return super().visit_AugAssign(node)
        new = ast.Expr(call)
        copy_locations(new, node)
        return new

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        new: ast.stmt
        if node.value is None:  # `x: int` declares nothing at run time
            new = ast.Pass()
            copy_locations(new, node)
            return new
        new = ast.Assign(targets=[node.target], value=node.value)
        copy_locations(new, node)
        return self.visit(new)

    def visit_Call(self, node: ast.Call) -> Any:
        # Every call becomes `_call_(f, ...)`, which checks the callable and its result
        # (RestrictedPython has no call hook; it rewrites only *args/**kwargs calls, to
        # `_apply_(f, ...)`, which we route through `_call_` as well).
        new = super().visit_Call(node)
        if not isinstance(new, ast.Call):
            return new
        func = new.func
        if isinstance(func, ast.Name) and func.id == "_apply_":
            func.id = "_call_"
            return new
        new.args.insert(0, func)
        new.func = ast.Name("_call_", ast.Load())
        copy_locations(new.func, func)
        return new

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        args = node.args
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None:
                arg.annotation = None
        node.returns = None
        return _check_decorators(super().visit_FunctionDef(node))

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        return _check_decorators(super().visit_ClassDef(node))


def _check_decorators(node: Any) -> Any:
    """`@d` applies `d` without a Call node: `@d` becomes `@_decorate_(d)`, which applies it
    through `_call_`."""
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        wrapped: list[ast.expr] = []
        for decorator in node.decorator_list:
            call = ast.Call(func=ast.Name("_decorate_", ast.Load()), args=[decorator],
                            keywords=[])
            copy_locations(call, decorator)
            copy_locations(call.func, decorator)
            wrapped.append(call)
        node.decorator_list = wrapped
    return node


def _error_line(message: str) -> int | None:
    head = message.partition(":")[0]
    if head.startswith("Line "):
        try:
            return int(head[5:])
        except ValueError:
            return None
    return None


def compile_cell(source: str, filename: str = "<repl>") -> CellCode:
    """Compile a cell of model code under the REPL's restrictions.

    Raises SyntaxError: the parser's own for invalid Python, RestrictedSyntaxError (a
    SyntaxError) listing every use of something that is not allowed, one per line, e.g.
    `Line 1: "__class__" is an invalid attribute name because it starts with "_".`
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be str, not {type(source).__name__}")
    errors: list[str] = []
    lines = source.splitlines()
    with warnings.catch_warnings():
        # Invalid escapes ("\d"), `is` with a literal, RestrictedPython's "prints but never
        # reads 'printed'": none of them is the model's business here.
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(source, filename, "exec")
        except RecursionError:
            raise RestrictedSyntaxError("the code is nested too deeply") from None
        last: ast.Expression | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body[-1].value)
            del tree.body[-1]
        policy = _Policy(errors, [], {})
        try:
            policy.visit(tree)
            if last is not None:
                policy.visit(last)
        except RecursionError:
            raise RestrictedSyntaxError("the code is nested too deeply") from None
        if errors:
            lineno = _error_line(errors[0])
            text = lines[lineno - 1] if lineno and 0 < lineno <= len(lines) else None
            raise RestrictedSyntaxError("\n".join(errors), (filename, lineno, None, text))
        body = compile(tree, filename, "exec", dont_inherit=True)
        expr = compile(last, filename, "eval", dont_inherit=True) if last is not None else None
    return CellCode(body, expr)


# -- module proxies -------------------------------------------------------------------------

class _ModuleProxy:
    """A read-only view of an allowed module's public names. It has no `__name__`, so
    `from json import decoder` cannot fall back to `sys.modules["json.decoder"]`."""

    __slots__ = ("_attrs", "_label")
    _attrs: dict[str, Any]
    _label: str

    def __init__(self, label: str, attrs: dict[str, Any]) -> None:
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_attrs", attrs)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._attrs[name]
        except KeyError:
            raise RestrictedAttributeError(
                f"module {self._label!r} has no attribute {name!r} in the REPL") from None

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise RestrictedWriteError(f"module {self._label!r} is read-only in the REPL")

    def __delattr__(self, name: str) -> NoReturn:
        raise RestrictedWriteError(f"module {self._label!r} is read-only in the REPL")

    def __dir__(self) -> list[str]:
        return sorted(self._attrs)

    def __repr__(self) -> str:
        return f"<module {self._label!r} (REPL)>"


_PROXIES: dict[str, _ModuleProxy] = {}


def _check_name(name: Any) -> str:
    # type(...) is str: a str subclass could override startswith/__eq__ and fool the checks.
    if type(name) is not str:
        raise TypeError(f"attribute name must be str, not {type(name).__name__}")
    if name.startswith("_") or name in _FORBIDDEN_ATTRIBUTES:
        raise RestrictedAttributeError(
            f'"{name}" is not accessible in the REPL (names starting with "_" and frame, '
            "code and generator internals are not available)")
    return name


def _attrgetter(*names: str) -> Callable[[Any], Any]:
    """operator.attrgetter through the REPL's attribute guard."""
    paths = [[_check_name(part) for part in _check_name_str(name).split(".")]
             for name in names]

    def get(obj: Any) -> Any:
        values = []
        for path in paths:
            value = obj
            for part in path:
                value = _guarded_getattr(value, part)
            values.append(value)
        return values[0] if len(values) == 1 else tuple(values)

    return get


def _methodcaller(name: str, /, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """operator.methodcaller through the REPL's attribute guard."""
    _check_name(name)

    def call(obj: Any) -> Any:
        return _guarded_getattr(obj, name)(*args, **kwargs)

    return call


def _check_name_str(name: Any) -> str:
    if type(name) is not str:
        raise TypeError(f"attribute name must be str, not {type(name).__name__}")
    return name


def _namedtuple(typename: str, field_names: Any, **kwargs: Any) -> Any:
    """collections.namedtuple making a class of the REPL (it may be handed to model code)."""
    kwargs.setdefault("module", "__repl__")
    cls = collections.namedtuple(typename, field_names, **kwargs)  # type: ignore[misc]
    setattr(cls, _MODEL_CLASS_MARK, True)
    return cls


_REPLACEMENTS: dict[tuple[str, str], Any] = {
    ("operator", "attrgetter"): _attrgetter,
    ("operator", "methodcaller"): _methodcaller,
    ("collections", "namedtuple"): _namedtuple,
}


def module_proxy(name: str) -> Any:
    """The read-only proxy model code gets for the allowed module `name`."""
    proxy = _PROXIES.get(name)
    if proxy is not None:
        return proxy
    if name not in ALLOWED_MODULES:
        raise RestrictedImportError(_import_refusal(name), name=name)
    module = importlib.import_module(name)
    public = getattr(module, "__all__", None)
    names = list(public) if isinstance(public, list | tuple) else dir(module)
    excluded = _EXCLUDED.get(name, frozenset())
    only = _ONLY.get(name)
    attrs: dict[str, Any] = {}
    for attr in names:
        if type(attr) is not str or attr.startswith("_") or attr in excluded:
            continue
        if only is not None and attr not in only:
            continue
        try:
            value = getattr(module, attr)
        except AttributeError:
            continue
        if isinstance(value, types.ModuleType):
            continue  # allowed submodules are added below; other modules never
        if (type(value).__name__ == "PyCapsule" or id(value) in _FORBIDDEN_IDS
                or isinstance(value, _FORBIDDEN_TYPES)
                or (isinstance(value, type) and _is_dangerous_class(value))):
            continue
        value = _REPLACEMENTS.get((name, attr), value)
        if isinstance(value, type):
            _EXPOSED_CLASS_IDS.add(id(value))
        attrs[attr] = value
    for sub in ALLOWED_MODULES:
        parent, _, leaf = sub.rpartition(".")
        if parent == name:
            attrs[leaf] = module_proxy(sub)
    proxy = _ModuleProxy(name, attrs)
    _PROXIES[name] = proxy
    return proxy


def preload_modules() -> None:
    """Import every allowed module and build its proxy: the worker calls this before its
    OS lockdown, so that no import has to read the disk afterwards."""
    for name in sorted(ALLOWED_MODULES):
        module_proxy(name)


def _import_refusal(name: Any) -> str:
    return (f"import of {name!r} is not allowed in the REPL; allowed modules: "
            f"{', '.join(sorted(ALLOWED_MODULES))}")


def _guarded_import(name: Any, globals: Any = None, locals: Any = None,
                    fromlist: Any = (), level: int = 0) -> Any:
    if type(name) is not str or level != 0:
        raise RestrictedImportError("relative imports are not allowed in the REPL")
    if name not in ALLOWED_MODULES:
        raise RestrictedImportError(_import_refusal(name), name=name)
    if not fromlist:
        # `import collections.abc` binds the top-level package, as Python does.
        return module_proxy(name.partition(".")[0])
    proxy = module_proxy(name)
    for item in fromlist:
        if type(item) is not str or item not in proxy._attrs:
            raise RestrictedImportError(
                f"cannot import {item!r} from {name!r} in the REPL", name=name)
    return proxy


# -- guards ---------------------------------------------------------------------------------

def _is_dangerous_class(cls: type) -> bool:
    """Classes never handed to model code: `type` and other metaclasses (they build classes
    with any special method), `object`, the BaseExceptions that are not Exceptions (`except
    BaseException:` would catch the worker's FINAL signal and its limits), and the classes of
    this package (Hit, Chunk, Source, Corpus, ...: forged results)."""
    if cls is object or issubclass(cls, type):
        return True
    if issubclass(cls, BaseException) and not issubclass(cls, Exception):
        return True
    module = type.__dict__["__module__"].__get__(cls)
    return type(module) is not str or module.partition(".")[0] == "rlm_desktop"


#: ids of the classes model code can name: safe builtins and module proxies' attributes.
_EXPOSED_CLASS_IDS: set[int] = set()


def _check_class(cls: type) -> None:
    """A class may reach model code only if model code made it or can name it anyway."""
    if _is_model_object(cls):
        return
    if id(cls) not in _EXPOSED_CLASS_IDS and len(_PROXIES) < len(ALLOWED_MODULES):
        preload_modules()  # the class may belong to a module not imported yet
    if id(cls) in _EXPOSED_CLASS_IDS and not _is_dangerous_class(cls):
        return
    raise RestrictedAttributeError(
        f"the class {cls.__name__!r} is not accessible in the REPL here")


def _check_value(value: Any) -> Any:
    """What an attribute read, item read, iteration or call may hand to model code."""
    if isinstance(value, types.ModuleType):
        name = getattr(value, "__name__", None)
        if type(name) is str and name in ALLOWED_MODULES:
            return module_proxy(name)
        raise RestrictedAttributeError("modules are not accessible in the REPL; import one of "
                                       f"{', '.join(sorted(ALLOWED_MODULES))}")
    if isinstance(value, _FORBIDDEN_TYPES) or id(value) in _FORBIDDEN_IDS:
        raise RestrictedAttributeError(
            f"{type(value).__name__} objects are not accessible in the REPL")
    if isinstance(value, type):
        _check_class(value)
    return value


class _SafeFormatter(string.Formatter):
    """str.format with field lookups ("{0.name}", "{0[key]}") through the REPL's guards."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        first, rest = _formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = _guarded_getattr(obj, key) if is_attr else _guarded_getitem(obj, key)
        return obj, first


_formatter_field_name_split: Callable[[str], tuple[Any, Iterator[tuple[bool, Any]]]] = (
    importlib.import_module("_string").formatter_field_name_split)
_FORMATTER = _SafeFormatter()
_FORMAT_CLASSES = (str, collections.UserString)


def _safe_format(template: Any, name: str) -> Callable[..., str]:
    text = str(template)

    def format(*args: Any, **kwargs: Any) -> str:
        return _FORMATTER.vformat(text, args, kwargs)

    def format_map(mapping: Mapping[str, Any], /) -> str:
        return _FORMATTER.vformat(text, (), mapping)

    return format if name == "format" else format_map


_MISSING = object()


#: Values of these exact types are returned without further checks (the common case).
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), list, dict, tuple, set, frozenset,
                          bytes, complex, types.MethodType, types.FunctionType})
#: Attribute names already checked and needing no special handling. Only exact strs go in
#: (a str subclass could hash and compare equal to an innocent name).
_PLAIN_NAMES: set[str] = set()
_SPECIAL_NAMES = frozenset({"format", "format_map", "obj"})


def _guarded_getattr(obj: Any, name: Any, default: Any = _MISSING) -> Any:
    """`obj.name` in model code."""
    if type(name) is not str or name not in _PLAIN_NAMES:
        _check_name(name)
        if name in _SPECIAL_NAMES:
            if name != "obj":
                if isinstance(obj, _FORMAT_CLASSES):
                    return _safe_format(obj, name)
                if isinstance(obj, type) and issubclass(obj, _FORMAT_CLASSES):
                    raise RestrictedAttributeError(
                        f"str.{name} is not available in the REPL; call it on a string: "
                        f"'{{}}'.{name}(...)")
            elif isinstance(obj, BaseException):
                raise RestrictedAttributeError(
                    'the "obj" of an exception is not accessible in the REPL')
        elif len(_PLAIN_NAMES) < 100_000:
            _PLAIN_NAMES.add(name)
    value = getattr(obj, name) if default is _MISSING else getattr(obj, name, default)
    if type(value) in _PLAIN_TYPES:
        return value
    return _check_value(value)


def _guarded_getitem(obj: Any, key: Any) -> Any:
    """`obj[key]` in model code."""
    value = obj[key]
    if type(value) in _PLAIN_TYPES:
        return value
    return _check_value(value)


def _is_model_object(obj: Any) -> bool:
    if getattr(type(obj), _MODEL_CLASS_MARK, False) is True:
        return True
    return isinstance(obj, type) and getattr(obj, _MODEL_CLASS_MARK, False) is True


class _ReadOnly:
    """What `_write_` returns for an object model code may not modify: every write fails."""

    __slots__ = ("_kind",)
    _kind: str

    def __init__(self, obj: Any) -> None:
        object.__setattr__(self, "_kind", type(obj).__name__)

    def _refuse(self, what: str) -> NoReturn:
        raise RestrictedWriteError(
            f"cannot {what} of a {self._kind!r} object in the REPL (only dicts, lists and "
            "objects of classes defined in the REPL can be modified)")

    def __setitem__(self, key: Any, value: Any) -> NoReturn:
        self._refuse("assign items")

    def __delitem__(self, key: Any) -> NoReturn:
        self._refuse("delete items")

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        self._refuse("set attributes")

    def __delattr__(self, name: str) -> NoReturn:
        self._refuse("delete attributes")


def _guarded_write(obj: Any) -> Any:
    """The target of `obj[k] = v`, `del obj[k]`, `obj.a = v`, `del obj.a` in model code."""
    cls = type(obj)
    if cls is dict or cls is list or isinstance(obj, _WRITABLE_TYPES) or _is_model_object(obj):
        return obj
    return _ReadOnly(obj)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand,
    "//=": operator.ifloordiv, "@=": operator.imatmul,
}


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    """`x += v` (RestrictedPython: `x = _inplacevar_("+=", x, v)`)."""
    return _INPLACE[op](target, value)


def _inplaceitem(op: str, obj: Any, key: Any, value: Any) -> None:
    """`obj[key] += value`."""
    target = _guarded_write(obj)
    target[key] = _INPLACE[op](_guarded_getitem(obj, key), value)


def _inplaceattr(op: str, obj: Any, name: str, value: Any) -> None:
    """`obj.name += value`."""
    target = _guarded_write(obj)
    setattr(target, name, _INPLACE[op](_guarded_getattr(obj, name), value))


def _guarded_call(function: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Every call in model code (`f(a, *b, k=c)` is compiled to `_call_(f, a, *b, k=c)`): the
    callable and what it returns go through the same check as attribute reads."""
    kind = type(function)
    if kind is not types.FunctionType and kind is not types.MethodType:
        _check_value(function)
    value = function(*args, **kwargs)
    if type(value) in _PLAIN_TYPES:
        return value
    return _check_value(value)


_apply = _guarded_call


def _guarded_decorator(decorator: Any) -> Callable[[Any], Any]:
    """`@decorator` in model code: applied through `_call_`."""
    _check_value(decorator)

    def apply(target: Any) -> Any:
        return _guarded_call(decorator, target)

    return apply

#: Iterables whose items need no check.
_PLAIN_ITERABLES = frozenset({range, str, bytes, bytearray})


def _checked_items(iterator: Iterator[Any]) -> Iterator[Any]:
    plain = _PLAIN_TYPES
    check = _check_value
    for item in iterator:
        yield item if type(item) in plain else check(item)


def _guarded_iter(obj: Any) -> Iterator[Any]:
    """`for x in obj` (and comprehensions, unpacking) in model code: every item is checked."""
    if type(obj) in _PLAIN_ITERABLES:
        return iter(obj)
    return _checked_items(iter(obj))


def _model_class(name: str, bases: tuple[Any, ...], namespace: dict[str, Any],
                 **kwargs: Any) -> Any:
    """The metaclass of every class statement in model code (RestrictedPython rewrites
    `class C(B):` to `class C(B, metaclass=__metaclass__):`)."""
    if kwargs:
        raise RestrictedWriteError("class keyword arguments are not supported in the REPL")
    namespace[_MODEL_CLASS_MARK] = True
    return type(name, bases, namespace)


class _PrintCollector:
    """`print` in model code: everything goes to `write` (no file=: ignored)."""

    __slots__ = ("_write",)

    def __init__(self, write: Callable[[str], Any]) -> None:
        self._write = write

    def write(self, text: str) -> None:
        self._write(text)

    def flush(self) -> None:
        pass

    def __call__(self) -> str:
        return ""  # the `printed` variable of RestrictedPython: not kept here

    def _call_print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n",
                    file: Any = None, flush: bool = False) -> None:
        print(*objects, sep=sep, end=end, file=self)


def _unavailable(name: str, hint: str) -> Callable[..., NoReturn]:
    message = f"{name}() is not available in the REPL" + (f" ({hint})" if hint else "")

    def unavailable(*args: Any, **kwargs: Any) -> NoReturn:
        raise RestrictedNameError(message, name=name)

    unavailable.__name__ = unavailable.__qualname__ = name
    return unavailable


_BUILTINS: dict[str, Any] = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES}
_BUILTINS.update({name: _unavailable(name, hint) for name, hint in _UNAVAILABLE.items()})
_BUILTINS["__import__"] = _guarded_import
_BUILTINS["__build_class__"] = builtins.__build_class__
_EXPOSED_CLASS_IDS.update(id(v) for v in _BUILTINS.values() if isinstance(v, type))

#: The names restricted_globals adds besides the helpers (model code cannot rebind them:
#: they start with "_").
SCAFFOLDING_NAMES = frozenset({
    "__builtins__", "__name__", "__metaclass__", "_getattr_", "_getitem_", "_getiter_",
    "_iter_unpack_sequence_", "_unpack_sequence_", "_write_", "_inplacevar_", "_inplaceitem_",
    "_inplaceattr_", "_apply_", "_call_", "_decorate_", "_print_", "_print",
})


def restricted_globals(helpers: Mapping[str, Any], *,
                       write: Callable[[str], Any]) -> dict[str, Any]:
    """A fresh globals dict for model code, with `helpers` (context, peek, grep, llm_query,
    FINAL, ...) bound under their names.

    `write(text)` receives everything model code prints; it is called at print time, so
    give a function that writes to the current cell's capture (e.g. `lambda t:
    sys.stdout.write(t)` while stdout is redirected to it). A module among the helpers is
    replaced by its proxy (it must be an allowed one). Helpers must be plain functions or
    data: a bound method or functools.partial would expose what it wraps (`.func`,
    `.args`), so they are refused.
    """
    printer = _PrintCollector(write)

    def print_factory(_getattr_: Any = None) -> _PrintCollector:
        return printer

    namespace: dict[str, Any] = {
        "__builtins__": dict(_BUILTINS),
        "__name__": "__repl__",
        "__metaclass__": _model_class,
        "_getattr_": _guarded_getattr,
        "_getitem_": _guarded_getitem,
        "_getiter_": _guarded_iter,
        "_call_": _guarded_call,
        "_decorate_": _guarded_decorator,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": _guarded_write,
        "_inplacevar_": _inplacevar,
        "_inplaceitem_": _inplaceitem,
        "_inplaceattr_": _inplaceattr,
        "_apply_": _apply,
        "_print_": print_factory,
        "_print": printer,  # for a last expression that prints when the body does not
    }
    for name, value in helpers.items():
        if type(name) is not str or not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"invalid helper name {name!r}")
        if isinstance(value, types.MethodType | types.BuiltinMethodType) and not isinstance(
                getattr(value, "__self__", None), types.ModuleType):
            raise TypeError(f"helper {name!r} is a bound method: pass a plain function")
        if isinstance(value, _FORBIDDEN_TYPES) or id(value) in _FORBIDDEN_IDS:
            raise TypeError(f"helper {name!r} cannot be given to model code")
        if isinstance(value, functools.partial):
            raise TypeError(f"helper {name!r} is a functools.partial: pass a plain function")
        namespace[name] = (module_proxy(value.__name__) if isinstance(value, types.ModuleType)
                           else value)
    return namespace
