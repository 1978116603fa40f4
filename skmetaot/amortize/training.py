"""One training loop for every amortized model: progress, history, clipping, divergence guard."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm


class TrainingDiverged(FloatingPointError):
    """Raised when a loss or gradient stops being finite; the model keeps its last good state.

    The estimators raise it from ``fit`` (e.g. with a learning rate that is too large); it is a
    :class:`FloatingPointError`.

    Examples
    --------
    >>> import torch
    >>> from skmetaot.amortize import TrainingHistory, train
    >>> model = torch.nn.Linear(1, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> try:
    ...     train(model, lambda step: model.weight.sum() * float("nan"), optimizer, n_steps=1,
    ...           learning_rate=0.1, history=TrainingHistory())
    ... except TrainingDiverged as error:
    ...     print(str(error).split(";")[0])
    the training loss became nan at step 0
    """


@dataclass
class TrainingHistory:
    """What :func:`train` records, as plain lists (picklable, easy to plot).

    Attributes
    ----------
    step : list of int
        Global step index of each recorded loss.
    loss : list of float
        Training loss of each step.
    val_step, val_loss : list
        Steps at which validation ran and its value.
    seconds : float
        Wall time spent training.

    Examples
    --------
    >>> history = TrainingHistory()
    >>> history.step.append(0)
    >>> history.loss.append(1.5)
    >>> sorted(history.as_dict())
    ['loss', 'seconds', 'step', 'val_loss', 'val_step']
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, list]:
        """The history as a dict of lists."""
        return {"step": self.step, "loss": self.loss, "val_step": self.val_step,
                "val_loss": self.val_loss, "seconds": self.seconds}


def cosine_learning_rate(base: float, step: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up then cosine decay to 10% of ``base``."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    module: torch.nn.Module,
    step_loss: Callable[[int], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    n_steps: int,
    first_step: int = 0,
    total_steps: int | None = None,
    learning_rate: float,
    grad_clip: float | None = 1.0,
    warmup: int = 0,
    history: TrainingHistory,
    validate: Callable[[], float] | None = None,
    validate_every: int = 0,
    verbose: int = 0,
    description: str = "training",
    max_abs_loss: float | None = None,
) -> int:
    """Run ``n_steps`` optimisation steps of ``step_loss``.

    Every step: compute the loss, back-propagate, clip the gradient norm, step the optimiser with
    the scheduled learning rate. A non-finite loss or gradient restores the last good parameters
    (snapshotted every 10 steps and at the start) and raises :class:`TrainingDiverged`.

    Parameters
    ----------
    module : torch.nn.Module
        The parameters being trained.
    step_loss : callable
        ``step_loss(global_step) -> scalar loss``.
    optimizer : torch.optim.Optimizer
    n_steps : int
        Steps to run in this call.
    first_step : int, default=0
        Global index of the first step (for schedules that continue across calls).
    total_steps : int, optional
        Length of the whole schedule (default: ``first_step + n_steps``).
    learning_rate : float
        Peak learning rate of the cosine schedule.
    grad_clip : float or None, default=1.0
        Maximum gradient norm.
    warmup : int, default=0
        Linear warm-up steps.
    history : TrainingHistory
        Appended to.
    validate : callable, optional
        ``validate() -> float`` run every ``validate_every`` steps and at the end.
    validate_every : int, default=0
    verbose : int, default=0
        Show a progress bar when positive.
    description : str
        Progress-bar label.
    max_abs_loss : float, optional
        A loss larger than this in absolute value counts as divergence too (objectives that are
        unbounded below blow up long before they overflow).

    Returns
    -------
    int
        The global step after training.

    Examples
    --------
    Fit ``w`` to minimise ``(w - 3)^2``:

    >>> import torch
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> _ = torch.nn.init.zeros_(model.weight)
    >>> optimizer = torch.optim.Adam(model.parameters())
    >>> history = TrainingHistory()
    >>> train(model, lambda step: ((model.weight - 3.0) ** 2).sum(), optimizer, n_steps=300,
    ...       learning_rate=0.1, history=history)
    300
    >>> len(history.loss), round(float(model.weight.detach()), 1)
    (300, 3.0)
    """
    total = total_steps or first_step + n_steps
    good_state = copy.deepcopy(module.state_dict())
    start_time = time.perf_counter()
    steps = range(first_step, first_step + n_steps)
    bar = tqdm(steps, desc=description, disable=not verbose, leave=False)
    step = first_step
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cosine_learning_rate(learning_rate, step, total, warmup)
        loss = step_loss(step)
        value = float(loss.detach())
        if not math.isfinite(value) or (max_abs_loss is not None and abs(value) > max_abs_loss):
            module.load_state_dict(good_state)
            raise TrainingDiverged(
                f"the training loss became {value:.4g} at step {step}; the estimator keeps the "
                "last good parameters (lower learning_rate or check the data)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(module.parameters(),
                                              grad_clip if grad_clip else float("inf"))
        if not bool(torch.isfinite(norm)):
            module.load_state_dict(good_state)
            raise TrainingDiverged(
                f"the gradient became non-finite at step {step}; the estimator keeps the last "
                "good parameters")
        optimizer.step()
        history.step.append(step)
        history.loss.append(value)
        if step % 10 == 0:
            good_state = copy.deepcopy(module.state_dict())
        if validate is not None and validate_every and (step + 1) % validate_every == 0:
            history.val_step.append(step + 1)
            history.val_loss.append(validate())
            bar.set_postfix(loss=f"{value:.4g}", val=f"{history.val_loss[-1]:.4g}")
        elif verbose and step % 10 == 0:
            bar.set_postfix(loss=f"{value:.4g}")
    bar.close()
    history.seconds += time.perf_counter() - start_time
    return first_step + n_steps
