"""Suite-wide settings: one intra-op thread.

The tests use tiny models, for which thread start-up and contention cost far more than the
arithmetic (a tiny forward pass ran ~200x slower with 2 threads on a loaded 2-core machine).
"""

import torch

torch.set_num_threads(1)
