"""Small helpers shared by the methods that train on cached features (CDC-MMPG and the baselines).

**The training objective** (the one hook a benchmark uses to train a method with another loss). Every
method of the video-QA families (the static-head baselines and the generated-head methods) computes
its outputs ``(…, V)`` for some rows of its data and hands them, with those rows, to
``method.objective``; that is all the loss it knows. The default, :data:`ANSWER_CE`, is the QA
cross-entropy against ``data.answer``; ``bench retrieval`` sets an InfoNCE against a caption tower
with :meth:`paramcast.methods.base.Method.set_objective`. An objective is called as
``objective(outputs, data, rows) -> (loss, correct)``: ``rows`` (same leading shape as ``outputs``)
index ``data``'s rows, ``-1`` marks padding to ignore, ``correct`` counts right outputs for the train
log. When it is an ``nn.Module`` its parameters train with the method's in the cloud ``fit`` (and
whatever the caller freezes stays frozen on the device).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar

import torch

from paramcast.data.base import IGNORE
from paramcast.models.heads import per_sample_linear, pool_frames

__all__ = ["ANSWER_CE", "AnswerCrossEntropy", "Objective", "build_config", "device_groups", "fit_device_groups",
           "group_objective", "labelled", "minibatches", "objective_parameters", "warmup_cosine"]

C = TypeVar("C")


class Objective(Protocol):
    """``objective(outputs (..., V), data, rows (...)) -> (loss, correct)``; see the module docstring."""

    def __call__(self, outputs: torch.Tensor, data: Any, rows: torch.Tensor) -> tuple[torch.Tensor, int]: ...


class AnswerCrossEntropy:
    """The QA objective: cross-entropy of the outputs against ``data.answer[rows]``; ``correct`` = argmax hits."""

    def __call__(self, outputs: torch.Tensor, data: Any, rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        valid = (rows >= 0).to(outputs.device)
        y = data.answer[rows.clamp(min=0)].to(outputs.device).masked_fill(~valid, -100)
        loss = torch.nn.functional.cross_entropy(outputs.flatten(0, -2), y.flatten(), ignore_index=-100)
        return loss, int(((outputs.argmax(-1) == y) & valid).sum())


ANSWER_CE = AnswerCrossEntropy()


def objective_parameters(objective: Any) -> list[torch.nn.Parameter]:
    """The trainable parameters of an objective (none unless it is an ``nn.Module``)."""
    if not isinstance(objective, torch.nn.Module):
        return []
    return [p for p in objective.parameters() if p.requires_grad]


def build_config(cls: type[C], config: C | dict | None, overrides: dict[str, Any]) -> C:
    """A method config from a dataclass instance, a dict, and keyword overrides (unknown keys raise).

    A dict ``config`` (a checkpoint's or a YAML file's, nested configs as nested dicts) is validated
    and built by :func:`paramcast.config.from_dict`, nested configs included. An override of a nested
    config field (one holding a dataclass, e.g. CD-CCA's ``akd``) may be a dict: it changes only
    the keys it names, the others keep ``config``'s values (``akd={"steps": 2}`` keeps its ``lr``),
    and the result is validated like a dict config. Every method builds its config here.
    """
    from paramcast.config import from_dict

    if config is None:
        config = cls()
    elif isinstance(config, dict):
        config = from_dict(cls, config, cls.__name__)
    if overrides:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {unknown}; known: {sorted(known)}")
        if any(isinstance(v, dict) and dataclasses.is_dataclass(getattr(config, k)) for k, v in overrides.items()):
            config = from_dict(cls, _merged(config, overrides), cls.__name__)
        else:
            config = dataclasses.replace(config, **overrides)
    return config


def _merged(config: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """``config``'s fields (one level, as they are) with ``overrides``; a dict for a nested config is merged into it."""
    data = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    for k, v in overrides.items():
        cur = data.get(k)
        data[k] = _merged(cur, v) if isinstance(v, dict) and dataclasses.is_dataclass(cur) else v
    return data


def labelled(answer: torch.Tensor) -> torch.Tensor:
    """Row indices with an in-vocabulary answer (rows with IGNORE cannot be trained on)."""
    return torch.nonzero(answer != IGNORE).flatten()


def minibatches(index: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Shuffled chunks of ``index``."""
    order = index[torch.randperm(index.numel(), generator=generator)]
    for s in range(0, order.numel(), batch_size):
        yield order[s: s + batch_size]


def device_groups(device: torch.Tensor, answer: torch.Tensor, group_size: int,
                  generator: torch.Generator) -> list[tuple[int, torch.Tensor]]:
    """Per-device training groups: a list of ``(anchor_row, target_rows (M,))``, shuffled.

    Each device's labelled rows are shuffled and cut into groups of ``group_size``; each group gets an
    anchor row drawn from the *same device* but outside the group (the sample whose frame the device
    uploads), so the generator must personalise a head for samples it has not seen.
    """
    groups: list[tuple[int, torch.Tensor]] = []
    keep = answer != IGNORE
    for d in device.unique().tolist():
        rows = torch.nonzero((device == d) & keep).flatten()
        all_rows = torch.nonzero(device == d).flatten()
        if rows.numel() == 0:
            continue
        rows = rows[torch.randperm(rows.numel(), generator=generator)]
        for s in range(0, rows.numel(), group_size):
            tgt = rows[s: s + group_size]
            cand = all_rows[~torch.isin(all_rows, tgt)]
            cand = cand if cand.numel() else all_rows
            anchor = int(cand[torch.randint(cand.numel(), (1,), generator=generator)])
            groups.append((anchor, tgt))
    perm = torch.randperm(len(groups), generator=generator).tolist()
    return [groups[i] for i in perm]


def fit_device_groups(step_loss, modules: list, params: list, history: Any, *, epochs: int, lr: float,
                      weight_decay: float, group_size: int, groups_per_step: int,
                      generator: torch.Generator, clip: float = 5.0, objective: Any = None) -> list[dict[str, float]]:
    """The Phase II loop every generated-head method shares (CDC-MMPG / F-hyper, StableSynthNet, DUET).

    Each epoch cuts the history into per-device groups (:func:`device_groups`), and each step calls
    ``step_loss(groups) -> (loss or dict of terms with "loss", correct, count)``; AdamW with warm-up +
    cosine, gradient norm clipped at ``clip``. ``modules`` are put in train mode, then eval mode.
    Returns one dict per epoch: every term averaged over the targets, plus ``train_acc``. The
    ``objective``'s own parameters (an ``nn.Module`` objective) train with ``params``.
    """
    params = [p for p in params if p.requires_grad] + objective_parameters(objective)
    if isinstance(objective, torch.nn.Module):
        modules = [*modules, objective]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    n_groups = len(device_groups(history.device, history.answer, group_size, torch.Generator()))
    sched = warmup_cosine(opt, max(1, epochs * -(-n_groups // groups_per_step)))
    for m in modules:
        m.train()
    log = []
    for _ in range(epochs):
        groups = device_groups(history.device, history.answer, group_size, generator)
        sums: dict[str, float] = {}
        correct = n = 0
        for s in range(0, len(groups), groups_per_step):
            terms, c, m = step_loss(groups[s: s + groups_per_step])
            terms = terms if isinstance(terms, dict) else {"loss": terms}
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            sched.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * m
            correct, n = correct + c, n + m
        log.append({k: v / max(n, 1) for k, v in sums.items()} | {"train_acc": correct / max(n, 1)})
    for m in modules:
        m.eval()
    return log


def group_targets(groups: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """``(anchor, target rows)`` groups -> target row indices (G, M), padded with -1."""
    G, M = len(groups), max(t.numel() for _, t in groups)
    target = torch.full((G, M), -1, dtype=torch.long)
    for j, (_, t) in enumerate(groups):
        target[j, : t.numel()] = t
    return target


def group_objective(static: torch.nn.Module, history: Any, target: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor, device: torch.device,
                    objective: Objective = ANSWER_CE) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """The objective (default: QA cross-entropy) of each group's target rows (G, M) under its generated
    layer ``weight (G, V, H)``, ``bias (G, V)`` after the device's static head: the training signal
    every generated-head method shares (CDC-MMPG, StableSynthNet, DUET).
    Returns ``(loss, outputs (G, M, V), correct, targets)``."""
    G, M = target.shape
    feats = history.features[target.clamp(min=0)].to(device)                 # (G, M, T, C)
    h = static(pool_frames(feats.flatten(0, 1))).view(G, M, -1)              # (G, M, H)
    outputs = per_sample_linear(h, weight, bias)                             # (G, M, V)
    loss, correct = objective(outputs, history, target)
    return loss, outputs, correct, int((target >= 0).sum())


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.1):
    """Linear warm-up over ``warmup`` of the steps, then cosine decay to 0 (safe for any step count)."""
    import math

    total = max(1, total_steps)
    warm = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def classification_step(optimizer: torch.optim.Optimizer, scheduler: Any, params: list, logits: torch.Tensor,
                        target: torch.Tensor, max_norm: float = 1.0) -> tuple[float, int]:
    """One cross-entropy step with gradient clipping and a scheduler step: (loss, number right)."""
    loss = torch.nn.functional.cross_entropy(logits, target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
    scheduler.step()
    return loss.item(), int((logits.argmax(-1) == target).sum())
