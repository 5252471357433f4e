"""Replays the strategy over the history and values the wallet each day."""

import config
import pandas as pd
from Wallet import Wallet

from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash
from trade.fn.bollinger_crossing import bollinger_crossing
from trade.strategy.BollingerBands import BollingerBands


class Backtest(TaskWithCheckingInputHash):
    def requires(self):
        return [BollingerBands()]

    def output(self):
        return HashableLocalTarget(config.data_dir + "trading/backtest_data.csv")

    def run(self):
        dta = pd.read_csv(self.input()[0]["bollinger"].path, parse_dates=["Date(UTC)"])
        wallet = Wallet()
        assets = []
        for index, row in dta.iterrows():
            if index < 1:
                continue
            amount = bollinger_crossing(row["Value"], row["Lower Band"], row["Upper Band"])
            if amount != 0:
                wallet.trade({"btc": -amount * row["Value"]}, {"eth": amount})
            held = wallet.asset_dict()
            assets.append(
                {
                    "date_time": row["Date(UTC)"],
                    **held,
                    "trade": amount,
                    "netHoldings": round(held["btc"] + held["eth"] * row["Value"], 10),
                }
            )
        pd.DataFrame(assets).to_csv(self.output().path, index=False)
        with open("runs.log", "a") as log:
            log.write("Backtest\n")
