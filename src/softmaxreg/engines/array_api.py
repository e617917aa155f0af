"""Array libraries: which one holds an array, and moving arrays between libraries and devices.

NumPy is the home library: data files, model files, checkpoints and the seeded generators are
NumPy's, and a NumPy array never leaves the fast path (model.py, objective.py). Every other
library (PyTorch, JAX, CuPy, array-api-strict) is reached through the array API standard
(array-api-compat) and imported only when an array of it or a `--backend` naming it is met, so
`import softmaxreg` and a NumPy run import none of them.

    xp, device = resolve("torch", "cuda:0")        # the namespace and device a backend name means
    W_dev = to_device(W, xp, device)               # a NumPy array moved there (same dtype, same values)
    W = to_numpy(W_dev)                            # and back, whatever library holds it
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["BACKENDS", "resolve", "namespace", "is_numpy", "to_numpy", "to_device", "device_of", "backend_name",
           "dtype_name"]

BACKENDS = ("numpy", "torch", "jax", "cupy", "array_api_strict")
"""Backend names accepted by `resolve`, `SoftmaxRegression.to` and `softmaxreg train --backend`."""

_FOREIGN = {"torch", "jax", "jaxlib", "cupy", "array_api_strict"}
"""Top-level modules of the array types of the other libraries (a JAX array's type lives in jaxlib)."""
_EXTRAS = {"torch": "softmaxreg[torch]", "jax": "softmaxreg[jax]", "cupy": "softmaxreg[cupy]",
           "array_api_strict": "array-api-strict"}


def is_numpy(*arrays) -> bool:
    """True when every argument is a NumPy array, scalar or None, or anything that is no
    library's array (lists): the fast path. Decided by the type's module, importing nothing."""
    return all(a is None or type(a).__module__.split(".")[0] not in _FOREIGN for a in arrays)



def namespace(*arrays):
    """The array API namespace of the arrays (array_api_compat.array_namespace), or numpy itself
    when they are all NumPy."""
    if is_numpy(*arrays):
        return np
    import array_api_compat
    return array_api_compat.array_namespace(*(a for a in arrays if a is not None and not isinstance(a, np.ndarray)))


def device_of(a):
    """The device an array lives on ("cpu" for NumPy)."""
    if is_numpy(a):
        return "cpu"
    import array_api_compat
    return array_api_compat.device(a)


def backend_name(xp) -> str:
    """"numpy", "torch", "jax", "cupy" or "array_api_strict" for a namespace."""
    if xp is np:
        return "numpy"
    import array_api_compat
    for name, test in (("torch", array_api_compat.is_torch_namespace), ("jax", array_api_compat.is_jax_namespace),
                       ("cupy", array_api_compat.is_cupy_namespace), ("numpy", array_api_compat.is_numpy_namespace)):
        if test(xp):
            return name
    return "array_api_strict" if xp.__name__.startswith("array_api_strict") else xp.__name__


def _import(backend: str):
    """The library's module; InvalidArgumentError (one line, what to install) when it is absent."""
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "numpy":
        return np
    if importlib.util.find_spec(backend) is None or importlib.util.find_spec("array_api_compat") is None:
        missing = backend if importlib.util.find_spec(backend) is None else "array_api_compat"
        raise InvalidArgumentError(f"backend: {backend} needs {missing}, which is not installed "
                                   f"(pip install {_EXTRAS[backend]})")
    # array_namespace() of each library's arrays: the compat wrappers of torch and cupy, jax.numpy
    # (the standard's namespace itself), array_api_strict
    return importlib.import_module({"torch": "array_api_compat.torch", "cupy": "array_api_compat.cupy",
                                    "jax": "jax.numpy"}.get(backend, backend))


def resolve(backend: str = "numpy", device: str | None = None):
    """(xp, device) for a backend name and a device string ("cpu", "cuda", "cuda:N"; None: the
    library's default). InvalidArgumentError with one line when the library or the device is absent."""
    xp = _import(backend)
    if device is None:
        return xp, None if backend != "numpy" else "cpu"
    text = str(device)
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()):
        raise InvalidArgumentError(f"device: expected cpu, cuda or cuda:N, got {text!r}")
    if backend in ("numpy", "array_api_strict"):
        if kind != "cpu":
            raise InvalidArgumentError(f"device: {backend} runs on the cpu only, got {text!r}")
        return xp, "cpu" if backend == "numpy" else xp.Device("CPU_DEVICE") if hasattr(xp, "Device") else None
    if backend == "torch":
        import torch
        if kind == "cuda" and (not torch.cuda.is_available() or int(index or 0) >= torch.cuda.device_count()):
            raise InvalidArgumentError(f"device: {text} is not available to torch "
                                       f"({torch.cuda.device_count()} CUDA devices found)")
        return xp, torch.device(text)
    if backend == "jax":
        import jax
        platform = "gpu" if kind == "cuda" else "cpu"
        try:
            found = jax.devices(platform)
        except RuntimeError:
            found = []
        if int(index or 0) >= len(found):
            raise InvalidArgumentError(f"device: {text} is not available to jax ({len(found)} {platform} devices found)")
        return xp, found[int(index or 0)]
    import cupy                                                       # backend == "cupy"
    if kind == "cpu":
        raise InvalidArgumentError(f"device: cupy runs on CUDA devices only, got {text!r}")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        count = 0
    if int(index or 0) >= count:
        raise InvalidArgumentError(f"device: {text} is not available to cupy ({count} CUDA devices found)")
    return xp, cupy.cuda.Device(int(index or 0))


def to_numpy(a) -> np.ndarray:
    """A NumPy array with the values of `a` (the same object when it already is one)."""
    if a is None or isinstance(a, np.ndarray):
        return a
    if is_numpy(a):
        return np.asarray(a)
    module = type(a).__module__.split(".")[0]
    if module == "torch":
        return a.detach().cpu().numpy()
    if module == "cupy":
        return a.get()
    if module == "array_api_strict":
        return np.from_dlpack(a)
    return np.asarray(a)                                              # jax


def to_device(a, xp, device=None, dtype=None):
    """`a` (an array of any library) as an array of namespace `xp` on `device`, optionally cast to
    `dtype` (a NumPy dtype or xp's). NumPy to NumPy returns `a` itself when nothing changes."""
    if a is None:
        return None
    if xp is np:
        a = to_numpy(a)
        return a if dtype is None else a.astype(dtype, copy=False)
    if not is_numpy(a) and namespace(a) is not xp:
        a = to_numpy(a)                                               # across libraries: through the host
    if dtype is not None:
        dtype = getattr(xp, dtype_name(dtype))
    return xp.asarray(a, dtype=dtype, device=device)


def dtype_name(dtype) -> str:
    """"float32" or "float64" (any library's dtype object)."""
    return str(dtype).rsplit(".", 1)[-1].removesuffix("'>")
