"""Plans: the runs that reproduce a table, their state in the results store, and what they cost.

- :mod:`bench.plan.model`: :class:`~bench.plan.model.Plan` (method keys x datasets x seeds, with the
  options every run shares) and user plans as TOML files;
- :mod:`bench.plan.papers`: the papers' tables (TAU Tables 2-6, PLA-SM Tables II-XI) as plans, derived
  from the published numbers;
- :mod:`bench.plan.state`: complete / failed / running / missing, and the progress of a run, read from
  the results store (the single source of truth);
- :mod:`bench.plan.estimate`: GPU-hours from the audit's FLOP count over a stated throughput.

Resolving a plan into run specs is the command line's job (:mod:`bench.cli.selection`), so that a plan
is validated exactly as ``bench run``'s options are.
"""
