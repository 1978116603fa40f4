"""What every skmetaot estimator shares: device/dtype/seed handling and portable persistence."""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from sklearn.base import BaseEstimator

from skmetaot import distributed
from skmetaot._backend import resolve_device, resolve_dtype
from skmetaot._validation import Rule, check_positive_int
from skmetaot.amortize.training import train
from skmetaot.estimators._checkpoint import (
    CheckpointFile,
    _to_cpu,
    checkpoint_key,
    data_fingerprint,
    restore_training_state,
    training_state,
)
from skmetaot.sampling import open_stream, rebatch, seed_from_random_state


def chunk_argument(method: Callable) -> Callable:
    """Accept ``batch_size=``, the former name of a method's ``chunk_size=``, with a warning.

    A method's chunk (pairs processed at once, a memory knob) is not the constructor's
    ``batch_size`` (pairs per training step); the old name keeps working for a deprecation
    period and raises a ``FutureWarning``.
    """

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        if "batch_size" in kwargs:
            if "chunk_size" in kwargs:
                raise TypeError(f"{method.__name__}() got both chunk_size= and its former "
                                f"name batch_size=; pass chunk_size= only")
            warnings.warn(f"{type(self).__name__}.{method.__name__}(batch_size=...) is renamed "
                          f"chunk_size=...: the pairs processed at once, not the training "
                          f"batch_size; the old name will be removed", FutureWarning,
                          stacklevel=2)
            kwargs["chunk_size"] = kwargs.pop("batch_size")
        return method(self, *args, **kwargs)

    return wrapper


class BaseOTEstimator(BaseEstimator):
    """Base class of the skmetaot estimators (not for direct use).

    Subclasses store their parameters unchanged in ``__init__`` (scikit-learn convention) and
    keep torch state (modules, optimisers) in attributes ending in ``_``. Pickling moves that
    state to the CPU, so a model fitted on CUDA loads on a machine without a GPU; on load it goes
    back to the estimator's ``device`` when that device exists (else it stays on the CPU).
    """

    #: Parameter name -> rule (:mod:`skmetaot._validation`). The rules of every class along the
    #: hierarchy are merged, so a parameter shared by several estimators is declared once, in
    #: the class they share (here: the training loop's two counts).
    _parameter_rules: ClassVar[dict[str, Rule]] = {
        "max_iter": check_positive_int, "batch_size": check_positive_int}

    @classmethod
    def _all_parameter_rules(cls) -> dict[str, Rule]:
        rules: dict[str, Rule] = {}
        for klass in reversed(cls.__mro__):
            rules.update(vars(klass).get("_parameter_rules", {}))
        return rules

    def _check_params(self) -> None:
        """Check every declared parameter, the checkpoint options, then the estimator's own."""
        for name, rule in self._all_parameter_rules().items():
            rule(getattr(self, name), name)
        self._check_checkpoint_params()
        self._check_own_params()

    def _check_own_params(self) -> None:
        """Checks that relate several parameters, or say more than a rule can (none here)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # fit takes a collection of measure pairs, not a table of samples: scikit-learn's
        # data-driven checks do not apply (the data-free ones do, and run in the test suite).
        tags.input_tags.two_d_array = False
        return tags

    def _torch_device(self) -> torch.device:
        return resolve_device(getattr(self, "device", "auto"))

    def _torch_dtype(self) -> torch.dtype:
        return resolve_dtype(getattr(self, "dtype", None)) or torch.float32

    def _seed_generator(self) -> torch.Generator:
        """A CPU generator seeded from ``random_state`` (reproducible runs on the CPU)."""
        seed = seed_from_random_state(getattr(self, "random_state", None))
        self._seed = seed
        torch.manual_seed(seed)
        return torch.Generator().manual_seed(seed)

    # -- persistence --------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        # Caches (``_cache_*``: checked supports, kernels) are rebuilt on first use, not saved.
        state = {name: value for name, value in state.items() if not name.startswith("_cache_")}
        for name, value in list(state.items()):
            if isinstance(value, torch.nn.Module):
                state[name] = copy.deepcopy(value).cpu()
            elif isinstance(value, torch.Tensor):
                state[name] = value.detach().cpu()
            elif isinstance(value, torch.optim.Optimizer):
                state[name] = None
                state[f"_optimizer_state::{name}"] = _to_cpu(value.state_dict())
            elif isinstance(value, torch.Generator):
                # Saved as its state: torch < 2.1 cannot pickle a Generator.
                state[name] = None
                state[f"_generator_state::{name}"] = (str(value.device), value.get_state())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        optimizer_states = {k.split("::", 1)[1]: state.pop(k) for k in list(state)
                            if k.startswith("_optimizer_state::")}
        generator_states = {k.split("::", 1)[1]: state.pop(k) for k in list(state)
                            if k.startswith("_generator_state::")}
        self.__dict__.update(state)
        # A model saved before a parameter existed loads with that parameter's default.
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if name != "self" and name not in self.__dict__ \
                    and parameter.default is not inspect.Parameter.empty:
                setattr(self, name, parameter.default)
        for name, (where, saved) in generator_states.items():
            generator = torch.Generator(where if where == "cpu" or torch.cuda.is_available()
                                        else "cpu")
            generator.set_state(saved)
            setattr(self, name, generator)
        try:
            device = self._torch_device()
        except ValueError:
            warnings.warn(f"device={getattr(self, 'device', None)!r} is not available here; the "
                          "model is loaded on the CPU", RuntimeWarning, stacklevel=2)
            device = torch.device("cpu")
        for name, value in list(self.__dict__.items()):
            if isinstance(value, torch.nn.Module):
                setattr(self, name, value.to(device))
            elif isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        self._saved_optimizer_states = optimizer_states

    def _live_optimizer(self, name: str, parameters: Any, factory: Any) -> torch.optim.Optimizer:
        """The optimiser stored at ``name``, rebuilt after unpickling with its saved state.

        Parameters
        ----------
        name : str
            Attribute holding the optimiser (None before the first use and after unpickling).
        parameters : iterable of torch.nn.Parameter
            What it optimises.
        factory : callable
            ``factory(parameters) -> torch.optim.Optimizer``.

        Returns
        -------
        torch.optim.Optimizer
        """
        optimizer = getattr(self, name, None)
        if optimizer is None:
            optimizer = factory(parameters)
            saved = getattr(self, "_saved_optimizer_states", {}).pop(name, None)
            if saved is not None:
                optimizer.load_state_dict(saved)  # moves the moments to the parameters' device
            setattr(self, name, optimizer)
        return optimizer

    # -- training -----------------------------------------------------------------------------
    def _check_checkpoint_params(self) -> None:
        path = getattr(self, "checkpoint_path", None)
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"checkpoint_path must be a path (str or os.PathLike) or None, got "
                            f"{type(path).__name__}")
        check_positive_int(getattr(self, "checkpoint_every", 1), "checkpoint_every")

    def _open_stream(self, data: Any, *, cycle: bool, initialise: bool, convert: Any,
                     concat: Any) -> tuple[Any, Iterator[Any]]:
        """The first batch of a stream of pairs and an iterator over all its batches.

        ``convert(item, fitting)`` turns one item into the estimator's collection type (with
        ``n_pairs``), ``concat(list)`` joins small ones into batches of ``batch_size`` pairs.
        When ``initialise``, the first item initialises the estimator (``_initialise``). Our
        samplers are then started again from their seed, so that every batch is drawn by the
        generator that checkpoints save (``_batch_generator``).
        """
        seed = seed_from_random_state(self.random_state) if initialise else self._seed
        items, generator = open_stream(data, self.batch_size, seed, cycle=cycle)
        try:
            first_item = next(items)
        except StopIteration:
            raise ValueError("the stream of pairs is empty") from None
        first = convert(first_item, fitting=initialise)
        if initialise:
            self._initialise(first)
        if generator is not None:
            items, generator = open_stream(data, self.batch_size, seed, cycle=cycle)
            self._batch_generator = generator
        else:
            items = itertools.chain([first_item], items)
        batches = rebatch((convert(item, fitting=False) for item in items), self.batch_size,
                          concat=concat)
        return first, batches

    def _fit_stream(self, data: Any, n_steps: int | None, *, fitting: bool,
                    initialise: bool) -> Any:
        """Train on a stream: ``max_iter`` steps for ``fit``, one pass or ``n_steps`` else."""
        if not fitting and n_steps is None and getattr(data, "n_batches", 0) is None:
            raise ValueError("the sampler is endless: give n_steps")
        steps = self.max_iter if fitting else (
            2**62 if n_steps is None else check_positive_int(n_steps, "n_steps"))
        before = self.n_iter_ if not initialise else 0
        # fit restarts a stream that can be iterated again, and checkpoints (a stream has no
        # data digest: its type and the batch size stand for it).
        self._train_stream(data, steps, total_steps=steps if fitting else None,
                           initialise=initialise, cycle=fitting,
                           checkpoint_data=("stream", repr(type(data)), self.batch_size)
                           if fitting else None)
        done = self.n_iter_ - before
        if fitting and done < steps:
            warnings.warn(f"the stream of pairs ended after {done} of max_iter={steps} "
                          "training steps", RuntimeWarning, stacklevel=3)
        return self

    def _train_loop(self, module: torch.nn.Module, step_loss: Any,
                    optimizer: torch.optim.Optimizer, *, n_steps: int,
                    total_steps: int | None = None, checkpoint_data: tuple | None = None,
                    distribute: str | None = None, **options: Any) -> None:
        """Run :func:`skmetaot.amortize.train` from ``n_iter_``; leave a usable estimator.

        With ``checkpoint_data`` (the training data, from ``fit``) and a ``checkpoint_path``,
        the state is saved every ``checkpoint_every`` steps and at the end, and a matching
        checkpoint found at the start is resumed. The modules train in train mode; whatever
        happens (divergence, interrupt), ``n_iter_`` counts the completed steps and the modules
        are left in eval mode.

        ``distribute`` names the attribute holding ``module``: under :mod:`torch.distributed` it
        holds the module wrapped in DistributedDataParallel while training (so that the loss,
        which calls it, synchronises the gradients), and the plain module again afterwards.
        Rank 0 alone writes the checkpoints.
        """
        path = getattr(self, "checkpoint_path", None)
        save = resume = None
        if checkpoint_data is not None:
            self.resumed_from_ = None
        if checkpoint_data is not None and path is not None:
            store = CheckpointFile(path, checkpoint_key(self, data_fingerprint(*checkpoint_data)))

            def resume() -> int | None:
                payload = store.load()
                if payload is None:
                    return None
                restore_training_state(self, payload["state"])
                self.resumed_from_ = int(payload["step"])
                return self.resumed_from_

            def save(step: int) -> None:
                state = training_state(self)  # on every rank: it gathers their generators
                if distributed.is_main_process():
                    store.save(step, state)

        first = self.n_iter_
        module.train()
        if distribute is not None:
            setattr(self, distribute, distributed.wrap(module))
        try:
            train(module, step_loss, optimizer, n_steps=n_steps, first_step=first,
                  total_steps=total_steps or first + n_steps, history=self._history,
                  verbose=getattr(self, "verbose", 0), checkpoint=save,
                  checkpoint_every=getattr(self, "checkpoint_every", 0) if save else 0,
                  resume=resume, **options)
        finally:
            if distribute is not None:
                setattr(self, distribute, module)
            self.n_iter_ = self._history.n_steps
            module.eval()
