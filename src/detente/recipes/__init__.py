"""Recipes that use the layers below: the embedded ``tiny`` models' persona warm start."""
