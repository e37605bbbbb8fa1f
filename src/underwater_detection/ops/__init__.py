"""See the package docstring for the layer rules."""
