"""The default rule library (YAML data files, one per family)."""
