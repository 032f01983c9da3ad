"""The language layer alone (rlm_desktop.engine.restricted), in-process.

Every attack asserts the invariant, not just "it raised": the cell is refused at compile
time or fails at run time with an ordinary Exception, and nothing the model can read (its
printed output, the error message, the values left in its namespace) holds the canary or a
module, frame, code, traceback, cell or dangerous builtin.

The canary is planted where the classic escapes look for secrets: a module-level global of
the module defining `llm_query` (`llm_query.__globals__`), a closure variable of a helper
(`__closure__`), an attribute of `sys`, a module that is not allowed, the environment and a
file.
"""

from __future__ import annotations

import builtins
import datetime
import functools
import os
import re
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm_desktop.engine import restricted
from rlm_desktop.engine.helpers import make_helpers
from rlm_desktop.engine.replapi import Corpus
from rlm_desktop.engine.restricted import (
    ALLOWED_MODULES,
    SCAFFOLDING_NAMES,
    CellCode,
    RestrictedSyntaxError,
    compile_cell,
    is_restricted_error,
    module_proxy,
    preload_modules,
    restricted_globals,
)

CANARY = "CANARY-7f3a9c1e-do-not-leak"
API_KEY = CANARY  # what `llm_query.__globals__["API_KEY"]` would find

#: Reprs that must never reach model-visible output in an attack.
LEAKED_OBJECT = re.compile(
    r"<(module|function|built-in|frame|code object|cell|traceback|bound method|class)\b"
    r"(?! '?\w+'? \(REPL\))")


class _Final(BaseException):
    """Like the worker's: FINAL ends the cell."""


def _make_llm_query(key: str) -> Callable[..., str]:
    def llm_query(prompt: str, *, model: str | None = None) -> str:
        """A fake child model; holds the key in its closure and its globals."""
        assert key == API_KEY
        return f"answer to {str(prompt)[:20]}"

    return llm_query


def _corpus() -> Corpus:
    docs = [
        ("app.log", "log", {"n": 0}, "2024-01-01 INFO start\n2024-01-01 ERROR disk full\n"
                                     "2024-01-02 INFO stop"),
        ("m1.eml", "email", {"subject": "invoice 17", "from": "a@x"},
         "From: a@x\nSubject: invoice 17\n\nPlease pay the ERROR fee.\n"),
        ("notes.txt", "text", {}, "alpha beta\ngamma ERROR delta\n"),
    ]
    entries: list[dict[str, Any]] = []
    pos = 0
    for i, (name, kind, meta, text) in enumerate(docs):
        entries.append({"id": f"id{i}", "name": name, "path": f"/data/{name}", "kind": kind,
                        "meta": meta, "start": pos, "end": pos + len(text)})
        pos += len(text) + 1
    return Corpus._from_blob("\n".join(d[3] for d in docs), entries)


class Repl:
    """Runs cells the way the worker does: compile_cell, exec the body, eval and show the
    last expression; output collected through `write`."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.final: Any = None
        corpus = _corpus()
        helpers: dict[str, Any] = dict(make_helpers(corpus))

        def FINAL(answer: Any, sources: Any = None) -> None:
            self.final = answer
            raise _Final()

        helpers.update(context=corpus, llm_query=_make_llm_query(API_KEY), FINAL=FINAL)
        self.helper_names = set(helpers)
        self.namespace = restricted_globals(helpers, write=self.out.append)

    def run(self, source: str) -> tuple[str, BaseException | None]:
        self.out.clear()
        error: BaseException | None = None
        try:
            cell = compile_cell(source)
            exec(cell.body, self.namespace)
            if cell.last_expr is not None:
                value = eval(cell.last_expr, self.namespace)
                if value is not None:
                    self.out.append(repr(value) + "\n")
        except _Final:
            pass
        except BaseException as exc:
            error = exc
        return "".join(self.out), error

    def ok(self, source: str) -> str:
        output, error = self.run(source)
        if error is not None:
            raise AssertionError(f"cell failed: {type(error).__name__}: {error}\n{source}")
        return output

    def model_values(self) -> Iterator[Any]:
        """Everything model code left in its namespace, one level into containers."""
        for name, value in self.namespace.items():
            if name in SCAFFOLDING_NAMES or name in self.helper_names:
                continue
            yield value
            if isinstance(value, list | tuple | set | frozenset):
                yield from value
            elif isinstance(value, dict):
                yield from value.keys()
                yield from value.values()


_FORBIDDEN_VALUES = {id(getattr(builtins, n)) for n in (
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "vars", "globals",
    "locals", "dir", "type", "breakpoint", "input", "__import__", "object")}


@pytest.fixture(autouse=True)
def canaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(sys, "rlm_canary", CANARY, raising=False)
    monkeypatch.setenv("RLM_CANARY", CANARY)
    secret = types.ModuleType("rlm_canary_module")
    secret.SECRET = CANARY  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rlm_canary_module", secret)
    path = tmp_path / "secret.txt"
    path.write_text(CANARY)
    return path


@pytest.fixture
def repl() -> Repl:
    return Repl()


def assert_blocked(repl: Repl, source: str) -> BaseException:
    """The invariant for an attack: refused at compile time or failed with an Exception,
    and nothing leaked into output, error or namespace."""
    output, error = repl.run(source)
    assert error is not None, f"not blocked; printed {output!r}"
    assert isinstance(error, Exception), f"{type(error).__name__} is not an Exception"
    message = str(error)
    assert message, "the refusal must say what is not allowed"
    for text in (output, message):
        assert CANARY not in text
        assert not LEAKED_OBJECT.search(text), text
    for value in repl.model_values():
        assert not isinstance(value, types.ModuleType), value
        assert not isinstance(value, types.FrameType | types.CodeType | types.TracebackType
                              | types.CellType), value
        assert id(value) not in _FORBIDDEN_VALUES, value
        assert CANARY not in repr(value)
    return error


# -- attacks --------------------------------------------------------------------------------

ATTACKS: dict[str, str] = {
    # imports
    "dunder-import": "__import__('os').system('id')",
    "import-os": "import os\nprint(os.environ)",
    "import-subprocess": "import subprocess\nsubprocess.run(['id'])",
    "from-os-import": "from os import system\nsystem('id')",
    "import-sys": "import sys\nprint(sys.modules)",
    "sys-getframe": "import sys\nf = sys._getframe()",
    "sys-getframe-unimported": "print(sys.rlm_canary)",
    "import-pickle": "import pickle",
    "import-marshal": "import marshal",
    "import-ctypes": "import ctypes",
    "import-types": "import types\nprint(types.CodeType)",
    "import-gc": "import gc\nprint([o for o in gc.get_objects() if isinstance(o, str)])",
    "import-signal": "import signal",
    "import-threading": "import threading",
    "import-importlib": "import importlib\nm = importlib.import_module('os')",
    "import-builtins": "import builtins\nprint(builtins.open)",
    "import-inspect": "import inspect",
    "import-io": "import io",
    "import-socket": "import socket",
    "import-posix": "import posix",
    "import-canary": "import rlm_canary_module\nprint(rlm_canary_module.SECRET)",
    "from-canary": "from rlm_canary_module import SECRET\nprint(SECRET)",
    "import-dataclasses": "import dataclasses",
    "import-enum": "import enum",
    "import-future": "from __future__ import annotations",
    "import-relative": "from . import restricted",
    "import-star": "from re import *",
    "import-submodule-json": "import json.decoder",
    "from-json-import-decoder": "from json import decoder\nprint(decoder)",
    "from-collections-import-sys": "from collections import sys",
    # builtins that do not exist
    "open": "print(open('/etc/passwd').read())",
    "eval": "eval('1')",
    "exec": "exec('x = 1')",
    "compile": "c = compile('1', 'x', 'eval')",
    "getattr": "print(getattr(1, '__class__'))",
    "hasattr": "print(hasattr(1, '__class__'))",
    "setattr": "setattr(llm_query, 'x', 1)",
    "vars": "print(vars())",
    "globals": "print(globals())",
    "locals": "print(locals())",
    "dir": "print(dir())",
    "type": "t = type(1)\nprint(t.__subclasses__())",
    "type-call": "T = type(1)",
    "object": "o = object()",
    "super": "s = super()",
    "breakpoint": "breakpoint()",
    "input": "input()",
    "help": "help()",
    "exit": "exit()",
    "system-exit": "raise SystemExit",
    "base-exception": "try:\n    FINAL('x')\nexcept BaseException:\n    print('caught')",
    "builtins-dict": "print(__builtins__['eval'])",
    # attribute walks
    "subclasses-walk": "print(().__class__.__base__.__subclasses__())",
    "class-attribute": "c = (1).__class__",
    "mro-walk": "print(''.__class__.__mro__[-1].__subclasses__())",
    "globals-of-helper": "print(llm_query.__globals__['API_KEY'])",
    "closure-of-helper": "print(llm_query.__closure__[0].cell_contents)",
    "code-of-lambda": "print((lambda: 0).__code__)",
    "self-of-builtin-method": "print([].append.__self__)",
    "gi-frame": "def g():\n    yield 1\nx = g()\nprint(x.gi_frame)",
    "gi-frame-f-back": "def g():\n    yield 1\nx = g()\nprint(x.gi_frame.f_back.f_globals)",
    "gi-code": "def g():\n    yield 1\nprint(g().gi_code)",
    "traceback-frame": "try:\n    1 / 0\nexcept Exception as e:\n"
                       "    print(e.__traceback__.tb_frame.f_globals)",
    "traceback-no-underscore": "try:\n    1 / 0\nexcept Exception as e:\n"
                               "    print(e.with_traceback(None).tb_frame)",
    "exception-context": "try:\n    1 / 0\nexcept Exception as e:\n    print(e.__context__)",
    "attribute-error-obj": "try:\n    context.nope\nexcept AttributeError as e:\n"
                           "    print(e.obj)",
    "dunder-attribute-runtime-underscore": "x = 1\nprint(x._)",
    # format strings
    "format-class": "print('{0.__class__}'.format(1))",
    "format-self": "print('{0.__self__}'.format(llm_query))",
    "format-globals": "print('{0.__globals__[API_KEY]}'.format(llm_query))",
    "format-nested-spec": "print('{0:{1.__class__}}'.format(1, 2))",
    "format-index-then-attr": "print('{0[0].__class__}'.format([1]))",
    "format-map": "print('{x.__class__}'.format_map({'x': 1}))",
    "format-map-self": "print('{f.__globals__}'.format_map({'f': llm_query}))",
    "str-format-unbound": "print(str.format('{0.__class__}', 1))",
    "str-format-map-unbound": "f = str.format_map",
    "chunk-format": "c = partition(context[0], size=10)[0]\n"
                    "print(('{0.__globals__}' + c).format(llm_query))",
    "userstring-format": "import collections\n"
                         "print(collections.UserString('{0.__globals__}').format(llm_query))",
    "userstring-format-map": "import collections\nu = collections.UserString('{x.__class__}')\n"
                             "print(u.format_map({'x': 1}))",
    "methodcaller-format": "import operator\n"
                           "print(operator.methodcaller('format', llm_query)('{0.__globals__}'))",
    "map-str-format": "print(list(map(str.format, ['{0.__class__}'], [1])))",
    "string-formatter": "import string\n"
                        "print(string.Formatter().vformat('{0.__class__}', [1], {}))",
    "string-formatter-get-field": "import string\n"
                                  "print(string.Formatter().get_field('0.__globals__', "
                                  "[llm_query], {}))",
    "from-string-import-formatter": "from string import Formatter",
    "typing-text-format": "import typing\nprint(typing.Text.format('{0.__class__}', 1))",
    # stdlib back doors
    "operator-attrgetter": "import operator\nprint(operator.attrgetter('__class__')(1))",
    "operator-attrgetter-dotted": "import operator\n"
                                  "print(operator.attrgetter('real.__class__')(1))",
    "operator-attrgetter-gi-frame": "import operator\ndef g():\n    yield 1\n"
                                    "print(operator.attrgetter('gi_frame')(g()))",
    "operator-attrgetter-str-subclass": "import operator\nclass S(str):\n    pass\n"
                                        "print(operator.attrgetter(S('__class__'))(1))",
    "operator-methodcaller": "import operator\n"
                             "print(operator.methodcaller('__reduce_ex__', 2)(1))",
    "functools-partial-getattr": "import functools\n"
                                 "print(functools.partial(getattr, 1, '__class__')())",
    "functools-update-wrapper": "import functools\ndef f():\n    pass\n"
                                "functools.update_wrapper(f, llm_query, "
                                "assigned=('__globals__',))",
    "functools-wraps": "from functools import wraps",
    "functools-singledispatch": "import functools\n"
                                "def f(x: '().__class__.__base__.__subclasses__()'):\n"
                                "    pass\n"
                                "functools.singledispatch(lambda x: 0).register(f)",
    "typing-get-type-hints": "import typing\ndef f(x: 'print(1) or ().__class__'):\n"
                             "    pass\nprint(typing.get_type_hints(f))",
    "typing-forward-ref": "from typing import ForwardRef",
    "typing-sys": "import typing\nprint(typing.sys.modules['os'])",
    "typing-abcmeta": "import typing\nC = typing.ABCMeta('C', (), {'__getattr__': len})",
    "datetime-sys": "import datetime\nprint(datetime.sys.modules['os'].environ)",
    "datetime-capsule": "import datetime\nprint(datetime.datetime_CAPI)",
    "statistics-sys": "import statistics\nprint(statistics.sys.rlm_canary)",
    "calendar-sys": "import calendar\nprint(calendar.sys)",
    "calendar-main": "import calendar\ncalendar.main(['calendar'])",
    "fractions-sys": "import fractions\nprint(fractions.sys)",
    "json-decoder": "import json\nprint(json.decoder)",
    "json-codecs": "import json\nprint(json.codecs)",
    "re-enum": "import re\nprint(re.enum)",
    "re-copyreg": "import re\nprint(re.copyreg)",
    "re-compiler": "import re\nprint(re._compiler)",
    "re-pattern-dunder": "import re\nprint(re.compile('a').__reduce__())",
    "re-pattern-attrgetter": "import operator, re\n"
                             "print(operator.methodcaller('__reduce_ex__', 2)(re.compile('a')))",
    "random-os": "import random\nprint(random._os)",
    "random-bound-self": "import random\nprint(random.seed.__self__)",
    "random-subclass-private": "import random\nclass R(random.Random):\n    pass\n"
                               "print(R()._randbelow(5))",
    "pprint-sys": "import pprint\nprint(pprint.sys)",
    "collections-userdict-class": "import collections\n"
                                  "print(collections.UserDict().__class__)",
    "collections-abc-sys": "import collections.abc\nprint(collections.abc.sys)",
    "decimal-context-write": "import decimal\ndecimal.getcontext().prec = 5",
    "decimal-traps-write": "import decimal\n"
                           "decimal.getcontext().traps[decimal.Inexact] = True",
    "decimal-default-context": "import decimal\ndecimal.DefaultContext.prec = 1",
    # monkey-patching the worker's objects
    "patch-module": "import json\njson.dumps = None",
    "patch-module-del": "import json\ndel json.dumps",
    "patch-stdlib-class": "import json\njson.JSONEncoder.default = lambda self, o: 1",
    "patch-document": "context[0].name = 'x'",
    "patch-document-aug": "context[0].name += 'x'",
    "patch-helper": "llm_query.x = 1",
    "patch-corpus-item": "context[0] = 1",
    "class-keyword": "class C(metaclass=len):\n    pass",
    "class-dunder-method": "class C:\n    def __getattr__(self, name):\n        return 1",
    "class-dunder-assign": "class C:\n    __repr__ = lambda self: 'x'",
    # syntax
    "fullwidth-eval": "ｅｖａｌ('1')",
    "fullwidth-open": "ｏｐｅｎ('/etc/passwd')",
    "fullwidth-dunder": "print(().__ｃｌａｓｓ__)",
    "except-star": "try:\n    1 / 0\nexcept* Exception:\n    pass",
    "match-class-pattern": "match 1:\n    case int(__class__=c):\n        print(c)",
    "async": "async def f():\n    pass",
    "underscore-name": "_getattr_ = lambda o, n: 1",
    "rebind-write-guard": "def f(_write_):\n    pass",
    "global-dunder": "def f():\n    global __builtins__\n    __builtins__ = {}",
    "print-reserved": "print = 1",
    "nonlocal": "def f():\n    x = 1\n    def g():\n        nonlocal x\n        x = 2",
    "augassign-slice": "a = [1]\na[0:1] += [2]",
    "augassign-dunder-attribute": "x = []\nx.__class__ += 1",
    # routes to `type`, `object`, BaseException and the REPL's own classes
    "typing-get-origin": "import typing\nT = typing.get_origin(typing.Type[int])",
    "typing-type-call": "import typing\nT = typing.Type[int](grep('ERROR')[0])",
    "from-typing-import-type": "from typing import Type",
    "typing-get-args": "import typing\nT = typing.get_args(typing.List[int])",
    "typing-generic": "from typing import Generic",
    "typing-list-mro": "import typing\nT = typing.List.mro()",
    "mro-base-exception": "BE = ValueError.mro()[2]",
    "mro-object": "O = int.mro()[-1]",
    "mro-iterated": "for c in KeyError.mro():\n    print(c)",
    "mro-attrgetter": "import operator\nT = operator.attrgetter('mro')(ValueError)()",
    "mro-methodcaller": "import operator\nT = operator.methodcaller('mro')(ValueError)",
    "mro-format": "print('{0.mro}'.format(ValueError))",
    "mro-model-class": "class K(ValueError):\n    pass\nT = K.mro()",
    "base-exception-except-mro": "try:\n    FINAL('x')\nexcept ValueError.mro()[2]:\n"
                                 "    print('caught')",
    "hit-class-via-type": "H = type(grep('ERROR')[0])",
    "hit-class-via-dunder": "H = grep('ERROR')[0].__class__",
}


@pytest.mark.parametrize("source", list(ATTACKS.values()), ids=list(ATTACKS))
def test_attack_is_blocked(repl: Repl, source: str) -> None:
    assert_blocked(repl, source)


def test_attack_suite_is_large() -> None:
    assert len(ATTACKS) >= 100


def test_open_of_the_canary_file(repl: Repl, canaries: Path) -> None:
    error = assert_blocked(repl, f"print(open({str(canaries)!r}).read())")
    assert "not available" in str(error)


def test_format_escape_gives_nothing(repl: Repl) -> None:
    for source in ("r = '{0.__self__}'.format(llm_query)",
                   "r = '{0.__globals__}'.format(llm_query)",
                   "r = '{x.__class__}'.format_map({'x': 1})"):
        error = assert_blocked(repl, source)
        assert is_restricted_error(error)
        assert "r" not in repl.namespace


def test_refusals_say_what_is_not_allowed(repl: Repl) -> None:
    _, error = repl.run("().__class__")
    assert isinstance(error, RestrictedSyntaxError)
    assert '"__class__" is an invalid attribute name because it starts with "_"' in str(error)
    assert error.lineno == 1 and error.text == "().__class__"
    _, error = repl.run("import os")
    assert isinstance(error, ImportError) and "'os' is not allowed" in str(error)
    assert "re, " in str(error)  # the allowed modules are listed
    _, error = repl.run("open('x')")
    assert isinstance(error, NameError) and "no file access" in str(error)
    _, error = repl.run("type(1)")
    assert isinstance(error, NameError) and "isinstance" in str(error)
    _, error = repl.run("import json\njson.dumps = 1")
    assert isinstance(error, TypeError) and "cannot set attributes" in str(error)
    _, error = repl.run("import datetime\ndatetime.sys")
    assert isinstance(error, AttributeError) and "has no attribute 'sys'" in str(error)
    _, error = repl.run("ｅｖａｌ('1')")
    assert isinstance(error, SyntaxError) and "Eval calls are not allowed" in str(error)


def test_all_errors_of_a_cell_are_reported() -> None:
    with pytest.raises(RestrictedSyntaxError) as info:
        compile_cell("a = ().__class__\nb = 1\nc = x.__dict__\nimport os as _os")
    lines = str(info.value.msg).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Line 1:") and lines[1].startswith("Line 3:")
    assert info.value.lineno == 1


def test_a_real_syntax_error_is_the_parsers() -> None:
    with pytest.raises(SyntaxError) as info:
        compile_cell("x = (1,\n")
    assert not isinstance(info.value, RestrictedSyntaxError)


def test_escape_vectors_open_in_the_naive_setup() -> None:
    """Why the module proxies and the wrapped operator exist: with real modules, attributes
    such as datetime.sys lead straight to os (a plain getattr guard sees nothing wrong)."""
    assert isinstance(datetime.sys, types.ModuleType)  # type: ignore[attr-defined]
    assert datetime.sys.modules["os"] is os  # type: ignore[attr-defined]
    assert restricted.module_proxy("datetime").__dir__().count("sys") == 0


# -- what must keep working -----------------------------------------------------------------

WORKS: list[tuple[str, str]] = [
    ("x = 1\nx += 2\nx", "3\n"),
    ("s = 'a'\ns += 'b'\ns *= 2\nprint(s)", "abab\n"),
    ("xs = [1]\nys = xs\nxs += [2]\nprint(ys)", "[1, 2]\n"),
    ("d = {'a': 1}\nd |= {'b': 2}\nd", "{'a': 1, 'b': 2}\n"),
    ("d = {}\nd['k'] = 1\nd['k'] += 41\nd", "{'k': 42}\n"),
    ("xs = [1, 2]\nxs[0] -= 5\ndel xs[1]\nxs", "[-4]\n"),
    ("x = 3.14159\nf'{x!r:>10}|{x:.2f}|{\"s\"!s:<3}|'", "'   3.14159|3.14|s  |'\n"),
    ("print(f'{len(context)} docs')", "3 docs\n"),
    ("'{} and {:>4}'.format('a', 7)", "'a and    7'\n"),
    ("'{0[k]} {0[n][1]} {1.real}'.format({'k': 'v', 'n': [0, 9]}, 2)", "'v 9 2'\n"),
    ("'{name}: {n:,}'.format_map({'name': 'total', 'n': 12345})", "'total: 12,345'\n"),
    ("'%s=%d' % ('n', 3)", "'n=3'\n"),
    ("[i * i for i in range(5) if i % 2]", "[1, 9]\n"),
    ("{k: v for k, v in [('a', 1), ('b', 2)]}", "{'a': 1, 'b': 2}\n"),
    ("{c for c in 'abca'} == {'a', 'b', 'c'}", "True\n"),
    ("sum(x for x in range(4))", "6\n"),
    ("f = lambda a, b=2: a * b\nf(3)", "6\n"),
    ("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    print('error:', e)",
     "error: division by zero\n"),
    ("try:\n    {}['k']\nexcept Exception as e:\n    print(repr(e))", "KeyError('k')\n"),
    ("try:\n    raise ValueError('bad')\nexcept (TypeError, ValueError) as e:\n    print(e)\n"
     "finally:\n    print('done')", "bad\ndone\n"),
    ("a, b = (1, 2)\na, *rest = [1, 2, 3]\n(c, d), e = (3, 4), 5\nprint(a, b, rest, c, d, e)",
     "1 2 [2, 3] 3 4 5\n"),
    ("for i, (k, v) in enumerate({'a': 1}.items()):\n    print(i, k, v)", "0 a 1\n"),
    ("xs = list(range(10))\nxs[2:5], xs[::-3], xs[-1]", "([2, 3, 4], [9, 6, 3, 0], 9)\n"),
    ("print(*[1, 2], sep=', ', end='.\\n')", "1, 2.\n"),
    ("kw = {'sep': '-'}\nprint('a', 'b', **kw)", "a-b\n"),
    ("print('x', file=None)\nprint('y', file=[])", "x\ny\n"),
    ("print()", "\n"),
    ("hits = grep('ERROR')\nfor h in sorted(hits, key=lambda h: (h.doc, h.line)):\n"
     "    print(h.doc, h.line, h.text)",
     "app.log 2 2024-01-01 ERROR disk full\nm1.eml 4 Please pay the ERROR fee.\n"
     "notes.txt 2 gamma ERROR delta\n"),
    ("context[1].meta['subject']", "'invoice 17'\n"),
    ("doc = context['m1.eml']\nprint(doc.name, doc.kind, doc.meta.get('from'))",
     "m1.eml email a@x\n"),
    ("chunks = partition(context[0], by='lines', size=2)\n"
     "print(len(chunks), chunks[0].sources[0].doc, chunks[0].split('\\n')[0])",
     "2 app.log 2024-01-01 INFO start\n"),
    ("peek(context[2], 0, 10)", "'alpha beta'\n"),
    ("words = 'a b a c b a'.split()\nout = []\nfor w in words:\n    out.append(w.upper())\n"
     "'-'.join(out)", "'A-B-A-C-B-A'\n"),
    ("d = {'a': 1}\nsorted(d.items()), d.get('z', 0), list(d.keys())",
     "([('a', 1)], 0, ['a'])\n"),
    ("import collections\nc = collections.Counter('abracadabra')\nc['z'] += 1\n"
     "c.most_common(2)", "[('a', 5), ('b', 2)]\n"),
    ("from collections import defaultdict, OrderedDict, deque, namedtuple\n"
     "g = defaultdict(list)\ng['x'].append(1)\ng['y'] += [2]\n"
     "q = deque([1])\nq[0] = 5\nP = namedtuple('P', 'x y')\nprint(dict(g), q, P(1, 2).y)",
     "{'x': [1], 'y': [2]} deque([5]) 2\n"),
    ("import collections.abc\nisinstance([], collections.abc.Sequence)", "True\n"),
    ("from collections.abc import Mapping\nisinstance({}, Mapping)", "True\n"),
    ("import re\nre.findall(r'\\d+', 'a1b22c333')", "['1', '22', '333']\n"),
    ("import re\nm = re.search(r'(?P<n>\\d+)', 'x 42')\nm.group('n'), m.start(), m.re.pattern",
     "('42', 2, '(?P<n>\\\\d+)')\n"),
    ("import json\njson.dumps({'a': [1, 2]}, sort_keys=True)", "'{\"a\": [1, 2]}'\n"),
    ("import json\njson.loads('{\"k\": [1, null]}')", "{'k': [1, None]}\n"),
    ("import datetime\nd = datetime.date(2026, 1, 2)\nprint(d.isoformat(), d.weekday(), "
     "(d + datetime.timedelta(days=30)).strftime('%d %b'))", "2026-01-02 4 01 Feb\n"),
    ("import math\nmath.sqrt(16), math.floor(2.5), math.pi > 3", "(4.0, 2, True)\n"),
    ("import statistics\nstatistics.mean([1, 2, 3, 4]), statistics.median([3, 1, 2])",
     "(2.5, 2)\n"),
    ("import itertools\nlist(itertools.islice(itertools.count(5), 3))", "[5, 6, 7]\n"),
    ("import functools\nfunctools.reduce(lambda a, b: a * b, [1, 2, 3, 4])", "24\n"),
    ("import functools\n@functools.lru_cache(maxsize=None)\ndef fib(n):\n"
     "    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(30)", "832040\n"),
    ("import functools\np = functools.partial(int, base=2)\np('101')", "5\n"),
    ("import operator\nsorted([(1, 'b'), (0, 'a')], key=operator.itemgetter(0))",
     "[(0, 'a'), (1, 'b')]\n"),
    ("import operator\noperator.attrgetter('real', 'imag')(3)", "(3, 0)\n"),
    ("import operator\noperator.methodcaller('split', ',')('a,b')", "['a', 'b']\n"),
    ("import operator\noperator.methodcaller('format', 7)('n={}')", "'n=7'\n"),
    ("import textwrap\ntextwrap.shorten('hello world foo bar', 12)", "'hello [...]'\n"),
    ("import difflib\ndifflib.get_close_matches('appel', ['apple', 'peach'])", "['apple']\n"),
    ("import unicodedata\nunicodedata.normalize('NFKC', 'ｅｖａｌ')", "'eval'\n"),
    ("import bisect, heapq\nxs = [1, 3]\nbisect.insort(xs, 2)\nheapq.nsmallest(2, [5, 1, 4])"
     "\nprint(xs)", "[1, 2, 3]\n"),
    ("import string\nstring.Template('$who').substitute(who='x'), string.ascii_lowercase[:3]",
     "('x', 'abc')\n"),
    ("import random\nrandom.seed(1)\nr = random.Random(5)\n0 <= r.random() < 1", "True\n"),
    ("import fractions, decimal\nfractions.Fraction(1, 3) * 3, "
     "decimal.Decimal('1.10') + decimal.Decimal('2.2')", "(Fraction(1, 1), Decimal('3.30'))\n"),
    ("import decimal\nwith decimal.localcontext(prec=3):\n"
     "    print(decimal.Decimal(1) / decimal.Decimal(7))", "0.143\n"),
    ("import calendar\ncalendar.isleap(2024), calendar.monthrange(2026, 2)", "(True, (6, 28))\n"),
    ("import time\nt = time.time()\nt > 0", "True\n"),
    ("import typing\nfrom typing import List, Dict, Optional\n"
     "def f(xs: List[int], d: Optional[Dict[str, int]] = None) -> int:\n"
     "    return len(xs)\nf([1, 2])", "2\n"),
    ("import pprint\npprint.pformat({'b': 1, 'a': [1, 2]})", "\"{'a': [1, 2], 'b': 1}\"\n"),
    ("results: list[str] = []\nresults.append('x')\ncount: int\nresults", "['x']\n"),
    ("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\nfact(10)", "3628800\n"),
    ("def show(x):\n    print('x is', x)\n    return [print(i) for i in range(2)]\nshow(1)",
     "x is 1\n0\n1\n[None, None]\n"),
    ("counter = 0\ndef bump():\n    global counter\n    counter += 1\nbump()\nbump()\ncounter",
     "2\n"),
    ("def gen(n):\n    for i in range(n):\n        yield i * 2\nlist(gen(3))", "[0, 2, 4]\n"),
    ("def outer():\n    x = 5\n    def inner():\n        return x + 1\n    return inner()\n"
     "outer()", "6\n"),
    ("def kw(*args, **kwargs):\n    return args, sorted(kwargs)\nkw(1, 2, b=1, a=2)",
     "((1, 2), ['a', 'b'])\n"),
    ("if (n := len('abc')) > 2:\n    print(n)", "3\n"),
    ("i = 0\nwhile True:\n    i += 1\n    if i > 3:\n        break\ni", "4\n"),
    ("assert 1 + 1 == 2\nprint('ok')", "ok\n"),
    ("class Finding:\n    def __init__(self, doc, note):\n        self.doc = doc\n"
     "        self.note = note\n        self.score = 0\n    def __eq__(self, other):\n"
     "        return self.doc == other.doc\nf = Finding('a.pdf', 'late fee')\nf.score += 2\n"
     "f.tags = ['x']\nprint(f.doc, f.note, f.score, f.tags, f == Finding('a.pdf', ''))",
     "a.pdf late fee 2 ['x'] True\n"),
    ("class Counter2:\n    total = 0\nCounter2.total = 5\nCounter2.total", "5\n"),
    ("class NotFound(Exception):\n    pass\nclass Sub(NotFound):\n    pass\n"
     "try:\n    raise Sub('no such clause')\nexcept NotFound as e:\n"
     "    print('caught', e, issubclass(Sub, Exception))", "caught no such clause True\n"),
    ("import random\nclass R(random.Random):\n    def pick(self):\n"
     "        return self.choice(['a'])\nR(1).pick()", "'a'\n"),
    ("import json\nclass Enc(json.JSONEncoder):\n    def default(self, o):\n"
     "        return str(o)\njson.dumps({1, 2} and [complex(1, 0)], cls=Enc)",
     "'[\"(1+0j)\"]'\n"),
    ("answer = llm_query('summarize ' + context[0].text)\nanswer",
     "'answer to summarize 2024-01-01'\n"),
    ("isinstance('x', str), callable(len), hash('a') == hash('a'), divmod(7, 2), "
     "pow(2, 10), abs(-1), round(2.567, 1)", "(True, True, True, (3, 1), 1024, 1, 2.6)\n"),
    ("chr(97), ord('a'), hex(255), oct(8), bin(3), format(0.5, '.0%'), repr('x')",
     "('a', 97, '0xff', '0o10', '0b11', '50%', \"'x'\")\n"),
    ("list(zip('ab', [1, 2])), list(reversed([1, 2])), list(map(str, [1])), "
     "list(filter(None, [0, 1])), any([0]), all([]), min(3, 1), max([2, 5])",
     "([('a', 1), ('b', 2)], [2, 1], ['1'], [1], False, True, 1, 5)\n"),
    ("it = iter([1, 2])\nnext(it), next(it, 'end'), next(it, 'end')", "(1, 2, 'end')\n"),
    ("tuple('ab'), list('ab'), frozenset([1]), set(), bytes(2), slice(1, 3)",
     "(('a', 'b'), ['a', 'b'], frozenset({1}), set(), b'\\x00\\x00', slice(1, 3, None))\n"),
    ("try:\n    raise StopIteration\nexcept (StopIteration, LookupError, "
     "NotImplementedError, AssertionError, ArithmeticError, RuntimeError, NameError, "
     "AttributeError, IndexError, TypeError) as e:\n    print('caught', repr(e))",
     "caught StopIteration()\n"),
    ("_ = 5\nfor _ in range(2):\n    pass\n_", "1\n"),
]


@pytest.mark.parametrize(("source", "expected"), WORKS,
                         ids=[f"works-{i}" for i in range(len(WORKS))])
def test_model_code_works(repl: Repl, source: str, expected: str) -> None:
    assert repl.ok(source) == expected


def test_state_persists_between_cells_and_functions_print_later(repl: Repl) -> None:
    repl.ok("def report(x):\n    print('report', x)\ndata = [3, 1, 2]")
    assert repl.ok("report(sorted(data))") == "report [1, 2, 3]\n"
    assert repl.ok("import re\nPAT = re.compile(r'ERR\\w+')") == ""
    assert repl.ok("[h.doc for h in grep(PAT.pattern)][:1]") == "['app.log']\n"


def test_final_ends_the_cell(repl: Repl) -> None:
    output, error = repl.run("print('before')\nFINAL('the answer')\nprint('after')")
    assert error is None and output == "before\n"
    assert repl.final == "the answer"


def test_print_goes_through_write_only(repl: Repl, capsys: pytest.CaptureFixture[str]) -> None:
    class Sink:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def write(self, text: str) -> None:
            self.seen.append(text)

    sink = Sink()
    repl.namespace["sink"] = sink
    assert repl.ok("print('a', 'b', sep='+', end='', file=sink)\nprint('!', flush=True)") \
        == "a+b!\n"
    assert sink.seen == []
    assert capsys.readouterr().out == ""


def test_printed_variable_is_empty(repl: Repl) -> None:
    assert repl.ok("print('x')\nprinted") == "x\n''\n"


def test_cell_with_only_statements_has_no_last_expr() -> None:
    cell = compile_cell("x = 1\nif x:\n    y = 2")
    assert isinstance(cell, CellCode) and cell.last_expr is None
    cell = compile_cell("x = 1\nx + 1")
    assert cell.last_expr is not None
    assert compile_cell("").last_expr is None


def test_compile_warnings_do_not_escape() -> None:
    # pytest runs with warnings as errors: an invalid escape, `is` with a literal and
    # RestrictedPython's "Prints, but never reads 'printed'" would all fail here.
    compile_cell("import re\nre.findall('\\d+', 'a1')\nx = 1\nprint(x is 1)")


def test_deeply_nested_code_is_a_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        compile_cell("x = " + "(" * 5000 + "1" + ")" * 5000)


def test_annotations_are_never_evaluated(repl: Repl) -> None:
    # A string annotation is code that typing.get_type_hints would eval unrestricted; the
    # cell compiles them away, so not even a non-string annotation is evaluated.
    assert repl.ok("def f(x: undefined_name) -> also_undefined:\n    return x\nf(1)") == "1\n"


# -- the pieces -----------------------------------------------------------------------------

def test_module_proxies_hold_no_modules_or_back_doors() -> None:
    preload_modules()
    forbidden = {id(getattr(builtins, n)) for n in (
        "eval", "exec", "compile", "open", "getattr", "setattr", "vars", "type", "__import__")}
    for name in ALLOWED_MODULES:
        proxy = module_proxy(name)
        for attr in dir(proxy):
            assert not attr.startswith("_")
            value = getattr(proxy, attr)
            assert not isinstance(value, types.ModuleType), f"{name}.{attr}"
            assert type(value).__name__ != "PyCapsule", f"{name}.{attr}"
            assert id(value) not in forbidden, f"{name}.{attr}"
            assert not isinstance(value, functools.partial), f"{name}.{attr}"
    assert not hasattr(module_proxy("string"), "Formatter")
    assert not hasattr(module_proxy("typing"), "get_type_hints")
    assert not hasattr(module_proxy("functools"), "singledispatch")
    assert module_proxy("collections").abc is module_proxy("collections.abc")
    assert module_proxy("operator").attrgetter is not __import__("operator").attrgetter
    assert repr(module_proxy("re")) == "<module 're' (REPL)>"
    with pytest.raises(ImportError):
        module_proxy("os")


def test_a_module_proxy_is_read_only_and_nameless() -> None:
    proxy = module_proxy("json")
    with pytest.raises(TypeError):
        proxy.dumps = None
    with pytest.raises(TypeError):
        del proxy.dumps
    with pytest.raises(AttributeError):
        proxy.__name__  # noqa: B018 - IMPORT_FROM's fallback to sys.modules needs it


def test_restricted_globals_checks_the_helpers() -> None:
    def plain() -> None:
        pass

    namespace = restricted_globals({"plain": plain, "re": re, "n": 3}, write=print)
    assert namespace["plain"] is plain and namespace["n"] == 3
    assert namespace["re"] is module_proxy("re")
    assert set(namespace) >= SCAFFOLDING_NAMES
    assert namespace["__builtins__"] is not restricted_globals({}, write=print)["__builtins__"]
    with pytest.raises(TypeError):
        restricted_globals({"m": [].append}, write=print)
    with pytest.raises(TypeError):
        restricted_globals({"p": functools.partial(plain)}, write=print)
    with pytest.raises(ValueError):
        restricted_globals({"_getattr_": plain}, write=print)
    with pytest.raises(ImportError):
        restricted_globals({"os": os}, write=print)
    with pytest.raises(TypeError):
        restricted_globals({"e": eval}, write=print)


def test_is_restricted_error(repl: Repl) -> None:
    for source in ("import os", "x.__class__", "open('x')", "context[0].name = 1",
                   "import json\njson.decoder"):
        _, error = repl.run(source)
        assert error is not None and is_restricted_error(error), source
    _, error = repl.run("1 / 0")
    assert isinstance(error, ZeroDivisionError) and not is_restricted_error(error)
    _, error = repl.run("undefined_name")
    assert isinstance(error, NameError) and not is_restricted_error(error)


def test_compile_overhead_is_small() -> None:
    """A 20-line cell compiles in well under the 10 ms per-cell budget."""
    cell = "\n".join([
        "import re, collections",
        "hits = grep(r'ERROR|WARN')",
        "by_doc = collections.defaultdict(list)",
        "for h in hits:",
        "    by_doc[h.doc].append(h)",
        "counts = {}",
        "for doc, hs in by_doc.items():",
        "    counts[doc] = len(hs)",
        "    counts[doc] += 0",
        "top = sorted(counts.items(), key=lambda kv: -kv[1])[:10]",
        "for name, n in top:",
        "    print(f'{name:<30} {n:>5}')",
        "def summarize(doc):",
        "    text = peek(doc, 0, 2000)",
        "    return llm_query('Summarize: ' + text)",
        "notes = [summarize(d) for d, _ in top[:3]]",
        "m = re.search(r'(\\d{4})-(\\d{2})', notes[0] if notes else '')",
        "year = m.group(1) if m else None",
        "a, b = year, len(notes)",
        "print(a, b)",
    ])
    compile_cell(cell)
    runs = 50
    started = time.perf_counter()
    for _ in range(runs):
        compile_cell(cell)
    per_cell = (time.perf_counter() - started) / runs
    assert per_cell < 0.010, f"{per_cell * 1e3:.2f} ms per cell"


def test_runtime_guards_hold_without_the_compile_time_checks(repl: Repl) -> None:
    """The names the compiler rejects are refused again by `_getattr_` at run time, and a
    module, frame or builtin reached through an innocent-looking attribute is refused."""
    getattr_ = repl.namespace["_getattr_"]
    getitem = repl.namespace["_getitem_"]

    def gen() -> Iterator[int]:
        yield 1

    try:
        raise ValueError("x")
    except ValueError as exc:
        caught = exc
    for obj, name in ((1, "__class__"), (gen(), "gi_frame"), (gen(), "gi_code"),
                      (caught.__traceback__, "tb_frame"), (sys._getframe(), "f_back"),
                      (sys._getframe(), "f_globals"), (repl.namespace["llm_query"], "__globals__"),
                      (AttributeError("x", obj=os), "obj"), (1, "_")):
        with pytest.raises(AttributeError):
            getattr_(obj, name)

    class Holder:
        mod = os
        allowed = re
        frame = sys._getframe()
        evil = eval
        code = (lambda: 0).__code__

    for name in ("mod", "frame", "evil", "code"):
        with pytest.raises(AttributeError):
            getattr_(Holder, name)
    assert getattr_(Holder, "allowed") is module_proxy("re")
    with pytest.raises(AttributeError):
        getitem({"k": sys}, "k")
    assert getitem([re], 0) is module_proxy("re")
    with pytest.raises(TypeError):
        getattr_(1, 5)


def test_writes_are_limited_to_the_models_own_objects(repl: Repl) -> None:
    write = repl.namespace["_write_"]
    containers: tuple[Any, ...] = ({}, [], bytearray(), __import__("collections").Counter())
    for obj in containers:
        assert write(obj) is obj
    for obj in (module_proxy("json"), re.compile("x"), repl.namespace["llm_query"], str,
                datetime.date(2020, 1, 1)):
        with pytest.raises(TypeError):
            write(obj).x = 1
        with pytest.raises(TypeError):
            write(obj)["k"] = 1


# -- no route to `type`, `object`, BaseException or the REPL's classes ----------------------

_FINAL_LEAK_TYPES: tuple[type, ...] = (type, object, BaseException, SystemExit, KeyboardInterrupt,
                                       GeneratorExit, _Final)


def _repl_classes() -> tuple[type, ...]:
    from rlm_desktop.engine import replapi

    return tuple(v for v in vars(replapi).values()
                 if isinstance(v, type) and v.__module__ == replapi.__name__)


def _assert_no_dangerous_class(repl: Repl) -> None:
    forbidden = {id(c) for c in (*_FINAL_LEAK_TYPES, *_repl_classes())}
    for value in repl.model_values():
        assert id(value) not in forbidden, value
        if isinstance(value, type):
            assert not issubclass(value, type), value


class _Leaks:
    """Helpers that return what no function should hand to model code."""

    @staticmethod
    def install(repl: Repl) -> None:
        from rlm_desktop.engine.replapi import Chunk, Hit

        values: dict[str, Any] = {
            "leak_type": type, "leak_object": object, "leak_base": BaseException,
            "leak_final": _Final, "leak_hit": Hit, "leak_chunk": Chunk,
            "leak_frame": sys._getframe(), "leak_module": os,
        }
        def returning(value: Any) -> Callable[..., Any]:
            return lambda *args, **kwargs: value

        for name, value in values.items():
            repl.namespace[name] = returning(value)
            repl.helper_names.add(name)
        repl.namespace["leak_list"] = lambda: [1, BaseException, type, Hit]
        repl.namespace["leak_dict"] = lambda: {"be": BaseException, "ok": 1}
        repl.helper_names |= {"leak_list", "leak_dict"}


CALL_ROUTES = [
    "T = leak_type()",
    "T = leak_object()",
    "BE = leak_base()",
    "F = leak_final()",
    "H = leak_hit()",
    "C = leak_chunk()",
    "f = leak_frame()",
    "m = leak_module()",
    "args = [1]\nT = leak_type(*args)",
    "kw = {'a': 1}\nT = leak_type(**kw)",
    "T = (lambda: leak_type())()",
    "def f():\n    return leak_base()\nBE = f()",
    "xs = [leak_hit()]",
    "T = leak_list()[1]",
    "for c in leak_list():\n    print(c)",
    "a, b, c, d = leak_list()",
    "T = [c for c in leak_list()]",
    "T = leak_dict()['be']",
    "T = leak_dict().get('be')",
    "T = leak_list().pop()",
    "T = list(leak_list()).pop(1)",
    "for k, v in leak_dict().items():\n    print(v)",
    "try:\n    FINAL('x')\nexcept leak_base():\n    print('caught')",
    "@leak_type\ndef f():\n    pass",
    "import functools\nT = functools.reduce(lambda a, b: b, leak_list())",
    "T = min(leak_list(), key=lambda c: c == 1)",
    "T = next(iter(leak_list()[1:]))",
    "T = sorted(leak_list(), key=lambda c: c != 1)[1]",
]


@pytest.mark.parametrize("source", CALL_ROUTES)
def test_what_a_call_returns_is_checked(repl: Repl, source: str) -> None:
    """Any function (a helper, a stdlib function, a method) that returns a class model code
    cannot name, a module, a frame, ...: refused when the call returns, when iterated, when
    subscripted. The invariant, not the route: nothing of the kind reaches model code."""
    _Leaks.install(repl)
    output, error = repl.run(source)
    assert error is not None, f"not blocked; printed {output!r}"
    assert isinstance(error, Exception)
    assert "caught" not in output
    _assert_no_dangerous_class(repl)
    assert_blocked(repl, source)


def test_final_cannot_be_caught(repl: Repl) -> None:
    for source in ("try:\n    FINAL('x')\nexcept Exception:\n    print('caught')",
                   "try:\n    FINAL('x')\nexcept (ValueError.mro()[2], Exception):\n"
                   "    print('caught')"):
        output, _ = repl.run(source)
        assert "caught" not in output


def test_no_forged_hit(repl: Repl) -> None:
    for source in ("import typing\nH = typing.Type[int](grep('ERROR')[0])",
                   "import typing\nT = typing.get_origin(typing.Type[int])",
                   "H = type(grep('ERROR')[0])",
                   "H = grep('ERROR')[0].__class__",
                   "import operator\nH = operator.attrgetter('__class__')(grep('ERROR')[0])",
                   "H = partition(context[0], size=10)[0].__class__",
                   "H = grep('ERROR').__class__"):
        assert_blocked(repl, source)
        _assert_no_dangerous_class(repl)
    # What grep hands out is still usable.
    assert repl.ok("h = grep('ERROR')[0]\nprint(h.doc, h.sources[0].doc)") == "app.log app.log\n"


def test_typing_exposes_only_annotation_names() -> None:
    typing_proxy = module_proxy("typing")
    for name in ("get_origin", "get_args", "Type", "get_type_hints", "ForwardRef", "ABCMeta",
                 "NamedTuple", "TypedDict", "NewType", "Generic", "Protocol", "sys"):
        assert not hasattr(typing_proxy, name), name
    for name in ("Any", "List", "Dict", "Optional", "Union", "Callable", "cast"):
        assert hasattr(typing_proxy, name), name


def test_no_module_proxy_holds_a_dangerous_class() -> None:
    preload_modules()
    dangerous = {id(c) for c in (*_FINAL_LEAK_TYPES, *_repl_classes())}
    for name in ALLOWED_MODULES:
        proxy = module_proxy(name)
        for attr in dir(proxy):
            value = getattr(proxy, attr)
            assert id(value) not in dangerous, f"{name}.{attr}"
            if isinstance(value, type):
                assert not issubclass(value, type), f"{name}.{attr} is a metaclass"


def test_public_attributes_of_exposed_classes_hand_out_no_dangerous_class(repl: Repl) -> None:
    """Every class model code can name (builtins, module proxies): each public attribute, read
    through the guard, is refused or is not a class model code must not have."""
    preload_modules()
    getattr_ = repl.namespace["_getattr_"]
    classes = [v for v in repl.namespace["__builtins__"].values() if isinstance(v, type)]
    for name in ALLOWED_MODULES:
        proxy = module_proxy(name)
        classes += [getattr(proxy, a) for a in dir(proxy) if isinstance(getattr(proxy, a), type)]
    dangerous = {id(c) for c in (*_FINAL_LEAK_TYPES, *_repl_classes())}
    for cls in classes:
        for attr in dir(cls):
            if attr.startswith("_"):
                continue
            try:
                value = getattr_(cls, attr)
            except Exception:  # refused, or a descriptor that fails on a class
                continue
            assert id(value) not in dangerous, f"{cls.__name__}.{attr}"
            if isinstance(value, type):
                assert not issubclass(value, type), f"{cls.__name__}.{attr}"


def test_call_iter_and_decorator_guards(repl: Repl) -> None:
    call = repl.namespace["_call_"]
    getiter = repl.namespace["_getiter_"]
    getattr_ = repl.namespace["_getattr_"]
    decorate = repl.namespace["_decorate_"]
    for value in (type, object, BaseException, SystemExit, os, sys._getframe()):
        with pytest.raises(AttributeError):
            call(lambda v=value: v)
        with pytest.raises(AttributeError):
            list(getiter([value]))
    for callable_ in (type, object, BaseException, eval, getattr):
        with pytest.raises(AttributeError):
            call(callable_, 1)
        with pytest.raises(AttributeError):
            decorate(callable_)
    with pytest.raises(AttributeError):
        decorate(lambda f: type)(len)
    for cls in (int, ValueError, KeyError, type):
        with pytest.raises(AttributeError):
            getattr_(cls, "mro")
    assert call(sorted, [3, 1]) == [1, 3]
    assert call(dict.get, {"k": int}, "k") is int
    assert list(getiter(range(3))) == [0, 1, 2]
    assert "_call_" in compile_cell("y = f(1)").body.co_names
    last = compile_cell("f(1)").last_expr
    assert last is not None and "_call_" in last.co_names


CLASS_WORKS = [
    ("import collections\nP = collections.namedtuple('P', 'x y')\np = P(1, 2)\n"
     "p.x + p.y, P(*[3, 4])", "(3, P(x=3, y=4))\n"),
    ("conv = {'int': int, 'float': float}\nconv.get('int', str)('3') + 1", "4\n"),
    ("class K(ValueError):\n    pass\ndef make(cls):\n    return cls('boom')\n"
     "try:\n    raise make(K)\nexcept K as e:\n    print('caught', e)", "caught boom\n"),
    ("import functools\n@functools.lru_cache(maxsize=None)\ndef fib(n):\n"
     "    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(30)", "832040\n"),
    ("import functools\n@functools.total_ordering\nclass V:\n    def __init__(self, v):\n"
     "        self.v = v\n    def __lt__(self, o):\n        return self.v < o.v\n"
     "    def __eq__(self, o):\n        return self.v == o.v\nV(1) <= V(2)", "True\n"),
    ("class P:\n    def __init__(self):\n        self.x = 1\n    @property\n"
     "    def y(self):\n        return self.x + 1\n    @staticmethod\n    def s():\n"
     "        return 5\nP().y, P.s()", "(2, 5)\n"),
    ("import decimal\nt = decimal.getcontext().traps\n"
     "[s for s in t if s is decimal.DivisionByZero] == [decimal.DivisionByZero]", "True\n"),
    ("import collections.abc\nisinstance([], collections.abc.Sequence), "
     "issubclass(KeyError, LookupError)", "(True, True)\n"),
    ("import typing\ntyping.cast(int, 3), typing.Counter('aab')['a']", "(3, 2)\n"),
    ("def g():\n    for i in range(3):\n        yield i\nit = g()\nfirst = next(it)\n"
     "[first] + [x for x in it]", "[0, 1, 2]\n"),
]


@pytest.mark.parametrize(("source", "expected"), CLASS_WORKS,
                         ids=[f"class-works-{i}" for i in range(len(CLASS_WORKS))])
def test_model_code_with_classes_and_calls_works(repl: Repl, source: str, expected: str) -> None:
    assert repl.ok(source) == expected
