"""FL algorithms, one per file. Each decides *what* is computed, never *when*."""
