"""The redemption desk: buys ehash for sats, never paying before it holds the tokens (DESIGN §2)."""
