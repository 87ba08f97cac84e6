"""The sans-IO core: protocol, commands, events, codecs and chat state. No trio here.

Every module in this package is plain functions and dataclasses: bytes in, commands
out; events in, bytes out. Nothing awaits, and nothing imports trio (a test enforces
it), so all of it is tested with plain synchronous tests and reused by any transport.
"""
