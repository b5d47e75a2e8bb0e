"""Loading the PredRNN-family references for ``tools/reference_predrnnpp_v2.py``: OpenSTL's
PredRNN/PredRNN++/PredRNN-V2 files at c74deb5 without the package ``__init__`` files, OpenSTL
v0.2.0's benchmark-era PredRNN++ cell, and thuml/predrnn-pytorch's PredRNN-V2 network and trainer
(with inert stand-ins for the trainer's test-time imports). The commits and how to check them out
are in that script's docstring; nothing here is reference code.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

from fixture_helpers import expose


def load_openstl(root: Path) -> SimpleNamespace:
    """OpenSTL's PredRNN-family files without the package __init__ files (see make_reference_fixtures)."""
    for name in ("openstl", "openstl.modules", "openstl.models", "openstl.methods", "openstl.utils"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package
    base = types.ModuleType("openstl.methods.base_method")
    base.Base_method = type("Base_method", (), {})  # stands in for the Lightning module; never instantiated
    sys.modules["openstl.methods.base_method"] = base
    load = importlib.import_module
    expose("openstl.modules", *[load(f"openstl.modules.{m}")
                                 for m in ("predrnn_modules", "predrnnpp_modules", "predrnnv2_modules")])
    models = [load(f"openstl.models.{m}") for m in ("predrnn_model", "predrnnpp_model", "predrnnv2_model")]
    expose("openstl.models", *models)
    utils = load("openstl.utils.predrnn_utils")
    expose("openstl.utils", utils)
    return SimpleNamespace(PredRNNpp_Model=models[1].PredRNNpp_Model, PredRNNv2_Model=models[2].PredRNNv2_Model,
                           PredRNNMethod=load("openstl.methods.predrnn").PredRNN, utils=utils)


def _load_file(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_openstl_v020_predrnnpp(root: Path):
    """OpenSTL v0.2.0's PredRNNpp_Model, bound to its own CausalLSTMCell/GHU (loaded under other names)."""
    cells = _load_file(root / "openstl/modules/predrnnpp_modules.py", "openstl_v020_predrnnpp_modules")
    package = sys.modules["openstl.modules"]
    saved = package.CausalLSTMCell, package.GHU
    package.CausalLSTMCell, package.GHU = cells.CausalLSTMCell, cells.GHU
    try:
        model = _load_file(root / "openstl/models/predrnnpp_model.py", "openstl_v020_predrnnpp_model")
    finally:
        package.CausalLSTMCell, package.GHU = saved
    return model.PredRNNpp_Model


def load_authors(root: Path) -> SimpleNamespace:
    """thuml/predrnn-pytorch's PredRNN-V2 network, trainer and patch helpers (inert stand-ins for
    the trainer's test-time imports: cv2, skimage, lpips, matplotlib, sklearn)."""
    inert = {"cv2": {}, "skimage": {}, "skimage.metrics": {"structural_similarity": None},
             "lpips": {"LPIPS": lambda **kwargs: None}, "matplotlib": {}, "matplotlib.pyplot": {},
             "sklearn": {}, "sklearn.manifold": {"TSNE": None}}
    for name, attrs in inert.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # torch._dynamo looks these up by spec
        sys.modules[name] = module
    sys.path.insert(0, str(root))
    load = importlib.import_module
    return SimpleNamespace(RNN=load("core.models.predrnn_v2").RNN, trainer=load("core.trainer"),
                           preprocess=load("core.utils.preprocess"))
