"""Time, wiring, config, runs and the CLI: the only package that imports simpy.

Public API: :func:`simulator.loader.load_scenario`, :func:`simulator.engine.runner.run`.
"""
