"""The one check of a configured loss weight, shared by the distiller, the
connectors and their points."""
import math


def check_nonnegative_weight(value, name: str, where: str) -> float:
    """Return ``value`` as a float if it is a finite number >= 0.

    Args:
        value (Any): The configured weight.
        name (str): The setting's name (``student_loss_weight``,
            ``theta_weight``, ``level_weights[1]``).
        where (str): Where it is set, for the message (``Distiller``,
            ``DiffKDConnector``).

    Returns:
        float: ``value`` as a float.

    Raises:
        ValueError: For a negative, infinite or NaN weight (a negative one
            would maximise the loss it scales), or a non-number.
    """
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{where}: {name} must be a number >= 0, got '
                         f'{value!r}') from None
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(
            f'{where}: {name} must be a finite number >= 0, got {value!r}: a '
            f'negative weight maximises the loss it scales instead of '
            f'minimising it. Use a weight >= 0 (0 switches the loss off)')
    return weight
