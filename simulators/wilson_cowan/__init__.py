"""``wilson-cowan``: a sheet of Wilson–Cowan E–I columns with gamma, a hyperexcitable focus and an ECoG grid."""
