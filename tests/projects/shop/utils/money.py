"""Amounts of money, in cents."""

import utils.config as cfg


def to_cents(amount):
    return round(amount * 100)


def with_tax(cents):
    return round(cents * (1 + cfg.TAX_RATE))


def format_total(cents):
    return f"{cents / 100:.2f} {cfg.CURRENCY}"
