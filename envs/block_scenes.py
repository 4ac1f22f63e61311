"""The state and rules of the Dynamic Block World (FloWM's 3-D benchmark), for N scenes at once.

A square room of ``room_size`` x ``room_size`` cells, cell ``(x, y)`` for integers ``0 <= x, y < room_size``, with
walls around it (the wall faces are at ``-0.5`` and ``room_size - 0.5``). Blocks stand on cells, each moving one
cell per step along one cardinal direction; a move that would leave the room reverses the block's velocity and
moves it the other way instead (a bounce). Blocks may overlap each other and the agent. The agent stands on a
cell facing one of four headings, ``DIRECTIONS[agent_dir]`` in ``(x, y)`` cells (``x`` east, ``y`` north, so turning
left is counter-clockwise: ``agent_dir + 1``).

Everything is a tensor over scenes (and blocks) on the env's device; a step is a handful of batched ops. Scenes
hold ``max_blocks`` slots; the ``active`` mask says which hold a block in this episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fernn.egocentric import FORWARD, MOTION_STEPS, MOTIONS, STAY, TURN_LEFT, TURN_RIGHT  # noqa: F401 (re-exported)

#: the palette, in this order; ``block_color`` in ``info`` indexes it
BLOCK_COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
#: RGB of :data:`BLOCK_COLORS` in [0, 1]
BLOCK_RGB = ((0.86, 0.13, 0.13), (0.16, 0.70, 0.22), (0.16, 0.32, 0.88), (0.58, 0.22, 0.78), (0.93, 0.82, 0.12),
             (0.50, 0.50, 0.50))
#: headings ``agent_dir = 0, 1, 2, 3`` as ``(x, y)`` cell steps: east, north, west, south
DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))
#: ``Discrete(4)`` actions: the egocentric map's motions (``fernn.egocentric``), their names and their ``(turn,
#: forward)`` (turn +1 is a left, counter-clockwise, quarter turn)
ACTION_NAMES, ACTION_MOTIONS = MOTIONS, MOTION_STEPS
#: the base colours of which every episode has at least one (red, green, blue, purple, yellow)
BASE_COLORS = 5
#: the find-red goal's colour
RED = BLOCK_COLORS.index("red")
MIN_ROOM = 4
MAX_ROOM = 64
MAX_BLOCKS = 32


@dataclass
class BlockState:
    """N scenes. Shapes: ``agent_pos (N, 2)`` long cells, ``agent_dir (N,)`` long, ``block_pos (N, K, 2)`` long,
    ``block_vel (N, K, 2)`` long (one cardinal unit step, or zero in a static world), ``block_color (N, K)`` long
    indices into :data:`BLOCK_COLORS`, ``active (N, K)`` bool (``K = max_blocks`` slots)."""

    agent_pos: torch.Tensor
    agent_dir: torch.Tensor
    block_pos: torch.Tensor
    block_vel: torch.Tensor
    block_color: torch.Tensor
    active: torch.Tensor

    def index(self, rows: torch.Tensor) -> BlockState:
        """The scenes ``rows`` (a copy)."""
        return BlockState(*(getattr(self, name)[rows].clone() for name in FIELDS))

    def assign(self, rows: torch.Tensor, other: BlockState) -> None:
        """Overwrite scenes ``rows`` with ``other``'s (same number of scenes)."""
        for name in FIELDS:
            getattr(self, name)[rows] = getattr(other, name).to(getattr(self, name).device)


FIELDS = ("agent_pos", "agent_dir", "block_pos", "block_vel", "block_color", "active")


def directions(device: torch.device | str | None = None) -> torch.Tensor:
    """:data:`DIRECTIONS` as a ``(4, 2)`` long tensor."""
    return torch.tensor(DIRECTIONS, dtype=torch.long, device=device)


def draw_scene(generator: torch.Generator, room_size: int, block_range: tuple[int, int], max_blocks: int, *,
               static: bool, unique_red: bool = False) -> BlockState:
    """One random scene (on the CPU, from ``generator`` alone): the agent on a uniform cell facing a uniform
    heading; between ``block_range[0]`` and ``block_range[1]`` blocks on uniform cells other than the agent's,
    the first five colours each at least once (with fewer than five blocks, red and others of them) and the rest
    uniform over the palette (no further red with ``unique_red``), each with a uniform cardinal velocity (zero when ``static``)."""
    count = int(torch.randint(block_range[0], block_range[1] + 1, (), generator=generator))
    agent_pos = torch.randint(room_size, (2,), generator=generator)
    agent_dir = torch.randint(4, (), generator=generator)
    cells = torch.randperm(room_size * room_size, generator=generator)
    agent_cell = agent_pos[1] * room_size + agent_pos[0]
    cells = cells[cells != agent_cell][:count]
    extra_palette = len(BLOCK_COLORS) - (1 if unique_red else 0)
    extra = torch.randint(extra_palette, (max(count - BASE_COLORS, 0),), generator=generator) + (1 if unique_red else 0)
    base = torch.randperm(BASE_COLORS, generator=generator)
    if count < BASE_COLORS:  # too few blocks for every base colour: red is always one of them (the find-red goal)
        base = torch.cat([base[base == RED], base[base != RED]])
    colors = torch.cat([base, extra])[:count]
    velocity = directions()[torch.randint(4, (count,), generator=generator)]
    if static:
        velocity = torch.zeros_like(velocity)
    state = BlockState(agent_pos[None], agent_dir.reshape(1), torch.zeros(1, max_blocks, 2, dtype=torch.long),
                       torch.zeros(1, max_blocks, 2, dtype=torch.long), torch.full((1, max_blocks), -1),
                       torch.zeros(1, max_blocks, dtype=torch.bool))
    state.block_pos[0, :count] = torch.stack([cells % room_size, cells // room_size], -1)
    state.block_vel[0, :count] = velocity
    state.block_color[0, :count] = colors
    state.active[0, :count] = True
    return state


def move_agent(state: BlockState, actions: torch.Tensor, room_size: int, active: torch.Tensor) -> torch.Tensor:
    """Apply ``actions (N,)`` to the agents of the ``active (N,)`` scenes, in place; return the self-motion carried
    out, ``(N,)`` action ids: a forward step the wall stops is a ``STAY`` (blocks never stop the agent)."""
    actions = torch.where(active, actions, torch.full_like(actions, STAY))
    turn = torch.where(actions == TURN_LEFT, 1, torch.where(actions == TURN_RIGHT, -1, 0))
    state.agent_dir = (state.agent_dir + turn) % 4
    ahead = state.agent_pos + directions(actions.device)[state.agent_dir]
    inside = ((ahead >= 0) & (ahead < room_size)).all(-1)
    walks = (actions == FORWARD) & inside
    state.agent_pos = torch.where(walks[:, None], ahead, state.agent_pos)
    return torch.where((actions == FORWARD) & ~inside, torch.full_like(actions, STAY), actions)


def move_blocks(state: BlockState, room_size: int, active: torch.Tensor) -> None:
    """Every block of the ``active`` scenes one step along its velocity, bouncing off the walls, in place."""
    ahead = state.block_pos + state.block_vel
    outside = (ahead < 0) | (ahead >= room_size)
    velocity = torch.where(outside, -state.block_vel, state.block_vel)
    moved = torch.where(outside, state.block_pos + velocity, ahead)
    scene = active[:, None, None]
    state.block_vel = torch.where(scene, velocity, state.block_vel)
    state.block_pos = torch.where(scene, moved, state.block_pos)


def nearest_of_color(state: BlockState, color: int) -> torch.Tensor:
    """Euclidean distance in cells from each agent to the nearest block of ``color``, ``(N,)`` float (``inf``
    where there is none)."""
    offset = (state.block_pos - state.agent_pos[:, None]).float()
    distance = offset.norm(dim=-1)
    mine = state.active & (state.block_color == color)
    return torch.where(mine, distance, torch.full_like(distance, float("inf"))).amin(-1)
