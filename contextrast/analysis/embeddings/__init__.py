"""The embedding view: a class-balanced sample of pixel embeddings from one projection head,
projected to 2-D by PCA (instant) or UMAP (umap-learn), with the exact source pixel of every point.

METHOD.md §2 "Embeddings": layer i's head gives E_i (1, 256, h_i, w_i), L2-normalised; the loss sees
the ground truth nearest-downsampled to that grid (Y_i) and the prediction downsampled the same way (Ŷ_i).
A point here is one cell (gy, gx) of that grid; its *source pixel* is the image pixel that nearest
downsampling reads for the cell (`contextrast.losses.grid.nearest_indices`), so the point's ground
truth is exactly the label of its source pixel. Clicking an image pixel picks the cell whose pixel block
holds it. Anchors (METHOD.md §2 "Representative anchors") are the class means over the sampled images
after the contextual update with the deepest layer, fitted with the points so they land in the same plane.

  sampling.py    layer pixels, the class-balanced sample, BANE roles, anchors
  pixels.py      point ↔ source pixel, click → point, the picked cell outlined
  projection.py  PCA / UMAP to 2-D, UMAP warm-up
  drawing.py     point colours and the scatter picture (axes, legend, class filter, selection, clicks)
  checkpoints.py one or two checkpoints on the same pixels
"""

from contextrast.analysis.embeddings.checkpoints import sample_checkpoints, sample_summary
from contextrast.analysis.embeddings.drawing import (
    COLOUR_BY,
    RIGHT_WRONG_COLOURS,
    ROLE_COLOURS,
    ROLE_NAMES,
    ScatterCanvas,
    class_name,
    draw_lasso,
    pick_point,
    point_colours,
    points_in_box,
    points_in_polygon,
    scatter_image,
)
from contextrast.analysis.embeddings.pixels import (
    PixelHit,
    cell_of_pixel,
    light_up,
    locate_pixel,
    pixel_of_point,
    point_at_pixel,
    source_rows_cols,
)
from contextrast.analysis.embeddings.projection import (
    PCA_DIMS,
    UMAP_NEIGHBOURS,
    Projection,
    pca_project,
    umap_epochs,
    umap_is_warm,
    umap_project,
    warm_up_umap,
)
from contextrast.analysis.embeddings.sampling import (
    CORRECT,
    FAR_ERROR,
    HARD,
    LAYER_NAMES,
    MAX_POINTS,
    MIN_POINTS,
    UNLABELLED,
    LayerPixels,
    PixelSample,
    balanced_quota,
    bane_roles,
    check_sample_size,
    features_at,
    layer_anchors,
    layer_pixels,
    same_pixels,
    sample_pixels,
)

__all__ = [
    "COLOUR_BY", "CORRECT", "FAR_ERROR", "HARD", "LAYER_NAMES", "MAX_POINTS", "MIN_POINTS", "PCA_DIMS",
    "RIGHT_WRONG_COLOURS", "ROLE_COLOURS", "ROLE_NAMES", "UMAP_NEIGHBOURS", "UNLABELLED", "LayerPixels", "PixelHit",
    "PixelSample", "Projection", "ScatterCanvas", "balanced_quota", "bane_roles", "cell_of_pixel", "check_sample_size",
    "class_name", "features_at", "layer_anchors", "layer_pixels", "light_up", "locate_pixel", "pca_project",
    "pick_point", "pixel_of_point", "point_at_pixel", "point_colours", "points_in_box", "points_in_polygon", "draw_lasso", "same_pixels",
    "sample_checkpoints", "sample_pixels", "sample_summary", "scatter_image",
    "source_rows_cols", "umap_epochs", "umap_is_warm", "umap_project", "warm_up_umap",
]
