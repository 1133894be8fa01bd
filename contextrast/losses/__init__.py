"""Training losses (METHOD.md §2). Filled in by the losses issue."""
