"""Implementation of :mod:`chromarate.cli`: the subcommands and their helpers.

:mod:`chromarate.cli` holds the group and the console-script entry point and registers the
commands defined here; the modules are private and may be rearranged.
"""
