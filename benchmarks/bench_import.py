"""Import time of the package (each sample in a fresh interpreter)."""


def timeraw_import_chromarate():
    """``import chromarate``: the lazy top level (no torch, napari, Qt or click)."""
    return "import chromarate"


def timeraw_import_fit_engine():
    """``import chromarate.fit.loop``: the training loop, torch included."""
    return "import chromarate.fit.loop"
