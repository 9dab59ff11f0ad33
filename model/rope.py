"""3D rotary position embedding: the head dimension is split over time, height and width.

Angles are computed per forward in float64 and returned as fp32 (cos, sin) pairs (the fp32 cos/sin Wan computes),
so no buffer is saved in checkpoints or cast to bf16 with the model, and any grid size works. Eager rotates a
channel pair as one complex multiplication, as Wan2.1's own code does it: one kernel forward and one backward,
where the same rotation written with real cos/sin takes a dozen. Under torch.compile it is written with real
cos/sin, which inductor fuses (it generates no complex code).
"""

from __future__ import annotations

import torch
from torch import nn


def axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Split an even head dimension into even (t, h, w) parts; time takes the remainder."""
    spatial = 2 * (head_dim // 6)
    return head_dim - 2 * spatial, spatial, spatial


class RotaryEmbedding3D(nn.Module):
    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.dims = axis_dims(head_dim)
        self.theta = theta

    def forward(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        """Return the rotations as (cos, sin) pairs, [L, head_dim // 2, 2] fp32, for a t x h x w grid in raster
        order: the layout of complex numbers, so eager views them as complex64 for free."""
        angles = []
        for size, dim in zip(grid, self.dims):
            inv_freq = 1.0 / self.theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)
            angles.append(torch.outer(torch.arange(size, dtype=torch.float64, device=device), inv_freq))
        t, h, w = grid
        full = torch.cat(
            [
                angles[0][:, None, None, :].expand(t, h, w, -1),
                angles[1][None, :, None, :].expand(t, h, w, -1),
                angles[2][None, None, :, :].expand(t, h, w, -1),
            ],
            dim=-1,
        ).reshape(t * h * w, -1)
        return torch.stack([full.cos(), full.sin()], dim=-1).float()


def apply_rotary(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of x [B, L, heads, head_dim] by `rotations` [L, head_dim // 2, 2] (in fp32)."""
    if not torch.compiler.is_compiling():
        pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
        return torch.view_as_real(pairs * torch.view_as_complex(rotations)[:, None]).flatten(-2).type_as(x)
    real, imag = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = rotations[:, None].unbind(-1)
    return torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1).flatten(-2).type_as(x)


def frame_position_embedding(grid: tuple[int, int, int], dim: int, device: torch.device) -> torch.Tensor:
    """Fixed 2D sin-cos embedding of where a token sits in its frame, [t*h*w, dim], in raster order.

    RoPE only tells tokens how far apart they are; this tells each token where in the frame it is, as a
    fraction of the frame's height and width (so "upper third" means the same at every resolution). Half the
    channels encode the row, half the column, each as sin/cos pairs over geometrically spaced frequencies.
    """
    t, h, w = grid
    quarter = dim // 4
    freqs = 2.0 ** torch.arange(quarter, device=device, dtype=torch.float32) * torch.pi / 2
    rows = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    cols = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    row_angles, col_angles = torch.outer(rows, freqs), torch.outer(cols, freqs)
    row_emb = torch.cat([row_angles.sin(), row_angles.cos()], dim=-1)[:, None].expand(h, w, -1)
    col_emb = torch.cat([col_angles.sin(), col_angles.cos()], dim=-1)[None].expand(h, w, -1)
    frame = torch.cat([row_emb, col_emb], dim=-1)
    frame = torch.nn.functional.pad(frame, (0, dim - frame.shape[-1]))
    return frame[None].expand(t, h, w, dim).reshape(t * h * w, dim)
