"""napari plugin of chromarate (npe2; manifest ``napari.yaml``).

Contributions: readers for result stores and localization files, the "Infer reaction rates"
and "Nucleus statistics" widgets, and the bundled sample nucleus. The manifest points at
functions in the private modules of this package; importing the package itself imports
nothing (no napari, no Qt), and no other part of chromarate imports it.
"""
