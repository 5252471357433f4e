"""Common configuration options (module constants the tasks read in run(), as the original does)."""

import os

data_dir = os.environ.get("CRYPTO_DATA_DIR", "output") + "/"
raw_dir = "raw/"

# Bollinger bands: moving averages over 20 days of daily prices.
ewmInterval = 86400 * 20
fidelity = 86400
stdK = 2
tradeAmount = 0.1
