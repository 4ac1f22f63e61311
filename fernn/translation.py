"""The translation-flow recurrence (the hot path), on a channels-last hidden state.

Internal state layout: ``(B, V, H, W, C)`` contiguous -- every velocity channel's image is
channels-last, which the CPU convolution kernels prefer (about 1.25x here).

One step is
    hp = transport(h)            # S_v h[v] for every v, circularly padded: ONE row copy
    h  = act(u + conv_rec(hp))   # conv_rec has padding=0: the row copy did the circular padding;
                                 # the sum and act in place on conv_rec's output (fernn.fused)

The row copy is an ``index_select`` of whole C-channel pixel rows of the channels-last state (one
index per output pixel, not per value), and its backward folds the halo and applies the inverse shift
(:func:`fernn.shifts.shift_pad_maps`), so the per-velocity shift costs what the circular padding alone
would cost, forward and backward. ``recurrence="learned"``
replaces the exact shift by a learned depthwise kernel per velocity channel (the G-RNN+ baseline); ``relaxed=L``
gives each velocity channel its own combination of L recurrent filter banks (:mod:`fernn.relaxed`, an
approximately equivariant FERNN that starts exactly equivariant).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fernn.core import RecurrentCore
from fernn.flows import TranslationFlow
from fernn.fused import add_drive_activate, add_drive_activate_grouped
from fernn.relaxed import RelaxedVelocityConv
from fernn.shifts import grouped_shifted_rows, shift_pad_grouped, shift_pad_maps, shifted_rows


class TranslationCore(RecurrentCore):
    """Recurrent core of a translation FERNN (:class:`fernn.core.RecurrentCore`); built by
    :meth:`TranslationFlow.build_core`. Takes per-sample offsets (self-motion)."""

    supports_offsets = True

    def __init__(self, flow: TranslationFlow, in_channels: int, hidden_channels: int, kernel_size: int,
                 input_kernel_size: int, activation: str, bias: bool, recurrence: str, relaxed: int = 0) -> None:
        super().__init__()
        self.num_velocities = flow.num_velocities
        self.state_channels = hidden_channels
        self.pad = kernel_size // 2
        self.activation_name = activation
        self.conv_in = nn.Conv2d(in_channels, hidden_channels, input_kernel_size, padding=input_kernel_size // 2,
                                 padding_mode="circular", bias=bias)
        if relaxed and recurrence == "learned":
            raise ValueError("relaxed weight sharing relaxes the exact flow's recurrence; recurrence='learned' (G-RNN+) "
                             "has no exact flow to relax: use one of them")
        if relaxed:  # velocity channel v convolved with sum_l w_l(v) K_l (fernn.relaxed)
            self.relaxed_conv = RelaxedVelocityConv(flow.velocities, hidden_channels, kernel_size, relaxed)
        else:
            self.conv_rec = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, padding=0, bias=False)
        self.relaxed = int(relaxed)
        self.register_buffer("velocities", flow.velocities.clone(), persistent=False)
        self.learned = recurrence == "learned"
        if self.learned:
            size = 2 * flow.vmax + 1
            self.shift_kernels = nn.Parameter(torch.empty(flow.num_velocities, 1, size, size))
            nn.init.kaiming_normal_(self.shift_kernels, mode="fan_out", nonlinearity="linear")
        self._index_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _transport_rows(self, batch: int, height: int, width: int, device: torch.device,
                        offsets: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and inverse row indices of :func:`fernn.shifts.shift_pad_maps` for all ``(b, v)`` maps
        (cached when there are no per-item offsets)."""
        key = (batch, height, width, str(device))
        if offsets is None and key in self._index_cache:
            return self._index_cache[key]
        own = torch.zeros_like(self.velocities) if self.learned else self.velocities
        shifts = own.to(device)[None].expand(batch, -1, -1)
        if offsets is not None:
            shifts = shifts + offsets.to(device, torch.long)[:, None]
        shifts = shifts.reshape(-1, 2)
        if self.relaxed:
            rows = grouped_shifted_rows(shifts, batch, height, width, self.pad)
        else:
            rows = (shifted_rows(shifts, height, width, self.pad), shifted_rows(-shifts, height, width))
        if offsets is None:
            if len(self._index_cache) >= 8:
                self._index_cache.clear()
            self._index_cache[key] = rows
        return rows

    def weights(self) -> torch.Tensor | None:
        """Per-sequence weight preparation: the relaxed recurrence's per-velocity kernels
        (:meth:`fernn.relaxed.RelaxedVelocityConv.kernels`), ``None`` for a plain convolution."""
        return self.relaxed_conv.kernels() if self.relaxed else None

    def drive(self, x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """Input term ``conv_in(x)``: ``(N, C_in, H, W)`` -> channels-last ``(N, H, W, C)``."""
        u = self.conv_in(x.contiguous(memory_format=torch.channels_last))
        return u.permute(0, 2, 3, 1).contiguous()

    def transport(self, h: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Move every velocity channel one step and pad circularly.

        Args:
            h: internal state ``(B, V, H, W, C)``.
            offsets: optional integer ``(B, 2)`` extra shift ``(sx, sy)`` per batch item, added to every
                velocity channel's own shift (the world model's ``-action``): still ONE row copy.

        Returns:
            ``(B * V, C, H + 2p, W + 2p)`` in channels-last memory: ``S_{offset} S_v h[v]`` padded by
            ``p = k // 2``. A relaxed core returns the grouped layout ``(B, H + 2p, W + 2p, V, C)`` instead (its
            state's own layout; read it through :meth:`advected`).
        """
        batch, num_v, height, width, channels = h.shape
        if self.learned:
            h = self._learned_shift(h)
        rows = self._transport_rows(batch, height, width, h.device, offsets)
        if self.relaxed:  # the state's memory is (B, H, W, V, C) already, unless it came from elsewhere
            return shift_pad_grouped(h.permute(0, 2, 3, 1, 4).contiguous(), rows, self.pad)
        moved = shift_pad_maps(h.reshape(batch * num_v, height, width, channels), None, self.pad, rows)
        return moved.permute(0, 3, 1, 2)

    def _learned_shift(self, h: torch.Tensor) -> torch.Tensor:
        """Velocity channel ``v`` convolved (circularly) with its own learned kernel, the same for its C
        channels: C goes to the batch axis, so it is one channels-last depthwise convolution with V groups
        (V * C groups in NCHW took 6x longer, mostly in the CPU backward)."""
        batch, num_v, height, width, channels = h.shape
        planes = h.permute(0, 4, 1, 2, 3).reshape(batch * channels, num_v, height, width)
        size = self.shift_kernels.shape[-1]
        planes = F.pad(planes, [size // 2] * 4, mode="circular").contiguous(memory_format=torch.channels_last)
        moved = F.conv2d(planes, self.shift_kernels.to(h.dtype), groups=num_v)
        return moved.view(batch, channels, num_v, height, width).permute(0, 2, 3, 4, 1).contiguous()

    def recur(self, transported: torch.Tensor, drive: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """``act(drive + conv_rec(transported))``: the new internal state ``(B, V, H, W, C)``.

        Args:
            transported: output of :meth:`transport`.
            drive: ``(B, H, W, C)`` input term, shared by all velocity channels.
            weights: :meth:`weights`.
        """
        if self.relaxed:
            return add_drive_activate_grouped(self.relaxed_conv(transported, weights), drive, self.activation_name,
                                              self.num_velocities)
        return add_drive_activate(self.conv_rec(transported), drive, self.activation_name)

    def moved_maps(self, transported: torch.Tensor, batch: int) -> torch.Tensor:
        """:meth:`fernn.core.RecurrentCore.moved_maps`, also for the grouped layout ``(B, H', W', V, C)`` of a
        relaxed core."""
        return transported.permute(0, 3, 1, 2, 4) if self.relaxed else super().moved_maps(transported, batch)
