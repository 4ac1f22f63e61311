"""Rendering for the envs: ``rgb_array`` frames drawn with numpy, and a pygame window for ``human``
mode that is created on the first human render (never at import) and works headless under
``SDL_VIDEODRIVER=dummy``."""

from __future__ import annotations

import numpy as np

from fernn._extras import require

WINDOW_COLOUR = (255, 64, 64)
TARGET_COLOUR = (64, 200, 255)
OCCLUDED_COLOUR = (128, 128, 128)  # the window outline while the window is dark


def to_rgb(gray: np.ndarray, scale: int = 1) -> np.ndarray:
    """``(H, W)`` uint8 -> ``(H * scale, W * scale, 3)`` uint8, nearest-neighbour upscaled."""
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    return rgb.repeat(scale, 0).repeat(scale, 1) if scale > 1 else rgb


def tint(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], scale: int = 1) -> np.ndarray:
    """Colour the pixels of ``rgb`` where ``mask (H, W)`` (upscaled by ``scale``) is positive."""
    if scale > 1:
        mask = mask.repeat(scale, 0).repeat(scale, 1)
    weight = (mask.astype(np.float32) / 255.0)[..., None]
    return (rgb * (1 - weight) + weight * np.asarray(colour, np.float32) * (rgb.max(-1, keepdims=True) / 255.0)
            ).astype(np.uint8)


def draw_torus_box(rgb: np.ndarray, x: int, y: int, size: int, world: int, scale: int,
                   colour: tuple[int, int, int] = WINDOW_COLOUR) -> np.ndarray:
    """Draw the outline of a ``size`` window with top-left ``(x, y)`` on a ``world`` torus (it wraps)."""
    cols = (x + np.arange(size)) % world
    rows = (y + np.arange(size)) % world
    outline = np.zeros((world, world), bool)
    outline[np.ix_(rows[[0, -1]], cols)] = True
    outline[np.ix_(rows, cols[[0, -1]])] = True
    rgb[outline.repeat(scale, 0).repeat(scale, 1)] = colour
    return rgb


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Concatenate ``(H, W, 3)`` images horizontally with a grey gap."""
    height = max(image.shape[0] for image in images)
    parts = []
    for i, image in enumerate(images):
        padded = np.zeros((height, image.shape[1], 3), np.uint8)
        padded[:image.shape[0]] = image
        parts.append(padded)
        if i + 1 < len(images):
            parts.append(np.full((height, gap, 3), 96, np.uint8))
    return np.concatenate(parts, 1)


class HumanViewer:
    """A pygame window showing ``rgb_array`` frames; created on the first :meth:`show`."""

    def __init__(self, title: str, fps: int) -> None:
        self.title, self.fps = title, fps
        self.screen = None
        self.clock = None

    def show(self, rgb: np.ndarray) -> None:
        pygame = require("pygame", "play", "render_mode='human'")

        if self.screen is None:
            pygame.init()
            pygame.display.init()
            pygame.display.set_caption(self.title)
            self.screen = pygame.display.set_mode((rgb.shape[1], rgb.shape[0]))
            self.clock = pygame.time.Clock()
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(rgb.transpose(1, 0, 2)))
        self.screen.blit(surface, (0, 0))
        pygame.event.pump()
        pygame.display.flip()
        self.clock.tick(self.fps)

    def close(self) -> None:
        if self.screen is not None:
            import pygame

            pygame.display.quit()
            pygame.quit()
            self.screen = None
