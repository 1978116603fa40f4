"""One training loop for every amortized model: progress, history, clipping, divergence guard."""

from __future__ import annotations

import collections
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from skmetaot import distributed
from skmetaot._schedules import cosine_decay

#: Each recovered step multiplies the learning rate by this factor from then on.
RECOVERY_FACTOR = 0.1


class TrainingDiverged(FloatingPointError):
    """Raised when training cannot continue with finite values; the model keeps its last good state.

    :func:`train` first tries to recover from a failed step: a non-finite (or exploding) loss
    or gradient, parameters that an update made non-finite, or a numerical failure raised
    inside the step (a :class:`FloatingPointError`, such as the conjugate solver's
    ``NonFiniteConjugateError`` when the potential has blown up). It skips the step,
    restores the last good parameters and optimiser state and divides the learning rate by
    10. After ``max_recoveries`` such recoveries it raises this error instead, with the last
    good parameters restored; so does training that ends with a loss far above its first one.

    The last good state is one whose training loss was measured finite and no worse than at
    the start of training (the pre-training state, which is always good): a state reached by a
    wild update is never kept, however finite. So after this error the estimator predicts as
    that state does, with finite values: at worst as it did before training (see
    :ref:`training-faults`). The estimators
    raise it from ``fit`` and ``refine`` (e.g. with a learning rate that is far too large); it
    is a :class:`FloatingPointError`.

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
    return cosine_decay(base, min(1.0, (step - warmup) / max(1, total - warmup)), 0.1)


#: Steps between copies of the last good state (a copy costs one pass over the parameters).
SNAPSHOT_EVERY = 10
#: Training whose last losses exceed the first one by more than this many times its size
#: (plus one) has made the model worse than it started: it diverged.
DIVERGED_GROWTH = 1.0
#: Schedules of the learning rate :func:`train` accepts.
SCHEDULES = ("cosine", "constant")


class _LastGoodState:
    """Parameters and optimiser state whose loss was measured finite and no worse than at start.

    A copy is taken before an update, of the state the loss was just computed at: a state
    reached by an update is only known to be good once its own loss has been seen.
    """

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 step: int) -> None:
        self.module, self.optimizer = module, optimizer
        # The loss and the monitored value at the pre-training state.
        self.reference: tuple[float, float] | None = None
        self.take(step)

    def take(self, step: int) -> None:
        self.step = step
        self.parameters = copy.deepcopy(self.module.state_dict())
        self.optimizer_state = copy.deepcopy(self.optimizer.state_dict())

    def offer(self, step: int, loss: float, monitored: float) -> None:
        """Copy the current state (``step`` steps done) if its values make it good."""
        if self.reference is None:  # the first values measured are the pre-training state's
            self.reference = (loss, monitored)
        no_worse = loss <= self.reference[0] and monitored <= self.reference[1]
        if no_worse and step - self.step >= SNAPSHOT_EVERY:
            self.take(step)

    def restore(self) -> None:
        self.module.load_state_dict(self.parameters)
        # load_state_dict keeps references to tensors that are already in place: copy, so the
        # next update does not write into the snapshot.
        self.optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))


def _all_finite(module: torch.nn.Module) -> bool:
    sums = [p.detach().sum() for p in module.parameters()]
    # One reduction (one device synchronisation): a non-finite entry makes the total non-finite.
    return not sums or bool(torch.isfinite(torch.stack([t.to(sums[0]) for t in sums]).sum()))


def _scheduled_rate(schedule: str, base: float, step: int, total: int, warmup: int) -> float:
    if schedule == "constant":
        return base
    return cosine_learning_rate(base, step, total, warmup)


def _process_mean(number: float | torch.Tensor, like: torch.Tensor, synchronise: bool) -> float:
    """``number`` as a float, averaged over the processes when they train one model."""
    tensor = number.detach() if isinstance(number, torch.Tensor) else like.new_tensor(number)
    return float(distributed.mean_over_processes(tensor) if synchronise else tensor)


def _failed_loss(module: torch.nn.Module) -> torch.Tensor:
    """A NaN loss on the module's device: a step that raised still joins the collective mean."""
    for parameter in module.parameters():
        return parameter.detach().new_tensor(float("nan")).sum()
    return torch.tensor(float("nan"))


def train(
    module: torch.nn.Module,
    step_loss: Callable[[int], torch.Tensor | tuple[torch.Tensor, float]],
    optimizer: torch.optim.Optimizer,
    *,
    n_steps: int,
    first_step: int = 0,
    total_steps: int | None = None,
    learning_rate: float,
    schedule: str = "cosine",
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
    synchronise: bool = True,
) -> int:
    """Run optimisation steps ``first_step, ..., first_step + n_steps - 1`` of ``step_loss``.

    Every step: compute the loss, back-propagate, clip the gradient norm, step the optimiser with
    the scheduled learning rate (times ``RECOVERY_FACTOR ** len(history.recoveries)``).

    Faults:

    * a failed step skips the step, restores the last good parameters and optimiser state,
      divides the learning rate by 10 and records the step in ``history.recoveries``; once
      ``max_recoveries`` steps have been recovered, the next one raises
      :class:`TrainingDiverged` instead, with the last good state restored. A step fails when
      its loss or gradient is not finite, its loss is beyond ``max_abs_loss``, ``step_loss``
      raises a :class:`FloatingPointError` (a numerical failure, such as a conjugate solver
      started where the potential is not finite), or the update leaves non-finite parameters.
      The last good state is the start of training, or a later state whose loss (and
      monitored value, see ``step_loss``) was measured finite and no larger than the first
      ones measured (copied before the update, at most every ``SNAPSHOT_EVERY`` steps), so a
      finite but wild state is never restored;
    * training that ends worse than it started (the mean of its last ``SNAPSHOT_EVERY``
      monitored values above the first one ``L0`` by more than
      ``DIVERGED_GROWTH * (|L0| + 1)``) has diverged without overflowing: the last good state
      is restored and :class:`TrainingDiverged` raised;
    * a :class:`KeyboardInterrupt` stops training with the parameters of the last completed
      step (the last good ones if it struck during an update), ``history.n_steps`` counting the
      completed steps, and is re-raised;
    * ``step_loss`` raising :class:`StopIteration` (its stream of data has ended) stops
      training after the completed steps, without error.

    Under :mod:`torch.distributed` the recorded loss is the mean over the processes (unless
    ``synchronise`` is False), so every rank takes the same decisions; the progress bar shows
    on rank 0 only.

    Parameters
    ----------
    module : torch.nn.Module
        The parameters being trained.
    step_loss : callable
        ``step_loss(global_step) -> scalar loss``, or ``-> (loss, monitored)``: ``monitored``
        (a number, lower is better) is then what decides whether a state is good and whether
        training ended worse than it started, for losses whose level is not a measure of
        progress (an amortization objective whose optimum moves with the model). Default: the
        loss itself.
    optimizer : torch.optim.Optimizer
    n_steps : int
        Steps to run in this call.
    first_step : int, default=0
        Global index of the first step (for schedules that continue across calls).
    total_steps : int, optional
        Length of the whole schedule (default: ``first_step + n_steps``).
    learning_rate : float
        Peak learning rate of the schedule.
    schedule : {"cosine", "constant"}, default="cosine"
        Linear warm-up then cosine decay to 10% (``cosine_learning_rate``), or a constant
        rate.
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
        A loss (or monitored value) larger than this in absolute value counts as divergence
        too (objectives that are unbounded below blow up long before they overflow).
    max_recoveries : int, default=3
        Non-finite steps to skip (over the whole history) before giving up.
    checkpoint : callable, optional
        ``checkpoint(n_completed_steps)``, called every ``checkpoint_every`` global steps and
        once at the end, at a step boundary (e.g. to save the training state to disk).
    checkpoint_every : int, default=0
    resume : callable, optional
        Called once before the first step; it may restore a saved state in place and return
        the global step to continue from (None: start at ``first_step``).
    synchronise : bool, default=True
        Under :mod:`torch.distributed`, average the loss over the processes (one model trained
        together); False for work private to each process (refining its own problems).

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
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not one of {SCHEDULES}")
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
    recent: collections.deque[float] = collections.deque(maxlen=SNAPSHOT_EVERY)
    try:
        for step in bar:
            rate = _scheduled_rate(schedule, learning_rate, step, total, warmup)
            for group in optimizer.param_groups:
                group["lr"] = rate * RECOVERY_FACTOR ** len(history.recoveries)
            problem = monitored = None
            try:
                loss = step_loss(step)
            except StopIteration:
                break
            except FloatingPointError as error:  # a numerical failure inside the step
                loss, problem = _failed_loss(module), f"the training step failed ({error})"
            if isinstance(loss, tuple):
                loss, monitored = loss
            # Every rank sees the same values (a failed step is NaN), so all take one decision.
            value = _process_mean(loss, loss, synchronise)
            watched = value if monitored is None else _process_mean(monitored, loss, synchronise)
            if problem is not None or not (math.isfinite(value) and math.isfinite(watched)):
                problem = problem or f"the training loss became {value:.4g}"
            elif max_abs_loss is not None and max(abs(value), abs(watched)) > max_abs_loss:
                problem = (f"the training loss became {value:.4g}" if abs(value) > max_abs_loss
                           else f"the monitored loss became {watched:.4g}")
            else:
                good.offer(step, value, watched)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(module.parameters(),
                                                      grad_clip if grad_clip else float("inf"))
                if not bool(torch.isfinite(norm)):
                    problem = "the gradient became non-finite"
            if problem is None:
                updating = True
                optimizer.step()
                updating = False
                if not _all_finite(module):
                    problem = "the update made the parameters non-finite"
            if problem is not None:
                optimizer.zero_grad(set_to_none=True)
                good.restore()
                if len(history.recoveries) >= max_recoveries:
                    raise TrainingDiverged(
                        f"{problem} at step {step}; the estimator keeps the last good "
                        f"parameters, those it had at step {good.step} (after "
                        f"{len(history.recoveries)} recoveries: lower learning_rate or check "
                        "the data)")
                history.recoveries.append(step)
            else:
                history.step.append(step)
                history.loss.append(value)
                recent.append(watched)
            history.n_steps = step + 1
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
    reference = good.reference and good.reference[1]
    if recent and reference is not None and (
            sum(recent) / len(recent) > reference + DIVERGED_GROWTH * (abs(reference) + 1)):
        good.restore()
        raise TrainingDiverged(
            f"the monitored loss grew from {reference:.4g} to {sum(recent) / len(recent):.4g} "
            f"(mean of the last {len(recent)} steps): training made the model worse; the "
            f"estimator keeps the last good parameters, those it had at step {good.step} "
            "(lower learning_rate or check the data)")
    if checkpoint is not None:
        checkpoint(history.n_steps)
    return history.n_steps
