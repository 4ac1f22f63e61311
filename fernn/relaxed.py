"""Approximately flow-equivariant recurrence: relaxed weight sharing across velocity channels.

A strict FERNN convolves every velocity channel with the same recurrent kernel ``K``; that sharing is what makes
it exactly flow equivariant. The relaxed recurrence (after Wang, Walters and Yu, *Approximately Equivariant
Networks for Imperfectly Symmetric Dynamics*, ICML 2022) gives velocity channel ``v`` its own combination of
``L`` shared filter banks::

    K(v) = sum_l w_l(v) K_l

with the combination weights ``w (V, L)`` learnable and **initialised equal for every v**, so an untrained model is
exactly flow equivariant; training may move them apart where the data's flows are imperfect (a bounce, a border, a
paddle under control), and the :func:`relaxation_penalty` ``mean |w(v) - w(v')|`` over neighbouring velocities
(``|v - v'|_1 = 1``), added to the loss with a weight ``alpha``, keeps them close where nothing pays for the
difference.

Cost: the ``V`` kernels are combined once per sequence (one small ``einsum``), and the recurrent convolution of all
velocity channels is one grouped convolution with ``V`` groups: the same multiply-adds as the strict step. A relaxed
core keeps its state in the grouped convolution's layout, ``(B, H, W, V, C)`` in memory (the velocity axis inside
each pixel), so the transport's row copy writes the convolution's input and the convolution writes the next state,
with no copy between layouts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fernn._validation import check_int


def velocity_neighbours(velocities: torch.Tensor) -> torch.Tensor:
    """The pairs ``(i, j)``, ``i < j``, of velocities one step apart on the grid (``|v_i - v_j|_1 = 1``):
    a LongTensor ``(P, 2)`` (``P = 0`` for a single velocity)."""
    distance = (velocities[:, None] - velocities[None]).abs().sum(-1)
    first, second = torch.nonzero(torch.triu(distance == 1, diagonal=1), as_tuple=True)
    return torch.stack([first, second], 1)


class RelaxedVelocityConv(nn.Module):
    """The recurrent convolution of a relaxed FERNN: velocity channel ``v`` convolved with ``sum_l w_l(v) K_l``.

    Args:
        velocities: LongTensor ``(V, 2)`` of the flow's ``(vx, vy)`` (defines the neighbours of the penalty).
        channels: ``C``, the state channels (the convolution is ``C -> C``).
        kernel_size: odd ``k``; the input arrives padded by ``k // 2`` (the transport's halo), so the
            convolution pads nothing.
        banks: ``L >= 1`` filter banks.

    Attributes:
        banks: ``(L, C, C, k, k)`` the shared filters, each initialised as ``nn.Conv2d`` initialises its weight
            and scaled by ``1 / sqrt(L)``, so that ``sum_l K_l`` starts with a plain convolution's variance.
        combination: ``(V, L)`` the weights ``w_l(v)``, all ones at initialisation.
    """

    def __init__(self, velocities: torch.Tensor, channels: int, kernel_size: int, banks: int) -> None:
        super().__init__()
        self.num_banks = check_int("relaxed", banks, minimum=1)
        self.num_velocities, self.channels = int(velocities.shape[0]), int(channels)
        self.banks = nn.Parameter(torch.empty(self.num_banks, channels, channels, kernel_size, kernel_size))
        for bank in self.banks.data:
            nn.init.kaiming_uniform_(bank, a=math.sqrt(5))  # nn.Conv2d's initialisation of its weight
        self.banks.data.div_(math.sqrt(self.num_banks))
        self.combination = nn.Parameter(torch.ones(self.num_velocities, self.num_banks))
        self.register_buffer("neighbours", velocity_neighbours(velocities.long()), persistent=False)

    def kernels(self) -> torch.Tensor:
        """The per-velocity kernels ``K(v) = sum_l w_l(v) K_l`` stacked for a grouped convolution:
        ``(V * C, C, k, k)``."""
        kernels = torch.einsum("vl,loikj->voikj", self.combination, self.banks)
        return kernels.reshape(self.num_velocities * self.channels, *self.banks.shape[2:])

    def forward(self, transported: torch.Tensor, kernels: torch.Tensor | None = None) -> torch.Tensor:
        """Convolve every velocity channel with its own kernel: one grouped convolution with ``V`` groups.

        Args:
            transported: ``(B, H + 2p, W + 2p, V, C)`` contiguous moved and padded maps in the grouped layout (the
                output of a relaxed :meth:`fernn.translation.TranslationCore.transport`): as a channels-last
                ``(B, V * C, H + 2p, W + 2p)`` tensor it is the grouped convolution's input, without a copy.
            kernels: :meth:`kernels`, computed once per sequence (``None``: computed here).

        Returns:
            ``(B, V * C, H, W)`` channels-last (memory ``(B, H, W, V, C)``).
        """
        kernels = self.kernels() if kernels is None else kernels
        batch, padded_h, padded_w = transported.shape[:3]
        grouped = transported.view(batch, padded_h, padded_w, -1).permute(0, 3, 1, 2)
        return F.conv2d(grouped, kernels.to(transported.dtype), groups=self.num_velocities)

    def penalty(self) -> torch.Tensor:
        """``mean |w(v) - w(v')|`` over neighbouring velocities and banks (0 for a single velocity): a scalar."""
        if self.neighbours.shape[0] == 0:
            return self.combination.sum() * 0.0
        first, second = self.neighbours.unbind(1)
        return (self.combination[first] - self.combination[second]).abs().mean()

    def extra_repr(self) -> str:
        return f"velocities={self.num_velocities}, channels={self.channels}, banks={self.num_banks}"


def relaxed_convs(module: nn.Module) -> list[RelaxedVelocityConv]:
    """Every :class:`RelaxedVelocityConv` inside ``module`` (a model, an SB3 policy)."""
    return [m for m in module.modules() if isinstance(m, RelaxedVelocityConv)]


def relaxation_penalty(module: nn.Module) -> torch.Tensor:
    """The sum of :meth:`RelaxedVelocityConv.penalty` over ``module``'s relaxed recurrences: the term a trainer adds
    to the loss with a weight ``alpha`` (a zero scalar when the module has none)."""
    terms = [conv.penalty() for conv in relaxed_convs(module)]
    if not terms:
        parameter = next(module.parameters(), None)
        return torch.zeros((), device=None if parameter is None else parameter.device)
    return torch.stack(terms).sum()


def combination_weights(module: nn.Module) -> list[torch.Tensor]:
    """The combination weights ``w (V, L)`` of every relaxed recurrence of ``module``, detached, on the CPU."""
    return [conv.combination.detach().cpu() for conv in relaxed_convs(module)]


def check_relaxation(relaxed: object, alpha: object, flow: object) -> tuple[int, float]:
    """Validate a relaxed recurrence's settings for ``flow``: ``relaxed`` an integer ``L >= 0`` (0: exact sharing),
    ``alpha`` a finite number ``>= 0``, and, when ``L >= 1``, a translation flow with more than one velocity.
    Returns ``(L, alpha)``; raises ``ValueError``/``TypeError`` naming what is supported."""
    from fernn.flows import TranslationFlow

    banks = check_int("relaxed", relaxed, minimum=0)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"relax_alpha must be a finite number >= 0 (the weight of the relaxation penalty); got {alpha!r}")
    if banks:
        if not isinstance(flow, TranslationFlow):
            raise ValueError(f"relaxed weight sharing is available for translation flows (fernn.TranslationFlow) only; "
                             f"got {type(flow).__name__}")
        if flow.num_velocities < 2:
            raise ValueError("relaxed weight sharing relaxes the sharing across velocity channels: it needs a flow with "
                             "more than one velocity (vmax >= 1); this one has a single velocity channel")
    return banks, float(alpha)
