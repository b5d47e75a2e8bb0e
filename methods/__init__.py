"""In-tree methods (installed as ``bench.methods``): importing this package registers every module in it."""

from bench.core.autoimport import import_submodules

import_submodules(__name__, __path__)
