"""hashpool-cln: redeem Hashpool ehash for Lightning payments from a Core Lightning node."""

__version__ = "0.1.0"
