"""The benchmark library: what the ``mmreason bench`` command (`benchmarks.cli`) and the scripts
of `benchmarks` (``python -m benchmarks.<script>``) are built on.

* `benchmarks.core.tasks`: the registry of tasks (dataset loaders of `benchmarks.datasets`,
  prompts, pinned hub revisions);
* `benchmarks.core.runner`: a resumable run of any backend over tasks;
* `benchmarks.core.run_folder`: the files of a run folder (samples, steps, config) read and written
  safely;
* `benchmarks.core.results`: summaries, tables and run comparisons; `benchmarks.core.plots` its PNGs;
* `benchmarks.core.scoring` (our protocol) and `benchmarks.protocols` (re-implemented published ones);
* `benchmarks.core.stats`: intervals and paired tests; `benchmarks.core.synthetic`: the synthetic
  grounded benchmark.

Imports point one way: run_folder <- results <- runner; plots is a leaf.
"""
