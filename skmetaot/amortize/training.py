"""One training loop for every amortized model: progress, history, clipping, divergence guard."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from skmetaot import distributed

#: Each recovered step multiplies the learning rate by this factor from then on.
RECOVERY_FACTOR = 0.1


class TrainingDiverged(FloatingPointError):
    """Raised when training cannot continue with finite values; the model keeps its last good state.

    :func:`train` first tries to recover from a non-finite (or exploding) loss or gradient: it
    skips the step, restores the last good parameters and optimiser state and divides the
    learning rate by 10. After ``max_recoveries`` such recoveries it raises this error instead, with
    the last good parameters restored. The estimators raise it from ``fit`` (e.g. with a
    learning rate that is far too large); it is a :class:`FloatingPointError`.

    Examples
    --------
    >>> import torch
    >>> from skmetaot.amortize import TrainingHistory, train
    >>> model = torch.nn.Linear(1, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> try:
    ...     train(model, lambda step: model.weight.sum() * float("nan"), optimizer, n_steps=5,
    ...           learning_rate=0.1, history=TrainingHistory())
    ... except TrainingDiverged as error:
    ...     print(str(error).split(";")[0])
    the training loss became nan at step 3
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
    recoveries : list of int
        Steps whose loss or gradient was not finite and that were skipped (each one divides the
        learning rate by 10 from then on).
    seconds : float
        Wall time spent training.
    n_steps : int
        Global steps completed (including skipped ones): where the next call continues.

    Examples
    --------
    >>> history = TrainingHistory()
    >>> history.step.append(0)
    >>> history.loss.append(1.5)
    >>> sorted(history.as_dict())
    ['loss', 'recoveries', 'seconds', 'step', 'val_loss', 'val_step']
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    recoveries: list[int] = field(default_factory=list)
    seconds: float = 0.0
    n_steps: int = 0

    def as_dict(self) -> dict[str, list]:
        """The history as a dict of lists."""
        return {"step": self.step, "loss": self.loss, "val_step": self.val_step,
                "val_loss": self.val_loss, "recoveries": self.recoveries,
                "seconds": self.seconds}

    def truncate(self, n_steps: int) -> None:
        """Forget everything recorded at or after global step ``n_steps``."""
        keep = sum(s < n_steps for s in self.step)
        del self.step[keep:], self.loss[keep:]
        keep = sum(s <= n_steps for s in self.val_step)
        del self.val_step[keep:], self.val_loss[keep:]
        self.recoveries[:] = [s for s in self.recoveries if s < n_steps]
        self.n_steps = n_steps


def cosine_learning_rate(base: float, step: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up then cosine decay to 10% of ``base``."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class _LastGoodState:
    """Parameters and optimiser state at a step known to be finite (copied every few steps)."""

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 step: int) -> None:
        self.module, self.optimizer = module, optimizer
        self.take(step)

    def take(self, step: int) -> None:
        self.step = step
        self.parameters = copy.deepcopy(self.module.state_dict())
        self.optimizer_state = copy.deepcopy(self.optimizer.state_dict())

    def restore(self) -> None:
        self.module.load_state_dict(self.parameters)
        # load_state_dict keeps references to tensors that are already in place: copy, so the
        # next update does not write into the snapshot.
        self.optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))


def _all_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


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
    max_recoveries: int = 3,
    checkpoint: Callable[[int], None] | None = None,
    checkpoint_every: int = 0,
    resume: Callable[[], int | None] | None = None,
) -> int:
    """Run optimisation steps ``first_step, ..., first_step + n_steps - 1`` of ``step_loss``.

    Every step: compute the loss, back-propagate, clip the gradient norm, step the optimiser with
    the scheduled learning rate (times ``RECOVERY_FACTOR ** len(history.recoveries)``).

    Faults:

    * a non-finite loss or gradient (or a loss beyond ``max_abs_loss``) skips the step,
      restores the last good parameters and optimiser state (copied every 10 steps and at the
      start), divides the learning rate by 10 and records the step in ``history.recoveries``; once
      ``max_recoveries`` steps have been recovered, the next one raises
      :class:`TrainingDiverged` instead, with the last good state restored;
    * a :class:`KeyboardInterrupt` stops training with the parameters of the last completed
      step (the last good ones if it struck during an update), ``history.n_steps`` counting the
      completed steps, and is re-raised;
    * ``step_loss`` raising :class:`StopIteration` (its stream of data has ended) stops
      training after the completed steps, without error.

    Under :mod:`torch.distributed` the recorded loss is the mean over the processes, so every
    rank takes the same decisions; the progress bar shows on rank 0 only.

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
        Appended to; ``history.n_steps`` is kept equal to the global steps completed.
    validate : callable, optional
        ``validate() -> float`` run every ``validate_every`` steps.
    validate_every : int, default=0
    verbose : int, default=0
        Show a progress bar when positive.
    description : str
        Progress-bar label.
    max_abs_loss : float, optional
        A loss larger than this in absolute value counts as divergence too (objectives that are
        unbounded below blow up long before they overflow).
    max_recoveries : int, default=3
        Non-finite steps to skip (over the whole history) before giving up.
    checkpoint : callable, optional
        ``checkpoint(n_completed_steps)``, called every ``checkpoint_every`` global steps and
        once at the end, at a step boundary (e.g. to save the training state to disk).
    checkpoint_every : int, default=0
    resume : callable, optional
        Called once before the first step; it may restore a saved state in place and return
        the global step to continue from (None: start at ``first_step``).

    Returns
    -------
    int
        The global step after training: ``first_step + n_steps``, or fewer when the data
        stream ended.

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
    end = first_step + n_steps
    start = first_step
    if resume is not None:
        resumed = resume()
        start = first_step if resumed is None else min(max(resumed, first_step), end)
    history.n_steps = start
    good = _LastGoodState(module, optimizer, start)
    start_time = time.perf_counter()
    bar = tqdm(range(start, end), desc=description, leave=False,
               disable=not verbose or not distributed.is_main_process())
    updating = False
    try:
        for step in bar:
            rate = cosine_learning_rate(learning_rate, step, total, warmup)
            for group in optimizer.param_groups:
                group["lr"] = rate * RECOVERY_FACTOR ** len(history.recoveries)
            try:
                loss = step_loss(step)
            except StopIteration:
                break
            value = float(distributed.mean_over_processes(loss.detach()))
            problem = None
            if not math.isfinite(value) or (max_abs_loss is not None
                                            and abs(value) > max_abs_loss):
                problem = f"the training loss became {value:.4g}"
            else:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(module.parameters(),
                                                      grad_clip if grad_clip else float("inf"))
                if not bool(torch.isfinite(norm)):
                    problem = "the gradient became non-finite"
            if problem is not None:
                optimizer.zero_grad(set_to_none=True)
                good.restore()
                if len(history.recoveries) >= max_recoveries:
                    raise TrainingDiverged(
                        f"{problem} at step {step}; the estimator keeps the last good "
                        f"parameters (after {len(history.recoveries)} recoveries: lower "
                        "learning_rate or check the data)")
                history.recoveries.append(step)
            else:
                updating = True
                optimizer.step()
                updating = False
                history.step.append(step)
                history.loss.append(value)
            history.n_steps = step + 1
            if step % 10 == 0 and problem is None:
                good.take(step + 1)
            if validate is not None and validate_every and (step + 1) % validate_every == 0:
                history.val_step.append(step + 1)
                history.val_loss.append(validate())
                bar.set_postfix(loss=f"{value:.4g}", val=f"{history.val_loss[-1]:.4g}")
            elif verbose and step % 10 == 0:
                bar.set_postfix(loss=f"{value:.4g}")
            if checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
                checkpoint(step + 1)
    except KeyboardInterrupt:
        if updating or not _all_finite(module):
            good.restore()
            history.truncate(good.step)
        raise
    finally:
        bar.close()
        history.seconds += time.perf_counter() - start_time
    if checkpoint is not None:
        checkpoint(history.n_steps)
    return history.n_steps
