"""Source rewrites for ``equiv-lint --fix`` / ``--diff`` / ``--add-noqa``: one rewrite per rule code.

A finding names a file and the line of a constructor or functional call. :func:`plan` parses each
file with LibCST (a concrete syntax tree: comments, formatting and every untouched byte survive),
finds the one call on that line that the finding's op names — through any import alias
(``nn.Conv2d``, ``torch.nn.Conv2d``, ``from torch.nn import Conv2d as C``) — and rewrites it:

=====  =========================================  ==============================================  ======
code   call                                       becomes                                         fix
=====  =========================================  ==============================================  ======
EQ001  ``nn.MaxPoolNd(k, s, p, ...)``              ``MaxBlurPoolNd(k, s, padding=p, ...)``          safe
EQ001  ``F.max_poolNd(x, k, s, ...)``              ``blur_poolNd(F.max_poolNd(x, k, 1, ...),        safe
                                                  stride=s)``
EQ002  ``nn.ConvNd(...)``                          ``AntialiasedConvNd(...)``, the same arguments     safe
EQ002  ``F.convNd(x, w, ..., stride=s)``           ``F.convNd(blur_poolNd(x, stride=1), w, ...)``   safe
EQ003  ``nn.AvgPoolNd(...)`` / ``F.avg_poolNd``    ``BlurAvgPoolNd(...)`` / ``blur_avg_poolNd(...)``, safe
                                                  the same arguments
=====  =========================================  ==============================================  ======

A fix is *safe* when the rewritten model loads every checkpoint of the original with
``strict=True`` and keeps its output shapes: the drop-ins keep the parameter names and add only
non-persistent filter buffers. Every argument keeps the form the user wrote (a keyword stays a
keyword); only a positional argument that the drop-in takes by keyword (a max pool's ``padding``)
becomes one. The other rules have no rewrite that keeps the model's meaning; their findings stay,
each with the reason. Needed names are imported once, from
``pytest_equivariance``, after the file's imports. LibCST is imported only when a rewrite is asked
for, never by the pytest plugin.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import tokenize
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_equivariance.lint.findings import Finding

if TYPE_CHECKING:
    import libcst as cst

#: How each rule code can be fixed in source: "safe", "unsafe" or "unavailable", and why.
AUTOFIX: dict[str, tuple[str, str]] = {
    "EQ001": ("safe", "MaxBlurPool (max pool at stride 1, then BlurPool) keeps the output shape and has no parameters"),
    "EQ002": ("safe", "AntialiasedConv keeps nn.Conv's arguments, parameter names and output shape"),
    "EQ003": ("safe", "BlurAvgPool takes the average pool's arguments, keeps its output size and has no parameters"),
    "EQ004": ("unavailable", "the resize mode is part of the model's meaning; choose antialias=True or a BlurPool "
                             "by hand"),
    "EQ005": ("unavailable", "strided slicing is usually part of an indexing scheme; replace it by hand"),
    "EQ006": ("unavailable", "a blur before space-to-depth changes what the following layers see"),
    "EQ007": ("unavailable", "a kernel size that is a multiple of the stride changes the weights' shape"),
    "EQ008": ("unavailable", "global pooling before the head changes the head's input size"),
    "EQ009": ("unavailable", "a relative position encoding is a change of architecture"),
    "EQ010": ("unavailable", "circular padding changes what the model computes at the borders"),
    "EQ011": ("unavailable", "an odd kernel changes the weights' shape"),
}

#: The statuses of a planned edit, for reports.
FIXED, UNSAFE, UNAVAILABLE, UNMAPPED, LIBRARY = "fixed", "unsafe", "unavailable", "unmapped", "library"


@dataclass(frozen=True)
class Edit:
    """What ``--fix`` does (or cannot do) about one finding."""

    finding: Finding
    status: str  # FIXED, UNSAFE (needs --unsafe-fixes), UNAVAILABLE, UNMAPPED, LIBRARY
    reason: str = ""


@dataclass
class FilePlan:
    """The rewrite of one file: its text before and after, and the edits that make the difference."""

    path: Path
    before: str
    after: str
    edits: list[Edit] = field(default_factory=list)
    digest: str = ""  # of the bytes the plan was made from: a file changed since is not written

    @property
    def changed(self) -> bool:
        """Whether the plan changes the file."""
        return self.after != self.before

    def diff(self) -> str:
        """Return the unified diff of the plan, with paths as ``a/<path>`` and ``b/<path>``."""
        from pytest_equivariance.lint.loader import display_path

        name = display_path(self.path)
        return "".join(difflib.unified_diff(self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
                                            fromfile=f"a/{name}", tofile=f"b/{name}"))


def digest(data: bytes) -> str:
    """Return the SHA-256 of a file's bytes (to tell whether it changed on disk)."""
    return hashlib.sha256(data).hexdigest()


def status_of(finding: Finding, *, unsafe: bool) -> tuple[str, str]:
    """Return the status a finding's fix has before looking at the source: FIXED, UNSAFE or UNAVAILABLE."""
    safety, why = AUTOFIX.get(finding.code, ("unavailable", "no rewrite for this rule"))
    if safety == "safe" or (safety == "unsafe" and unsafe):
        return FIXED, why
    if safety == "unsafe":
        return UNSAFE, f"an unsafe fix: {why}; pass --unsafe-fixes to apply it"
    return UNAVAILABLE, why


def plan(findings: Iterable[Finding], *, unsafe: bool = False,
         library: Callable[[str], bool] | None = None) -> tuple[list[FilePlan], list[Edit]]:
    """Return the rewrite of every file that has fixable findings, and the edits of all findings.

    ``library(file) -> bool`` says which files are not the user's (never edited). Each finding gets
    one :class:`Edit`; those that cannot be applied say why.
    """
    from pytest_equivariance.lint.locations import is_user_file

    is_library = library or (lambda f: not is_user_file(f))
    edits: list[Edit] = []
    by_file: dict[str, list[Finding]] = {}
    for finding in findings:
        status, why = status_of(finding, unsafe=unsafe)
        if status != FIXED:
            edits.append(Edit(finding, status, why))
        elif finding.file is None or finding.line is None:
            edits.append(Edit(finding, UNMAPPED, "its source location is unknown"))
        elif is_library(finding.file):
            edits.append(Edit(finding, LIBRARY, f"{finding.qualname} is built in {finding.file}, which is not your "
                                                f"code; fix the model object with pytest_equivariance.antialias(model)"))
        else:
            by_file.setdefault(finding.file, []).append(finding)
    plans = []
    for file, found in sorted(by_file.items()):
        data = Path(file).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            edits.extend(Edit(f, UNMAPPED, "the file is not UTF-8, which the rewrite needs; edit it by hand")
                         for f in found)
            continue
        after, file_edits = rewrite_source(text, found)
        edits.extend(file_edits)
        plans.append(FilePlan(Path(file), text, after, file_edits, digest(data)))
    return plans, edits


# --------------------------------------------------------------------------------------------
# The rewrite of one file


#: Kind of call -> (the torch.nn class stem it is written as, the drop-in's class stem, the drop-in's
#: function stem). The functional forms are written ``max_pool2d`` etc.
_KINDS = {
    "max_pool": ("MaxPool", "MaxBlurPool", "blur_pool"),
    "conv": ("Conv", "AntialiasedConv", "blur_pool"),
    "avg_pool": ("AvgPool", "BlurAvgPool", "blur_avg_pool"),
}


@dataclass(frozen=True)
class _Target:
    """Which rewrite a finding needs: the kind of call, module or functional form, and its ndim."""

    finding: Finding
    kind: str  # a key of _KINDS
    form: str  # "module" | "function"
    ndim: int

    @property
    def rewrite(self) -> str:
        """The rewrite's key in _POSITIONAL: ``"max_pool:module"``, ``"conv:function"``, ..."""
        return f"{self.kind}:{self.form}"

    @property
    def callee(self) -> str:
        """The name the call's callee must resolve to (its last part): ``MaxPool2d``, ``max_pool2d``, ..."""
        stem = _KINDS[self.kind][0] if self.form == "module" else self.kind
        return f"{stem}{self.ndim}d"

    @property
    def replacement(self) -> str:
        """The name the rewrite imports from pytest_equivariance: ``MaxBlurPool2d``, ``blur_pool2d``, ..."""
        stem = _KINDS[self.kind][1] if self.form == "module" else _KINDS[self.kind][2]
        return f"{stem}{self.ndim}d"


def _target_of(finding: Finding) -> _Target | None:
    op = finding.op.rsplit(".", 1)[-1]
    for kind, (module_stem, *_) in _KINDS.items():
        stem = module_stem if finding.kind == "module" else kind
        if finding.kind in ("module", "function") and op.startswith(stem) and op[len(stem):] in ("1d", "2d", "3d"):
            return _Target(finding, kind, finding.kind, int(op[len(stem)]))
    return None


def rewrite_source(text: str, findings: Sequence[Finding]) -> tuple[str, list[Edit]]:
    """Return ``text`` with the calls of ``findings`` rewritten, and one edit per finding."""
    import libcst as cst
    from libcst.codemod import CodemodContext
    from libcst.codemod.visitors import AddImportsVisitor
    from libcst.metadata import MetadataWrapper, PositionProvider, QualifiedNameProvider

    try:
        wrapper = MetadataWrapper(cst.parse_module(text))
    except cst.ParserSyntaxError as exc:
        reason = f"the file does not parse ({str(exc).splitlines()[0]})"
        return text, [Edit(f, UNMAPPED, reason) for f in findings]
    positions = wrapper.resolve(PositionProvider)
    names = wrapper.resolve(QualifiedNameProvider)
    calls_by_line: dict[int, list[cst.Call]] = {}
    for node, position in positions.items():
        if isinstance(node, cst.Call):
            calls_by_line.setdefault(position.start.line, []).append(node)

    chosen: dict[cst.Call, _Target] = {}
    edits: list[Edit] = []
    for finding in findings:
        target = _target_of(finding)
        if target is None:
            edits.append(Edit(finding, UNAVAILABLE, f"no source rewrite for {finding.op}"))
            continue
        wanted = target.callee
        matches = [call for call in calls_by_line.get(finding.line or -1, [])
                   if _resolves_to(call, wanted, names)]
        if len(matches) != 1:
            how = "no call" if not matches else f"{len(matches)} calls"
            edits.append(Edit(finding, UNMAPPED, f"{how} of {wanted} at line {finding.line}: not guessed; "
                                                 f"edit it by hand"))
            continue
        call = matches[0]
        if call in chosen:  # one constructor line builds several flagged layers (a helper): one edit
            edits.append(Edit(finding, FIXED, "the same call as another finding"))
            continue
        problem = _cannot_rewrite(call, target)
        if problem:
            edits.append(Edit(finding, UNMAPPED, problem))
            continue
        chosen[call] = target
        edits.append(Edit(finding, FIXED))
    if not chosen:
        return text, edits

    context = CodemodContext()
    module = wrapper.module.visit(_rewriter(chosen))
    for name in sorted({t.replacement for t in chosen.values()}):
        AddImportsVisitor.add_needed_import(context, "pytest_equivariance", name)
    module = AddImportsVisitor(context).transform_module(module)
    return module.code, edits


def _resolves_to(call: "cst.Call", wanted: str, names: Any) -> bool:
    found = names.get(call.func, ())
    found = found() if callable(found) else found  # LibCST may hand out lazily computed values
    for qualified in found:
        parts = qualified.name.split(".")
        if parts[-1] == wanted and parts[0] == "torch":
            return True
    return False


#: Positional parameters of the calls that are rewritten, by rewrite (the torch signatures).
_POSITIONAL = {
    "max_pool:module": ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"),
    "max_pool:function": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool:module": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "avg_pool:function": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                          "divisor_override"),
    "conv:function": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
}


def _bound(call: "cst.Call", rewrite: str) -> dict[str, "cst.Arg"] | None:
    """Return the call's arguments by parameter name, or None when it passes *args / **kwargs."""
    names = _POSITIONAL[rewrite]
    bound: dict[str, cst.Arg] = {}
    for i, arg in enumerate(call.args):
        if arg.star:
            return None
        if arg.keyword is not None:
            bound[arg.keyword.value] = arg
        elif i < len(names):
            bound[names[i]] = arg
        else:
            return None
    return bound


def _is_false(arg: "cst.Arg | None") -> bool:
    import libcst as cst

    return arg is None or (isinstance(arg.value, cst.Name) and arg.value.value == "False")


#: Rewrites that only rename the callee: the drop-in takes the very same arguments.
_RENAMES = frozenset({"conv:module", "avg_pool:module", "avg_pool:function"})


def _cannot_rewrite(call: "cst.Call", target: _Target) -> str:
    """Return why this call cannot be rewritten faithfully, or "" when it can."""
    if target.rewrite in _RENAMES:
        return ""
    bound = _bound(call, target.rewrite)
    if bound is None:
        return "it passes *args or **kwargs, so its arguments cannot be read; edit it by hand"
    if "max_pool" in target.rewrite and not _is_false(bound.get("return_indices")):
        return "it returns indices (for MaxUnpool), which MaxBlurPool does not; edit it by hand"
    if "kernel_size" not in bound and target.rewrite != "conv:function":
        return "its kernel size is not given; edit it by hand"
    if target.rewrite == "conv:function" and "input" not in bound:
        return "its input is not its first argument; edit it by hand"
    return ""


def _keyword(name: str, value: "cst.BaseExpression", comma: Any = None) -> "cst.Arg":
    import libcst as cst

    tight = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))
    return cst.Arg(value=value, keyword=cst.Name(name), equal=tight,
                   comma=comma if comma is not None else cst.MaybeSentinel.DEFAULT)


def _separated(args: list["cst.Arg"]) -> list["cst.Arg"]:
    """Give every argument but the last a comma (each keeps its own, with the whitespace and comments)."""
    import libcst as cst

    out = []
    for i, arg in enumerate(args):
        if i < len(args) - 1 and not isinstance(arg.comma, cst.Comma):
            arg = arg.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        out.append(arg)
    return out


def _rewriter(chosen: dict["cst.Call", _Target]) -> "cst.CSTTransformer":
    """Return the transformer that replaces each chosen call (matched by identity in the original tree)."""
    import libcst as cst

    class Rewriter(cst.CSTTransformer):
        def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
            target = chosen.get(original)
            return updated if target is None else _replacement(updated, target)

    return Rewriter()


def _replacement(call: "cst.Call", target: _Target) -> "cst.BaseExpression":
    """Return the rewritten call (the table in the module docstring)."""
    import libcst as cst

    name = target.replacement
    if target.rewrite in _RENAMES:  # the same arguments: only the callee changes
        return call.with_changes(func=cst.Name(name))
    bound = _bound(call, target.rewrite)
    assert bound is not None  # _cannot_rewrite said so
    one = cst.Integer("1")
    if target.rewrite == "conv:function":  # blur the input at stride 1; the conv keeps its stride
        first = call.args[0]
        blurred = cst.Call(func=cst.Name(name), args=_separated([cst.Arg(first.value), _keyword("stride", one)]))
        return call.with_changes(args=[first.with_changes(value=blurred), *call.args[1:]])
    # Pools: nn.MaxPool / F.max_pool's stride defaults to the kernel size.
    stride = (bound.get("stride") or bound["kernel_size"]).value
    kernel = bound["kernel_size"]
    if target.rewrite == "max_pool:module":
        # MaxBlurPool(kernel_size, stride, filter_size, padding_mode, *, padding, dilation, ceil_mode):
        # the first two keep their form; the pool's later positional arguments become keywords.
        args: list[cst.Arg] = []
        for arg in call.args:
            key = next(k for k, v in bound.items() if v is arg)
            if key == "return_indices":
                continue  # False (checked): MaxBlurPool never returns indices
            if arg.keyword is None and key not in ("kernel_size", "stride"):
                arg = _keyword(key, arg.value, arg.comma)
            args.append(arg)
            if arg is kernel and "stride" not in bound:
                args.append(cst.Arg(stride) if kernel.keyword is None else _keyword("stride", stride))
        return call.with_changes(func=cst.Name(name), args=_separated(args))
    # max_pool:function: the same pool at stride 1, then blur_pool with the pool's stride.
    inner = list(call.args)
    if "stride" in bound:
        where = inner.index(bound["stride"])
        inner[where] = bound["stride"].with_changes(value=one)
    else:  # no positional argument follows the kernel size
        inner.insert(inner.index(kernel) + 1, _keyword("stride", one))
    pooled = call.with_changes(args=_separated(inner))
    return cst.Call(func=cst.Name(name), args=_separated([cst.Arg(pooled), _keyword("stride", stride)]))


# --------------------------------------------------------------------------------------------
# Suppression comments


def add_noqa(text: str, lines: dict[int, set[str]]) -> tuple[str, int]:
    """Return ``text`` with ``# equiv: ignore[CODES]`` on each of ``lines``, and how many lines changed.

    An existing ``# equiv: ignore[...]`` comment on the line gets the missing codes added; a line
    that already suppresses every code is left as it is, so running it twice changes nothing. A line
    that ends inside a multi-line string cannot carry a comment and is skipped.
    """
    from pytest_equivariance.lint.engine import SUPPRESSION

    source = text.splitlines(keepends=True)
    commentable = _lines_ending_in_code(text)
    changed = 0
    for number, codes in sorted(lines.items()):
        if number < 1 or number > len(source) or number not in commentable:
            continue
        line = source[number - 1]
        body, newline = _split_newline(line)
        match = SUPPRESSION.search(body)
        if match is not None:
            present = match.group("codes")
            if present is None or not present.strip():
                continue  # a bare `# equiv: ignore` suppresses everything already
            have = {c.strip().upper() for c in present.split(",") if c.strip()}
            missing = sorted(codes - have)
            if not missing:
                continue
            merged = ", ".join(sorted(have | set(missing)))
            body = body[:match.start("codes")] + merged + body[match.end("codes"):]
        else:
            body = body.rstrip() + f"  # equiv: ignore[{', '.join(sorted(codes))}]"
        source[number - 1] = body + newline
        changed += 1
    return "".join(source), changed


def _split_newline(line: str) -> tuple[str, str]:
    stripped = line.rstrip("\r\n")
    return stripped, line[len(stripped):]


def _lines_ending_in_code(text: str) -> set[int]:
    """Return the line numbers whose end is not inside a string (a comment can go there)."""
    inside: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                inside.update(range(token.start[0], token.end[0]))
    except (tokenize.TokenError, SyntaxError):
        return set()
    return set(range(1, text.count("\n") + 2)) - inside
