"""Which low precision the hardware runs fast: bf16 on CUDA GPUs that support it and on CPUs with
AVX-512 BF16 / AMX; elsewhere bf16 is emulated on the CPU and runs many times slower than float32."""
from __future__ import annotations

import torch


def fast_bf16(device: torch.device) -> bool:
    """True where bfloat16 compute is native on `device`."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_training_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where it is native on `device`, else 'fp32'; other names unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if fast_bf16(device) else "fp32"
