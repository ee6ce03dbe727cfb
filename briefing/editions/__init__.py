"""Cut editions: find what is due, cut each variant once, put the editions in the ledger, preview."""
