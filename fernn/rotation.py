"""Rotation flows on C_N regular fields (escnn): batched rotations and the rotation FERNN core.

Conventions:

* A positive angle turns an image the way ``torch.rot90(img, k=1, dims=(-2, -1))`` does for +90 deg,
  about the frame centre ``((H - 1) / 2, (W - 1) / 2)``; pixels that come from outside are zero.
* A hidden state of ``hidden_channels`` regular C_N fields has ``hidden_channels * N`` channels in
  escnn's layout (the N orientation channels of each field consecutive). Rotating it by ``w`` rotates
  the grid by ``w`` and cycles each field's orientation axis forward by ``w * N / 360`` steps.

Spatial rotations are precomputed bilinear gathers (4 weighted ``gather`` calls for a whole batch of
different angles); source coordinates within 1e-6 of a pixel are snapped to it, so multiples of 90 deg
on square frames are exact permutations. Fractional orientation shifts use the band-limited (Fourier)
shift of the regular representation; the reference code truncates the shift to an integer instead
(``orientation_shift="truncate"`` reproduces that for comparison).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from fernn._escnn import require_escnn
from fernn.core import RecurrentCore
from fernn.fused import add_drive_activate

SNAP = 1e-6


def rotation_sampling(angles: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear sampling of rotations by ``angles`` (degrees, ``(N,)``).

    Returns ``(index, weight)``, both ``(N, 4, H * W)``: output pixel ``p`` of rotation ``n`` is
    ``sum_k weight[n, k, p] * src[index[n, k, p]]`` over the flattened source image.
    """
    theta = torch.deg2rad(angles.double())[:, None, None]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    y = torch.arange(height, dtype=torch.float64)[None, :, None] - cy
    x = torch.arange(width, dtype=torch.float64)[None, None, :] - cx
    src_y = torch.cos(theta) * y + torch.sin(theta) * x + cy
    src_x = -torch.sin(theta) * y + torch.cos(theta) * x + cx
    src_y = torch.where((src_y - src_y.round()).abs() < SNAP, src_y.round(), src_y)
    src_x = torch.where((src_x - src_x.round()).abs() < SNAP, src_x.round(), src_x)
    y0, x0 = src_y.floor(), src_x.floor()
    fy, fx = src_y - y0, src_x - x0
    indices, weights = [], []
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        indices.append((yy.clamp(0, height - 1) * width + xx.clamp(0, width - 1)).long().flatten(1))
        weights.append(torch.where(inside, w, torch.zeros_like(w)).flatten(1))
    return torch.stack(indices, 1), torch.stack(weights, 1)


def apply_sampling(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Apply :func:`rotation_sampling` output to ``x (N, *, H, W)``: item ``n`` gets rotation ``n``."""
    n, pixels = x.shape[0], x.shape[-2] * x.shape[-1]
    flat = x.reshape(n, -1, pixels)
    out = None
    for k in range(index.shape[1]):
        term = torch.gather(flat, 2, index[:, k, None, :].expand(n, flat.shape[1], pixels)) * weight[:, k, None, :]
        out = term if out is None else out + term
    return out.view(x.shape)


def rotate_batched(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate item ``n`` of ``x (N, *, H, W)`` by ``angles[n]`` degrees (zero fill)."""
    index, weight = rotation_sampling(angles.cpu(), x.shape[-2], x.shape[-1])
    return apply_sampling(x, index.to(x.device), weight.to(device=x.device, dtype=x.dtype))


def orientation_shift_matrix(steps: torch.Tensor, group_order: int, mode: str = "fourier") -> torch.Tensor:
    """``(K, N, N)`` matrices that cycle a regular C_N field forward by ``steps[k]`` (fractional) steps.

    ``field' = M @ field`` along the orientation axis. Integer steps give exact permutations. ``"fourier"``
    is the band-limited shift (for even N the Nyquist term is the real ``cos(pi (j - m - s))``);
    ``"truncate"`` rounds the steps towards zero first, as the reference code does.
    """
    steps = steps.double()
    if mode == "truncate":
        steps = steps.trunc()
    n = group_order
    j = torch.arange(n, dtype=torch.float64)
    delta = j[None, :, None] - j[None, None, :] - steps[:, None, None]
    total = torch.ones_like(delta)
    for k in range(1, (n - 1) // 2 + 1):
        total = total + 2 * torch.cos(2 * math.pi * k * delta / n)
    if n % 2 == 0:
        total = total + torch.cos(math.pi * delta)
    matrices = total / n
    integer = (steps - steps.round()).abs() < SNAP
    exact = torch.stack([torch.roll(torch.eye(n, dtype=torch.float64), int(s), dims=0) for s in steps.round().tolist()]) \
        if len(steps) else matrices
    return torch.where(integer[:, None, None], exact, matrices)


def rotate_fields(h: torch.Tensor, angles: torch.Tensor, group_order: int, mode: str = "fourier") -> torch.Tensor:
    """Rotate regular fields ``h (N, *, C * group_order, H, W)`` by ``angles (N,)`` degrees: spatial
    rotation plus the orientation cycle by ``angle * N / 360`` steps."""
    n = h.shape[0]
    matrices = orientation_shift_matrix(angles.cpu() * group_order / 360.0, group_order, mode)
    fields = h.reshape(n, -1, group_order, *h.shape[-2:])
    mixed = torch.einsum("nij,nfjhw->nfihw", matrices.to(device=h.device, dtype=h.dtype), fields)
    return rotate_batched(mixed.reshape(h.shape), angles)


class _SparseRows(torch.autograd.Function):
    """``matrix @ x`` for a fixed sparse CSR ``matrix``, whose backward is ``transposed @ grad``
    (``transposed`` precomputed in CSR, so both directions are row-parallel sparse products)."""

    @staticmethod
    def forward(ctx, x, matrix, transposed):  # noqa: D102 - autograd API
        ctx.transposed = transposed
        return _sparse_product(matrix, x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: D102 - autograd API
        return _sparse_product(ctx.transposed, grad), None, None


def _sparse_product(matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` in float32 written straight into a fresh output (``addmm`` with ``beta=0``
    and ``out=`` skips the zero-fill and copy of ``@``: 2-5x faster on the CPU)."""
    dense32 = dense.float().contiguous()
    out = dense32.new_empty(matrix.shape[0], dense32.shape[1])
    return torch.addmm(out, matrix, dense32, beta=0, out=out).to(dense.dtype)


def rotation_operator(angles: torch.Tensor, height: int, width: int, repeats: int,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The bilinear rotations of :func:`rotation_sampling` as one block-diagonal CSR matrix and its
    transpose: map ``m`` of ``repeats * len(angles)`` maps (velocity-minor) is rotated by
    ``angles[m % len(angles)]``; rows and columns index ``(map, pixel)`` of channels-last maps."""
    index, weight = rotation_sampling(angles, height, width)  # (V, 4, HW)
    pixels, maps = height * width, repeats * len(angles)
    offsets = torch.arange(maps, dtype=torch.long)[:, None, None] * pixels
    columns = (offsets + index.repeat(repeats, 1, 1)).transpose(1, 2).reshape(-1)
    values = weight.float().repeat(repeats, 1, 1).transpose(1, 2).reshape(-1)
    rows = torch.arange(0, 4 * maps * pixels + 1, 4, dtype=torch.long)
    size = (maps * pixels, maps * pixels)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        matrix = torch.sparse_csr_tensor(rows, columns, values, size)
        transposed = matrix.to_sparse_coo().t().coalesce().to_sparse_csr()
    return matrix.to(device), transposed.to(device)


class RotationCore(RecurrentCore):
    """Recurrent core of a rotation FERNN (:class:`fernn.core.RecurrentCore`); built by
    :meth:`fernn.RotationFlow.build_core`. Takes no per-sample offsets (self-motion needs a torus).

    Internal state layout: ``(B, V, H, W, C * N)`` contiguous (channels-last maps, which the CPU
    convolutions prefer). The escnn filters are expanded once per sequence (:meth:`weights`), not once
    per step. The transport of all ``B * V`` maps is one batched matmul over the orientation axis and
    one sparse product with a precomputed block-diagonal CSR rotation matrix (4 bilinear weights per
    output pixel), whose backward is the transposed CSR product. Convolutions zero-pad (rotations do not
    commute with circular padding); pad the frames so that content stays inside (the paper: 28 -> 40 px).
    """

    def __init__(self, flow, in_channels: int, hidden_channels: int, kernel_size: int, input_kernel_size: int,
                 activation: str, bias: bool, recurrence: str) -> None:
        super().__init__()
        escnn_nn, gspaces = require_escnn()

        if recurrence != "exact":
            raise ValueError("recurrence='learned' (G-RNN+) is defined for translation flows only; "
                             "use recurrence='exact' with RotationFlow")
        self.flow = flow
        self.group_order = flow.group_order
        self.num_velocities = flow.num_velocities
        self.state_channels = hidden_channels * flow.group_order
        self.activation_name = activation
        gspace = gspaces.rot2dOnR2(flow.group_order)
        trivial = escnn_nn.FieldType(gspace, in_channels * [gspace.trivial_repr])
        regular = escnn_nn.FieldType(gspace, hidden_channels * [gspace.regular_repr])
        self.conv_in = escnn_nn.R2Conv(trivial, regular, input_kernel_size, padding=input_kernel_size // 2, bias=bias)
        self.conv_rec = escnn_nn.R2Conv(regular, regular, kernel_size, padding=kernel_size // 2, bias=False)
        matrices = orientation_shift_matrix(flow.angular_velocities * flow.group_order / 360.0, flow.group_order,
                                            flow.orientation_shift)
        self.register_buffer("orientation", matrices.transpose(1, 2).float().contiguous(), persistent=False)
        self._operators: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def weights(self) -> tuple:
        """Expand the escnn filters once for a whole sequence: ``(w_in, b_in, w_rec)``."""
        w_in, b_in = self.conv_in.expand_parameters()
        w_rec, _ = self.conv_rec.expand_parameters()
        return w_in, b_in, w_rec

    def _operator(self, batch: int, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (batch, height, width, str(device))
        if key not in self._operators:
            if len(self._operators) >= 4:
                self._operators.clear()
            self._operators[key] = rotation_operator(self.flow.angular_velocities, height, width, batch, device)
        return self._operators[key]

    def drive(self, x: torch.Tensor, weights: tuple) -> torch.Tensor:
        """Lift ``x (N, C_in, H, W)`` to the regular fields, channels-last: ``(N, H, W, C * N_group)``."""
        w_in, b_in, _ = weights
        u = F.conv2d(x, w_in.to(x.dtype), None if b_in is None else b_in.to(x.dtype), padding=w_in.shape[-1] // 2)
        return u.permute(0, 2, 3, 1).contiguous()

    def transport(self, h: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Rotate channel ``v`` of ``h (B, V, H, W, C * N)`` by its angular velocity: orientation cycle,
        then spatial rotation. Returns ``(B * V, C * N, H, W)`` in channels-last memory. ``offsets`` must be
        ``None``: rotation flows on zero-padded frames take no per-sample translations."""
        if offsets is not None:
            self.reject_offsets(self.flow)
        batch, num_v, height, width, channels = h.shape
        fields = h.reshape(batch, num_v, height * width * channels // self.group_order, self.group_order)
        mixed = torch.matmul(fields, self.orientation.to(h.dtype)[None])
        matrix, transposed = self._operator(batch, height, width, h.device)
        rotated = _SparseRows.apply(mixed.reshape(-1, channels), matrix, transposed)
        return rotated.view(batch * num_v, height, width, channels).permute(0, 3, 1, 2)

    def recur(self, transported: torch.Tensor, drive: torch.Tensor, weights: tuple) -> torch.Tensor:
        """``act(drive + conv_rec(transported))`` as the internal state ``(B, V, H, W, C * N)``."""
        w_rec = weights[2].to(transported.dtype)
        rec = F.conv2d(transported, w_rec, padding=w_rec.shape[-1] // 2)
        return add_drive_activate(rec, drive, self.activation_name)
