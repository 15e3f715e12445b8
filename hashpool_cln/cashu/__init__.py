"""Cashu protocol primitives: tokens, BDHKE, DLEQ, keysets, NUT-13 secrets and outputs, NUT-20 and lookup
signatures, spending conditions; one home for each, used by the mint, the desk and the wallet.

Pure functions and small classes on coincurve and cbor2; no I/O.
"""
