"""Cleaning raw orders: helper functions calling each other."""

from utils.config import THRESHOLD


def _strip(field):
    return field.strip().lower()


def impute(quantity, fill=1.0):
    """A quantity that cannot be right becomes ``fill``."""
    return quantity if quantity > THRESHOLD else fill


def clean_row(line):
    item, quantity, price = (_strip(field) for field in line.split(","))
    return item, impute(float(quantity)), float(price)


def parse_rows(text):
    return [clean_row(line) for line in text.splitlines()[1:] if line.strip()]
