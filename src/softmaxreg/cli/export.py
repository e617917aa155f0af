"""`softmaxreg export RUN_DIR|MODEL_FILE --format onnx --out model.onnx`: a trained model as a file
other runtimes serve (onnx_export.export_onnx); a run folder stands for its model.safetensors."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelFormatError
from .run_folder import FINAL_FILES

MODEL_FILE = FINAL_FILES[0]          # model.safetensors


def model_path(source: str) -> Path:
    """The model file named by SOURCE: the file itself, or a run folder's model.safetensors."""
    path = Path(source)
    if path.is_dir():
        path = path / MODEL_FILE
        if not path.is_file():
            raise ModelFormatError(f"{source}: a folder without {MODEL_FILE}; expected a run folder of "
                                   "softmaxreg train (finished) or a model file")
    return path


def export_command(args) -> int:
    from ..model_file import load_model
    from ..onnx_export import export_onnx

    model = load_model(model_path(args.source))
    out = export_onnx(model, args.out, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
