"""Reading localization files: a ThunderSTORM CSV written to a temporary folder in setup."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ._common import localization_table

#: ThunderSTORM's column names for the canonical columns written here.
THUNDERSTORM_COLUMNS = {"frame": "frame", "x_nm": "x [nm]", "y_nm": "y [nm]",
                        "photons": "intensity [photon]", "precision_nm": "uncertainty [nm]"}


def write_thunderstorm(path: Path, n: int) -> Path:
    """Write ``n`` localizations as a ThunderSTORM CSV with pandas (1-based frames).

    Parameters
    ----------
    path : pathlib.Path
        Output file.
    n : int
        Number of localizations.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    table = localization_table(n)
    table["frame"] += 1
    out = table.rename(columns=THUNDERSTORM_COLUMNS)
    out.insert(0, "id", range(1, n + 1))
    out.to_csv(path, index=False, float_format="%.1f")
    return path


class ReadThunderstormCSV:
    """``chromarate.read_localizations`` of a ThunderSTORM CSV of ``n`` localizations
    (format detection, column mapping, unit checks included)."""

    params = [10_000, 200_000]
    param_names = ["n"]

    def setup(self, n):
        from chromarate import read_localizations

        self.read = read_localizations
        self.tmp = Path(tempfile.mkdtemp(prefix="chromarate-asv-"))
        self.path = write_thunderstorm(self.tmp / "locs.csv", n)
        locs = self.read(self.path)  # the reader accepts the file (and warms caches)
        assert len(locs) == n, len(locs)

    def teardown(self, n):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def time_read(self, n):
        self.read(self.path)

    def peakmem_read(self, n):
        self.read(self.path)
