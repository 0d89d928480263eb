"""Readers of single-molecule localization file formats, one module per format.

Each format module exposes ``FORMAT`` (the format's name), ``detect(path, head) -> bool``
(content-based recognition from the first MiB of the file and, where needed, its internal
structure) and ``read(path, **options) -> Localizations`` (canonical columns of docs/design.md
section 4). The dispatcher in :mod:`chromarate.io.localizations` chooses among them.
"""
