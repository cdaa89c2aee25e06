"""`spadekit export-onnx MODEL OUT.onnx`."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("export-onnx", help="export a model's generator to ONNX (dynamic batch)")
    parser.add_argument("model", help="model folder or bundled name (default)")
    parser.add_argument("out", help="output .onnx file")
    parser.add_argument("--opset", type=int, default=17)
    parser.set_defaults(func=run)


def run(args) -> int:
    from spadekit.inference import resolve_model_path
    from spadekit.interop.onnx import export_onnx
    from spadekit.models import SPADEModel

    model = SPADEModel.from_pretrained(resolve_model_path(args.model))
    path = export_onnx(model, args.out, opset=args.opset)
    gen = model.config
    h, w = gen.output_size
    inputs = f"semantic [N,{gen.semantic_channels},{h},{w}]" + (f", z [N,{gen.z_dim}]" if gen.use_vae else "")
    print(f"wrote {path} (inputs: {inputs}; output: image [N,3,{h},{w}] in [-1,1])")
    return 0
