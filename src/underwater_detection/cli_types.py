"""argparse value types shared by every ``uwdet`` sub-command (one definition, one error wording)."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def input_size_hw(text: str) -> tuple[int, int]:
    """A network input size, N or HxW (height first); see ``models.spec.parse_size_hw``."""
    from .models.spec import parse_size_hw

    try:
        return parse_size_hw(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
