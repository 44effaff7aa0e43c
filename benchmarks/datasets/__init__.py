"""Loaders for published medical VQA datasets, one module per dataset family.

Every module exposes the same two functions:

* ``annotation_files(root, split) -> list[Path]``: the files that define the questions (what the
  registry checksums);
* ``load(root, split, task, **options) -> list[Case]``: every question as a `Case`, keeping the
  dataset's own row in ``Case.native``.
"""
