"""Power sources: each measures (or models) one component's energy over an interval, machine-wide."""
