"""A first-person renderer of the block world for N scenes at once: a tensor program, no OpenGL.

The camera stands at the centre of the agent's cell, its eye at :data:`EYE_HEIGHT`, looking along its heading
with a vertical field of view ``fov`` (60 degrees by default, as in FloWM) and square pixels. One ray per image
column is cast in the floor plane: against the room's walls (where it leaves the room) and against every block's
footprint (a slab test per block). Walls, floor and ceiling are then filled per row from the column's wall
distance, and blocks per column from the nearest block the ray meets.

Why one ray per column is exact here: the eye is at the blocks' top (1.5, the camera height and block height of
FloWM's MiniWorld scenes), so every block's top edge lies on the horizon and a block covers the rows from the
horizon down to where its base meets the floor, lower the nearer it is. The nearest block of a column therefore
hides every block behind it, and a column's picture is decided by two distances: to the nearest block and to
the wall.

Shading: a lamp at the eye. A face is lit by ``0.55 + 0.45 cos(a)``, ``a`` the angle between the ray and the
face's normal, so the two faces of a block meeting at an edge differ and a wall seen head-on is brighter than
one seen aslant; and everything fades with distance (``exp(-distance / (2 room_size))``). The light moves with
the agent, so the picture depends only on the scene relative to the agent: a scene turned by a quarter turn
with the agent gives the same image, exactly. ``textured`` scenes add procedural patterns, drawn from
a few per episode (bricks or planks on the walls, a checker or tiles on the floor): nothing is downloaded.
"""

from __future__ import annotations

import math

import torch

from fernn.egocentric import EYE_HEIGHT, WALL_HEIGHT
from fernn.envs.block_scenes import BLOCK_RGB, BlockState, directions

BLOCK_HEIGHT = 1.5
BLOCK_HALF = 0.35  # a footprint of 0.7 of a cell
AMBIENT = 0.55  # the light of a face seen edge-on; head-on it is 1
WALL_RGB = (0.82, 0.80, 0.74)
FLOOR_RGB = (0.46, 0.43, 0.40)
CEILING_RGB = (0.72, 0.72, 0.74)
#: textured scenes: wall and floor colour choices (one of each per episode)
WALL_CHOICES = ((0.72, 0.36, 0.28), (0.62, 0.48, 0.30), (0.55, 0.58, 0.62))
FLOOR_CHOICES = ((0.30, 0.45, 0.22), (0.52, 0.45, 0.34), (0.40, 0.40, 0.42))


class FirstPersonRenderer:
    """Render ``(N, size, size, 3)`` uint8 first-person views of :class:`~fernn.envs.block_scenes.BlockState`\\ s.

    Args:
        room_size: cells per side of the room.
        size: image side in pixels.
        fov: vertical (and, for square images, horizontal) field of view in degrees, in (0, 180).
        device: where the images are computed.
    """

    def __init__(self, room_size: int, size: int, fov: float, device: torch.device | str) -> None:
        self.room_size, self.size, self.fov = room_size, size, float(fov)
        self.device = torch.device(device)
        half = math.tan(math.radians(self.fov) / 2)
        #: horizontal offset of each column's ray per unit of depth, ``(W,)``
        self.column_offsets = ((torch.arange(size, device=self.device) + 0.5) * (2 / size) - 1) * half
        #: ``(H,)``: height above the eye per unit depth seen at each row (positive above the horizon)
        self.row_slopes = (1 - (torch.arange(size, device=self.device) + 0.5) * (2 / size)) * half
        self.palette = torch.tensor(BLOCK_RGB, device=self.device)
        self.fog_scale = 1.0 / (2 * room_size)
        rows = self.row_slopes
        below, above = rows < 0, rows > 0
        #: floor distance of rows below the horizon, ceiling distance of rows above it (``inf`` elsewhere)
        self.floor_depth = torch.where(below, EYE_HEIGHT / (-rows).clamp_min(1e-9), torch.full_like(rows, math.inf))
        self.ceiling_depth = torch.where(above, (WALL_HEIGHT - EYE_HEIGHT) / rows.clamp_min(1e-9),
                                         torch.full_like(rows, math.inf))
        self.surface_light = torch.exp(-torch.where(below, self.floor_depth, self.ceiling_depth) * self.fog_scale)
        self.wall_rgb = torch.tensor(WALL_RGB, device=self.device)
        # the colour table of a scene: W block columns, W wall columns, H surface rows
        self.table_columns = torch.arange(size, device=self.device)
        self.table_rows = 2 * size + torch.arange(size, device=self.device)
        self.table_offsets = torch.zeros(0, dtype=torch.long, device=self.device)

    def _offsets(self, count: int) -> torch.Tensor:
        if len(self.table_offsets) < count:
            self.table_offsets = torch.arange(count, device=self.device) * (3 * self.size)
        return self.table_offsets

    def rays(self, state: BlockState) -> tuple[torch.Tensor, torch.Tensor]:
        """Camera positions ``(N, 2)`` (cell centres) and column ray directions ``(N, W, 2)`` with a forward
        component of 1 (so distances along them are depths)."""
        forward = directions(self.device)[state.agent_dir].float()  # (N, 2)
        right = torch.stack([forward[:, 1], -forward[:, 0]], -1)
        rays = forward[:, None] + self.column_offsets[None, :, None] * right[:, None]
        return state.agent_pos.float(), rays

    def walls(self, eye: torch.Tensor, rays: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Where each column's ray leaves the room: depth ``(N, W)``, whether it hits a wall across ``x``
        ``(N, W)`` bool, and the coordinate along the wall ``(N, W)``."""
        inside_low, inside_high = -0.5, self.room_size - 0.5
        bound = torch.where(rays > 0, inside_high, inside_low)
        depths = (bound - eye[:, None]) / rays
        depths = torch.where(rays == 0, torch.full_like(depths, math.inf), depths)  # parallel to a wall: never there
        across_x = depths[..., 0] <= depths[..., 1]
        depth = torch.where(across_x, depths[..., 0], depths[..., 1])
        hit = eye[:, None] + rays * depth[..., None]
        along = torch.where(across_x, hit[..., 1], hit[..., 0])
        return depth, across_x, along

    def blocks(self, state: BlockState, eye: torch.Tensor, rays: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The nearest block each column's ray meets: depth ``(N, W)`` (``inf``: none), its colour index, whether
        the face is across ``x``, and its slot. A block containing the eye is not seen (its faces look away)."""
        offset = (state.block_pos.float() - eye[:, None])[:, None]  # (N, 1, K, 2)
        inverse = 1.0 / rays[:, :, None]  # (N, W, 1, 2); a zero component gives +-inf, never nan (offsets are not 0.35)
        near = (offset - BLOCK_HALF) * inverse
        far = (offset + BLOCK_HALF) * inverse
        entry, leave = torch.minimum(near, far), torch.maximum(near, far)
        enter = entry.amax(-1)  # (N, W, K)
        hit = (enter <= leave.amin(-1)) & (enter > 0) & state.active[:, None]
        depth = torch.where(hit, enter, torch.full_like(enter, math.inf))
        nearest, which = depth.min(-1)  # (N, W)
        color = state.block_color.gather(1, which)
        chosen = entry.gather(2, which[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]
        across_x = chosen[..., 0] >= chosen[..., 1]
        return nearest, color.clamp_min(0), across_x, which

    def block_ids(self, state: BlockState) -> torch.Tensor:
        """Which block (its slot) each pixel of the views shows, ``(N, size, size)`` long, -1 for none: the same
        geometry as :meth:`render`."""
        eye, rays = self.rays(state)
        wall_depth, _, _ = self.walls(eye, rays)
        block_depth, _, _, which = self.blocks(state, eye, rays)
        slopes = self.row_slopes[None, :, None]
        shown = (slopes <= 0) & (slopes >= (-EYE_HEIGHT / block_depth)[:, None]) & (block_depth < wall_depth)[:, None]
        return torch.where(shown, which[:, None], -1)

    def render(self, state: BlockState, textures: torch.Tensor | None = None) -> torch.Tensor:
        """Views ``(N, size, size, 3)`` uint8 of the scenes (``textures (N, 2)`` long: the wall and floor choice
        of each scene, for textured scenes).

        Colours are computed per column (walls, blocks) and per row (floor, ceiling) and the picture is a choice
        among them per pixel: the per-pixel work is two comparisons and two selections of uint8 colours."""
        eye, rays = self.rays(state)
        wall_depth, wall_x, along = self.walls(eye, rays)
        block_depth, block_color, block_x, _ = self.blocks(state, eye, rays)
        slopes = self.row_slopes[None, :, None]  # (1, H, 1)
        # rows: ceiling above the wall's top, wall, floor below its base; a block from the horizon to its base
        is_wall = (slopes <= ((WALL_HEIGHT - EYE_HEIGHT) / wall_depth)[:, None]) & \
            (slopes >= (-EYE_HEIGHT / wall_depth)[:, None])  # (N, H, W)
        is_block = (slopes <= 0) & (slopes >= (-EYE_HEIGHT / block_depth)[:, None]) & \
            (block_depth < wall_depth)[:, None]
        wall_light = self._light(rays, wall_depth, wall_x)[..., None]  # (N, W, 1)
        block = _to_byte(self.palette[block_color] * self._light(rays, block_depth, block_x)[..., None])  # (N, W, 3)
        surface = self._surfaces(len(eye), textures)  # (N or 1, H, 3) float
        if textures is not None:
            return self._textured(eye, rays, along, wall_depth, wall_light, block, surface, is_wall, is_block, textures)
        # untextured: every pixel takes its colour from a table of the scene's columns and rows, in one gather
        count, size = len(eye), self.size
        table = torch.cat([block, _to_byte(self.wall_rgb * wall_light), _to_byte(surface).expand(count, -1, -1)], 1)
        rows = self.table_rows[None, :, None]  # (1, H, 1): the surface entries 2W + r
        columns = self.table_columns[None, None, :]  # (1, 1, W): the block entries c
        index = torch.where(is_block, columns, torch.where(is_wall, columns + size, rows))  # (N, H, W)
        index = index + self._offsets(count)[:count, None, None]
        return table.reshape(-1, 3).index_select(0, index.reshape(-1)).view(count, size, size, 3)

    def _textured(self, eye, rays, along, wall_depth, wall_light, block, surface, is_wall, is_block,
                  textures) -> torch.Tensor:
        """The picture of textured scenes: walls and floor get per-pixel patterns."""
        wall_rgb = torch.tensor(WALL_CHOICES, device=self.device)[textures[:, 0]]
        pattern = self._wall_pattern(along, wall_depth, textures[:, 0])  # (N, H, W)
        wall = _to_byte(wall_rgb[:, None, None] * (wall_light[:, None] * pattern[..., None]))
        floor = self._floor_pattern(eye, rays, textures[:, 1])  # (N, H, W)
        below = (self.row_slopes < 0)[None, :, None]
        background = _to_byte(surface[:, :, None] * torch.where(below, floor, 1.0)[..., None])
        image = torch.where(is_wall[..., None], wall, background)
        return torch.where(is_block[..., None], block[:, None], image)

    def _light(self, rays: torch.Tensor, depth: torch.Tensor, across_x: torch.Tensor) -> torch.Tensor:
        """Brightness ``(N, W)`` of the faces the rays ``(N, W, 2)`` meet at ``depth``, across ``x`` or ``y``: the
        eye's lamp (the cosine of the angle of incidence) and the fading with distance."""
        incidence = torch.where(across_x, rays[..., 0], rays[..., 1]).abs() / rays.norm(dim=-1)
        return torch.exp(-depth * self.fog_scale) * (AMBIENT + (1 - AMBIENT) * incidence)

    def _surfaces(self, count: int, textures: torch.Tensor | None) -> torch.Tensor:
        """Floor (below the horizon) and ceiling colours of each row, faded with the distance that row sees:
        ``(1, H, 3)``, or ``(N, H, 3)`` with the textured floor colours."""
        below = (self.row_slopes < 0)[:, None]
        floor = torch.tensor(FLOOR_RGB, device=self.device)[None] if textures is None else \
            torch.tensor(FLOOR_CHOICES, device=self.device)[textures[:, 1]]
        colours = torch.where(below[None], floor[:, None], torch.tensor(CEILING_RGB, device=self.device))
        return colours * self.surface_light[None, :, None]

    def _wall_pattern(self, along: torch.Tensor, depth: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
        """Brightness ``(N, H, W)`` of the walls' patterns: bricks (choice 0), planks (1), plain with a skirting
        (2), from the coordinate along the wall and the height each row sees there."""
        height = EYE_HEIGHT + self.row_slopes[None, :, None] * depth[:, None]  # (N, H, W)
        course = torch.floor(height * 4)
        bricks = ((height * 4) % 1 < 0.12) | (((along[:, None] + 0.5) * 2 + course * 0.5) % 1 < 0.06)
        planks = ((along[:, None] + 0.5) * 3) % 1 < 0.08
        skirting = height < 0.25
        dark = torch.where(choice[:, None, None] == 0, bricks, torch.where(choice[:, None, None] == 1, planks, skirting))
        return torch.where(dark, 0.7, 1.0)

    def _floor_pattern(self, eye: torch.Tensor, rays: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
        """Brightness ``(N, H, W)`` of the floor's pattern (rows above the horizon are unused): a checker of cells
        (choice 0), tiles of half cells (1), plain (2)."""
        depth = self.floor_depth.clamp_max(1e4)[None, :, None, None]  # (1, H, 1, 1)
        point = eye[:, None, None] + rays[:, None] * depth  # (N, H, W, 2)
        cells = torch.floor(point + 0.5)
        checker = (cells.sum(-1) % 2) == 0
        tiles = ((point * 2 + 0.5) % 1 < 0.1).any(-1)
        dark = torch.where(choice[:, None, None] == 0, checker, torch.where(choice[:, None, None] == 1, tiles,
                                                                           torch.zeros_like(checker)))
        return torch.where(dark, 0.8, 1.0)


def _to_byte(colours: torch.Tensor) -> torch.Tensor:
    """Colours in [0, 1] -> uint8."""
    return (colours.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
