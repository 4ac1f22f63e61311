"""fernn.envs: flowing-object and self-motion scenes as Gymnasium environments and datasets.

Importing this package registers the environments (Gymnasium 1.x loads no entry-point plugins)::

    import gymnasium as gym
    import fernn.envs  # noqa: F401  (or: gym.make("fernn.envs:FlowingMNIST-v0") without the import)
    env = gym.make("FlowingMNIST-v0")

=======================  ===============================================================
id                       task
=======================  ===============================================================
``FlowingMNIST-v0``      next-frame prediction, translation flows (supervised mode)
``RotatingMNIST-v0``     next-frame prediction, rotation flows (supervised mode)
``KTHCamera-v0``         KTH action classification with camera motion (supervised mode)
``MNISTWorld-v0``        FloWM's partially observed world of moving digits (self-motion)
``MNISTWorldStatic-v0``  the same with static digits
``MNISTWorldTrack-v0``   RL: keep a moving target digit in view
``MNISTWorldTrackOccluded-v0``  the same, the window dark for 4 of every 10 steps
``DynamicBlockWorld-v0``  FloWM's first-person 3-D room of moving blocks (self-motion: turns and steps)
``DynamicBlockWorldStatic-v0``, ``-Textured-v0``  the same with still blocks, with procedural textures
``DynamicBlockWorldFindRed-v0``  planning: reach two cells from the red block
=======================  ===============================================================
"""

from gymnasium.envs.registration import register, registry

from fernn.envs.block_scenes import BLOCK_COLORS, DIRECTIONS
from fernn.envs.datasets import (FlowingMNISTDataset, KTHCameraDataset, MNISTWorldDataset, RotatingMNISTDataset,
                                 SceneDataset)
from fernn.envs.first_person_world import FirstPersonGeometry, FirstPersonWorld, first_person_geometry
from fernn.envs.kth import ACTIONS as KTH_ACTIONS
from fernn.envs.kth import download_kth, load_kth
from fernn.envs.mnist import DigitSet, download_mnist, load_mnist
from fernn.envs.scenes import DigitBank, RotationScenes, SceneBatch, TranslationScenes, make_generator
from fernn.envs.storage import DataMissingError, default_data_dir
from fernn.envs.trajectories import (TrajectoryDataset, TrajectoryFileError, collect_episodes, make_env,
                                     pixel_observations, resolve_env_id)
from fernn.envs.velocities import unseen_velocities, velocity_grid
from fernn.envs.world_scenes import WorldBatch, WorldScenes
from fernn.envs.wrappers import ActionChannels

#: CLI names -> Gymnasium ids.
ENV_IDS = {
    "flowing-mnist": "FlowingMNIST-v0",
    "rotating-mnist": "RotatingMNIST-v0",
    "kth-camera": "KTHCamera-v0",
    "mnist-world": "MNISTWorld-v0",
    "mnist-world-static": "MNISTWorldStatic-v0",
    "mnist-world-track": "MNISTWorldTrack-v0",
    "mnist-world-track-occluded": "MNISTWorldTrackOccluded-v0",
    "dynamic-block-world": "DynamicBlockWorld-v0",
    "dynamic-block-world-static": "DynamicBlockWorldStatic-v0",
    "dynamic-block-world-textured": "DynamicBlockWorldTextured-v0",
    "dynamic-block-world-find-red": "DynamicBlockWorldFindRed-v0",
}

_ENVS = {
    "FlowingMNIST-v0": ("flowing_mnist:FlowingMNISTEnv", "flowing_mnist:FlowingMNISTVectorEnv", {}, None),
    "RotatingMNIST-v0": ("flowing_mnist:RotatingMNISTEnv", "flowing_mnist:RotatingMNISTVectorEnv", {}, None),
    "KTHCamera-v0": ("kth_camera:KTHCameraEnv", "kth_camera:KTHCameraVectorEnv", {}, None),
    "MNISTWorld-v0": ("mnist_world:MNISTWorldEnv", "mnist_world:MNISTWorldVectorEnv", {}, 100),
    "MNISTWorldStatic-v0": ("mnist_world:MNISTWorldEnv", "mnist_world:MNISTWorldVectorEnv", {"velocities": 0}, 100),
    "MNISTWorldTrack-v0": ("mnist_world:MNISTWorldTrackEnv", "mnist_world:MNISTWorldTrackVectorEnv", {}, 100),
    "MNISTWorldTrackOccluded-v0": ("mnist_world:MNISTWorldTrackEnv", "mnist_world:MNISTWorldTrackVectorEnv",
                                   {"gap_every": 10, "gap_length": 4}, 100),
    "DynamicBlockWorld-v0": ("block_world:DynamicBlockWorldEnv", "block_world:DynamicBlockWorldVectorEnv", {}, 500),
    "DynamicBlockWorldStatic-v0": ("block_world:DynamicBlockWorldEnv", "block_world:DynamicBlockWorldVectorEnv",
                                   {"static": True}, 500),
    "DynamicBlockWorldTextured-v0": ("block_world:DynamicBlockWorldEnv", "block_world:DynamicBlockWorldVectorEnv",
                                     {"textured": True}, 500),
    "DynamicBlockWorldFindRed-v0": ("block_world:DynamicBlockWorldEnv", "block_world:DynamicBlockWorldVectorEnv",
                                    {"task": "find-red"}, 100),
}

for _id, (_entry, _vector, _kwargs, _steps) in _ENVS.items():
    if _id not in registry:
        register(id=_id, entry_point=f"fernn.envs.{_entry}", vector_entry_point=f"fernn.envs.{_vector}",
                 kwargs=_kwargs, max_episode_steps=_steps)
if "MiniWorldFirstPerson-v0" not in registry:  # MiniWorld as a first-person world (the [peers] extra)
    register(id="MiniWorldFirstPerson-v0", entry_point="fernn.envs.miniworld:make_first_person")

__all__ = [
    "BLOCK_COLORS", "DIRECTIONS", "ActionChannels", "FirstPersonGeometry", "FirstPersonWorld", "first_person_geometry", "ENV_IDS", "KTH_ACTIONS", "DataMissingError", "DigitBank", "DigitSet", "FlowingMNISTDataset", "KTHCameraDataset",
    "MNISTWorldDataset", "RotatingMNISTDataset", "RotationScenes", "SceneBatch", "SceneDataset", "TranslationScenes",
    "WorldBatch", "WorldScenes", "default_data_dir", "download_kth", "download_mnist", "load_kth", "load_mnist",
    "make_generator", "unseen_velocities", "velocity_grid", "TrajectoryDataset", "TrajectoryFileError",
    "collect_episodes", "make_env", "pixel_observations", "resolve_env_id",
]
