"""Modbus/TCP: register data types and maps, probe and scan, the poller.

Public API (each block is owned by the module named in its comment).
"""

# --- data types and byte/word orders (mcptool.modbus.datatypes) ---

# --- probe and scan (mcptool.modbus.probe, mcptool.modbus.scan) ---

# --- register maps and the poller (mcptool.modbus.registermap, mcptool.modbus.poller) ---

__all__: list[str] = []
