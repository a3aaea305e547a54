"""Radio physics and spectrum allocation.

Pure numpy/cvxpy: no simpy, no torch. Everything here is a function of its inputs and of
explicit seeds, so the simulator can ask for a channel at any virtual time in any order.
"""
