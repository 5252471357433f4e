"""How much to trade when the price crosses a band."""


def bollinger_crossing(price, bollinger_lower, bollinger_upper, amount=1.0):
    if price <= bollinger_lower:
        return amount
    if price >= bollinger_upper:
        return -amount
    return 0
