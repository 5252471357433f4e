"""Historical ETH/BTC prices: every day of the window in one table."""

import datetime

import config
import luigi
import pandas as pd

from eth.IngestDailyPrices import IngestDailyPrices
from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash


class IngestPricesHistoricalETHBTC(TaskWithCheckingInputHash):
    start = luigi.DateParameter(default=datetime.date(2025, 1, 1))
    days = luigi.IntParameter(default=365)

    def requires(self):
        return [
            IngestDailyPrices(self.start + datetime.timedelta(days=n)) for n in range(self.days)
        ]

    def output(self):
        return HashableLocalTarget(config.data_dir + "ingest/ethereum_historical_btc.csv")

    def run(self):
        frames = [
            pd.read_csv(day.path, header=None, names=["Date(UTC)", "Value"]) for day in self.input()
        ]
        self.output().makedirs()
        pd.concat(frames).to_csv(self.output().path, index=False)
        with open("runs.log", "a") as log:
            log.write("IngestPricesHistoricalETHBTC\n")
