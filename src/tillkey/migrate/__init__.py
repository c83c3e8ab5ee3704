"""Moving a shop's accounts into Tillkey: readers of other systems' databases and the import run."""
