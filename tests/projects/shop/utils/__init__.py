"""Helpers of the shop pipeline: parsing and cleaning orders, money, reports."""
