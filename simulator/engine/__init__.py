"""The engine: the built world, the SimPy processes, leg costs, learning steps and records."""
