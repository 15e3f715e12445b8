"""Cashu protocol primitives: tokens, BDHKE, DLEQ, keysets, NUT-13 secrets, spending conditions.

Pure functions and small classes on coincurve and cbor2; no I/O.
"""
