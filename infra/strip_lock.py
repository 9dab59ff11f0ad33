"""Drop torch and its CUDA wheels from a compiled lock: torch is installed first from pip's CPU wheel."""

import re
import sys

HEADER = (
    "# Pinned, mutually compatible versions for Python 3.11 (x86_64). torch is installed first\n"
    "# from pip (torch==2.13.0, the CPU wheel) and is left out here, with its CUDA dependencies.\n"
    "# Regenerate with: make lock\n"
)


def is_torch_runtime(name: str) -> bool:
    if name in {"torch", "triton"} or name.startswith("cuda-"):
        return True
    return name.startswith("nvidia-") and name != "nvidia-pytriton"


def main(src: str, dst: str) -> None:
    kept, skipping = [], False
    for line in open(src).read().splitlines():
        if line and not line.startswith(" "):
            skipping = is_torch_runtime(re.split(r"[=<> ]", line)[0].lower())
        if not skipping:
            kept.append(line)
    with open(dst, "w") as f:
        f.write(HEADER + "\n".join(kept) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
