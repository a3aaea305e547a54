"""What a device is, and how long and how much energy its work takes. No simpy, no torch."""
