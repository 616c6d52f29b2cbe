"""Reference DDU ResNet in plain PyTorch, the structure ncood's checkpoints load into.

Used by ncood's interop test (load an ncood checkpoint with `load_state_dict(strict=True)` and
compare logits) and by the training benchmark (the same model and step in PyTorch). Follows DDU's
net/resnet.py: CIFAR-form ResNet, "mod" = leaky ReLU + avg-pool/zero-pad shortcuts, spectral
normalisation of the convolution operator (spectral_norm_conv) with one power iteration per
training step, optional L2-normalised features before the linear head. With sn=False the model is a
plain ResNet whose parameter names match ncood's exported (effective-weight) checkpoints.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class SNConv(nn.Module):
    """3x3 / 1x1 conv with DDU spectral normalisation on the operator at input size `hw`."""

    def __init__(self, c_in, c_out, k, stride, hw, coeff=3.0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)
        self.stride, self.pad, self.coeff, self.matrix = stride, k // 2, coeff, k == 1
        out_hw = (hw + 2 * (k // 2) - k) // stride + 1
        self.op = 1 - hw % 2 if stride > 1 else 0
        u_shape = (c_out,) if self.matrix else (1, c_out, out_hw, out_hw)
        v_shape = (c_in,) if self.matrix else (1, c_in, hw, hw)
        self.register_buffer("u", F.normalize(torch.randn(u_shape).flatten(), dim=0).view(u_shape))
        self.register_buffer("v", F.normalize(torch.randn(v_shape).flatten(), dim=0).view(v_shape))

    def forward(self, x):
        w = self.conv.weight
        if self.matrix:
            w2 = w.view(w.shape[0], -1)
            if self.training:
                with torch.no_grad():
                    v = F.normalize(w2.t() @ self.u, dim=0)
                    self.u.copy_(F.normalize(w2 @ v, dim=0))
                    self.v.copy_(v)
            sigma = self.u @ (w2 @ self.v)
        else:
            if self.training:
                with torch.no_grad():
                    v = F.conv_transpose2d(self.u, w, stride=self.stride, padding=self.pad, output_padding=self.op)
                    v = v / v.norm().clamp_min(1e-12)
                    u = F.conv2d(v, w, stride=self.stride, padding=self.pad)
                    self.u.copy_(u / u.norm().clamp_min(1e-12))
                    self.v.copy_(v)
            sigma = (self.u * F.conv2d(self.v, w, stride=self.stride, padding=self.pad)).sum()
        w = w / torch.clamp(sigma / self.coeff, min=1.0)
        return F.conv2d(x, w, stride=self.stride, padding=self.pad)


def conv(c_in, c_out, k, stride, hw, sn):
    return SNConv(c_in, c_out, k, stride, hw) if sn else nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)


class AvgPoolShortcut(nn.Module):
    def __init__(self, stride, extra):
        super().__init__()
        self.stride, self.extra = stride, extra

    def forward(self, x):
        k = 1 if x.shape[2] % 2 else self.stride
        x = F.avg_pool2d(x, k, self.stride)
        pad = torch.zeros(x.shape[0], self.extra, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        return torch.cat((x, pad), 1)


class Block(nn.Module):
    def __init__(self, c_in, planes, stride, hw, bottleneck, mod, sn):
        super().__init__()
        exp = 4 if bottleneck else 1
        out_hw = (hw - 1) // stride + 1
        if bottleneck:
            specs = [(c_in, planes, 1, 1, hw), (planes, planes, 3, stride, hw), (planes, planes * 4, 1, 1, out_hw)]
        else:
            specs = [(c_in, planes, 3, stride, hw), (planes, planes, 3, 1, out_hw)]
        for i, (a, b, k, s, h) in enumerate(specs, 1):
            setattr(self, f"conv{i}", conv(a, b, k, s, h, sn))
            setattr(self, f"bn{i}", nn.BatchNorm2d(b))
        self.n = len(specs)
        self.act = F.leaky_relu if mod else F.relu
        c_out = planes * exp
        if stride == 1 and c_in == c_out:
            self.shortcut = nn.Sequential()
        elif mod:
            self.shortcut = AvgPoolShortcut(stride, c_out - c_in)
        else:
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride, hw, sn), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = x
        for i in range(1, self.n + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.n:
                out = self.act(out)
        return self.act(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, arch="resnet18", width=16, channels=1, side=28, classes=10, mod=True, l2=False, sn=True):
        super().__init__()
        bottleneck = arch == "resnet50"
        blocks = [3, 4, 6, 3] if bottleneck else [2, 2, 2, 2]
        exp = 4 if bottleneck else 1
        self.l2, self.act = l2, F.leaky_relu if mod else F.relu
        self.conv1 = conv(channels, width, 3, 1, side, sn)
        self.bn1 = nn.BatchNorm2d(width)
        c_in, hw = width, side
        for stage, n in enumerate(blocks):
            layers = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(Block(c_in, width << stage, stride, hw, bottleneck, mod, sn))
                c_in, hw = (width << stage) * exp, (hw - 1) // stride + 1
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layers))
        self.fc = nn.Linear(8 * width * exp, classes)

    def features(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        for stage in range(1, 5):
            out = getattr(self, f"layer{stage}")(out)
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x):
        f = self.features(x)
        return self.fc(F.normalize(f, dim=1) if self.l2 else f)
