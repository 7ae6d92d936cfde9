"""Training: config and presets, the loop and its callbacks, run directories, DDP, background jobs.

Import from the submodules (``detcore.train.trainer.train``, ``detcore.train.runs.Run``...);
this package file stays free of torch imports so the CLI's ``--help`` stays fast.
"""
