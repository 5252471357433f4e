"""One day of ETH/BTC prices, as the exchange exported it, cleaned to the shared layout."""

import datetime

import config
import luigi

from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash


class IngestDailyPrices(TaskWithCheckingInputHash):
    date = luigi.DateParameter()

    def requires(self):
        return HashableExternalFile(config.raw_dir + f"ethbtc-{self.date:%Y-%m-%d}.csv")

    def output(self):
        return HashableLocalTarget(config.data_dir + f"ingest/daily/{self.date:%Y-%m-%d}.csv")

    def run(self):
        with self.input().open() as src:
            value = float(src.read().split(",")[1])
        stamp = datetime.datetime.combine(self.date, datetime.time())
        self.output().makedirs()
        with open(self.output().path, "w") as dst:  # written in place, as the original does
            dst.write(f"{stamp:%Y-%m-%d %H:%M:%S},{value:.8f}\n")
        with open("runs.log", "a") as log:
            log.write(f"IngestDailyPrices_{self.date}\n")
