"""One module per tab, each with `build_<tab>(lab)` that lays out its components and wires its events."""
