"""Optuna's samplers and storages over a token space: the device-front search's sampler side (ppnas/oneshot/fronts.py).

Optuna is used, not rewritten: `NSGAIISampler` (multi-objective), `TPESampler` (multi-objective TPE) and
`RandomSampler` draw the tokens as categorical parameters `t0..tN`; its RDB storage coordinates the workers of one
study, with heartbeats so a trial left RUNNING by a killed worker is failed and retried once
(`RetryHeartbeatStaleTrialCallback`). The default storage is an SQLite file in save_dir: no server, several processes of
one machine. Optuna's journal file storage keeps no heartbeats (Optuna 5.1), so a killed worker's trial would stay
RUNNING there for ever: it is not offered.
"""

import logging
import warnings
from typing import Any, List, Sequence

import optuna

from ppnas.errors import ConfigError

OPTUNA_SAMPLERS = ("nsga2", "tpe", "random")
HEARTBEAT_SECONDS = 5  # a worker's running trial is stale after GRACE_SECONDS without a beat
GRACE_SECONDS = 20

optuna.logging.set_verbosity(logging.ERROR)  # its per-trial lines (and a failed trial's traceback) bury ours


def optuna_sampler(name: str, seed: int, population_size: int) -> optuna.samplers.BaseSampler:
    """The sampler of `search_mode`: nsga2, tpe or random."""
    if name == "nsga2":
        if population_size < 2:
            raise ConfigError(f"population_size must be at least 2, got {population_size}")
        return optuna.samplers.NSGAIISampler(population_size=population_size, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"search_mode must be one of {', '.join(OPTUNA_SAMPLERS)} for a front search, got {name!r}")


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage (sqlite:///file, postgresql://..., mysql://...) with heartbeats; an unreachable or malformed
    URL is a ConfigError naming it."""
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.1, and the only way to find a
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # killed worker's trial
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except Exception as err:  # SQLAlchemy raises its own errors for a bad URL, a missing driver or no server
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"storage {url!r} cannot be opened: {reason}") from None


def open_study(
    storage: optuna.storages.RDBStorage,
    study_name: str,
    sampler: optuna.samplers.BaseSampler,
    directions: Sequence[str],
) -> optuna.Study:
    """The study every worker of a search joins (created by the first)."""
    study = optuna.create_study(
        storage=storage, study_name=study_name, sampler=sampler, directions=list(directions), load_if_exists=True
    )
    if [d.name.lower() for d in study.directions] != list(directions):
        raise ConfigError(
            f"storage holds study {study_name!r} with {len(study.directions)} objectives, this search has "
            f"{len(directions)}: use another save_dir or storage"
        )
    return study


def suggest_tokens(trial: optuna.Trial, range_table: Sequence[int]) -> List[int]:
    """One categorical parameter per token position (`t0`, `t1`, ...)."""
    return [int(trial.suggest_categorical(f"t{i}", list(range(n)))) for i, n in enumerate(range_table)]


def tokens_of(params: Any) -> List[int]:
    """A trial's tokens from its params."""
    return [int(params[f"t{i}"]) for i in range(len(params))]
