"""Runs as cluster jobs (submitit, the optional ``slurm`` extra): submission, requeue, manifests, status.

- :mod:`bench.cluster.options`: the resources a run asks for, and their Slurm / local parameters;
- :mod:`bench.cluster.job`: one run as a picklable, checkpointable job (re-resolved and checked on the
  node; stopped at a step boundary and requeued at a time-out; resumed from ``last.pt``);
- :mod:`bench.cluster.launch`: what ``bench submit`` does before submitting (complete runs dropped,
  ``--force`` carried out at submission);
- :mod:`bench.cluster.executors`: one Slurm job array, or local processes, one per GPU;
- :mod:`bench.cluster.manifest`: which job trains which run directory (spec hash);
- :mod:`bench.cluster.status`: the store's state of every run and its job's state.

Only :mod:`~bench.cluster.job` and :mod:`~bench.cluster.executors` import submitit (inside functions), so
``bench status`` works without it.
"""
