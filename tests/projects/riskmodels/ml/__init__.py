"""The project's helpers: features, classifiers, cross-validation plots, parameter grids."""
