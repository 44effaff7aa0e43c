"""``python -m benchmarks.stress_mr``: the FLAIR lesion search on random brains nobody tuned it on.

An independent generator (`benchmarks.stress_mr.anatomy`, `benchmarks.stress_mr.render`; nothing
is shared with `imaging.phantoms` or the tests' brains, on which the search was developed) draws
adult heads with MS-like lesions from realistic ranges, writes each as NIfTI in a random layout,
loads it back through `imaging.io.load` and asks the ``segment`` tool for ``lesion``
(`benchmarks.stress_mr.evaluate`).

Seeds are split as for the CT stress benchmark (`benchmarks.stress.split_seeds`): **tuning** is
seeds 0-999 (use it while changing the search); **held-out** is seeds 1000 and up (report it once;
never tune on it). A case is a pure function of its seed and `render.MROptions`.
"""
