"""Contact files: streaming readers, email normalisation and the bulk loader of the import."""
