"""Lowering a compiled Tensor step's ops to numpy calls that write into kept buffers.

An op's array templates (`Op.kernel`, else `Op.code` where numpy can run it: Python
expressions over {x0}, {x1}.. the inputs, {out}, {g} and the options) are parsed, and
each operation in one becomes a ufunc call with `out=` a buffer allocated once, when the
plan is made, from the shapes and dtypes of the trace (the signature fixes them; a
replay checks the parameters' before it starts). A forward that is itself a ufunc
(np.add, np.tanh, np.matmul) writes into a buffer the same way. A template is used only
where the lowered lines, run on random arrays of the traced shapes and dtypes, give the
very same array (shape, dtype and every bit) as the op's own forward or vjp; anywhere
else the replay calls the op's function as before.

No buffer escapes the call that wrote it: buffers are views (`np.empty(..)[...]`), which
`.grad` and a leaf's gradient copy rather than keep, and a step's results are copies.
Gradients bound for a leaf's `.grad` are new arrays, so they are kept without a copy.
"""

from __future__ import annotations

import ast
import re

import numpy as np

_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
           ast.Div: np.true_divide, ast.MatMult: np.matmul}
_COMPARE = {ast.Gt: np.greater, ast.Lt: np.less, ast.GtE: np.greater_equal,
            ast.LtE: np.less_equal}
_UNARY = {ast.USub: np.negative}
_REDUCTIONS = {"sum": np.sum}  # x.sum(axis=...) with constant options


# The replay's lines that `Kernels.share` reads: `[v = ]U_f(args[, out=B3])`, `v = w`.
_UFUNC_LINE = re.compile(r"^\s*(?:(\w+) = )?U_\w+\((.*?)(?:, out=(B\d+))?\)$")
_BIND_LINE = re.compile(r"^\s*(\w+) = (\w+)$")
_OUT_CALL = re.compile(r"^(\s*(?:\w+ = )?)(U_\w+)\((.*), out=(B\d+)\)$")
_BUFFER = re.compile(r"B\d+")
_NAME = re.compile(r"[A-Za-z_]\w*")
_ASSIGNED = re.compile(r"(\w+)\s*[-+*/@]?=(?!=)")


class NotLowerable(Exception):
    """A template (or a part of it) the lowering does not turn into ufunc calls."""


class Kernels:
    """The buffers and ufuncs of one replay, kept in its namespace `ns`."""

    def __init__(self, ns: dict):
        self.ns = ns
        self.count = 0
        self.rng = np.random.default_rng(0)
        self.samples = {}

    def buffer(self, shape, dtype) -> str:
        name = f"B{self.count}"
        self.count += 1
        self.ns[name] = np.empty(shape, dtype)[...]  # (a view: never kept as a .grad)
        return name

    def sample(self, shape, dtype, role=0) -> np.ndarray:
        """Random numbers of a traced array's shape and dtype, to check a template on
        (the same array for the same role in one plan: a long chain draws once)."""
        key = (shape, np.dtype(dtype), role)
        if key not in self.samples:
            self.samples[key] = np.asarray(self.rng.standard_normal(shape), dtype=dtype)
        return self.samples[key]

    def share(self, lines: list) -> int:
        """Point buffers whose lifetimes in the straight-line replay `lines` do not
        overlap at one array (per shape and dtype), so a long chain works in a few arrays
        that stay in cache instead of one per op. Returns how many arrays remain.

        A buffer's life runs from the ufunc call that first writes it to the last line
        that reads it, through the variables bound to it (`s3 = U_add(.., out=B0)`,
        `g4 = s3`). A buffer read before it is written (it would carry numbers from a
        call to the next), or reached by any line other than a ufunc call or a plain
        name binding (an op's function, a vjp, a stored gradient, the result: they may
        keep it), keeps an array of its own."""
        alias: dict = {}  # variable -> the buffer it is bound to
        start, end, pinned = {}, {}, set()

        def buffer_of(name):
            return name if name in self.ns and _BUFFER.fullmatch(name) else alias.get(name)

        for i, line in enumerate(lines):
            call = _UFUNC_LINE.match(line)
            bind = _BIND_LINE.match(line)
            if call is not None:
                target, args, out = call.group(1), call.group(2), call.group(3)
                for name in _NAME.findall(args):
                    b = buffer_of(name)
                    if b is not None:
                        if b not in start:
                            pinned.add(b)
                        end[b] = i
                if out is not None:
                    start.setdefault(out, i)
                    end[out] = i
                if target is not None:
                    if out is None:
                        alias.pop(target, None)
                    else:
                        alias[target] = out
            elif bind is not None:
                b = buffer_of(bind.group(2))
                if b is not None:
                    end[b] = i
                    alias[bind.group(1)] = b
                else:
                    alias.pop(bind.group(1), None)
            else:
                for name in _NAME.findall(line):
                    b = buffer_of(name)
                    if b is not None:
                        pinned.add(b)
                for name in _ASSIGNED.findall(line):
                    alias.pop(name, None)
        free: dict = {}  # (shape, dtype) -> [(last line, array)] of arrays free to take
        arrays = {id(self.ns[b]) for b in pinned if b in self.ns}
        for b in sorted(start, key=start.get):
            if b in pinned:
                continue
            key = (self.ns[b].shape, self.ns[b].dtype)
            pool = free.setdefault(key, [])
            taken = next((k for k, (last, _) in enumerate(pool) if last < start[b]), None)
            if taken is not None:
                self.ns[b] = pool.pop(taken)[1]
            arrays.add(id(self.ns[b]))
            pool.append((end[b], self.ns[b]))
        return len(arrays)

    def positional_out(self, lines: list) -> None:
        """`U_f(a, b, out=B)` as `U_f(a, b, B)` where U_f is a ufunc with no other
        keyword (the same call: a ufunc takes its out after its inputs, and parses a
        keyword out more slowly, which a chain of small arrays notices)."""
        for i, line in enumerate(lines):
            m = _OUT_CALL.match(line)
            if m is not None and isinstance(self.ns.get(m.group(2)), np.ufunc) \
                    and "=" not in m.group(3):
                lines[i] = f"{m.group(1)}{m.group(2)}({m.group(3)}, {m.group(4)})"

    def ufunc(self, fn) -> str:
        name = f"U_{fn.__name__}"
        self.ns[name] = fn
        return name

    def lower(self, expr: str, samples: dict, fresh: bool) -> tuple[list, str, np.ndarray]:
        """`expr` (a formatted template over replay variables) as lines of ufunc calls:
        (lines, the result's expression, the result on `samples`). `fresh`: the last call
        makes a new array (a leaf's gradient) instead of writing into a buffer."""
        lines: list[str] = []

        def operand(node):
            if isinstance(node, ast.Name):
                if node.id not in samples:
                    raise NotLowerable(node.id)
                return node.id, samples[node.id], False
            if isinstance(node, ast.Constant) and type(node.value) in (int, float):
                return repr(node.value), node.value, False
            if isinstance(node, ast.Attribute) and node.attr == "T":
                code, value, _ = operand(node.value)
                return f"{code}.T", np.asarray(value).T, False  # (a view: no buffer)
            return call(node, last=False)

        def call(node, last):
            kw = {}
            if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
                fn, args = _BINARY[type(node.op)], [node.left, node.right]
            elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
                fn, args = _UNARY[type(node.op)], [node.operand]
            elif (isinstance(node, ast.Compare) and len(node.ops) == 1
                  and type(node.ops[0]) in _COMPARE):
                fn, args = _COMPARE[type(node.ops[0])], [node.left, node.comparators[0]]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and isinstance(self.ns.get(node.func.id), np.ufunc) and not node.keywords):
                fn, args = self.ns[node.func.id], node.args  # (a forward that is a ufunc)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and isinstance(node.func.value, ast.Name) and node.func.value.id == "np"
                  and isinstance(getattr(np, node.func.attr, None), np.ufunc)
                  and not node.keywords):
                fn, args = getattr(np, node.func.attr), node.args  # np.maximum(..) in a kernel
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in _REDUCTIONS and not node.args):
                fn, args = _REDUCTIONS[node.func.attr], [node.func.value]
                kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            else:
                raise NotLowerable(ast.dump(node))
            parts = [operand(a) for a in args]
            result = np.asarray(fn(*[v for _, v, _ in parts], **kw))
            code = ", ".join([c for c, _, _ in parts] + [f"{k}={v!r}" for k, v in kw.items()])
            if last and fresh:
                return f"{self.ufunc(fn)}({code})", result, False
            # An elementwise call may write over its own temporary (used once, here).
            elementwise = isinstance(fn, np.ufunc) and fn is not np.matmul
            reuse = next((c for c, v, temp in parts if temp and elementwise
                          and v.shape == result.shape and v.dtype == result.dtype), None)
            out = reuse or self.buffer(result.shape, result.dtype)
            written = f"{self.ufunc(fn)}({code}, out={out})"  # (a ufunc returns its out)
            if last:
                return written, result, True
            lines.append(f"    {written}")
            return out, result, True

        tree = ast.parse(expr, mode="eval").body
        if isinstance(tree, (ast.Name, ast.Constant, ast.Attribute)):
            code, value, _ = operand(tree)
            return lines, code, np.asarray(value)
        code, value, _ = call(tree, last=True)
        return lines, code, value

    def checked(self, expr: str, samples: dict, expected, fresh: bool):
        """`lower`, if its lines give `expected` on `samples` bit for bit; else None."""
        try:
            lines, result, value = self.lower(expr, samples, fresh)
        except (NotLowerable, ValueError, TypeError, SyntaxError):
            return None
        env = dict(self.ns)
        env.update(samples)
        try:
            exec("\n".join(line.strip() for line in lines) + f"\n_result = {result}", env)
        except (ValueError, TypeError, FloatingPointError):
            return None
        got = np.asarray(env["_result"])
        if not same_array(got, expected):
            return None
        return lines, result, value

    def forward(self, op, ins: list, traced: list, opts: dict, out_traced):
        """Lines and the expression of op's forward of the replay variables `ins` (the
        trace's arrays `traced`) written into a buffer, or None (call op.forward)."""
        if op.view or op.residuals or not _all_floats(traced + [out_traced]):
            return None
        options = _literal_options(opts)
        if options is None:
            return None
        if isinstance(op.forward, np.ufunc) and not opts:
            template = f"{self.ufunc(op.forward)}(" + ", ".join(
                f"{{x{k}}}" for k in range(len(ins))) + ")"
        else:
            template = templates(op, len(ins))[0]
            if template is None:
                return None
        samples = {v: self.sample(a.shape, a.dtype, k) for k, (v, a) in
                   enumerate(zip(ins, traced))}
        expected = op.forward(*(samples[v] for v in ins), **opts)
        if np.shape(expected) != out_traced.shape or np.result_type(expected) != out_traced.dtype:
            return None
        names = dict({f"x{k}": v for k, v in enumerate(ins)}, **options)
        return self.checked(template.format_map(names), samples, expected, fresh=False)

    def vjps(self, op, g: str, out: str, ins: list, traced: list, opts: dict,
             out_traced, wanted: list, fresh: list):
        """Per input k: (lines, expression, value on the samples) of its gradient where
        `wanted[k]` (else None); or None when any wanted one cannot be lowered (call
        op.vjp). `fresh[k]`: the gradient is a new array (it goes to a leaf)."""
        if op.residuals or not _all_floats(traced + [out_traced]):
            return None
        vjps = templates(op, len(ins))[1]
        options = _literal_options(opts)
        if vjps is None or options is None:
            return None
        samples = {v: self.sample(a.shape, a.dtype, k) for k, (v, a) in
                   enumerate(zip(ins, traced))}
        xs = [samples[v] for v in ins]
        forward = np.asarray(op.forward(*xs, **opts))
        if forward.shape != out_traced.shape or forward.dtype != out_traced.dtype:
            return None
        samples[out] = forward
        samples[g] = self.sample(out_traced.shape, out_traced.dtype, "g")
        kwargs = dict(opts, need=(True,) * len(ins)) if op.masked else opts
        expected = op.vjp(samples[g], forward, *(xs if op.reads_inputs else ()), **kwargs)
        names = dict({f"x{k}": v for k, v in enumerate(ins)}, g=g, out=out, **options)
        result = []
        for k, want in enumerate(wanted):
            if not want:
                result.append(None)
                continue
            lowered = self.checked(vjps[k].format_map(names), samples, expected[k], fresh[k])
            if lowered is None:
                return None
            result.append(lowered)
        return result


def templates(op, inputs: int) -> tuple:
    """(forward, vjps) of op as numpy templates, or (None, None)."""
    code = op.kernel if op.kernel is not None else op.code
    if callable(code):
        code = code(inputs)
    return code or (None, None)


def _all_floats(arrays) -> bool:
    return all(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays)


def _literal_options(opts: dict):
    """Options as Python literals for a template (plain finite ints and floats), or None
    when one is anything else (a numpy scalar keeps its dtype in arithmetic: not lowered)."""
    out = {}
    for k, v in opts.items():
        if type(v) not in (int, float) or (type(v) is float and not np.isfinite(v)):
            return None
        out[k] = repr(v)
    return out


def same_array(a, b) -> bool:
    """The very same numbers: shape, dtype and bits (nan where the other has nan)."""
    if b is None or not isinstance(b, (np.ndarray, np.generic)):
        return False
    b = np.asarray(b)
    return (a.shape == b.shape and a.dtype == b.dtype
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
