"""Resolution of compute devices and dtypes; the only torch import outside ``fit/``."""

from __future__ import annotations

from .errors import DeviceError

__all__ = ["check_device", "resolve_device", "resolve_dtype", "describe_device", "spread_device"]


def resolve_device(spec: str = "auto"):
    """Turn a device string into a ``torch.device``.

    Parameters
    ----------
    spec : str
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceError
        If an explicitly requested device is not available or the name is unknown.
    """
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = _parse_device(spec)
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} requested but CUDA is not available here")
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device("cuda", index)
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"device {spec!r} requested but MPS is not available here")
        return dev
    raise DeviceError(f"unsupported device type {dev.type!r}; use auto, cpu, cuda, cuda:N or mps")


def _parse_device(spec: str):
    """``torch.device(spec)``, or DeviceError naming the spec (not "auto")."""
    import torch

    try:
        return torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from exc


def check_device(spec: str | None, *, here: bool = True) -> None:
    """Refuse a device name before any work is done.

    Parameters
    ----------
    spec : str or None
        A ``--device`` value (None: the config's, not checked here; "auto" always resolves).
    here : bool
        The fits run on this machine: the device must exist here
        (:func:`resolve_device`). False (a remote dask scheduler): only the name is checked,
        since the workers' devices are not visible from here.

    Raises
    ------
    DeviceError
        An unknown name, or (``here``) a device this machine does not have.

    Examples
    --------
    >>> check_device("cpu")
    >>> check_device("banana", here=False)
    Traceback (most recent call last):
    ...
    chromarate.errors.DeviceError: unknown device 'banana'; use auto, cpu, cuda, cuda:N or mps
    """
    name = (spec or "auto").strip().lower()
    if name == "auto":  # always resolves (and must not start CUDA in a pool's parent)
        return
    if here:
        resolve_device(name)
        return
    dev = _parse_device(name)
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device type {dev.type!r}; use auto, cpu, cuda, cuda:N or mps")


def resolve_dtype(name: str):
    """Map "float32"/"float64" to the torch dtype."""
    import torch

    table = {"float32": torch.float32, "float64": torch.float64}
    if name not in table:
        raise DeviceError(f"unsupported dtype {name!r}; use float32 or float64")
    return table[name]


def describe_device(device) -> str:
    """Human-readable device name, e.g. ``"cuda:0 (NVIDIA H200)"`` or ``"cpu"``."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def spread_device(spec: str | None, index: int) -> str | None:
    """The device of worker number ``index`` of a pool sharing one machine.

    ``"auto"`` (or None) becomes ``"cuda:<index mod n>"`` when ``n >= 2`` CUDA devices are
    visible, so that each worker of a local pool has a GPU of its own; any other spec, and
    ``"auto"`` with fewer than two GPUs, is returned unchanged.

    Examples
    --------
    >>> spread_device("cpu", 3)
    'cpu'
    """
    if (spec or "auto").strip().lower() != "auto":
        return spec
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{index % n}" if n >= 2 else spec
