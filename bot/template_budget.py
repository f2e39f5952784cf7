"""A Jinja2 sandbox whose every render is bounded: numbers, repetition, output and time.

Jinja's own sandbox stops templates from reaching Python's internals, not from spending
the machine: ``{{ 9**(9**9) }}``, ``'A'*10**10``, a format width of 999999999 or nested
``range`` loops each held `check` and the worker (at hot reload) for good. Here each of
those is refused before it is computed (a `SecurityError`, reported as a template error
with its line), the output of one render stops at `MAX_OUTPUT` characters, and a render
that still runs past its deadline (loops that print nothing) is interrupted by a timer
signal. Ops people edit templates; a mistake must cost a failed `check`, never the worker.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections.abc import Callable, Iterator
from functools import wraps
from types import FrameType
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from bot.errors import BudgetExceeded

MAX_OUTPUT = 100_000  # characters one rendered message may have
MAX_SEQUENCE = 100_000  # characters (items) a string (list) built by a template may have
MAX_NUMBER_BITS = 4_096  # about 1,200 decimal digits
MAX_EXPONENT = 128
MAX_ARGUMENT = 100_000  # any integer handed to a filter, method or global
MAX_FORMAT_WIDTH = 1_000
RENDER_SECONDS = 1.0
# str methods that make a string of any length from a small one (the filters of the same
# names are bounded below; str.format is checked for its widths).
_UNSAFE_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs", "replace"})
_WIDTH = re.compile(r"%[-+ #0]*(\d+)?(?:\.(\d+))?|\{[^{}]*?:[^{}]*?(\d+)?(?:\.(\d+))?[^{}]*\}")


def _refuse(why: str) -> SecurityError:
    return SecurityError(f"refused by the template budget: {why}")


def _check_int(value: object) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_ARGUMENT:
        raise _refuse(f"the number {str(value)[:20]} is larger than {MAX_ARGUMENT:,}")


def _check_format(fmt: object) -> None:
    if not isinstance(fmt, str):
        return
    for match in _WIDTH.finditer(fmt):
        for width in match.groups():
            if width and int(width[:6]) > MAX_FORMAT_WIDTH:
                raise _refuse(f"a format width of {width[:12]} (at most {MAX_FORMAT_WIDTH:,})")


def _length(value: object) -> int | None:
    return len(value) if isinstance(value, (str, list, tuple)) else None


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The filter with its numeric arguments bounded (and ``replace``/``format`` checked)."""

    @wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        plain = [a for a in args if not isinstance(a, (Context, nodes.EvalContext))]
        for value in (*plain, *kwargs.values()):
            _check_int(value)
        if name == "format" and plain:
            _check_format(plain[0])
        if name == "replace" and len(plain) >= 3:
            text, old, new = (str(x) for x in plain[:3])
            if old and text.count(old) * max(len(new) - len(old), 0) + len(text) > MAX_SEQUENCE:
                raise _refuse(f"replace would make more than {MAX_SEQUENCE:,} characters")
        return func(*args, **kwargs)

    return bounded


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` through the environment, so a concatenation is bounded too."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"environment.bounded_concat({func_name}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(SandboxedEnvironment):
    """`SandboxedEnvironment` plus the budgets in this module's docstring."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)  # lipsum(n=10**9) makes text from nothing
        for name, func in list(self.filters.items()):
            self.filters[name] = _bounded_filter(name, func)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise _refuse(f"an exponent of {str(right)[:20]} (at most {MAX_EXPONENT})")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                size = _length(seq)
                if size is not None and isinstance(times, int) and size * times > MAX_SEQUENCE:
                    raise _refuse(f"repetition to more than {MAX_SEQUENCE:,} characters")
        if operator == "+":
            sizes = (_length(left), _length(right))
            if None not in sizes and sum(s or 0 for s in sizes) > MAX_SEQUENCE:
                raise _refuse(f"concatenation to more than {MAX_SEQUENCE:,} characters")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        if (operator in ("*", "**") and isinstance(left, int) and isinstance(right, int)
                and (left.bit_length() * (right if operator == "**" else 1)
                     + (right.bit_length() if operator == "*" else 0)) > MAX_NUMBER_BITS):
            raise _refuse(f"a number of more than {MAX_NUMBER_BITS:,} bits")
        return super().call_binop(context, operator, left, right)

    @staticmethod
    def bounded_concat(join: Callable[[Any], str], parts: tuple[Any, ...]) -> str:
        if sum(len(p) for p in parts if isinstance(p, str)) > MAX_SEQUENCE:
            raise _refuse(f"concatenation to more than {MAX_SEQUENCE:,} characters")
        return join(parts)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        template: object = getattr(value, "__self__", None)

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(template)
            return formatter(*args, **kwargs)

        return checked

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in _UNSAFE_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call(__self, __context: Context, __obj: Any,
             *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            _check_int(value)
        return super().call(__context, __obj, *args, **kwargs)


def bounded_output(chunks: Iterator[str], limit: int = MAX_OUTPUT) -> str:
    """Join a render's chunks, stopping with `BudgetExceeded` past ``limit`` characters."""
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BudgetExceeded(f"the message would be longer than {limit:,} characters")
        out.append(chunk)
    return "".join(out)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise `BudgetExceeded` in the block once ``seconds`` have passed.

    A timer signal, so it needs the main thread (the worker's and every command's); in
    another thread the structural bounds above are what is left.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    active = True

    def expire(signum: int, frame: FrameType | None) -> None:
        if active:
            raise BudgetExceeded(f"the template took longer than {seconds:g} s to render")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
