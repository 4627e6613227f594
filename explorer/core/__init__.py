"""Pure data and numpy analysis: no torch, no Qt."""
