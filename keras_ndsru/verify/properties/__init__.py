"""Properties as data: input regions and unsafe output conditions."""
