"""Feature saliency heatmaps (DiffKD paper, Fig. 2 and Appendix F.1)."""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: Size of one panel of :func:`render_panels`, in inches.
PANEL_INCHES = 3.0
#: Height of a panel over its width (room for the title).
PANEL_ASPECT = 1.2
#: Resolution of the saved figure.
DPI = 100


def saliency_map(feature: Tensor, temperature: float = 0.5) -> Tensor:
    r"""Spatial saliency of a feature map, as in DiffKD (Eq. (10), after
    FGD): the channel mean, then a softmax over all positions::

        X'[h, w] = (1 / C) * sum_c X[c, h, w]
        V        = H * W * softmax(X' / tau)      (softmax over the H*W cells)

    so ``V[h, w] = H W exp(X'[h, w] / tau) / sum_{h', w'} exp(X'[h', w'] /
    tau)``: ``V`` averages to 1, cells above 1 are more salient than the
    average. (The paper's appendix prints the mean with ``1/HW`` and a
    spatial index; the text says "average the feature map along channel
    axis", which is what is computed here.) ``tau = 0.5`` in the paper.

    Args:
        feature: ``(C, H, W)`` or ``(B, C, H, W)``.
        temperature: ``tau`` > 0.

    Returns:
        ``(H, W)`` or ``(B, H, W)`` float32 maps.

    Raises:
        ValueError: For another number of dimensions or ``tau <= 0``.
    """
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if feature.dim() not in (3, 4):
        raise ValueError(
            f'saliency_map needs a (C, H, W) or (B, C, H, W) feature map, got '
            f'shape {tuple(feature.shape)}; vectors (e.g. class logits) have '
            f'no spatial saliency')
    single = feature.dim() == 3
    x = feature.detach().float()
    if single:
        x = x[None]
    b, _, h, w = x.shape
    mean = x.mean(dim=1).reshape(b, h * w)
    out = (h * w * torch.softmax(mean / temperature, dim=1)).reshape(b, h, w)
    return out[0] if single else out


def map_to_image(saliency: Tensor, input_shape: Tuple[int, int],
                 img_shape: Optional[Tuple[int, int]],
                 ori_shape: Tuple[int, int]) -> np.ndarray:
    """Bring an ``(h, w)`` map of the padded network input onto the original
    image: bilinear upsampling to ``input_shape`` (the padded batch), crop
    to ``img_shape`` (the resized image inside the padding; ``None``: no
    padding), then resize to ``ori_shape``.

    Returns:
        ``(H_ori, W_ori)`` float32 array.
    """
    x = saliency.detach().float()[None, None]
    x = F.interpolate(x, size=tuple(input_shape), mode='bilinear',
                      align_corners=False)
    if img_shape is not None:
        x = x[..., :img_shape[0], :img_shape[1]]
    x = F.interpolate(x, size=tuple(ori_shape), mode='bilinear',
                      align_corners=False)
    return x[0, 0].cpu().numpy()


def render_panels(image: np.ndarray, maps: Sequence[np.ndarray],
                  titles: Sequence[str], out_file: str, alpha: float = 0.5,
                  shared_scale: bool = True) -> Tuple[int, int]:
    """Save the heatmaps side by side, each over the image, as a PNG.

    The figure has one ``PANEL_INCHES`` wide panel per map at ``DPI``, so
    the PNG is ``len(maps) * PANEL_INCHES * DPI`` pixels wide and
    ``PANEL_ASPECT * PANEL_INCHES * DPI`` high.

    Args:
        image: ``(H, W, 3)`` RGB image (uint8 or float in [0, 1]).
        maps: ``(H, W)`` heatmaps on the image grid.
        titles: One title per map.
        out_file: The PNG to write.
        alpha: Opacity of the heatmaps.
        shared_scale: One colour scale (0 to the largest value) for all
            panels, so saliency is comparable across them; otherwise each
            panel spans its own range.

    Returns:
        ``(height, width)`` of the PNG in pixels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    if len(maps) != len(titles) or not maps:
        raise ValueError('need one title per map and at least one map')
    top = max(float(m.max()) for m in maps) if shared_scale else None
    n = len(maps)
    # a Figure on an Agg canvas: no pyplot, no global backend switch
    fig = Figure(figsize=(n * PANEL_INCHES, PANEL_ASPECT * PANEL_INCHES),
                 dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)
    for ax, heat, title in zip(axes[0], maps, titles):
        ax.imshow(image)
        ax.imshow(heat, cmap='jet', alpha=alpha, vmin=0 if top else None,
                  vmax=top, interpolation='bilinear')
        ax.set_title(title, fontsize=9)
        ax.axis('off')
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.86,
                        wspace=0.03)
    fig.savefig(out_file, dpi=DPI)
    return (int(round(PANEL_ASPECT * PANEL_INCHES * DPI)),
            int(round(n * PANEL_INCHES * DPI)))
