"""A reader for VNN-LIB 1.0 properties (the format of VNN-COMP).

A ``.vnnlib`` file (Demarchi et al., vnnlib.org; SMT-LIB syntax) declares the
network's flattened inputs ``X_i`` and outputs ``Y_j`` and asserts the
*negation* of the property: an ``(x, y)`` satisfying every assertion is a
counterexample (VNN-COMP's ``sat``). The grammar read here::

    file    := (comment | command)*        comment: ';' to the end of the line
    command := '(' 'declare-const' VAR 'Real' ')' | '(' 'assert' formula ')'
    formula := '(' ('<=' | '>=') term term ')'
             | '(' ('and' | 'or') formula+ ')'
    term    := NUMBER | VAR | '(' ('+' | '-' | '*') term+ ')'   (linear only)
    VAR     := X_<int> | Y_<int>

The conjunction of the assertions is brought to disjunctive normal form; each
term's input constraints form a `spec.Region` (bounds become the box, other
linear rows ``a_ub``) and its output constraints a `spec.Disjunct`. Terms
with the same input constraints share one `spec.Property` (e.g. ACAS Xu
property 6 has two input boxes, so two properties). The PyPI package
``vnnlib`` (1.0.x) parses VNN-LIB 2.0 and rejects these 1.0 files.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re

import numpy as np

from keras_ndsru.verify.properties.spec import Disjunct, Property, Region

_MAX_TERMS = 100_000
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_VARIABLE = re.compile(r"([XY])_(\d+)$")


class VnnlibError(ValueError):
    """A malformed or unsupported VNN-LIB file (one line: file:line: why)."""


@dataclasses.dataclass(frozen=True)
class _Token:
    text: str
    line: int


@dataclasses.dataclass(frozen=True)
class _Atom:
    """``coef_x @ X + coef_y @ Y <= rhs`` (sparse dicts of coefficients)."""

    xs: tuple
    ys: tuple
    rhs: float


def read_vnnlib(path, n_inputs=None, n_outputs=None) -> list[Property]:
    """Reads a VNN-LIB 1.0 file into properties that must all hold.

    Args:
        path: the ``.vnnlib`` file.
        n_inputs, n_outputs: the network's sizes, checked against the
            declarations when given. Defaults to None.

    Returns:
        A list of `spec.Property`, one per distinct input region.

    Raises:
        VnnlibError: ``FILE:LINE: what was expected``, for syntax errors,
            undeclared or non-linear terms, unsupported operators, unbounded
            inputs and size mismatches.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: VNN-LIB file not found. Received: path={path!r}"
        )
    with open(path) as file:
        text = file.read()
    return parse_vnnlib(text, path, n_inputs, n_outputs)


def parse_vnnlib(text: str, path="<string>", n_inputs=None, n_outputs=None):
    """`read_vnnlib` on the text of a file (``path`` names it in errors)."""
    parser = _Parser(text, path)
    declared, asserts, end_line = parser.commands()
    sizes = {}
    for kind, expected in (("X", n_inputs), ("Y", n_outputs)):
        indices = sorted(i for k, i in declared if k == kind)
        if not indices:
            raise VnnlibError(
                f"{path}:{end_line}: no {kind}_i variable is declared. "
                f"Received: declarations={sorted(declared)}"[:300]
            )
        if indices != list(range(len(indices))):
            missing = sorted(set(range(indices[-1] + 1)) - set(indices))
            raise VnnlibError(
                f"{path}:{declared[(kind, indices[-1])]}: {kind}_0..{kind}_"
                f"{indices[-1]} must all be declared. Received: missing "
                f"{kind}_{missing[0]}"
            )
        if expected is not None and len(indices) != expected:
            raise VnnlibError(
                f"{path}:{declared[(kind, indices[-1])]}: the network has {expected} "
                f"{'inputs' if kind == 'X' else 'outputs'}, the file declares "
                f"{len(indices)}. Received: {kind}_0..{kind}_{indices[-1]}"
            )
        sizes[kind] = len(indices)
    terms = [[]]
    for formula, line in asserts:
        dnf = _dnf(formula, path, line)
        if len(terms) * len(dnf) > _MAX_TERMS:
            raise VnnlibError(
                f"{path}:{line}: the assertions expand to more than {_MAX_TERMS} "
                "cases in disjunctive normal form. Received: too many 'or's"
            )
        terms = [a + b for a, b in itertools.product(terms, dnf)]
    return _properties(terms, sizes["X"], sizes["Y"], path, end_line)


class _Parser:
    def __init__(self, text, path):
        self.path = path
        self.tokens = []
        for number, raw in enumerate(text.splitlines(), start=1):
            code = raw.split(";", 1)[0]
            for piece in code.replace("(", " ( ").replace(")", " ) ").split():
                self.tokens.append(_Token(piece, number))
        self.pos = 0
        self.last_line = max(len(text.splitlines()), 1)

    def fail(self, token, expected):
        if token is None:
            return VnnlibError(
                f"{self.path}:{self.last_line}: expected {expected}, but the file "
                "ends. Received: end of file"
            )
        return VnnlibError(
            f"{self.path}:{token.line}: expected {expected}. Received: {token.text!r}"
        )

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected=None, what=None):
        token = self.peek()
        if token is None or (expected is not None and token.text != expected):
            raise self.fail(token, what or repr(expected))
        self.pos += 1
        return token

    def commands(self):
        declared, asserts = {}, []
        while self.peek() is not None:
            self.take("(", "'(' starting a command")
            head = self.take(what="declare-const or assert")
            if head.text == "declare-const":
                name = self.take(what="a variable name X_i or Y_i")
                match = _VARIABLE.match(name.text)
                if not match:
                    raise self.fail(name, "a variable named X_<i> or Y_<i>")
                sort = self.take(what="the sort Real")
                if sort.text != "Real":
                    raise self.fail(sort, "the sort Real")
                key = (match.group(1), int(match.group(2)))
                if key in declared:
                    raise self.fail(name, "a variable not declared before")
                declared[key] = name.line
            elif head.text == "assert":
                asserts.append((self.formula(declared), head.line))
            else:
                raise self.fail(head, "declare-const or assert")
            self.take(")", "')' closing the command")
        return declared, asserts, self.last_line

    def formula(self, declared):
        self.take("(", "'(' starting a formula")
        op = self.take(what="an operator (<=, >=, and, or)")
        if op.text in ("and", "or"):
            parts = [self.formula(declared)]
            while self.peek() is not None and self.peek().text != ")":
                parts.append(self.formula(declared))
            self.take(")", f"')' closing ({op.text} ...)")
            return (op.text, parts)
        if op.text in ("<=", ">="):
            left, right = self.term(declared), self.term(declared)
            self.take(")", f"')' after the two terms of ({op.text} ...)")
            # left - right <= 0 (or >= 0)
            diff = _combine(left, right, -1.0)
            if op.text == ">=":
                diff = {k: -v for k, v in diff.items()}
            const = diff.pop(None, 0.0)
            return ("atom", op.line, diff, 0.0 - const)
        raise self.fail(
            op, "<=, >=, and or or (strict and other comparisons are not VNN-LIB 1.0)"
        )

    def term(self, declared):
        """A linear term as {variable key or None: coefficient}."""
        token = self.take(what="a number, a variable or '('")
        if token.text == "(":
            op = self.take(what="+, - or *")
            args = [self.term(declared)]
            while self.peek() is not None and self.peek().text != ")":
                args.append(self.term(declared))
            self.take(")", f"')' closing ({op.text} ...)")
            if op.text == "+":
                out = {}
                for arg in args:
                    out = _combine(out, arg, 1.0)
                return out
            if op.text == "-":
                if len(args) == 1:
                    return {k: -v for k, v in args[0].items()}
                out = args[0]
                for arg in args[1:]:
                    out = _combine(out, arg, -1.0)
                return out
            if op.text == "*":
                out = {None: 1.0}
                for arg in args:
                    if set(arg) - {None} and set(out) - {None}:
                        raise self.fail(
                            op, "a linear term (a product of a number and one variable)"
                        )
                    out = _product(out, arg)
                return out
            raise self.fail(op, "+, - or * (linear arithmetic)")
        if _NUMBER.match(token.text):
            return {None: float(token.text)}
        match = _VARIABLE.match(token.text)
        if match:
            key = (match.group(1), int(match.group(2)))
            if key not in declared:
                raise self.fail(token, "a declared variable (declare-const first)")
            return {key: 1.0}
        raise self.fail(token, "a number, a variable or '('")


def _combine(a, b, sign):
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + sign * v
    return out


def _product(a, b):
    if set(a) == {None}:
        return {k: a[None] * v for k, v in b.items()}
    return {k: b[None] * v for k, v in a.items()}


def _dnf(formula, path, line):
    """A list of conjunctions (lists of atoms)."""
    kind = formula[0]
    if kind == "atom":
        _, atom_line, diff, rhs = formula
        xs = tuple((i, c) for (k, i), c in diff.items() if k == "X" and c != 0.0)
        ys = tuple((i, c) for (k, i), c in diff.items() if k == "Y" and c != 0.0)
        if xs and ys:
            raise VnnlibError(
                f"{path}:{atom_line}: a constraint mixes inputs and outputs, which "
                "the verifier does not support. Received: a term with X_ and Y_"
            )
        return [[(_Atom(xs, ys, rhs), atom_line)]]
    parts = [_dnf(p, path, line) for p in formula[1]]
    if kind == "or":
        return [term for part in parts for term in part]
    out = [[]]
    for part in parts:
        if len(out) * len(part) > _MAX_TERMS:
            raise VnnlibError(
                f"{path}:{line}: the formula expands to more than {_MAX_TERMS} "
                "cases in disjunctive normal form. Received: too many 'or's"
            )
        out = [a + b for a, b in itertools.product(out, part)]
    return out


def _properties(terms, n_in, n_out, path, end_line):
    groups: dict = {}
    for term in terms:
        inputs = tuple(sorted({(a.xs, a.rhs) for a, _ in term if not a.ys}))
        outputs = [(a, line) for a, line in term if a.ys or not a.xs]
        groups.setdefault(inputs, ([], term))[0].append(outputs)
    properties = []
    for inputs, (cases, term) in groups.items():
        region = _region(inputs, term, n_in, path)
        if region is None:
            continue  # the input constraints are contradictory: no case
        disjuncts = []
        for outputs in cases:
            mat = np.zeros((max(len(outputs), 1), n_out))
            rhs = np.zeros(mat.shape[0])
            for r, (atom, _) in enumerate(outputs):
                for i, c in atom.ys:
                    mat[r, i] += c
                rhs[r] = atom.rhs
            text = " and ".join(
                " + ".join(f"{c:g}*Y_{i}" for i, c in atom.ys) + f" <= {atom.rhs:g}"
                for atom, _ in outputs
            )
            disjuncts.append(Disjunct(mat, rhs, text or "any output"))
        properties.append(Property(region, tuple(disjuncts), os.path.basename(path)))
    if not properties:
        raise VnnlibError(
            f"{path}:{end_line}: the input constraints admit no input. "
            "Received: contradictory bounds"
        )
    return properties


def _region(inputs, term, n_in, path):
    lower, upper = np.full(n_in, -np.inf), np.full(n_in, np.inf)
    rows, bounds = [], []
    for xs, rhs in inputs:
        if len(xs) == 1:
            ((i, c),) = xs
            if c > 0:
                upper[i] = min(upper[i], rhs / c)
            else:
                lower[i] = max(lower[i], rhs / c)
        else:
            row = np.zeros(n_in)
            for i, c in xs:
                row[i] += c
            rows.append(row)
            bounds.append(rhs)
    missing = np.nonzero(~np.isfinite(lower) | ~np.isfinite(upper))[0]
    if missing.size:
        line = min(line for _, line in term) if term else 1
        i = int(missing[0])
        side = "lower" if not np.isfinite(lower[i]) else "upper"
        raise VnnlibError(
            f"{path}:{line}: every input needs a finite lower and upper bound. "
            f"Received: no {side} bound for X_{i}"
        )
    if np.any(lower > upper):
        return None
    if rows:
        return Region(lower, upper, a_ub=np.array(rows), b_ub=np.array(bounds))
    return Region(lower, upper)
