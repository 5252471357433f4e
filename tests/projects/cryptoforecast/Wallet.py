"""Holdings of the simulated trader."""


class Wallet:
    def __init__(self, btc=1.0, eth=10.0):
        self.btc = btc
        self.eth = eth

    def asset_dict(self):
        return {"btc": self.btc, "eth": self.eth}

    def trade(self, btc, eth):
        self.btc += btc["btc"]
        self.eth += eth["eth"]
