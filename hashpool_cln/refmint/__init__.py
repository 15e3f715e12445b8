"""The reference pool/mint: a Cashu mint for ehash epochs with share issuance and share-backed melt quotes.

``create_app(config)`` builds the aiohttp application (``app.py``); ``Ledger`` (``ledger.py``) is the mint logic;
``hashpool-mint`` (``cli.py``) runs it. The HTTP interface is specified in ``docs/ehash-mint-api.md``.
"""
