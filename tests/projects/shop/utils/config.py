"""Settings of the shop pipeline."""

#: Quantities at or below this are taken for data-entry errors and replaced.
THRESHOLD = 0.5
TAX_RATE = 0.2
CURRENCY = "EUR"
DATA = "data"
