"""The Lightning port: the node calls the desk needs, and their implementation over CLN JSON-RPC."""
