"""The regtest stack: bitcoind, two Core Lightning nodes, the reference mint, and the demo."""
