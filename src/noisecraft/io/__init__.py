"""Writers for results people look at: images, grids, animations."""

from .images import make_grid, save_gif, save_grid, save_image, to_uint8

__all__ = ["to_uint8", "save_image", "make_grid", "save_grid", "save_gif"]
