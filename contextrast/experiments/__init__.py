"""Experiments: the results table from training runs, the papers' claims checked on it, and shipped checkpoints.

  runs.py        a run directory evaluated and read back (`RunResult`, `summarise_run`)
  claims.py      claims and orderings of METHOD.md §3 checked pairwise, with their noise
  report.py      the Markdown / JSON report (`render_markdown`, `build_report`; `contextrast report`)
  ship.py        a run's checkpoint copied to `checkpoints/` with the measured metrics
  formatting.py  how numbers print in the table
"""
