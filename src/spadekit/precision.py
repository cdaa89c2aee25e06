"""Which low precision the hardware runs fast: bf16 on CUDA GPUs that support it and on CPUs with
AVX-512 BF16 / AMX; elsewhere bf16 is emulated on the CPU and runs many times slower than float32.

oneDNN's own answer (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) is True on every AVX-512 CPU,
including those without bf16 instructions, where it converts in software (about 15x slower than
float32 when training); so on Linux the CPU's flags decide, and oneDNN's answer is the fallback
elsewhere."""
from __future__ import annotations

from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags from /proc/cpuinfo's first `flags` line; None where there is no such file."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def fast_bf16(device: torch.device) -> bool:
    """True where bfloat16 compute is native on `device`."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    flags = cpu_flags()
    if flags is not None:
        return any(flag in flags for flag in NATIVE_BF16_FLAGS)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_training_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where it is native on `device`, else 'fp32'; other names unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if fast_bf16(device) else "fp32"
