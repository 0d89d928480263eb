"""Implementation of :mod:`chromarate.config`: the stage models and YAML helpers.

Import every name from :mod:`chromarate.config`, which re-exports them; the modules here
are private and may be rearranged.
"""
