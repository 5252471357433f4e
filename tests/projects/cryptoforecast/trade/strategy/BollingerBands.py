"""Strategy for trading with Bollinger Band indicators (parameters in config)."""

import config
import pandas as pd
from eth.IngestPricesHistoricalBTC import IngestPricesHistoricalETHBTC

from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash


class BollingerBands(TaskWithCheckingInputHash):
    def requires(self):
        return [IngestPricesHistoricalETHBTC()]

    def output(self):
        outs = {
            "trades": HashableLocalTarget(config.data_dir + "trading/trades_bollinger.csv"),
            "bollinger": HashableLocalTarget(config.data_dir + "analyze/bollinger.csv"),
        }
        for out in outs:
            outs[out].makedirs()  # a side effect in output(), as the original has
        return outs

    def run(self):
        if config.ewmInterval < config.fidelity:
            raise ValueError("config.ewmInterval must be >= to config.fidelity")
        dta = pd.read_csv(self.input()[0].path, parse_dates=["Date(UTC)"])
        interval = config.ewmInterval / config.fidelity
        dta["EMA"] = dta["Value"].ewm(span=interval).mean()
        dta["STD"] = dta["Value"].ewm(span=interval).std().fillna(0.0)
        dta["Upper Band"] = dta["EMA"] + dta["STD"] * config.stdK
        dta["Lower Band"] = dta["EMA"] - dta["STD"] * config.stdK
        low = dta["Value"] <= dta["Lower Band"]
        high = dta["Value"] >= dta["Upper Band"]
        trades = dta.loc[low | high, ["Date(UTC)", "Value"]].rename(
            columns={"Date(UTC)": "date_time", "Value": "price"}
        )
        trades["trade"] = [
            config.tradeAmount if lo else -config.tradeAmount for lo in low[low | high]
        ]
        dta.round(10).to_csv(self.output()["bollinger"].path, index=False)
        trades.round(10).to_csv(self.output()["trades"].path, index=False)
        with open("runs.log", "a") as log:
            log.write("BollingerBands\n")
