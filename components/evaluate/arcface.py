"""ArcFace IResNet backbone (insightface `arcface_torch` layout) for Face-S.

The module and parameter names follow insightface's `iresnet.py`, so its released `backbone.pth`
state dicts load unchanged (`load_arcface`). transformers has no ArcFace, hence this small module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

LAYERS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3)}


@dataclass
class IResNetConfig:
    layers: tuple[int, ...] = LAYERS["r100"]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    num_features: int = 512
    input_size: int = 112  # faces are 112 x 112; four stride-2 stages leave 7 x 7

    @classmethod
    def named(cls, name: str) -> IResNetConfig:
        if name not in LAYERS:
            raise ValueError(f"arcface network={name!r} unknown; expected one of {sorted(LAYERS)}")
        return cls(layers=LAYERS[name])


TINY_CONFIG = IResNetConfig(layers=(1, 1, 1, 1), widths=(8, 16, 16, 32), num_features=64)


class IBasicBlock(nn.Module):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    """Pre-activation ResNet with PReLU; BN -> flatten -> FC -> BN1d gives the 512-d identity embedding."""

    def __init__(self, config: IResNetConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0], eps=1e-05)
        self.prelu = nn.PReLU(w[0])
        inplanes = w[0]
        for i, (planes, blocks) in enumerate(zip(w, config.layers, strict=True)):
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-05)
            )
            layer = [IBasicBlock(inplanes, planes, 2, downsample)]
            layer += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.dropout = nn.Dropout(p=0.0)
        spatial = config.input_size // 16
        self.fc = nn.Linear(inplanes * spatial * spatial, config.num_features)
        self.features = nn.BatchNorm1d(config.num_features, eps=1e-05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 112, 112) in [-1, 1]
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))  # (N, num_features)


def load_arcface(path: Path, network: str = "r100") -> IResNet:
    """Load `backbone.pth` (insightface) or a file inside a folder; checks keys and shapes before copying."""
    file = path
    if path.is_dir():
        candidates = sorted(path.glob("*.pth")) + sorted(path.glob("*.pt"))
        if not candidates:
            raise FileNotFoundError(f"no ArcFace *.pth under {str(path)!r}")
        file = candidates[0]
    state = torch.load(file, map_location="cpu")
    model = IResNet(IResNetConfig.named(network))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise ValueError(
            f"ArcFace weights {str(file)!r} do not match {network}: missing={missing[:5]} "
            f"unexpected={unexpected[:5]} shape_mismatch={bad[:5]}"
        )
    model.load_state_dict(state)
    return model.eval()


def config_dict(config: IResNetConfig) -> dict:
    return asdict(config)
