"""The logger of luigi_repro: a child of Luigi's ``luigi-interface`` logger.

Its messages (early cutoffs, unusable records) therefore appear wherever a Luigi user already
reads Luigi's own, with the same level and format; filter on ``luigi-interface.luigi_repro``.
"""

from __future__ import annotations

import logging

__all__ = ["LOGGER_NAME", "logger"]

LOGGER_NAME = "luigi-interface.luigi_repro"

logger = logging.getLogger(LOGGER_NAME)
