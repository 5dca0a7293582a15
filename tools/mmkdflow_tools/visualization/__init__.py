"""Feature saliency visualisation of distillers
(``tools/visualize_features.py``)."""
from .data import dataset_image, prepare_image
from .features import (FeatureSet, collect_features, load_distiller,
                       pick_point, refine)
from .heatmap import (DPI, PANEL_ASPECT, PANEL_INCHES, map_to_image,
                      render_panels, saliency_map)

__all__ = [
    'dataset_image', 'prepare_image', 'FeatureSet', 'collect_features',
    'load_distiller', 'pick_point', 'refine', 'DPI', 'PANEL_ASPECT',
    'PANEL_INCHES', 'map_to_image', 'render_panels', 'saliency_map'
]
