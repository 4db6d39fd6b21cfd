"""``hopf-net``: a Stuart–Landau (Hopf) whole-brain network with a pathological beta generator (ECoG)."""
