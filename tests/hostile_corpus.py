"""Hostile inputs for chromarate's readers, generated on the fly (no binaries are stored).

Each builder writes one small file (or result store) whose headers declare far more data
than the file holds, or that is cut short, into a folder and returns its path; nothing here
ever holds the declared data in memory. The tests in ``tests/test_hostile_inputs.py`` and
``tests/test_output_safety.py`` use them, and running this file measures the peak memory of
reading each bomb in a fresh interpreter (the table in docs/formats.md):

    python tests/hostile_corpus.py [--read-limit 4G]
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

MIB = 1 << 20


# ------------------------------------------------------------------------ deflate tricks


def _repeated_deflate(block: bytes, times: int, *, head: bytes = b"") -> bytes:
    """A raw deflate stream of ``head + block * times``, built by compressing ``block``
    once: a full flush makes a compressed segment independent of what came before, so the
    segment can simply be repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [c.compress(head), c.flush(zlib.Z_FULL_FLUSH)]
    c2 = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = c2.compress(block) + c2.flush(zlib.Z_FULL_FLUSH)
    out.append(segment * times)
    out.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))  # last block
    return b"".join(out)


def _crc_repeated(block: bytes, times: int, head: bytes = b"") -> int:
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(block, crc)
    return crc


def gzip_text_bomb(folder: Path, *, mib: int = 2048) -> Path:
    """A ThunderSTORM ``.csv.gz`` of a few hundred KiB that inflates to ``mib`` MiB of rows."""
    head = b'"x [nm]","y [nm]"\n'
    row = b"1000.0,2000.0\n"
    block = row * (MIB // len(row))
    data = _repeated_deflate(block, mib, head=head)
    size = len(head) + len(block) * mib
    trailer = struct.pack("<II", _crc_repeated(block, mib, head), size & 0xFFFFFFFF)
    path = folder / "bomb.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + data + trailer)
    return path


def _zip_member(name: str, compressed: bytes, crc: int, size: int) -> tuple[bytes, bytes]:
    """(local header + data, central directory entry) of a deflated zip member at offset 0
    (the caller fixes the offset of the central entry)."""
    fname = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc,
                        len(compressed), size, len(fname), 0) + fname + compressed
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc,
                          len(compressed), size, len(fname), 0, 0, 0, 0, 0, 0) + fname
    return local, central


def _zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    body, central = b"", b""
    for name, compressed, crc, size in members:
        local, entry = _zip_member(name, compressed, crc, size)
        entry = entry[:42] + struct.pack("<I", len(body)) + entry[46:]
        body += local
        central += entry
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(central), len(body), 0)
    return body + central + end


def smlm_zip_bomb(folder: Path, *, mib: int = 1024, rows: int = 1000) -> Path:
    """A ``.smlm`` whose manifest declares ``rows`` rows of (x, y) float32 while its table
    member inflates to ``mib`` MiB (the zip headers state that size honestly)."""
    manifest = {
        "format_version": "0.2",
        "formats": {"table": {"type": "table", "mode": "binary", "headers": ["x", "y"],
                              "dtype": ["float32", "float32"], "shape": [1, 1],
                              "units": ["nm", "nm"]}},
        "files": [{"name": "table.bin", "format": "table", "type": "table", "channel": "c",
                   "rows": rows}],
    }
    mtext = json.dumps(manifest).encode()
    block = bytes(MIB)
    members = [("manifest.json", zlib.compress(mtext, 9)[2:-4], zlib.crc32(mtext), len(mtext)),
               ("table.bin", _repeated_deflate(block, mib), _crc_repeated(block, mib),
                mib * MIB)]
    path = folder / "bomb.smlm"
    path.write_bytes(_zip(members))
    return path


def smlm_declared_bomb(folder: Path, *, rows: int = 300_000_000) -> Path:
    """A ``.smlm`` whose manifest declares ``rows`` rows (a few GB) for a tiny member."""
    manifest = {
        "formats": {"table": {"type": "table", "mode": "binary", "headers": ["x", "y"],
                              "dtype": ["float32", "float32"], "shape": [1, 1],
                              "units": ["nm", "nm"]}},
        "files": [{"name": "table.bin", "format": "table", "rows": rows}],
    }
    mtext = json.dumps(manifest).encode()
    table = np.zeros((10, 2), "<f4").tobytes()
    members = [("manifest.json", zlib.compress(mtext)[2:-4], zlib.crc32(mtext), len(mtext)),
               ("table.bin", zlib.compress(table)[2:-4], zlib.crc32(table), len(table))]
    path = folder / "declared.smlm"
    path.write_bytes(_zip(members))
    return path


# ------------------------------------------------------------------------ TIFF, HDF5


def tiff_bomb(folder: Path, *, side: int = 30000, tile: int = 512,
              dtype: str = "uint8") -> Path:
    """A zlib TIFF of a few MiB declaring ``side`` x ``side`` pixels: the same
    pre-compressed tile of zeros is written for every tile."""
    import tifffile

    encoded = zlib.compress(bytes(tile * tile * np.dtype(dtype).itemsize), 9)
    n = (-(-side // tile)) ** 2
    path = folder / "bomb.tif"
    tifffile.imwrite(path, data=(encoded for _ in range(n)), shape=(side, side), dtype=dtype,
                     tile=(tile, tile), compression="zlib", resolution=(50.0, 50.0),
                     resolutionunit="CENTIMETER")
    return path


def tiff_header(folder: Path, shape: tuple[int, ...], dtype: str, *,
                name: str = "declared.tif") -> Path:
    """A tiny TIFF whose header declares ``shape`` (its strips are absent: any read of the
    pixels would allocate the declared array)."""
    import tifffile

    path = folder / name
    ny, nx = shape[-2:]
    tile = 16
    encoded = zlib.compress(bytes(tile * tile * np.dtype(dtype).itemsize))
    n_tiles = int(np.prod(shape[:-2], dtype=np.int64)) * (-(-ny // tile)) * (-(-nx // tile))
    if n_tiles <= 4096:
        tifffile.imwrite(path, data=(encoded for _ in range(n_tiles)), shape=shape,
                         dtype=dtype, tile=(tile, tile), compression="zlib",
                         resolution=(50.0, 50.0), resolutionunit="CENTIMETER")
        return path
    # too many tiles to list: write a small image and patch its declared size
    tifffile.imwrite(path, np.zeros((16, 16), dtype), resolution=(50.0, 50.0),
                     resolutionunit="CENTIMETER")
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tf:
        tags = tf.pages[0].tags
        for tag, value in (("ImageWidth", nx), ("ImageLength", ny), ("RowsPerStrip", ny)):
            t = tags[tag]
            fmt, top = ("<H", 0xFFFF) if int(t.dtype) == 3 else ("<I", 0xFFFFFFFF)
            struct.pack_into(fmt, raw, t.valueoffset, min(value, top))
    path.write_bytes(bytes(raw))
    return path


def hdf5_bomb(folder: Path, *, rows: int = 300_000_000) -> Path:
    """A Picasso ``.hdf5`` (with its YAML sidecar) whose ``locs`` table declares ``rows``
    rows; its chunks are never written, so the file stays small."""
    import h5py

    dtype = np.dtype([("frame", "<u4"), ("x", "<f4"), ("y", "<f4"), ("photons", "<f4"),
                      ("lpx", "<f4"), ("lpy", "<f4")])
    path = folder / "bomb.hdf5"
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("locs", shape=(rows,), dtype=dtype, chunks=(1 << 16,),
                               compression="gzip")
        ds[:1000] = np.zeros(1000, dtype)
    (folder / "bomb.yaml").write_text("Generated by: Picasso Localize\nPixelsize: 130\n")
    return path


def decode_bomb(folder: Path, *, rows: int = 300_000_000) -> Path:
    """A DECODE ``.h5`` whose ``data/xyz`` declares ``rows`` x 3 values."""
    import h5py

    path = folder / "bomb.h5"
    with h5py.File(path, "w") as fh:
        data = fh.create_group("data")
        data.create_dataset("xyz", shape=(rows, 3), dtype="<f4", chunks=(1 << 16, 3),
                            compression="gzip")
        data.create_dataset("frame_ix", shape=(rows,), dtype="<i8", chunks=(1 << 16,),
                            compression="gzip")
        meta = fh.create_group("meta")
        meta.attrs["xy_unit"] = "nm"
        fh.create_group("decode").attrs["version"] = "0.10"
    return path


# ------------------------------------------------------------------------ result stores


def _small_stack(ny: int = 24, nx: int = 20):
    from chromarate._types import ResultStack
    from chromarate.export import CHANNELS

    rng = np.random.default_rng(0)
    channels = {c: rng.random((ny, nx)).astype(np.float32) for c in CHANNELS}
    mask = np.zeros((ny, nx), np.uint8)
    mask[4:-4, 4:-4] = 1
    prov = {"nucleus_id": 1, "config_hash": "0" * 16, "input": {"path": "x", "sha256": "0"}}
    return ResultStack(channels=channels, labels={"nucleus": mask}, pixel_size_nm=20.0,
                       origin_nm=(0.0, 0.0), provenance=prov)


def _rewrite_array(store: Path, key: str, shape: list[int], chunks: list[int]) -> None:
    meta_path = store / key / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["shape"] = shape
    meta["chunk_grid"]["configuration"]["chunk_shape"] = chunks
    meta_path.write_text(json.dumps(meta))


def _set_grid(store: Path, grid: dict | None) -> None:
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    if grid is None:
        meta["attributes"]["chromarate"].pop("grid", None)
    else:
        meta["attributes"]["chromarate"]["grid"] = grid
    meta_path.write_text(json.dumps(meta))


def store_huge_shape(folder: Path, *, name: str = "1.ome.zarr",
                     shape=(7, 10**9, 10**9), chunks=(1, 256, 256), keep_grid=False) -> Path:
    """A chromarate store whose image array declares ``shape`` (the default has ~1e14
    chunk keys); the labels follow it so that only the declared size is wrong."""
    from chromarate.io.zarr_store import write_result

    store = write_result(_small_stack(), folder / name)
    _rewrite_array(store, "0", list(shape), list(chunks))
    _rewrite_array(store, "labels/nucleus/0", list(shape[1:]), list(chunks[1:]))
    if not keep_grid:
        _set_grid(store, {"shape": list(shape[1:]), "channels": shape[0]})
    return store


def store_zero_chunks(folder: Path, *, name: str = "2.ome.zarr", side: int = 20000) -> Path:
    """A store of 7 x ``side``^2 float32 declared in 7 whole-plane chunks, each chunk file
    a copy of one tiny chunk -- small on disk, complete by file count, 11 GB decoded."""
    store = store_huge_shape(folder, name=name, shape=(7, side, side),
                             chunks=(1, side, side))
    for f in (store / "0" / "c").rglob("*"):
        if f.is_file():
            f.unlink()
    chunk = zlib.compress(bytes(64))
    for c in range(7):
        d = store / "0" / "c" / str(c) / "0"
        d.mkdir(parents=True, exist_ok=True)
        (d / "0").write_bytes(chunk)
    return store


# ------------------------------------------------------------------------ the corpus


#: name -> builder(folder) of every bomb, with the reader it is meant for.
BOMBS = {
    "tiff_30000x30000_zlib": (tiff_bomb, "density image"),
    "picasso_hdf5_3e8_rows": (hdf5_bomb, "localizations"),
    "decode_h5_3e8_rows": (decode_bomb, "localizations"),
    "smlm_member_1GiB": (smlm_zip_bomb, "localizations"),
    "smlm_declared_3e8_rows": (smlm_declared_bomb, "localizations"),
    "csv_gz_2GiB": (gzip_text_bomb, "localizations"),
    "store_7x1e9x1e9": (store_huge_shape, "result"),
    "store_7x20000x20000_zeros": (store_zero_chunks, "result"),
}


def read_one(kind: str, path: Path):
    """Read ``path`` as chromarate would for ``kind``; returns the exception type name (or
    "ok") and its message."""
    from chromarate.io.images import read_density_image
    from chromarate.io.localizations import read_localizations
    from chromarate.io.zarr_store import read_result

    try:
        if kind == "density image":
            read_density_image(path)
        elif kind == "result":
            read_result(path)
        else:
            read_localizations(path)
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        return type(exc).__name__, str(exc)
    return "ok", ""


_CHILD = r"""
import json, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import hostile_corpus as hc

def peak_kib():
    # VmHWM: peak RSS of this process's own memory (ru_maxrss would also count the
    # parent's memory at the fork that started this interpreter, on Linux)
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

before = peak_kib()
out = []
for name, path in json.loads(sys.argv[2]):
    kind = hc.BOMBS[name][1]
    err, msg = hc.read_one(kind, Path(path))
    out.append({"name": name, "error": err, "message": msg, "peak_kib": peak_kib()})
print(json.dumps({"baseline_kib": before, "results": out}))
"""


def measure(entries: list[tuple[str, Path]], *, read_limit: str | None = None) -> dict:
    """Read ``entries`` ((bomb name, path) pairs) in one fresh interpreter; returns its
    report: ``baseline_kib`` (peak RSS after imports) and per entry the error type, message
    and the peak RSS (KiB) reached so far."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    if read_limit is not None:
        env["CHROMARATE_READ_LIMIT"] = read_limit
    pre = ("import chromarate.io.localizations, chromarate.io.images, "
           "chromarate.io.zarr_store, h5py, tifffile, zarr, dask.array\n")
    proc = subprocess.run(
        [sys.executable, "-c", pre + _CHILD, str(Path(__file__).parent),
         json.dumps([(n, str(p)) for n, p in entries])],
        capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:  # pragma: no cover - a measurement script
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--read-limit", default=None, help="CHROMARATE_READ_LIMIT for the reads")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'bomb':<28} {'file':>10} {'declared':>12}  {'peak RSS':>10}  error")
        for name, (build, _kind) in BOMBS.items():
            folder = Path(tmp) / name
            folder.mkdir()
            path = build(folder)
            size = (sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                    if path.is_dir() else path.stat().st_size)
            rep = measure([(name, path)], read_limit=args.read_limit)
            r = rep["results"][0]
            declared = r["message"].split("would take ")[1].split(" of memory")[0] \
                if "would take" in r["message"] else "-"
            print(f"{name:<28} {size / MIB:>8.2f} MiB {declared:>12}  "
                  f"{r['peak_kib'] / 1024:>7.0f} MiB  {r['error']} "
                  f"(baseline {rep['baseline_kib'] / 1024:.0f} MiB)")


if __name__ == "__main__":  # pragma: no cover
    main()
