"""Everything a plug-in author needs, in one module: ``from bench.api import register_method, Int``.

A method is a builder registered under a name, with its paper configuration, variants, a small
``tiny`` configuration, declared hyperparameters and optional hooks (:class:`MethodSpec`); a dataset
is a loader returning train/validation/test splits (:class:`DatasetSpec`, :class:`Splits`,
:class:`ArraySplits`). Register in-tree (a module in ``methods/``, ``baselines/`` or ``datasets/``)
or from another package through the entry-point groups ``bench.methods`` / ``bench.datasets``; see
the README's "Adding a method". Errors a plug-in raises for a user's mistake are :class:`BenchError`
(one line on the command line, naming the problem and the fix).

The older import paths (``bench.registry``, ``bench.hparams``, ``bench.data``) keep working.
"""

from bench.errors import BenchError
from bench.spec.dataset import DataConfig, DatasetSpec
from bench.spec.hparams import Bool, Choice, Float, FloatTuple, HParam, Int, IntTuple, Str
from bench.spec.method import CostQuestion, MethodSpec, PublishedCost
from bench.spec.pretrain import PretrainContext
from bench.spec.registry import (add_dataset, add_method, create_model, get_dataset, get_method, list_datasets,
                                 list_methods, register_dataset, register_method)
from bench.spec.splits import ArraySplits, Splits, to_unit_float

__all__ = [
    "register_method", "register_dataset", "add_method", "add_dataset", "create_model", "get_method", "get_dataset",
    "list_methods", "list_datasets",
    "MethodSpec", "DatasetSpec", "DataConfig", "Splits", "ArraySplits", "to_unit_float", "PretrainContext",
    "PublishedCost", "CostQuestion",
    "HParam", "Int", "Float", "Str", "Bool", "Choice", "IntTuple", "FloatTuple",
    "BenchError",
]
