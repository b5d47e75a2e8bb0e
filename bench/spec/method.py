"""What a method is to the harness: :class:`MethodSpec` (builder, paper configuration, variants,
declared hyperparameters, training hooks) and the default hooks. Registered with
:func:`bench.spec.registry.register_method`; method keys (``name[:variant][:key=value]``) are written
by :func:`method_label`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from bench.spec.dataset import DatasetSpec
from bench.errors import BenchError
from bench.core.registry import suggest
from bench.spec.hparams import TRAIN_DEFAULTS, TRAIN_KEYS, TRAIN_PARAMS, HParam, check_all, infer


def mse_loss(pred: torch.Tensor, target: torch.Tensor, hp: Mapping[str, Any]) -> torch.Tensor:
    """Default training loss: per-pixel mean squared error."""
    return torch.nn.functional.mse_loss(pred, target)


def training_loss(spec: "MethodSpec", out: tuple[torch.Tensor, ...], hp: Mapping[str, Any]) -> torch.Tensor:
    """The objective of one ``train_step`` output: ``spec.loss(pred, target, hp)`` (in float32), plus
    the extra term a train step may return third (already weighted: e.g. PredRNN-V2's decoupling loss)."""
    pred, target, *extra = out
    loss = spec.loss(pred.float(), target.float(), hp)
    return loss + extra[0].float() if extra else loss


def default_train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, hp: Mapping[str, Any],
                       progress: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Default training forward: ``pred = model(x)``, scored against ``y``.

    Returns ``(pred, target)``; recurrent methods override this to predict every next frame of
    ``cat(x, y)`` with scheduled sampling (``progress`` is the fraction of training done, in [0, 1]).
    """
    return model(x), y


def default_predict(model: nn.Module, x: torch.Tensor, hp: Mapping[str, Any]) -> torch.Tensor:
    """Default evaluation forward: the model's native output ``model(x)``."""
    return model(x)


def default_flops_inputs(data: DatasetSpec) -> tuple[torch.Tensor, ...]:
    """One sample of shape (1, T, C, H, W): the convention the papers count FLOPs with."""
    return (torch.zeros(1, data.in_frames, *data.frame_shape),)


@dataclass(frozen=True)
class PublishedCost:
    """A published cost of one method key on one dataset, which ``bench audit`` sets beside its own count."""

    key: str  # the method key it was published for: "tau", "tau:no-sa", "e3dlstm:openstl"
    dataset: str
    params: float | None  # None where the source prints no parameter count
    flops: float  # FLOPs of one sample (multiply-add = one FLOP), as the source counts them
    source: str  # where it is printed (paper and table, model zoo), with the figures as printed


@dataclass(frozen=True)
class CostQuestion:
    """What a method's ``explain_cost`` hook receives: the audited key, its dataset and hyperparameters,
    the audit's figures (``params``, ``flops``), the published cost, and the audit's FLOP counter
    (``count_flops(model, inputs) -> int``, fvcore as ``bench audit`` counts) so that a method can
    measure the parts of the gap it explains without importing the harness's cost layer."""

    key: Any  # bench.spec.registry.MethodKey
    data: DatasetSpec
    hp: Mapping[str, Any]
    figures: Mapping[str, Any]
    published: PublishedCost
    count_flops: Callable[[nn.Module, tuple[torch.Tensor, ...]], int]


@dataclass(frozen=True)
class MethodSpec:
    """Everything the harness needs to train and evaluate one method (read-only once registered: the
    registry deep-freezes its mappings, see :mod:`bench.core.registry`).

    Attributes:
        name: registry name (lower case, no ``:``).
        build: ``build(data: DatasetSpec, **model_hparams) -> nn.Module`` mapping
            (B, T, C, H, W) to (B, T', C, H, W); it receives every model key of the resolved
            configuration, so it needs (and should have) no defaults of its own.
        citation: the paper, as it should appear in a report.
        hparams: the paper configuration (model and training keys together): ``"*"`` the base, every
            other key a dataset name mapped to only what that dataset changes (:mod:`bench.spec.config`).
        variants: named ablations: variant name -> hyperparameter overrides.
        tiny: overrides giving the small ``--tiny`` configuration (small widths that learn in minutes on a
            CPU: ``bench demo`` and the tests).
        loss: ``loss(pred, target, hp) -> scalar``; default per-pixel MSE.
        train_step: ``train_step(model, x, y, hp, progress) -> (pred, target)`` or
            ``(pred, target, extra)``, ``extra`` a scalar added to the loss (see :func:`training_loss`).
        train_passes: optional ``train_passes(x, y, hp) -> [(x, y), ...]``: the passes of one
            iteration, each trained with its own optimiser step and the same random draws
            (PredRNN-V2's time-reversed second pass); default one pass on ``(x, y)``.
        schedule: optional ``schedule(hp, iterations) -> dict``: the method's training schedules on
            the run's clock (``progress``), written into ``result.json`` as ``settings.schedule``.
        predict: ``predict(model, x, hp) -> (B, T', C, H, W)`` at evaluation time.
        pretrain: optional first stage, ``pretrain(model, ctx: PretrainContext) -> dict`` (a record
            stored in the result); it runs before the main training loop.
        flops_inputs: inputs fvcore traces to count FLOPs.
        recurrent: True if ``predict`` rolls out natively to any horizon (``hp["pred_len"]``).
        published_costs: the published params/FLOPs of this method's keys (:class:`PublishedCost`), which
            ``bench audit`` compares with its own count.
        explain_cost: optional ``explain_cost(question: CostQuestion) -> [line, ...]``: where the
            difference between the audited and the published cost comes from (dead reference
            weights, a counting convention...), measured where it can be.
        params: type and range of each hyperparameter (:mod:`bench.spec.hparams`), declared once here;
            a key not declared is checked against the type of its default value.
    """

    name: str
    build: Callable[..., nn.Module]
    citation: str = ""
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tiny: Mapping[str, Any] = field(default_factory=dict)
    loss: Callable[[torch.Tensor, torch.Tensor, Mapping[str, Any]], torch.Tensor] = mse_loss
    train_step: Callable[..., tuple[torch.Tensor, ...]] = default_train_step
    predict: Callable[..., torch.Tensor] = default_predict
    train_passes: Callable[..., list[tuple[torch.Tensor, torch.Tensor]]] | None = None
    schedule: Callable[[Mapping[str, Any], int], dict[str, Any]] | None = None
    pretrain: Callable[..., dict] | None = None
    flops_inputs: Callable[[DatasetSpec], tuple[torch.Tensor, ...]] = default_flops_inputs
    recurrent: bool = False
    description: str = ""
    params: Mapping[str, HParam] = field(default_factory=dict)
    published_costs: tuple[PublishedCost, ...] = ()
    explain_cost: Callable[[CostQuestion], list[str]] | None = None

    def declarations(self) -> dict[str, HParam]:
        """Every hyperparameter's declaration: the training keys', then inferred from defaults, then ``params``."""
        decl: dict[str, HParam] = dict(TRAIN_PARAMS)
        for source in (*self.hparams.values(), self.tiny, *self.variants.values()):
            for key, value in source.items():
                if key not in decl and key not in self.params and infer(value) is not None:
                    decl[key] = infer(value)
        decl.update(self.params)
        return decl

    def resolve_hparams(self, dataset: str, variant: str | None = None,
                        overrides: Mapping[str, Any] | None = None, tiny: bool = False) -> dict[str, Any]:
        """The full, validated hyperparameter dict for ``dataset`` (see the module docstring for precedence).

        Every value is checked against its declaration (:meth:`declarations`); a bad value is a
        one-line BenchError naming the key, the value and what is expected.
        """
        hp: dict[str, Any] = dict(TRAIN_DEFAULTS)
        hp.update(self.hparams.get("*", {}))
        hp.update(self.hparams.get(dataset, {}))
        if tiny:
            hp.update(self.tiny)
        if variant:
            if variant not in self.variants:
                raise BenchError(
                    f"method {self.name!r} has no variant {variant!r}{suggest(variant, list(self.variants))}; "
                    f"its variants are: {', '.join(sorted(self.variants)) or '(none)'}"
                )
            hp.update(self.variants[variant])
        for key, value in (overrides or {}).items():
            if key not in hp:
                raise BenchError(
                    f"method {self.name!r} has no hyperparameter {key!r}{suggest(key, list(hp))}; "
                    f"run `bench list --hparams {self.name}` to see them"
                )
            hp[key] = value
        return check_all(hp, self.declarations(), self.name)

    def create_model(self, data: DatasetSpec, hp: Mapping[str, Any]) -> nn.Module:
        """Build the model from the model keys of ``hp`` (the training keys are left out)."""
        return self.build(data, **model_hparams(hp))


def model_hparams(hp: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``hp`` that the builder receives (everything but the training keys)."""
    return {k: v for k, v in hp.items() if k not in TRAIN_KEYS and k != "pred_len"}


def method_label(name: str, variant: str | None, overrides: Mapping[str, Any]) -> str:
    """The canonical method key ``name[:variant][:key=value...]`` (overrides sorted by key)."""
    parts = [name] + ([variant] if variant else [])
    parts += [f"{k}={format_value(v)}" for k, v in sorted(overrides.items())]
    return ":".join(parts)


def format_value(value: Any) -> str:
    """A hyperparameter value as a method key writes it: ``(3,5)`` for tuples, quoted text with ``,``/``:``."""
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(format_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, str) and any(ch in value for ch in ",:=()[]"):
        return repr(value)
    return str(value)


def rollout(spec: MethodSpec, model: nn.Module, x: torch.Tensor, hp: Mapping[str, Any], horizon: int) -> torch.Tensor:
    """Predict ``horizon`` future frames from ``x``.

    Recurrent methods roll out natively (``hp['pred_len']``). Feed-forward methods whose native
    output is shorter predict recursively (TAU section 4.4): each prediction is appended and the
    last ``T`` frames are fed back in as the next input.
    """
    if spec.recurrent:
        return spec.predict(model, x, {**hp, "pred_len": horizon})
    preds: list[torch.Tensor] = []
    window, produced = x, 0
    while produced < horizon:
        out = spec.predict(model, window, hp)
        preds.append(out)
        produced += out.shape[1]
        window = torch.cat([window, out], dim=1)[:, -x.shape[1]:]
    return torch.cat(preds, dim=1)[:, :horizon]
