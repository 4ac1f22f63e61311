"""``DynamicBlockWorld-v0``: FloWM's first-person 3-D world of moving blocks, as a batched Gymnasium env.

The rules are in :mod:`fernn.envs.block_scenes`, the picture in :mod:`fernn.envs.first_person`, the data policy in
:mod:`fernn.envs.block_policies`; this module makes them Gymnasium envs (single and native vector) and adds the
find-the-red-block task.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from fernn.budget import check_fits
from fernn.devices import resolve_device
from fernn.envs.block_policies import SCRIPTED_POLICIES
from fernn.envs.block_scenes import (ACTION_MOTIONS, BLOCK_RGB, DIRECTIONS, MAX_BLOCKS, MAX_ROOM,
                                     MIN_ROOM, RED, STAY, BlockState, draw_scene, move_agent, move_blocks,
                                     nearest_of_color)
from fernn.envs.core import EnvBatch, CoreEnv, CoreVectorEnv
from fernn.envs.first_person_world import FirstPersonGeometry
from fernn.envs.first_person import FLOOR_CHOICES, WALL_CHOICES, FirstPersonRenderer
from fernn.envs.rendering import side_by_side
from fernn.envs.scenes import check_count

TASKS = ("none", "find-red")
#: find-red: the distance to the red block at which the reward is largest, and the reward's width
GOAL_DISTANCE, GOAL_WIDTH = 2.0, 1.0
#: steps of action sequences the find-red oracle searches exhaustively (4**3 = 64 sequences)
ORACLE_LOOKAHEAD = 3


def find_red_reward(distance: torch.Tensor) -> torch.Tensor:
    """The find-red reward of the agent's distance to the red block (cells): ``exp(-(d - 2)^2 / 2)``, 1 at two
    cells, 0.61 at one or three, 0.14 at zero or four."""
    return torch.exp(-((distance - GOAL_DISTANCE) / GOAL_WIDTH) ** 2 / 2)


class BlockWorldBatch(EnvBatch):
    """N block-world scenes: one batched step (agents, blocks) and one batched render."""

    def __init__(self, num_envs: int, *, room_size: int = 16, num_blocks: int | tuple[int, int] = (6, 10),
                 obs_size: int = 64, fov: float = 60.0, static: bool = False, textured: bool = False,
                 task: str = "none", device: str = "cpu") -> None:
        self.room_size = check_room_size(room_size)
        self.block_range = _block_range(num_blocks, self.room_size)
        self.obs_size = check_count("obs_size", obs_size, minimum=8)
        if self.obs_size > 1024:
            raise ValueError(f"obs_size must be an integer in [8, 1024] (pixels per side), got {obs_size}")
        check_fov(fov)
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
        for name, value in (("static", static), ("textured", textured)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}")
        self.device = resolve_device(device)
        # the render's float intermediates: about six (N, S, S, 3) float32 images at once
        check_fits(24.0 * num_envs * self.obs_size ** 2 * 3, f"rendering {num_envs} views of {self.obs_size}x"
                   f"{self.obs_size} px", "lower obs_size or num_envs", self.device)
        super().__init__(num_envs)  # the scenes' generators: after every check
        self.static, self.textured, self.task, self.fov = static, textured, task, float(fov)
        self.renderer = FirstPersonRenderer(self.room_size, self.obs_size, self.fov, self.device)
        self.single_observation_space = spaces.Box(0, 255, (self.obs_size, self.obs_size, 3), np.uint8)
        self.single_action_space = spaces.Discrete(len(ACTION_MOTIONS))
        slots = self.block_range[1]  # the most blocks an episode can have
        blank = lambda *shape, dtype=torch.long: torch.zeros(num_envs, *shape, dtype=dtype, device=self.device)  # noqa: E731
        self.state = BlockState(blank(2), blank(), blank(slots, 2), blank(slots, 2), blank(slots) - 1,
                                blank(slots, dtype=torch.bool))
        self.textures = blank(2)
        self.motion = blank()
        self.frames = torch.zeros(num_envs, self.obs_size, self.obs_size, 3, dtype=torch.uint8, device=self.device)

    def geometry(self) -> FirstPersonGeometry:
        """The first-person declaration of these scenes: the four actions' motions, the room, the field of view."""
        return FirstPersonGeometry(ACTION_MOTIONS, self.room_size, self.fov)

    # -- episodes ------------------------------------------------------------------------------------------------
    def reset_envs(self, indices: np.ndarray) -> None:
        scenes = [draw_scene(self.generators[i], self.room_size, self.block_range, self.block_range[1], static=self.static,
                             unique_red=self.task == "find-red") for i in indices]
        drawn = BlockState(*(torch.cat([getattr(s, name) for s in scenes]) for name in
                             ("agent_pos", "agent_dir", "block_pos", "block_vel", "block_color", "active")))
        rows = torch.as_tensor(np.asarray(indices), device=self.device)
        self.state.assign(rows, drawn)
        if self.textured:
            picks = [torch.stack([torch.randint(len(WALL_CHOICES), (), generator=self.generators[i]),
                                  torch.randint(len(FLOOR_CHOICES), (), generator=self.generators[i])])
                     for i in indices]
            self.textures[rows] = torch.stack(picks).to(self.device)
        self.motion[rows] = STAY
        self.frames[rows] = self.renderer.render(self.state.index(rows), self._textures(rows))

    def _textures(self, rows: torch.Tensor | None = None) -> torch.Tensor | None:
        if not self.textured:
            return None
        return self.textures if rows is None else self.textures[rows]

    def observe(self) -> np.ndarray:
        return self.frames.cpu().numpy().copy()

    def advance(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        active_t = torch.as_tensor(active, device=self.device)
        self.motion = move_agent(self.state, torch.as_tensor(actions, dtype=torch.long, device=self.device),
                                 self.room_size, active_t)
        move_blocks(self.state, self.room_size, active_t)
        self.frames = self.renderer.render(self.state, self._textures())
        if self.task == "find-red":
            reward = find_red_reward(nearest_of_color(self.state, RED)).cpu().numpy().astype(np.float32)
        else:
            reward = np.zeros(self.num_envs, np.float32)
        none = np.zeros(self.num_envs, bool)
        return reward, none, none.copy(), self.info()

    def info(self) -> dict[str, np.ndarray]:
        """Ground truth of every scene (batched; block arrays padded to ``MAX_BLOCKS`` slots with -1 colours)."""
        state = self.state
        motions = torch.tensor(ACTION_MOTIONS, device=self.device)[self.motion]
        info = {"agent_pos": state.agent_pos, "agent_dir": state.agent_dir, "block_pos": state.block_pos,
                "block_vel": state.block_vel, "block_color": torch.where(state.active, state.block_color, -1),
                "num_blocks": state.active.sum(-1), "self_motion": motions}
        if self.task == "find-red":
            info["red_distance"] = nearest_of_color(state, RED)
        return {key: value.cpu().numpy().copy() for key, value in info.items()}

    def reset_info(self, index: int) -> dict[str, Any]:
        return {key: value[index] for key, value in self.info().items()}

    def reset_infos(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {key: value[indices] for key, value in self.info().items()}

    # -- the find-red oracle -------------------------------------------------------------------------------------
    def oracle_actions(self) -> np.ndarray:
        """The find-red oracle: it knows the blocks' true positions and velocities and plays, in every scene, the
        first action of the best of all ``4 ** 3`` action sequences (the most reward over three steps, sooner
        preferred)."""
        if self.task != "find-red":
            raise ValueError("oracle_action() is the find-red task's oracle (DynamicBlockWorldFindRed-v0)")
        actions = len(ACTION_MOTIONS)
        sequences = torch.cartesian_prod(*[torch.arange(actions, device=self.device)] * ORACLE_LOOKAHEAD)
        count = len(sequences)
        rows = torch.arange(self.num_envs, device=self.device).repeat_interleave(count)
        state = self.state.index(rows)
        everywhere = torch.ones(len(rows), dtype=torch.bool, device=self.device)
        total = torch.zeros(len(rows), device=self.device)
        for k in range(ORACLE_LOOKAHEAD):
            move_agent(state, sequences[:, k].repeat(self.num_envs), self.room_size, everywhere)
            move_blocks(state, self.room_size, everywhere)
            total += 0.9 ** k * find_red_reward(nearest_of_color(state, RED))
        best = total.view(self.num_envs, count).argmax(1)
        return sequences[best, 0].cpu().numpy()

    # -- pictures ------------------------------------------------------------------------------------------------
    def render_rgb(self, index: int) -> np.ndarray:
        view = self.frames[index].cpu().numpy()
        scale = max(1, math.ceil(200 / view.shape[0]))
        top = top_down_map(self.state.index(torch.tensor([index], device=self.device)), self.room_size, self.fov,
                           cell=max(2, view.shape[0] * scale // (self.room_size + 2)))
        return side_by_side(view.repeat(scale, 0).repeat(scale, 1), top)


def check_room_size(room_size: Any) -> int:
    """``room_size`` as an int, or a ``TypeError``/``ValueError`` naming the accepted range ``[MIN_ROOM, MAX_ROOM]``."""
    room_size = check_count("room_size", room_size, minimum=MIN_ROOM)
    if room_size > MAX_ROOM:
        raise ValueError(f"room_size must be an integer in [{MIN_ROOM}, {MAX_ROOM}] (cells per side), got {room_size}")
    return room_size


def check_fov(fov: Any) -> float:
    """``fov`` as a float, or a ``ValueError`` naming the accepted range (degrees in (0, 180))."""
    if isinstance(fov, (bool, np.bool_)) or not isinstance(fov, (int, float, np.integer, np.floating)) \
            or not 0 < fov < 180:
        raise ValueError(f"fov must be a field of view in degrees in (0, 180), got {fov!r}")
    return float(fov)


def _block_range(num_blocks: Any, room_size: int) -> tuple[int, int]:
    """``(least, most)`` blocks per episode from an int or a pair, checked against the room."""
    pair = tuple(num_blocks) if isinstance(num_blocks, (tuple, list)) else (num_blocks, num_blocks)
    if len(pair) != 2:
        raise ValueError(f"num_blocks must be a count or a (least, most) pair, got {num_blocks!r}")
    least, most = (check_count("num_blocks", value) for value in pair)
    cells = room_size * room_size - 1
    if least > most or most > min(MAX_BLOCKS, cells):
        raise ValueError(f"num_blocks must be between 1 and {min(MAX_BLOCKS, cells)} (at most {MAX_BLOCKS}, and each on "
                         f"its own cell of the {room_size}x{room_size} room other than the agent's), least <= most; "
                         f"got {num_blocks!r}")
    return least, most


def top_down_map(state: BlockState, room_size: int, fov: float, cell: int | None = None) -> np.ndarray:
    """The room from above, ``(H, W, 3)`` uint8 for the first scene of ``state``: walls, the floor (the cells in the
    field of view lighter), blocks in their colours, the agent as a white square with a dark mark on its facing
    side. North is up."""
    cell = cell or max(4, 192 // (room_size + 2))
    side = room_size + 2
    canvas = np.full((side, side, 3), 70, np.uint8)
    xs, ys = np.meshgrid(np.arange(room_size), np.arange(room_size))
    agent = state.agent_pos[0].cpu().numpy()
    heading = np.array(DIRECTIONS[int(state.agent_dir[0])])
    offset = np.stack([xs - agent[0], ys - agent[1]], -1).astype(np.float64)
    depth = offset @ heading
    lateral = np.abs(offset @ np.array([heading[1], -heading[0]]))
    seen = (depth > 0) & (lateral <= depth * math.tan(math.radians(fov) / 2))
    floor = np.where(seen[..., None], np.array([228, 222, 196]), np.array([176, 172, 164])).astype(np.uint8)
    canvas[1:-1, 1:-1] = floor[::-1]  # row 0 is the north wall
    image = canvas.repeat(cell, 0).repeat(cell, 1)
    inset = max(1, round(cell * 0.15))
    for position, color in zip(state.block_pos[0][state.active[0]].cpu().numpy(),
                               state.block_color[0][state.active[0]].cpu().numpy()):
        row, col = (room_size - position[1]) * cell, (position[0] + 1) * cell
        image[row + inset:row + cell - inset, col + inset:col + cell - inset] = np.array(BLOCK_RGB[color]) * 255
    row, col = (room_size - agent[1]) * cell, (agent[0] + 1) * cell
    quarter = max(1, cell // 4)
    image[row + quarter:row + cell - quarter, col + quarter:col + cell - quarter] = 255
    mark_row = row + cell // 2 - int(heading[1]) * (cell // 2 - quarter) - 1
    mark_col = col + cell // 2 + int(heading[0]) * (cell // 2 - quarter) - 1
    image[max(mark_row, 0):mark_row + 2, max(mark_col, 0):mark_col + 2] = (20, 20, 20)
    return image


def keys_to_action() -> dict[tuple[int, ...], int]:
    """pygame keys -> actions: left / right arrows turn, up walks forward, no key stays."""
    from fernn._extras import require

    pygame = require("pygame", "play", "keyboard play")
    return {(): STAY, (pygame.K_LEFT,): 0, (pygame.K_RIGHT,): 1, (pygame.K_UP,): 2}


class DynamicBlockWorldEnv(CoreEnv):
    """FloWM's Dynamic Block World: a first-person agent in a room of moving coloured blocks.

    ## Description
    A square room of ``room_size`` x ``room_size`` cells with walls. Between 6 and 10 blocks (a footprint of 0.7
    of a cell, 1.5 high) stand on cells, coloured from ``fernn.envs.BLOCK_COLORS`` (red, green, blue, purple,
    yellow, grey) with each of the first five at least once. Every block moves one cell per step along one
    cardinal direction; a move into a wall reverses it (it bounces). Blocks may overlap each other and the agent.
    The agent stands on a cell facing one of four headings and sees the room in first person, so most blocks are
    out of view at any time: a world model must remember them and move them while they are unseen, and turn and
    shift its memory with the agent's own motion.

    ## Action Space
    ``Discrete(4)``: 0 turn left 90 degrees, 1 turn right 90 degrees, 2 forward one cell (a wall stops it, blocks
    do not), 3 stay. ``env.unwrapped.action_moves()`` gives each action's ``(turn, forward)``.

    ## Observation Space
    | shape | dtype | range | content |
    |---|---|---|---|
    | ``(obs_size, obs_size, 3)`` | uint8 | 0..255 | the first-person RGB view (vertical field of view ``fov``) |

    ## Rewards
    0 every step: a world-modelling environment.
    DynamicBlockWorldFindRed-v0: ``exp(-(d - 2)^2 / 2)`` for the agent's distance ``d`` (cells) to the red block, most
    at two cells.

    ## Starting State
    The agent on a uniform cell and heading; blocks on uniform cells other than the agent's, with uniform
    cardinal velocities. ``info`` holds the ground truth: ``agent_pos`` (2,) int cells ``(x, y)``, ``agent_dir``
    (facing ``DIRECTIONS[agent_dir]``, ``DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))``), ``block_pos`` (K, 2),
    ``block_vel`` (K, 2), ``block_color`` (K,) indices into ``BLOCK_COLORS``, ``num_blocks``: the N blocks of this
    episode fill the first N of K slots, K the most blocks an episode can have, the rest are padding (colour -1,
    position and velocity 0), so every step's ``info`` has the same shapes, as Gymnasium's ``sync`` and ``async``
    vector envs need; and ``self_motion``: the step's own motion as carried out, ``(turn, forward)`` with turn +1
    for a left turn and -1 for a right one, forward 1 for a step taken (a forward step the wall stops is ``(0, 0)``). ``fernn.envs.collect_episodes`` records ``self_motion`` as the observer's moves.
    The step order: the agent acts, then the blocks move, then the view is rendered.

    ## Episode End
    Never terminates; truncated after ``max_episode_steps`` (500; find-red: 100).

    ## Arguments
    ``gym.make("DynamicBlockWorld-v0", obs_size=128)`` (the paper's image size)

    | argument | default | meaning |
    |---|---|---|
    | ``room_size`` | 16 | cells per side (4..64) |
    | ``num_blocks`` | (6, 10) | blocks per episode: a count or a (least, most) range |
    | ``obs_size`` | 64 | image side in pixels (FloWM: 128) |
    | ``fov`` | 60 | vertical field of view, degrees, in (0, 180) |
    | ``static`` | False | blocks stand still (``DynamicBlockWorldStatic-v0``) |
    | ``textured`` | False | procedural wall and floor patterns drawn per episode (``DynamicBlockWorldTextured-v0``) |
    | ``task`` | ``"none"`` | ``"find-red"``: the planning task's reward (one red block) |
    | ``device`` | ``"cpu"`` | where the scenes are stepped and rendered (``"cuda"``) |

    ## Vectorized environment
    ``gym.make_vec("DynamicBlockWorld-v0", num_envs=16, vectorization_mode="vector_entry_point")`` steps and renders
    every scene in one batched call; scene ``i`` reset with seed ``s`` is the single env's episode of seed ``s + i``.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 6, "render_reveals_state": True}
    make_batch = staticmethod(BlockWorldBatch)
    #: the names :meth:`scripted_policy` takes
    scripted_policies = tuple(SCRIPTED_POLICIES)
    #: what :meth:`action_moves` holds: a first-person agent's (turn, forward), not window moves
    motion_kind = "first-person"

    def action_moves(self) -> np.ndarray:
        """``(4, 2)`` int64: the ``(turn, forward)`` of each action (turn +1 is left), the table a planner imagines
        with; ``info["self_motion"]`` reports the same pair for the motion carried out."""
        return np.array(ACTION_MOTIONS, np.int64)

    @property
    def first_person(self) -> FirstPersonGeometry:
        """The first-person world this env is (:mod:`fernn.envs.first_person_world`): its actions' motions, its
        room and its field of view."""
        return self.batch.geometry()

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        """Arrow keys for ``gymnasium.utils.play`` and ``fernn-rl play``: left / right turn, up walks; no key: stay."""
        return keys_to_action()

    def scripted_policy(self, name: str, num_envs: int = 1, seed: int | None = None):
        """A scripted policy of this world by name (``"biased-walk"``), acting for ``num_envs`` envs."""
        return scripted_policy(name, self.batch.room_size, num_envs, seed)

    def oracle_action(self) -> int:
        """The find-red oracle's action now (see :meth:`BlockWorldBatch.oracle_actions`)."""
        return int(self.batch.oracle_actions()[0])

    def ground_truth(self, info: dict[str, Any]) -> dict[str, np.ndarray]:
        """The hidden state in a step's ``info``, blocks padded to the most an episode can have (colour -1):
        what :func:`fernn.envs.collect_episodes` records as ground truth."""
        return ground_truth(info, self.batch.block_range[1])


class DynamicBlockWorldVectorEnv(CoreVectorEnv):
    """``DynamicBlockWorld-v0`` with N scenes stepped and rendered in one batched call (see
    :class:`DynamicBlockWorldEnv`)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 6, "autoreset_mode": CoreVectorEnv.metadata["autoreset_mode"]}
    make_batch = staticmethod(BlockWorldBatch)
    scripted_policies = tuple(SCRIPTED_POLICIES)
    motion_kind = "first-person"

    def action_moves(self) -> np.ndarray:
        """As :meth:`DynamicBlockWorldEnv.action_moves`."""
        return np.array(ACTION_MOTIONS, np.int64)

    @property
    def first_person(self) -> FirstPersonGeometry:
        """As :attr:`DynamicBlockWorldEnv.first_person`."""
        return self.batch.geometry()

    def scripted_policy(self, name: str, num_envs: int | None = None, seed: int | None = None):
        """A scripted policy of this world by name, acting for all the envs."""
        return scripted_policy(name, self.batch.room_size, num_envs or self.num_envs, seed)

    def oracle_actions(self) -> np.ndarray:
        """The find-red oracle's actions for all scenes."""
        return self.batch.oracle_actions()

    def ground_truth(self, info: dict[str, Any]) -> dict[str, np.ndarray]:
        """As :meth:`DynamicBlockWorldEnv.ground_truth`, for one env's row of the batched info."""
        return ground_truth(info, self.batch.block_range[1])


def scripted_policy(name: str, room_size: int, num_envs: int, seed: int | None):
    if name not in SCRIPTED_POLICIES:
        raise ValueError(f"unknown scripted policy {name!r}; the block world has {', '.join(SCRIPTED_POLICIES)}")
    return SCRIPTED_POLICIES[name](room_size, num_envs, seed=seed)


#: the info keys that make the ground truth of a step
TRUTH_KEYS = ("agent_pos", "agent_dir", "block_pos", "block_vel", "block_color")


def ground_truth(info: dict[str, Any], slots: int) -> dict[str, np.ndarray]:
    """The :data:`TRUTH_KEYS` of one env's info, block arrays padded to ``slots`` (colour -1)."""
    truth = {}
    for key in TRUTH_KEYS:
        value = np.asarray(info[key])
        if key.startswith("block_") and len(value) < slots:
            pad = np.full((slots - len(value), *value.shape[1:]), -1 if key == "block_color" else 0, value.dtype)
            value = np.concatenate([value, pad])
        truth[key] = value
    return truth


def check_ground_truth(truth: dict[str, np.ndarray], room_size: int, where: str) -> None:
    """Raise ``ValueError`` (naming ``where``, the field and what is accepted) unless ``truth`` is an episode's
    ground truth as :func:`ground_truth` records it: every :data:`TRUTH_KEYS` array, of one length, with integer
    cells inside the ``room_size`` room, directions 0-3, unit block velocities, and colours of the palette (-1 for an
    empty slot)."""
    missing = [key for key in TRUTH_KEYS if key not in truth]
    if missing:
        raise ValueError(f"{where}: the ground truth lacks {', '.join('truth_' + key for key in missing)}; accepted: "
                         f"all of {', '.join('truth_' + key for key in TRUTH_KEYS)} (as collect records them) or none")
    steps, slots = len(truth["agent_pos"]), truth["block_color"].shape[-1] if truth["block_color"].ndim == 2 else -1
    shapes = {"agent_pos": (steps, 2), "agent_dir": (steps,), "block_pos": (steps, slots, 2),
              "block_vel": (steps, slots, 2), "block_color": (steps, slots)}
    palette = len(BLOCK_RGB)
    bounds = {"agent_pos": (0, room_size - 1), "agent_dir": (0, 3), "block_pos": (0, room_size - 1),
              "block_vel": (-1, 1), "block_color": (-1, palette - 1)}
    for key in TRUTH_KEYS:
        value = np.asarray(truth[key])
        low, high = bounds[key]
        if value.shape != shapes[key] or value.dtype.kind not in "iu" or value.size and not (
                low <= value.min() and value.max() <= high):
            raise ValueError(f"{where}: truth_{key} is {value.dtype} {value.shape} with values "
                             f"{_value_range(value)}; accepted: integers {shapes[key]} in [{low}, {high}] (a "
                             f"{room_size}-cell room, {palette} colours); the ground truth is damaged or forged: "
                             "collect the file again")


def _value_range(value: np.ndarray) -> str:
    if value.dtype.kind not in "iuf" or not value.size:
        return "none readable"
    return f"in [{value.min()}, {value.max()}]"
