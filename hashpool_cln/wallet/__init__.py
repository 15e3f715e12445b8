"""The miner's wallet: BIP39 seed, sqlite wallet, sweep by key, and redemption at the pool's desk over commando."""
