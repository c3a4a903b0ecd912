"""Declarative search spaces: YAML in; random, grid, HyperOpt and Optuna samplers out.

A space file has two sections::

    families:            # the conditional model-family choice; each family has its own sub-space
      lstm: {hidden_size: {qloguniform: [32, 256, 16]}, num_layers: {randint: [1, 3]}}
      mlp:  {hidden_size: {choice: [64, 128, 256]}}
    train:               # hyperparameters every family shares
      lr: {loguniform: [1.0e-4, 1.0e-2]}
      optimizer: {choice: [adam, adamw]}

A value is either a constant or a one-key mapping naming a domain: uniform [low, high], loguniform
[low, high], quniform [low, high, q], qloguniform [low, high, q], randint [low, high) (high excluded),
choice [options...], grid [values...]. A trial's config is {"arch": {"family": f, "model": {...}}, <train>}
(`trainables.trial.TrialConfig`).

Modules: `domains` (the domains and their YAML form), `space` (SearchSpace, parse_space, load_space, the
bundled spaces), and one translation per library, imported only by their users: `hyperopt_space.to_hyperopt`
and `optuna_space.suggest`. Importing this package imports neither torch nor any search library.
"""

from search_spaces.domains import (
    ARITY,
    DOMAINS,
    Choice,
    Domain,
    Grid,
    LogUniform,
    QLogUniform,
    QUniform,
    RandInt,
    SpaceError,
    Uniform,
    parse_value,
)
from search_spaces.space import (
    BUNDLED,
    SPACES_DIR,
    SearchSpace,
    load_space,
    parse_space,
)

__all__ = [
    "ARITY", "BUNDLED", "DOMAINS", "SPACES_DIR", "Choice", "Domain", "Grid", "LogUniform", "QLogUniform", "QUniform",
    "RandInt", "SearchSpace", "SpaceError", "Uniform", "load_space", "parse_space", "parse_value",
]
