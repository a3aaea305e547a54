"""Models, datasets, partitions, local training and FL algorithms (torch; no simpy)."""
