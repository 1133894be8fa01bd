"""ResNets with torchvision's parameter names, so torchvision weights load without torchvision.

`resnet18`, `resnet50`: torchvision's architectures (the `fc` classifier omitted: load a
torchvision state dict with `load_torchvision_state_dict`). `resnet18_light`: ResNet-18 at half
width (32-64-128-256 channels), small enough to train from scratch on 2 CPU cores.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from contextrast.models.backbones.base import Backbone
from contextrast.models.registry import BACKBONES


class BasicBlock(nn.Module):
    expansion = 1
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))  # forward applies bn(conv(x)): foldable for inference

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # stride on 3×3, as torchvision
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(Backbone):
    """ResNet encoder returning the outputs of layer1..layer4 (strides 4, 8, 16, 32)."""

    conv_bn_pairs = (("conv1", "bn1"),)  # the stem

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        width: int = 64,
        in_channels: int = 3,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, width, layers[0], 1)
        self.layer2 = self._make_layer(block, width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], 2)
        self.channels = tuple(width * m * block.expansion for m in (1, 2, 4, 8))  # type: ignore[assignment]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each residual branch (Goyal et al.): helps from-scratch training.
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f1, f2, f3, f4]


def load_torchvision_state_dict(model: ResNet, state_dict: Mapping[str, Tensor]) -> None:
    """Load a torchvision ResNet state dict (e.g. from `torch.load(..., weights_only=True)`),
    dropping the ImageNet classifier `fc.*`; any other missing or unexpected key is an error."""
    filtered = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    model.load_state_dict(filtered, strict=True)


@BACKBONES.register("resnet18", "ResNet-18 (torchvision layout: its weights load)")
def resnet18(in_channels: int = 3) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), 64, in_channels)


@BACKBONES.register("resnet18_light", "ResNet-18 at half width (32-64-128-256): trains from scratch on a CPU")
def resnet18_light(in_channels: int = 3) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), 32, in_channels)


@BACKBONES.register("resnet50", "ResNet-50 (torchvision layout: its weights load)")
def resnet50(in_channels: int = 3) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), 64, in_channels)
