"""One module per intensity source (API or table); each implements `IntensitySource`."""
