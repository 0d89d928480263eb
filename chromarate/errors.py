"""Exception hierarchy of chromarate.

Every error that chromarate raises on purpose derives from :class:`ChromarateError`, and
each subclass also derives from the built-in exception that fits it, so callers may catch
either. Messages name the file (when there is one) and what was expected.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ChromarateError",
    "ClusterError",
    "ConfigDeprecationWarning",
    "ConfigError",
    "DeviceError",
    "FitDivergedError",
    "InputFormatError",
    "ResultStoreError",
    "ResultVersionError",
    "SegmentationError",
    "StageError",
]


class ChromarateError(Exception):
    """Base class of all errors raised by chromarate.

    Parameters
    ----------
    message : str
        What went wrong and what was expected.
    path : str or Path, optional
        The file the error is about; it is prefixed to the message.
    """

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def __reduce__(self):  # keep pickling (dask workers) working with keyword-only path
        return (_rebuild, (type(self), self.message, self.path))


def _rebuild(cls, message, path):
    return cls(message, path=path)


class InputFormatError(ChromarateError, ValueError):
    """An input file is missing, empty, corrupt or has columns/units that cannot be used."""


class ConfigError(ChromarateError, ValueError):
    """A configuration value is invalid or a configuration file cannot be read."""


class ConfigDeprecationWarning(DeprecationWarning):
    """A config uses keys of an older layout; they were read at their new place.

    The message names each old key and its new one (``fit.steps -> fit.training.steps``).
    ``chromarate config show FILE`` prints the file in the current layout. A warning, not
    an error: it derives from :class:`DeprecationWarning`, which Python hides by default
    outside ``__main__``, so the command line prints it itself.
    """


class ClusterError(ChromarateError, ConnectionError):
    """A dask scheduler cannot be reached or its workers cannot run chromarate."""


class DeviceError(ChromarateError, RuntimeError):
    """A requested compute device is not available."""


class StageError(ChromarateError, ValueError):
    """A pipeline stage received data it cannot process (empty map, no nucleus, ...)."""


class SegmentationError(StageError):
    """No nucleus could be segmented from a density map."""


class FitDivergedError(ChromarateError, FloatingPointError):
    """The loss of a fit became non-finite."""


class ResultStoreError(ChromarateError, OSError):
    """A result store is foreign, damaged, or cannot be written."""


class ResultVersionError(ResultStoreError):
    """A result store written under a schema version this chromarate does not read (by a
    newer release): not damaged, so a batch never replaces it unasked."""
