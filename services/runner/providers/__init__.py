"""Model providers behind one protocol (`base.Provider`)."""
