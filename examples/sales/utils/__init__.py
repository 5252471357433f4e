"""Helpers of the sales pipeline: the logic lives here, not in the task classes."""
