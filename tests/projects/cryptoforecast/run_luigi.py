"""usage: luigi --module run_luigi Backtest --local-scheduler (task classes imported here)"""

import luigi
from eth.IngestDailyPrices import IngestDailyPrices  # noqa: F401
from eth.IngestPricesHistoricalBTC import IngestPricesHistoricalETHBTC  # noqa: F401
from trade.backtest.Backtest import Backtest  # noqa: F401
from trade.strategy.BollingerBands import BollingerBands  # noqa: F401

if __name__ == "__main__":
    luigi.run()
