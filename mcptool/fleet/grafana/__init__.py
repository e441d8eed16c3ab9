"""The fleet's Grafana dashboard (``fleet.json``), shipped in the package; see
:mod:`mcptool.fleet.dashboard` to read it and docs/FLEET.md to import it."""
