"""Pipeline steps: each a plain library plus a thin KFP component."""
