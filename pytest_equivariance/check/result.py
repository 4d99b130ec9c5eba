"""What a dynamic check returns: plain dataclasses that renderers and baselines read.

In a notebook a result shows itself as the HTML report's card (``_repr_html_``) and in a rich
console as its terminal report (``__rich__``); both import their renderer only when asked.

All error figures are "smaller is better": ``max_abs`` and ``mean_abs`` are absolute errors between
``model(g·x)`` and ``g·model(x)`` (or ``model(x)`` for invariance), ``rel_l2`` is
``‖a - b‖₂ / ‖b‖₂``, ``cosine`` is the cosine *distance* ``1 - cos(a, b)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Figures a baseline stores and compares; "consistency", "psnr" and the accuracies are larger-is-better,
#: the others smaller.
BASELINE_FIGURES = (
    "worst_error", "mean_error", "consistency", "psnr", "accuracy", "transformed_accuracy", "worst_case_accuracy",
    "channel_error", "unmatched", "mean_iou",
)

#: Figures that are proportions of images: a baseline records how many images each came from, and the
#: regression rule allows for their sampling noise (gates.comparison).
PROPORTIONS = ("consistency", "accuracy", "transformed_accuracy", "worst_case_accuracy")


@dataclass(frozen=True)
class Trial:
    """One transform applied to the whole batch of inputs, and how far off the model was."""

    transform: str  # human-readable: "shift (dy=+1, dx=-3)", "rot90 ×1", "rotate 30.0°", "flip W"
    params: dict[str, Any]  # machine-readable: {"shift": [1, -3]}, {"angle": 30.0}, {"k": 1}
    max_abs: float
    mean_abs: float
    rel_l2: float
    cosine: float
    passed: bool
    leaf: str = ""  # output leaf with the largest error: "" for a tensor, "['logits']", "[0]", ".boxes"
    consistency: float | None = None  # top-1 agreement over the batch (invariance of classifiers)
    prob_change: float | None = None  # mean |Δ p(top class)| over the batch (Azulay & Weiss 2019)
    psnr: float | None = None  # dB: 10·log10(range² / MSE) of the worst leaf (StyleGAN3's EQ-T / EQ-R form)
    accuracy: float | None = None  # top-1 accuracy under this transform, when the inputs carry labels
    # Detection sets (check.detections), summed over images: max_abs / mean_abs are then the matched
    # coordinates' displacement in pixels.
    matched: int | None = None  # detections paired across the two sets
    appeared: int | None = None  # found on the moved image only
    vanished: int | None = None  # in the moved reference only
    mean_iou: float | None = None  # over matched boxes
    min_iou: float | None = None
    score_change: float | None = None  # max |Δscore| over matched detections
    mask_iou: float | None = None  # mean IoU of matched detections' masks (detections(masks=...))
    mask_change: float | None = None  # max |Δ mask probability| over them, aligned to their boxes
    # The worst leaf's mean per-channel ‖a − b‖² / (‖b‖² + 1e-6) (Rahman & Yeh 2023; scale checks).
    channel_error: float | None = None


@dataclass(frozen=True)
class LayerError:
    """The equivariance error measured at one layer's output (issue: localisation)."""

    qualname: str
    op: str
    error: float  # relative error at this layer's output, comparable across layers
    noise: float  # the numerical-noise floor this error was judged against
    params: dict[str, Any] = field(default_factory=dict)
    file: str | None = None  # where the layer is defined or called, when the graph knows
    line: int | None = None
    # Exact attribution (check.attribution): this layer's term J_{k→out}·L_k of the output's Lie
    # derivative, as a share of the sum of all terms' squared norms and as a norm per image.
    share: float | None = None
    contribution: float | None = None
    family: str | None = None  # the linter's op family ("pool", "conv", "activation", ...), when known


@dataclass
class Profile:
    """Per-layer equivariance error, in execution order, and the layer to blame.

    Two kinds: an *attribution* (``end_to_end`` set, ``check.attribution``) gives every layer its
    ``share`` of the output's Lie derivative and blames the largest share; a *finite-transform*
    profile (``check.localize``) measures each layer's output under the group element and blames the
    first layer above its noise floor. :attr:`first_break` reads the latter from either.
    """

    layers: list[LayerError]
    culprit: LayerError | None = None
    finding_code: str | None = None  # the lint rule that flags the culprit, when one does
    finding_fix: str | None = None
    method: str = ""  # how the per-layer error was measured, for the report
    transform: str = ""  # the label of the group element (or the generators) the profile was measured under
    end_to_end: float | None = None  # attribution: the norm per image of the output's Lie derivative
    notes: list[str] = field(default_factory=list)

    @property
    def is_attribution(self) -> bool:
        """Whether layers carry shares of the Lie derivative (the culprit is then the largest share)."""
        return self.end_to_end is not None

    @property
    def first_break(self) -> LayerError | None:
        """The first layer whose error rises above its noise floor, or None."""
        return next((layer for layer in self.layers if layer.error > layer.noise), None)

    def _repr_html_(self) -> str:
        """The profile chart as HTML, for notebooks."""
        from pytest_equivariance.report.html import profile_card

        return profile_card(self)

    def __rich__(self) -> Any:
        from pytest_equivariance.report.profile import profile_renderable

        return profile_renderable(self)


@dataclass
class ShiftGrid:
    """Error over every 2-D shift of a square window (Zhang 2019's picture)."""

    offsets_y: list[int]
    offsets_x: list[int]
    errors: list[list[float]]  # errors[i][j] for shift (offsets_y[i], offsets_x[j])
    figure: str = "max_abs"  # or "displacement": pixels moved beyond the shift, of coordinate outputs


@dataclass
class CheckResult:
    """The outcome of one equivariance or invariance check."""

    kind: str  # "shift_equivariant" | "shift_invariant" | "rotation_equivariant" | "rotation_invariant"
    # | "scale_equivariant" | "scale_invariant" | "custom"
    passed: bool
    trials: list[Trial]
    atol: float
    rtol: float
    seed: int
    device: str
    dtype: str
    mode: str  # shifts: "circular" | "crop" | "zero"; rotations: "exact" | "interp"; "custom"
    dims: tuple[int, ...]
    input_shape: tuple[int, ...]
    min_consistency: float | None = None
    lattice: tuple[int, ...] | None = None  # output stride per dim when shifts were drawn on it
    notes: list[str] = field(default_factory=list)  # e.g. "model was in train mode; checked in eval mode"
    profile: Profile | None = None
    grid: ShiftGrid | None = None
    angle_errors: list[tuple[float, float]] | None = None  # (angle, error), for rotation plots
    test_id: str | None = None  # set by the pytest plugin
    reproduce: str | None = None  # the command that reproduces this check, set by the pytest plugin
    min_psnr: float | None = None  # the PSNR every trial must reach, when it decides the verdict
    measure: str = "error"  # "error": finite transforms; "lie": Lie derivatives, one trial per generator
    all_shift_consistency: float | None = None  # images whose top-1 class survives every trial (classifiers)
    weights_fingerprint: str | None = None  # check/fingerprint: the model's state dict as checked
    inputs_fingerprint: str | None = None  # the same for the tensor the transforms acted on
    group: str | None = None  # a group check's group ("C8", "D4", "SO2"), check.groups
    fields: dict[str, str] | None = None  # "input" / "output<leaf>" -> how the group acts on its channels
    max_rel_l2: float | None = None  # when set, the verdict: every trial's rel_l2 at most this
    # How many images of a data set (a stream of batches) the figures came from, all batches and
    # processes; None for generated inputs and one given tensor, the same images every run, which
    # carry no sampling noise.
    images: int | None = None
    accuracy: float | None = None  # top-1 accuracy on the untransformed inputs, when they carry labels
    worst_case_accuracy: float | None = None  # images classified right under the reference and every transform
    min_accuracy: float | None = None  # when set, a verdict: transformed_accuracy at least this
    max_accuracy_drop: float | None = None  # when set, a verdict: accuracy - transformed_accuracy at most this
    protocol: str | None = None  # the evaluation protocol that planned the trials ("zhang2019", ...)
    max_channel_error: float | None = None  # when set, the verdict: every trial's channel_error at most this

    def _repr_html_(self) -> str:
        """The check's card as HTML — verdict, figures, heatmap or angle plot, profile, seed — for notebooks."""
        from pytest_equivariance.report.html import check_card

        return check_card(self)

    def __rich__(self) -> Any:
        """The check's report as a rich renderable, for terminals and IPython's rich display."""
        from pytest_equivariance.report.terminal import failure_report

        return failure_report(self)

    @property
    def worst(self) -> Trial | None:
        """The trial that decides the verdict, which every report and the localisation lead with.

        With ``min_consistency`` the one with the lowest top-1 consistency; otherwise failing trials
        before passing ones (a passing trial can have the larger error under ``rtol``), then the
        largest maximum absolute error (ties: the first).
        """
        if self.min_consistency is not None:
            rated = [t for t in self.trials if t.consistency is not None]
            if rated:
                return min(rated, key=lambda t: t.consistency)
        if self.max_rel_l2 is not None:  # the relative L2 error decides
            return min(self.trials, key=lambda t: (t.passed, -t.rel_l2), default=None)
        if self.max_channel_error is not None:  # Rahman & Yeh's per-channel error decides
            return min(self.trials, key=lambda t: (t.passed, -(t.channel_error or 0.0)), default=None)
        return min(self.trials, key=lambda t: (t.passed, -t.max_abs), default=None)

    @property
    def worst_error(self) -> float:
        """The largest ``max_abs`` over all trials (0 when none ran): the baseline's headline figure."""
        return max((t.max_abs for t in self.trials), default=0.0)

    @property
    def mean_error(self) -> float:
        """The mean over trials of each trial's ``mean_abs`` (0 when none ran)."""
        return sum(t.mean_abs for t in self.trials) / len(self.trials) if self.trials else 0.0

    def _measured(self, name: str) -> list[Any]:
        """The trials' values of figure ``name``, where they measured it."""
        return [value for t in self.trials if (value := getattr(t, name)) is not None]

    @property
    def psnr(self) -> float | None:
        """The lowest PSNR over trials, in dB (the worst trial; ``inf`` when all are identical)."""
        return min(self._measured("psnr"), default=None)

    @property
    def consistency(self) -> float | None:
        """Mean top-1 agreement over trials, or None when the check does not measure it."""
        return _mean(self._measured("consistency"))

    @property
    def prob_change(self) -> float | None:
        """Mean top-class probability change over trials, or None when the check does not measure it."""
        return _mean(self._measured("prob_change"))

    def classifier_failure(self) -> str | None:
        """Return the classifier criterion this result misses, as a report states it, or None.

        The criteria are ``min_consistency`` (the mean over trials), ``min_accuracy`` (accuracy under
        the transforms) and ``max_accuracy_drop``; a criterion whose figure was not measured is missed.
        """
        moved, clean = self.transformed_accuracy, self.accuracy
        if self.min_consistency is not None and (self.consistency is None or self.consistency < self.min_consistency):
            now = "not measured" if self.consistency is None else f"{self.consistency:.1%}"
            return f"top-1 consistency {now} < min_consistency {self.min_consistency:.1%}"
        if self.min_accuracy is not None and (moved is None or moved < self.min_accuracy):
            now = "not measured" if moved is None else f"{moved:.1%}"
            return f"accuracy under the transforms {now} < min_accuracy {self.min_accuracy:.1%}"
        if self.max_accuracy_drop is not None:
            if moved is None or clean is None:
                return f"accuracy drop not measured > max_accuracy_drop {self.max_accuracy_drop:.1%}"
            if clean - moved > self.max_accuracy_drop:
                return (f"accuracy drops {clean - moved:.1%} ({clean:.1%} -> {moved:.1%}) > "
                        f"max_accuracy_drop {self.max_accuracy_drop:.1%}")
        return None

    @property
    def channel_error(self) -> float | None:
        """The per-channel relative error summed over the trials (Rahman & Yeh sum it over scales), or None."""
        values = self._measured("channel_error")
        return sum(values) if values else None

    @property
    def unmatched(self) -> float | None:
        """Of every detection in the compared sets, the fraction left without a partner (appeared or
        vanished), over all trials; None unless the check compared detection sets."""
        sets = [t for t in self.trials if t.matched is not None]
        if not sets:
            return None
        lone = sum((t.appeared or 0) + (t.vanished or 0) for t in sets)
        total = lone + 2 * sum(t.matched or 0 for t in sets)
        return lone / total if total else 0.0

    @property
    def mean_iou(self) -> float | None:
        """The IoU of the matched detections, averaged over every pair of every trial; None without boxes."""
        pairs = [(t.matched, t.mean_iou) for t in self.trials if t.mean_iou is not None and t.matched]
        count = sum(n for n, _ in pairs)
        return sum(n * iou for n, iou in pairs) / count if count else None

    @property
    def transformed_accuracy(self) -> float | None:
        """Mean top-1 accuracy over the trials' transforms, or None without labels."""
        return _mean(self._measured("accuracy"))

    def figures(self) -> dict[str, float]:
        """The figures a robustness baseline stores (see ``BASELINE_FIGURES``)."""
        out = {"worst_error": self.worst_error, "mean_error": self.mean_error}
        for name in BASELINE_FIGURES[2:]:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def samples(self) -> dict[str, int]:
        """How many images each proportion among :meth:`figures` came from (for the regression rule)."""
        if not self.images:
            return {}
        return {name: self.images for name in PROPORTIONS if getattr(self, name) is not None}

    def to_json(self) -> dict[str, Any]:
        """Return the result as JSON-ready dicts and lists, with its baseline ``figures`` added."""
        data = asdict(self)
        data["dims"] = list(self.dims)
        data["input_shape"] = list(self.input_shape)
        data["figures"] = self.figures()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CheckResult":
        """Rebuild a result from :meth:`to_json` output (as carried from xdist workers)."""
        data = dict(data)
        data.pop("figures", None)
        data["trials"] = [Trial(**t) for t in data.get("trials", [])]
        data["dims"] = tuple(data["dims"])
        data["input_shape"] = tuple(data["input_shape"])
        if data.get("lattice") is not None:
            data["lattice"] = tuple(data["lattice"])
        if data.get("profile") is not None:
            p = dict(data["profile"])
            p["layers"] = [LayerError(**layer) for layer in p["layers"]]
            if p.get("culprit") is not None:
                p["culprit"] = LayerError(**p["culprit"])
            data["profile"] = Profile(**p)
        if data.get("grid") is not None:
            data["grid"] = ShiftGrid(**data["grid"])
        if data.get("angle_errors") is not None:
            data["angle_errors"] = [tuple(pair) for pair in data["angle_errors"]]
        return cls(**data)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
