"""asv (airspeed velocity) micro-benchmarks of chromarate; see docs/benchmarks.md.

Run from the repository root (``asv.conf.json``) with the installed package::

    asv run --python=same --quick

The long studies (whole fits, scaling, comparisons with nested autograd and DeepXDE) are
the scripts in ``experiments/``.
"""
